"""STARFM ``usda`` mode against the official USDA STARFM C program v1.2.2 (shared/oracle).

Every run in ``shared/oracle/starfm_usda`` is reproduced from its inputs and parameters; per
band the prediction must be within ±1 of the program's everywhere, identical on >= 99.9 % of the
pixels (it is identical everywhere at the time of writing), with exactly the same fill pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from stfcube.kernels import starfm
from stfcube.kernels.starfm import (
    StarfmParams,
    slice_moments,
    slice_thresholds,
    slices_from_moments,
)

ORACLE = Path("oracle") / "starfm_usda"
RUNS = [
    "fsdaf_lgc_sim_b3_fill_test",
    "fsdaf_lgc_sim_p20041126_to_20041228",
    "starfm_sim_test_1_t1_to_t2_d450",
    "starfm_sim_test_1_t1_to_t2_d750",
    "starfm_sim_test_2_t1_to_t4_d450",
    "starfm_sim_test_2_t1_to_t4_d750",
    "starfm_sim_test_3_t1_to_t4_d450",
    "starfm_sim_test_3_t1_to_t4_d750",
]
FILL = -9999
#: The fill test's rectangles (oracle README): Landsat rows 100-139 x cols 200-259 of the pair,
#: MODIS rows 300-329 x cols 60-89 of the prediction date.
FILL_TEST_FINE = (slice(100, 140), slice(200, 260))
FILL_TEST_COARSE_PRED = (slice(300, 330), slice(60, 90))


def _read_band(folder: Path, name: str, band: int) -> np.ndarray:
    path = folder / name
    if not path.exists():
        path = folder / f"{name}.tif"
    with rasterio.open(path) as dataset:
        return dataset.read(band + 1)


def _run_inputs(shared: Path, run: dict, band: int) -> tuple[np.ndarray, ...]:
    folder = shared / (run.get("data_subfolder") or run["data_folder"]).removeprefix("shared/")
    inputs = run["inputs"]
    fine = np.stack([_read_band(folder, p["landsat"], band) for p in inputs["pairs"]])
    coarse = np.stack([_read_band(folder, p["modis"], band) for p in inputs["pairs"]])
    coarse_pred = np.stack(
        [_read_band(folder, d["modis"], band) for d in inputs["prediction_dates"]]
    )
    if run["run_name"] == "fsdaf_lgc_sim_b3_fill_test":
        fine[(0, *FILL_TEST_FINE)] = FILL
        coarse_pred[(0, *FILL_TEST_COARSE_PRED)] = FILL
    return fine, coarse, coarse_pred


def _params(run: dict) -> dict:
    p = run["parameters"]
    assert (
        p["LANDSAT_FILLV"] == p["MODIS_FILLV"] and p["LANDSAT_DATA_RANGE"] == p["MODIS_DATA_RANGE"]
    )
    return {
        "resolution": float(p["RESOLUTION"]),
        "max_search_distance": float(p["MAX_SEARCH_DISTANCE"]),
        "num_slice_pure_test": int(p["NUM_SLICE_PURE_TEST"]),
        "fine_uncertainty": float(p["LANDSAT_UNCERTAINTY"]),
        "coarse_uncertainty": float(p["MODIS_UNCERTAINTY"]),
        "data_range": tuple(p["LANDSAT_DATA_RANGE"]),
        "fill_value": p["LANDSAT_FILLV"],
        "use_spatial": bool(p["USE_SPATIAL_FLAG"]),
    }


@pytest.mark.shared
def test_every_oracle_run_is_covered(shared_dir: Path) -> None:
    found = sorted(p.name for p in (shared_dir / ORACLE).iterdir() if p.is_dir())
    assert found == RUNS


@pytest.mark.shared
@pytest.mark.parametrize("run_name", RUNS)
def test_matches_usda_program(
    shared_dir: Path, run_name: str, record_property: pytest.RecordProperty
) -> None:
    folder = shared_dir / ORACLE / run_name
    run = json.loads((folder / "params.json").read_text())
    with rasterio.open(folder / "prediction.tif") as dataset:
        expected_all = dataset.read()
    n_dates = len(run["inputs"]["prediction_dates"])
    kwargs = _params(run)
    params = StarfmParams(**kwargs)
    assert params.window == run["derived"]["WIN_SIZE_pixels"]
    assert list(params.offsets) == run["derived"]["window_row_col_offsets_inclusive"]
    assert params.uncertainties == (
        run["derived"]["r_lsr_uncertainty_int"],
        run["derived"]["r_msr_uncertainty_int"],
        run["derived"]["combined_uncertainty_int"],
    )
    bands = sorted({b["input_band_index_0based"] for b in run["bands"]})
    for band in bands:
        fine, coarse, coarse_pred = _run_inputs(shared_dir, run, band)
        stats = run["derived"]["global_slice_per_band_and_pair"][f"input_band_{band + 1}"]
        assert slice_thresholds(fine, params=params).tolist() == [s["slice"] for s in stats]
        result = starfm(fine, coarse, coarse_pred, **kwargs)
        outputs = [
            b["output_band"] - 1 for b in run["bands"] if b["input_band_index_0based"] == band
        ]
        assert len(outputs) == n_dates
        for date, out in enumerate(outputs):
            expected = expected_all[out].astype(np.int32)
            predicted = result.prediction[date]
            got = np.where(np.isnan(predicted), FILL, predicted).astype(np.int32)
            identical = float(np.mean(got == expected))
            record_property(f"identical_band{band + 1}_date{date}", identical)
            print(f"{run_name} band {band + 1} date {date}: identical share {identical:.6f}")
            np.testing.assert_array_equal(got == FILL, expected == FILL)
            assert np.abs(got - expected).max() <= 1
            assert identical >= 0.999
            np.testing.assert_array_equal(result.quality[date] == 0, expected == FILL)


@pytest.mark.shared
def test_slice_survives_any_summation_order(shared_dir: Path) -> None:
    """float64 moments summed over chunks in another order truncate to the same integer sd."""
    run = json.loads((shared_dir / ORACLE / RUNS[1] / "params.json").read_text())
    params = StarfmParams(**_params(run))
    for band in range(3):
        fine = _run_inputs(shared_dir, run, band)[0]
        chunks = [
            slice_moments(fine[:, r : r + 97, c : c + 61], params=params)
            for r in range(0, fine.shape[1], 97)
            for c in range(0, fine.shape[2], 61)
        ]
        reordered = [np.sum([c[i] for c in chunks[::-1]], axis=0) for i in range(3)]
        slices = slices_from_moments(*reordered, params=params)
        expected = run["derived"]["global_slice_per_band_and_pair"][f"input_band_{band + 1}"]
        assert slices.tolist() == [s["slice"] for s in expected]
        count, total, total_sq = reordered
        sd = np.sqrt(total_sq / count - (total / count) ** 2)
        assert sd.tolist() == pytest.approx([s["sd"] for s in expected], abs=1e-9)
        assert np.trunc(sd).astype(int).tolist() == [s["sd_int"] for s in expected]
