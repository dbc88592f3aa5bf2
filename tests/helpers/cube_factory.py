"""Build small cubes (schema ``cube/1``) straight from arrays, for engine and evaluation tests."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
from affine import Affine
from rasterio.crs import CRS

from pipeline.geometry.grid import Grid
from pipeline.store.cube import COMMON_UNITS, SCHEMA, build_dataset, empty_layer, write_new_cube


def write_cube(
    path: Path,
    fine: dict[str, np.ndarray],
    coarse: dict[str, np.ndarray],
    *,
    fine_valid: dict[str, np.ndarray] | None = None,
    coarse_valid: dict[str, np.ndarray] | None = None,
    bands: Sequence[str] | None = None,
    chunk: int = 64,
    crs: str | None = "EPSG:32633",
    pixel_size: float = 30.0,
) -> Path:
    """Write (or replace) a cube whose images are given per date ``"YYYY-MM-DD"`` -> (band, y, x).

    Validity defaults to "finite in every band"; ``*_valid`` masks are and-ed with it.
    Returns ``path``.
    """
    dates = sorted(set(fine) | set(coarse))
    first = next(iter({**fine, **coarse}.values()))
    n_b, n_y, n_x = first.shape
    bands = list(bands or [f"b{i + 1}" for i in range(n_b)])

    def layers(images: dict[str, np.ndarray], valid: dict[str, np.ndarray] | None) -> list:
        out = []
        for day in dates:
            if day not in images:
                out.append(empty_layer(n_b, (n_y, n_x), chunk))
                continue
            ok = np.isfinite(images[day]).all(axis=0)
            if valid is not None and day in valid:
                ok &= valid[day]
            out.append((da.from_array(images[day].astype(np.float32)), da.from_array(ok)))
        return out

    grid = Grid(
        CRS.from_user_input(crs) if crs else None,
        Affine(pixel_size, 0.0, 500000.0, 0.0, -pixel_size, 4500000.0),
        n_y,
        n_x,
    )
    cube = build_dataset(
        np.array(dates, dtype="datetime64[ns]"),
        {"fine": layers(fine, fine_valid), "coarse": layers(coarse, coarse_valid)},
        {"fine": [d in fine for d in dates], "coarse": [d in coarse for d in dates]},
        grid,
        bands,
        chunk=chunk,
        attrs={"stfcube_schema": SCHEMA, "fine_sensor": "test-fine", "coarse_sensor": "test-c"},
        var_attrs={"fine": {"units": COMMON_UNITS}, "coarse": {"units": COMMON_UNITS}},
    )
    if path.exists():
        shutil.rmtree(path)
    write_new_cube(cube, path)
    return path


def synthetic_scene(
    size: tuple[int, int], n_bands: int, dates: Sequence[str], seed: int = 0
) -> dict[str, np.ndarray]:
    """Smooth, patchy reflectance-like images (x10000) that change with time, per date."""
    rng = np.random.default_rng(seed)
    n_y, n_x = size
    yy, xx = np.mgrid[0:n_y, 0:n_x]
    patches = ((yy // 17 + xx // 23) % 5).astype(np.float32)
    out = {}
    for k, day in enumerate(dates):
        images = []
        for b in range(n_bands):
            base = 800 + 600 * patches + 150 * b + 40 * k * (patches - 2)
            images.append(base + rng.normal(0, 30, size).astype(np.float32))
        out[day] = np.stack(images).astype(np.float32).round()
    return out


def block_mean(images: dict[str, np.ndarray], factor: int) -> dict[str, np.ndarray]:
    """Coarse images on the fine grid: each ``factor`` x ``factor`` block replaced by its mean."""
    out = {}
    for day, image in images.items():
        b, n_y, n_x = image.shape
        trimmed = image[:, : n_y - n_y % factor, : n_x - n_x % factor]
        means = trimmed.reshape(b, n_y // factor, factor, n_x // factor, factor).mean(axis=(2, 4))
        full = np.repeat(np.repeat(means, factor, axis=1), factor, axis=2)
        padded = np.pad(full, ((0, 0), (0, n_y - full.shape[1]), (0, n_x - full.shape[2])), "edge")
        out[day] = padded.round().astype(np.float32)
    return out
