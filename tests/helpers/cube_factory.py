"""Build small cubes (schema ``cube/1``) straight from arrays, for engine and evaluation tests."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import dask.array as da
import numpy as np
from affine import Affine
from rasterio.crs import CRS

from stfcube.pipeline.geometry.grid import Grid
from stfcube.pipeline.store.cube import (
    COMMON_UNITS,
    SCHEMA,
    build_dataset,
    empty_layer,
    write_new_cube,
)


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
    native_ratio: int | None = None,
    static: dict[str, np.ndarray] | None = None,
    attrs: dict[str, object] | None = None,
) -> Path:
    """Write (or replace) a cube whose images are given per date ``"YYYY-MM-DD"`` -> (band, y, x).

    Validity defaults to "finite in every band"; ``*_valid`` masks are and-ed with it.
    ``native_ratio``: also write ``coarse_native``, each native pixel the mean of its
    ``native_ratio``-pixel block of ``coarse`` (valid where the whole block is; edge blocks may be
    partial). ``static``: time-less ``(y, x)`` layers. ``attrs``: extra cube attributes.
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
    stems = {"fine": layers(fine, fine_valid), "coarse": layers(coarse, coarse_valid)}
    native = None
    if native_ratio is not None:
        native = Grid(
            grid.crs,
            Affine(
                pixel_size * native_ratio, 0.0, 500000.0, 0.0, -pixel_size * native_ratio, 4.5e6
            ),
            -(-n_y // native_ratio),
            -(-n_x // native_ratio),
        )
        stems["coarse_native"] = [_native(v, m, native_ratio) for v, m in stems["coarse"]]
    cube = build_dataset(
        np.array(dates, dtype="datetime64[ns]"),
        stems,
        {"fine": [d in fine for d in dates], "coarse": [d in coarse for d in dates]},
        grid,
        bands,
        chunk=chunk,
        native=native,
        attrs={
            "stfcube_schema": SCHEMA,
            "fine_sensor": "test-fine",
            "coarse_sensor": "test-c",
            **({"coarse_ratio": native_ratio} if native_ratio else {}),
            **(attrs or {}),
        },
        var_attrs={"fine": {"units": COMMON_UNITS}, "coarse": {"units": COMMON_UNITS}},
    )
    for name, layer in (static or {}).items():
        cube[name] = (("y", "x"), da.from_array(layer, chunks=chunk))
    if path.exists():
        shutil.rmtree(path)
    write_new_cube(cube, path)
    return path


def _native(values: da.Array, valid: da.Array, ratio: int) -> tuple[da.Array, da.Array]:
    """Block means of ``ratio`` x ``ratio`` fine pixels (partial blocks at the edges)."""
    data, ok = np.asarray(values), np.asarray(valid)
    n_b, n_y, n_x = data.shape
    rows, cols = -(-n_y // ratio), -(-n_x // ratio)
    out = np.full((n_b, rows, cols), np.nan, dtype=np.float32)
    out_ok = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            block = (slice(r * ratio, (r + 1) * ratio), slice(c * ratio, (c + 1) * ratio))
            if ok[block].all():
                out[:, r, c] = data[(slice(None), *block)].mean(axis=(1, 2))
                out_ok[r, c] = True
    return da.from_array(out), da.from_array(out_ok)


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
