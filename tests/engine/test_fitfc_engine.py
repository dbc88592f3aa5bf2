"""Fit-FC through the engine (issue 15, acceptance 3): the native coarse grid, tiled == whole
image, and the whole image == the kernel on whole arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.kernels.fitfc import FitfcParams, fitfc
from stfcube.pipeline.engine import fuse, get_method
from stfcube.pipeline.errors import ConfigError

DAYS = ["2024-05-01", "2024-05-03", "2024-05-04"]
SHAPE = (52, 60)  # not a multiple of the coarse ratio: partial coarse pixels at the edges
RATIO = 8
PARAMS: dict[str, Any] = {"filter_radius": 4, "n_similar": 6, "regression_radius": 1}


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fine image (a cloud), three bands, daily coarse on a native 240 m grid."""
    truth = synthetic_scene(SHAPE, 3, DAYS, seed=7)
    cloud = np.ones(SHAPE, dtype=bool)
    cloud[30:36, 10:20] = False
    coarse_valid = {"2024-05-04": np.ones(SHAPE, dtype=bool)}
    coarse_valid["2024-05-04"][:8, 16:24] = False  # one masked coarse pixel on one date
    return write_cube(
        tmp_path_factory.mktemp("fitfc") / "cube.zarr",
        {"2024-05-01": truth["2024-05-01"]},
        block_mean(truth, RATIO),
        fine_valid={"2024-05-01": cloud},
        coarse_valid=coarse_valid,
        chunk=16,
        native_ratio=RATIO,
    )


def run(cube: Path, out: Path, tile: int, **params: object) -> np.ndarray:
    fuse(cube, out, method="fitfc", tile=tile, params={**PARAMS, **params}, local_threads=2)
    return xr.open_zarr(out, consolidated=False).sortby("time")["fused"].values


@pytest.mark.parametrize("mode", ["reference", "seamless"])
def test_tiled_equals_whole_image(cube: Path, tmp_path: Path, mode: str) -> None:
    whole = run(cube, tmp_path / "whole.zarr", 128, mode=mode)
    for tile in (16, 24):
        tiled = run(cube, tmp_path / f"tiled{tile}.zarr", tile, mode=mode)
        np.testing.assert_array_equal(tiled, whole)
    assert np.isfinite(whole).mean() > (0.7 if mode == "reference" else 0.9)


def test_whole_image_equals_the_kernel(cube: Path, tmp_path: Path) -> None:
    ds = xr.open_zarr(cube, consolidated=False).sortby("time")
    fine = np.where(ds["fine_valid"].values[0, None], ds["fine"].values[0], np.nan)
    native = np.where(ds["coarse_native_valid"].values[:, None], ds["coarse_native"].values, np.nan)
    params = FitfcParams(**PARAMS, mode="seamless")
    expected = [fitfc(fine, native[0], native[d], RATIO, params) for d in (1, 2)]
    got = run(cube, tmp_path / "whole.zarr", 128, mode="seamless")  # dates 05-03, 05-04
    np.testing.assert_array_equal(got, np.stack(expected).astype(np.float32))
    # the masked coarse pixel: seamless leaves it out, the reference spreads NaN around it
    reference = run(cube, tmp_path / "reference.zarr", 128)
    params = FitfcParams(**PARAMS)
    expected = [fitfc(fine, native[0], native[d], RATIO, params) for d in (1, 2)]
    np.testing.assert_array_equal(reference, np.stack(expected).astype(np.float32))
    masked = (1, slice(None), slice(0, 8), slice(16, 24))
    assert np.isnan(reference[masked]).all() and np.isfinite(got[masked]).all()


def test_coarse_on_the_fine_grid(cube: Path, tmp_path: Path) -> None:
    """``coarse_grid=fine``: the regression on the coarse images resampled to the fine grid
    (ratio 1, W in fine pixels) for cubes without a native grid; tiled == whole == kernel."""
    whole = run(cube, tmp_path / "whole.zarr", 128, mode="seamless", coarse_grid="fine")
    tiled = run(cube, tmp_path / "tiled.zarr", 16, mode="seamless", coarse_grid="fine")
    np.testing.assert_array_equal(tiled, whole)
    ds = xr.open_zarr(cube, consolidated=False).sortby("time")
    fine = np.where(ds["fine_valid"].values[0, None], ds["fine"].values[0], np.nan)
    coarse = np.where(ds["coarse_valid"].values[:, None], ds["coarse"].values, np.nan)
    params = FitfcParams(**PARAMS, mode="seamless", coarse_grid="fine")
    expected = [fitfc(fine, coarse[0], coarse[d], 1, params) for d in (1, 2)]
    np.testing.assert_array_equal(whole, np.stack(expected).astype(np.float32))
    assert np.isfinite(whole).mean() > 0.9
    method = get_method("fitfc")
    fine_grid = method.make_params({**PARAMS, "coarse_grid": "fine"})
    assert method.inputs(fine_grid).native == frozenset()
    assert method.halo(fine_grid) == PARAMS["filter_radius"] + PARAMS["regression_radius"]
    with pytest.raises(ConfigError, match="coarse_grid must be one of native, fine"):
        method.make_params({"coarse_grid": "coarse"})


def test_method_declares_native_inputs_and_validates_parameters() -> None:
    method = get_method("fitfc")
    params = method.make_params({"regression_radius": "2", "filter_radius": "10"})
    assert method.halo(params) == 10 and method.inputs(params).native_halo == 4
    assert (method.min_pairs, method.max_pairs) == (1, 1)
    assert method.make_params({}).scale == 20.5
    with pytest.raises(ConfigError, match="n_similar must lie in"):
        method.make_params({"filter_radius": "1", "n_similar": "20"})


def test_missing_similarity_bands_are_a_config_error(tmp_path: Path) -> None:
    truth = synthetic_scene((16, 16), 1, DAYS[:2], seed=1)
    cube = write_cube(
        tmp_path / "one_band.zarr",
        {DAYS[0]: truth[DAYS[0]]},
        block_mean(truth, RATIO),
        native_ratio=RATIO,
    )
    with pytest.raises(ConfigError, match="red_band=1 is not a band of a 1-band image"):
        fuse(cube, tmp_path / "f.zarr", method="fitfc", tile=16, local_threads=1)
    fuse(cube, tmp_path / "g.zarr", method="fitfc", tile=16, params={"similarity": "all_bands"})
