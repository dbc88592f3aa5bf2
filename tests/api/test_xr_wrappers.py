"""stfcube.xr (issue 19): each wrapper equals its kernel on arrays, keeps coordinates,
attributes and CRS, and refuses inputs on different grids."""

from __future__ import annotations

import doctest

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import stfcube.xr as sxr
from stfcube.kernels import baselines
from stfcube.kernels.estarfm import EstarfmParams, estarfm
from stfcube.kernels.fitfc import FitfcParams, fitfc
from stfcube.kernels.fsdaf import FsdafParams, fsdaf
from stfcube.kernels.starfm import starfm
from stfcube.pipeline.errors import InputError

N, RATIO, PIXEL = 32, 8, 30.0
PAIRS = np.array(["2024-05-01", "2024-05-09"], dtype="datetime64[ns]")
DATES = np.array(["2024-05-03", "2024-05-05"], dtype="datetime64[ns]")
BANDS = ["green", "red", "nir"]


def _scene(seed: int, n: int) -> np.ndarray:
    """(n, band, y, x) patchy reflectance-like float32 images."""
    rng = np.random.default_rng(seed)
    patches = (np.indices((N, N)).sum(axis=0) // 7 % 3).astype(np.float32)
    base = 1000 + 500 * patches + 300 * np.arange(len(BANDS))[:, None, None]
    drift = 60 * np.arange(n)[:, None, None, None] * (patches - 1)
    return (base + drift + rng.normal(0, 20, (n, len(BANDS), N, N))).round().astype(np.float32)


def _on_grid(values: np.ndarray, times: np.ndarray, pixel: float = PIXEL) -> xr.DataArray:
    """``values`` (time, band, y, x) on the grid with ``pixel``-sized cells, EPSG:32633."""
    n_y, n_x = values.shape[-2:]
    coords = {
        "time": times,
        "band": BANDS,
        "y": 4500000.0 - pixel * (np.arange(n_y) + 0.5),
        "x": 500000.0 + pixel * (np.arange(n_x) + 0.5),
    }
    array = xr.DataArray(values, dims=("time", "band", "y", "x"), coords=coords)
    return array.assign_attrs(units="1e-4").rio.write_crs("EPSG:32633")


def _native(values: np.ndarray) -> np.ndarray:
    n, b = values.shape[:2]
    return values.reshape(n, b, N // RATIO, RATIO, N // RATIO, RATIO).mean(axis=(3, 5))


@pytest.fixture(scope="module")
def images() -> dict[str, xr.DataArray]:
    fine, later = _scene(1, 2), _scene(2, 2)
    coarse_fine_grid = np.kron(_native(fine), np.ones((1, 1, RATIO, RATIO), np.float32))
    pred_fine_grid = np.kron(_native(later), np.ones((1, 1, RATIO, RATIO), np.float32))
    return {
        "fine": _on_grid(fine, PAIRS),
        "coarse": _on_grid(coarse_fine_grid, PAIRS),
        "coarse_pred": _on_grid(pred_fine_grid, DATES),
        "coarse_native": _on_grid(_native(fine), PAIRS, PIXEL * RATIO),
        "pred_native": _on_grid(_native(later), DATES, PIXEL * RATIO),
    }


def _assert_like_prediction(out: xr.DataArray, name: str, images: dict) -> None:
    fine = images["fine"]
    assert out.name == name and out.dims == ("time", "band", "y", "x")
    np.testing.assert_array_equal(out["time"], DATES)
    for dim in ("band", "y", "x"):
        np.testing.assert_array_equal(out[dim], fine[dim])
    assert out.rio.crs == fine.rio.crs and out.rio.transform() == fine.rio.transform()
    assert out.attrs["units"] == "1e-4" and out.attrs["long_name"] == f"{name} prediction"


def test_starfm_equals_the_kernel_band_by_band(images: dict) -> None:
    fine, coarse, pred = images["fine"], images["coarse"], images["coarse_pred"]
    out = sxr.starfm(fine, coarse, pred, max_search_distance=150.0)
    _assert_like_prediction(out, "starfm", images)
    for b in range(len(BANDS)):
        kernel = starfm(
            fine.values[:, b], coarse.values[:, b], pred.values[:, b], max_search_distance=150.0
        )
        np.testing.assert_array_equal(out.values[:, b], kernel.prediction)


def test_estarfm_equals_the_kernel(images: dict) -> None:
    fine, coarse, pred = images["fine"], images["coarse"], images["coarse_pred"]
    params = EstarfmParams(half_window=4)
    out = sxr.estarfm(fine, coarse, pred, params)
    _assert_like_prediction(out, "estarfm", images)
    expected = estarfm(fine.values, coarse.values, pred.values, params).prediction
    np.testing.assert_array_equal(out.values, expected)


def test_fitfc_and_fsdaf_take_ratio_and_offset_from_the_native_grid(images: dict) -> None:
    fine = images["fine"].isel(time=[0])
    coarse, pred = images["coarse_native"].isel(time=[0]), images["pred_native"]
    params = FitfcParams(filter_radius=3, n_similar=6)
    out = sxr.fitfc(fine, coarse, pred, params)
    _assert_like_prediction(out, "fitfc", images)
    for k in range(len(DATES)):
        expected = fitfc(fine.values[0], coarse.values[0], pred.values[k], RATIO, params)
        np.testing.assert_array_equal(out.values[k], expected)
    seamless = FsdafParams(window_radius=3, n_similar=6, scale_factor=RATIO, tps_radius=2)
    seamless = FsdafParams(**{**seamless.__dict__, "mode": "seamless"})
    classes = xr.zeros_like(fine.isel(time=0, band=0), dtype=np.int64) + 1
    out = sxr.fsdaf(fine, coarse, pred.isel(time=0), seamless, classes=classes)
    assert out.dims == ("band", "y", "x") and out.name == "fsdaf"
    expected = fsdaf(fine.values[0], coarse.values[0], pred.values[0], RATIO, seamless, classes=1)
    np.testing.assert_array_equal(out.values, expected)


def test_nochange_is_lazy_on_dask_and_equals_the_kernel(images: dict) -> None:
    fine = images["fine"].copy(data=images["fine"].values.copy())
    fine[0, :, :5, :5] = np.nan  # the first pair is cloudy there: the second one is used
    lazy = fine.chunk({"y": 16, "x": 16})
    out = sxr.nochange(lazy, DATES)
    assert isinstance(out.data, da.Array)
    _assert_like_prediction(out, "nochange", images)
    offsets = (PAIRS[None, :] - DATES[:, None]).astype("timedelta64[D]").astype(int)
    expected, _ = baselines.nochange(fine.values, ~np.isnan(fine.values).any(axis=1), offsets)
    np.testing.assert_array_equal(out.values, expected)
    assert (out.values[:, :, :5, :5] == fine.values[1, :, :5, :5]).all()


def test_coarse_residual_equals_the_kernel(images: dict) -> None:
    fine, coarse, pred = images["fine"], images["coarse_native"], images["pred_native"]
    out = sxr.coarse_residual(fine, coarse, pred, spread="nearest")
    _assert_like_prediction(out, "coarse_residual", images)
    offsets = (PAIRS[None, :] - DATES[:, None]).astype("timedelta64[D]").astype(int)
    valid = np.ones((2, N, N), bool), np.ones((2, N // RATIO, N // RATIO), bool)
    expected, _ = baselines.coarse_residual(
        fine.values, valid[0], coarse.values, valid[1], pred.values, valid[1], offsets,
        RATIO, (0, 0), "nearest",
    )  # fmt: skip
    np.testing.assert_array_equal(out.values, expected)


def test_mismatched_grids_are_refused(images: dict) -> None:
    fine, coarse, pred = images["fine"], images["coarse"], images["coarse_pred"]
    shifted = coarse.assign_coords(x=coarse["x"] + PIXEL)
    with pytest.raises(InputError, match="coarse and fine are not on the same grid: x"):
        sxr.starfm(fine, shifted, pred)
    with pytest.raises(InputError, match="coarse_pred and fine are not on the same grid: y"):
        sxr.estarfm(fine, coarse, pred.isel(y=slice(1, None)))
    with pytest.raises(InputError, match="differ"):
        sxr.starfm(fine, coarse.rio.write_crs("EPSG:4326"), pred)
    with pytest.raises(InputError, match="does not nest"):
        sxr.fitfc(fine.isel(time=[0]), images["coarse_native"].isel(x=slice(0, 3, 2)), pred)
    with pytest.raises(InputError, match="fine has 1 pairs, coarse 2"):
        sxr.estarfm(fine.isel(time=[0]), coarse, pred)


def test_the_module_example_runs() -> None:
    assert doctest.testmod(sxr, raise_on_error=True).attempted > 0
