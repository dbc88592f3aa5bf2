"""Build small cubes (schema ``cube/1``) straight from arrays, for engine and evaluation tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr


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
    """Write a cube whose fine/coarse images are given per date (``"YYYY-MM-DD"`` -> (band, y, x)).

    Validity defaults to "finite in every band". Returns ``path``.
    """
    dates = sorted(set(fine) | set(coarse))
    first = next(iter({**fine, **coarse}.values()))
    n_b, n_y, n_x = first.shape
    bands = list(bands or [f"b{i + 1}" for i in range(n_b)])

    def stack(images: dict[str, np.ndarray], valid: dict[str, np.ndarray] | None):
        data = np.full((len(dates), n_b, n_y, n_x), np.nan, dtype=np.float32)
        ok = np.zeros((len(dates), n_y, n_x), dtype=bool)
        for i, day in enumerate(dates):
            if day in images:
                data[i] = images[day]
                ok[i] = np.isfinite(images[day]).all(axis=0)
                if valid is not None and day in valid:
                    ok[i] &= valid[day]
        return data, ok

    fine_data, fine_ok = stack(fine, fine_valid)
    coarse_data, coarse_ok = stack(coarse, coarse_valid)
    x = 500000.0 + pixel_size * (np.arange(n_x) + 0.5)
    y = 4500000.0 - pixel_size * (np.arange(n_y) + 0.5)
    times = np.array(dates, dtype="datetime64[ns]")
    dims4, dims3 = ("time", "band", "y", "x"), ("time", "y", "x")
    cube = xr.Dataset(
        {
            "fine": (dims4, fine_data, {"units": "reflectance x 10000"}),
            "fine_valid": (dims3, fine_ok),
            "coarse": (dims4, coarse_data, {"units": "reflectance x 10000"}),
            "coarse_valid": (dims3, coarse_ok),
        },
        coords={
            "time": times,
            "band": np.array(bands, dtype=object),
            "y": y,
            "x": x,
            "fine_observed": ("time", np.array([d in fine for d in dates])),
            "coarse_observed": ("time", np.array([d in coarse for d in dates])),
        },
        attrs={"stfcube_schema": "cube/1", "fine_sensor": "test-fine", "coarse_sensor": "test-c"},
    )
    if crs is not None:
        cube = cube.rio.write_crs(crs)
    chunks = {"time": 1, "band": 1, "y": chunk, "x": chunk}
    cube = cube.chunk(chunks)
    cube.to_zarr(path, mode="w", consolidated=False)
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
