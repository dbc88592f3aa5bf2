"""docs/manifest.md: its example works when copied elsewhere, and it documents every key."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

from stfcube.pipeline.ingest import ingest
from stfcube.pipeline.ingest.manifest import Decoding, Manifest, ManifestScene

DOC = Path(__file__).resolve().parents[2] / "docs" / "manifest.md"
RATIO, COARSE = 16, 4  # coarse pixels a side; the fine grid is 64 x 64 px of 30 m


def _example(kind: str) -> str:
    """The doc's first ``kind`` (yaml/csv) manifest block."""
    blocks = re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)
    return next(b for b in blocks if "landsat/LT05_20041126.tif" in b)


def _write(path: Path, data: np.ndarray, pixel: float, nodata: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[-1],
        height=data.shape[-2],
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:32633",
        transform=from_origin(500_000.0, 4_500_000.0, pixel, pixel),
        nodata=nodata,
    ) as dst:
        dst.write(data)


def _build_site(site: Path) -> None:
    """The files the example lists: Landsat-like int16 + QA masks, MODIS-like 0..1 floats."""
    rng = np.random.default_rng(3)
    size = RATIO * COARSE
    for day in ("20041126", "20041228"):
        fine = rng.integers(200, 4000, (3, size, size)).astype(np.int16)
        fine[:, 0, 0] = -9999
        qa = np.zeros((1, size, size), np.uint8)
        qa[0, 10:20, 10:20] = 2  # a cloud
        _write(site / "landsat" / f"LT05_{day}.tif", fine, 30.0, nodata=-9999)
        _write(site / "landsat" / f"LT05_{day}_qa.tif", qa, 30.0)
    for day in ("20041126", "20041212", "20041228"):
        coarse = rng.uniform(0.02, 0.4, (3, COARSE, COARSE)).astype(np.float32)
        _write(site / "modis" / f"MOD09_{day}.tif", coarse, 30.0 * RATIO)


def test_the_example_ingests_from_anywhere(tmp_path: Path) -> None:
    """The example folder, moved after it was written, ingests as the doc says."""
    written = tmp_path / "elsewhere" / "my-site"
    _build_site(written)
    (written / "manifest.yaml").write_text(_example("yaml"))
    (written / "manifest.csv").write_text(_example("csv"))
    moved = tmp_path / "moved" / "my-site"
    shutil.copytree(written, moved)
    shutil.rmtree(written)
    ingest(moved / "manifest.yaml", tmp_path / "cube.zarr")
    cube = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)
    assert [str(b) for b in cube.band.values] == ["green", "red", "nir"]
    assert list(cube.fine_observed.values) == [True, False, True]
    assert bool(cube.coarse_observed.all())
    assert cube.sizes["y_coarse"] == COARSE
    valid = cube.fine_valid.isel(time=0).values
    assert not valid[0, 0] and not valid[10:20, 10:20].any() and valid[30:, 30:].all()
    coarse = cube.coarse.isel(time=1).values  # 0..1 decoded with scale 10000
    assert np.nanmin(coarse) > 100 and np.nanmax(coarse) < 4000
    ingest(moved / "manifest.csv", tmp_path / "csv.zarr")  # the CSV form of two entries
    from_csv = xr.open_zarr(tmp_path / "csv.zarr", consolidated=False)
    np.testing.assert_array_equal(from_csv.fine.values[0], cube.fine.values[0])


@pytest.mark.parametrize("model", [Manifest, ManifestScene, Decoding])
def test_every_key_is_documented(model: type) -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?", DOC.read_text(), re.M))
    keys = {k for pair in documented for k in pair if k}
    assert set(model.model_fields) <= keys
