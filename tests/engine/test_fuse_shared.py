"""End to end on the shared test sets: manifest -> ingest -> tiled fuse == USDA STARFM program.

For each run, the cube is ingested from its manifest, fused by the tiled engine with several tile
sizes (dividing, non-dividing, one tile), and compared bit for bit with one whole-image kernel
call and with the reference program's output (``shared/oracle/starfm_usda``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from stfcube.kernels.starfm import starfm
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.ingest.scenes import ingest

MANIFESTS = Path(__file__).parents[1] / "helpers" / "fixtures" / "manifests"

#: (manifest, data folder, oracle run, pair date, prediction date, max_search_distance)
RUNS = [
    (
        "fsdaf_lgc_sim",
        "fsdaf_lgc_sim",
        "fsdaf_lgc_sim_p20041126_to_20041228",
        "2004-11-26",
        "2004-12-28",
        750.0,
    ),
    (
        "starfm_sim_test2",
        "starfm_sim/Test_2",
        "starfm_sim_test_2_t1_to_t4_d450",
        "2000-01-01",
        None,
        450.0,
    ),
]


def _oracle(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read()


@pytest.mark.shared
@pytest.mark.parametrize(("manifest", "folder", "run", "pair", "date", "distance"), RUNS)
def test_tiled_engine_reproduces_the_usda_program(
    shared_dir: Path, tmp_path: Path, manifest, folder, run, pair, date, distance
) -> None:
    cube = tmp_path / "cube.zarr"
    with pytest.warns(UserWarning, match="no CRS"):
        ingest(MANIFESTS / f"{manifest}.yaml", cube, root=shared_dir / "data" / folder, chunk=64)
    oracle = _oracle(shared_dir / "oracle" / "starfm_usda" / run / "prediction.tif")
    params = {"max_search_distance": distance}
    outputs = {}
    for tile in (64, 100, 512):
        report = fuse(
            cube, tmp_path / f"fused_{tile}.zarr", tile=tile, params=params, local_threads=2
        )
        fused = xr.open_zarr(tmp_path / f"fused_{tile}.zarr", consolidated=False)
        assert len(report.dates) == 1 and (date is None or report.dates == [date])
        outputs[tile] = fused["fused"].values[0]
    np.testing.assert_array_equal(outputs[64], outputs[512])
    np.testing.assert_array_equal(outputs[100], outputs[512])

    data = xr.open_zarr(cube, consolidated=False).sortby("time").load()
    pair_time = np.datetime64(pair, "ns")
    target = np.datetime64(report.dates[0], "ns")
    for b in range(data.sizes["band"]):
        whole = starfm(
            data["fine"].sel(time=[pair_time]).values[:, b],
            data["coarse"].sel(time=[pair_time]).values[:, b],
            data["coarse"].sel(time=[target]).values[:, b],
            fine_valid=data["fine_valid"].sel(time=[pair_time]).values,
            coarse_valid=data["coarse_valid"].sel(time=[pair_time]).values,
            coarse_pred_valid=data["coarse_valid"].sel(time=[target]).values,
            max_search_distance=distance,
        ).prediction[0]
        np.testing.assert_array_equal(outputs[512][b], whole)
        reference = oracle[b].astype(np.float32)
        filled = oracle[b] == -9999
        np.testing.assert_array_equal(np.isnan(whole), filled)
        np.testing.assert_array_equal(whole[~filled], reference[~filled])
