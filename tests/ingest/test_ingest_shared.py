"""Every shared dataset ingests from its manifest and round-trips exactly (values, nodata, dates).

The expected values are computed here straight from the files with rasterio and NumPy:
``float32(raw * scale + offset)`` where no band is nodata and the mask (if any) is clear, NaN
elsewhere. Coarse images on their native grid must equal ``coarse_native`` and, repeated
``ratio`` times, ``coarse`` on the fine grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stfcube.pipeline.ingest.manifest import load_manifest
from stfcube.pipeline.ingest.readers import Scene
from stfcube.pipeline.ingest.scenes import ingest
from stfcube.pipeline.store.cube import open_cube

MANIFESTS = Path(__file__).parents[1] / "helpers" / "fixtures" / "manifests"
#: manifest name -> its data folder under shared/data
DATASETS = {
    "fsdaf_lgc_sim": "fsdaf_lgc_sim",
    "starfm_sim_test1": "starfm_sim/Test_1",
    "starfm_sim_test2": "starfm_sim/Test_2",
    "starfm_sim_test3": "starfm_sim/Test_3",
    "ifsdaf_ndvi_ts": "ifsdaf_ndvi_ts",
    "kranj_ts": "kranj_ts",
}


def _read(path: str, bands: list[int]) -> tuple[np.ndarray, float | None]:
    """The given bands (all when empty) and the file's nodata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read(bands or None), src.nodata


def expected(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of a scene computed directly from its files."""
    raw, file_nodata = _read(scene.path, list(scene.bands))
    nodata = scene.nodata if scene.nodata is not None else file_nodata
    valid = np.isfinite(raw).all(axis=0)
    if nodata is not None:
        valid &= (raw != np.asarray(nodata).astype(raw.dtype)).all(axis=0)
    if scene.mask_path is not None:
        mask = _read(scene.mask_path, [1])[0][0]
        valid &= np.isin(mask, scene.mask_valid_values)
    values = (raw.astype(np.float64) * scene.scale + scene.offset).astype(np.float32)
    return np.where(valid, values, np.float32(np.nan)), valid


def _check_sensor(cube, scenes: list[Scene], sensor: str) -> int:
    """Compare every scene of one sensor with the cube; return the number of invalid pixels."""
    times = cube["time"].values.astype("datetime64[D]")
    assert set(times[cube[f"{sensor}_observed"].values]) == {s.date for s in scenes}
    invalid = 0
    for scene in scenes:
        t = int(np.flatnonzero(times == scene.date)[0])
        values, valid = expected(scene)
        invalid += int((~valid).sum())
        if "coarse_native" in cube and sensor == "coarse":
            np.testing.assert_array_equal(cube["coarse_native"][t].values, values)
            np.testing.assert_array_equal(cube["coarse_native_valid"][t].values, valid)
            ratio = cube.attrs["coarse_ratio"]
            values = np.repeat(np.repeat(values, ratio, axis=1), ratio, axis=2)
            valid = np.repeat(np.repeat(valid, ratio, axis=0), ratio, axis=1)
            values = values[:, : cube.sizes["y"], : cube.sizes["x"]]
            valid = valid[: cube.sizes["y"], : cube.sizes["x"]]
        np.testing.assert_array_equal(cube[sensor][t].values, values, err_msg=scene.label())
        np.testing.assert_array_equal(cube[f"{sensor}_valid"][t].values, valid)
    return invalid


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shared_dataset_round_trips(name: str, shared_dir: Path, tmp_path: Path):
    root = shared_dir / "data" / DATASETS[name]
    manifest = MANIFESTS / f"{name}.yaml"
    scenes = load_manifest(manifest, root=root).scenes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pixel-grid-only datasets warn
        report = ingest(manifest, tmp_path / "cube.zarr", root=root, chunk=256)
    cube = open_cube(tmp_path / "cube.zarr")
    fine = [s for s in scenes if s.role == "fine"]
    coarse = [s for s in scenes if s.role == "coarse"]
    assert report.ignored == sum(s.role == "truth" for s in scenes)
    assert len(set(cube["time"].values)) == len({s.date for s in fine + coarse})
    invalid = _check_sensor(cube, fine, "fine") + _check_sensor(cube, coarse, "coarse")
    if name in {"ifsdaf_ndvi_ts", "kranj_ts"}:
        assert invalid > 0  # CFMask clouds / fills and kranj's -3.4e38 gaps are masked
    if name == "kranj_ts":
        with rasterio.open(fine[0].path) as src:
            assert cube.rio.crs == src.crs and cube.rio.transform() == src.transform
        # MODIS 0..1 x 10000 is comparable with Landsat x 10000
        assert 0.5 < float(cube["coarse"].mean() / cube["fine"].mean()) < 2.0
    if name == "ifsdaf_ndvi_ts":
        assert cube.attrs["coarse_ratio"] == 8 and cube.rio.crs is not None  # LOCAL_CS
        assert (cube.sizes["y_coarse"], cube.sizes["x_coarse"]) == (69, 72)
        assert cube.sizes["time"] == 31  # 8 Landsat + 23 MODIS composites, no shared dates
    truth = [s for s in scenes if s.role == "truth"]
    if truth:
        ingest(manifest, tmp_path / "truth.zarr", root=root, roles=("truth",))
        _check_sensor(open_cube(tmp_path / "truth.zarr"), truth, "fine")
