"""ESTARFM through the engine (issue 13): tiled == whole image in both modes (tiles 64, 100 and
one tile), whole image == the kernel, the code and similar-pixel layers, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from helpers.cli import run_stfcube
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.kernels.estarfm import EstarfmParams, estarfm
from stfcube.pipeline.engine import fuse, get_method
from stfcube.pipeline.errors import ConfigError

DAYS = ["2024-05-01", "2024-05-03", "2024-05-06", "2024-05-09"]
PAIRS = (DAYS[0], DAYS[3])
SHAPE = (110, 104)
PARAMS: dict[str, Any] = {"half_window": 6, "num_class": 3.0}


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two fine images (one with a cloud) around two coarse-only dates, one coarse gap."""
    truth = synthetic_scene(SHAPE, 3, DAYS, seed=11)
    cloud = np.ones(SHAPE, dtype=bool)
    cloud[40:52, 60:75] = False
    gap = np.ones(SHAPE, dtype=bool)
    gap[80:90, 10:30] = False
    return write_cube(
        tmp_path_factory.mktemp("estarfm") / "cube.zarr",
        {day: truth[day] for day in PAIRS},
        block_mean(truth, 8),
        fine_valid={DAYS[0]: cloud},
        coarse_valid={DAYS[2]: gap},
        chunk=32,
    )


MODES: dict[str, dict[str, Any]] = {"seamless": {}, "reference": {"block_size": 50}}


def run(cube: Path, out: Path, tile: int, **params: object) -> xr.Dataset:
    fuse(cube, out, method="estarfm", tile=tile, params={**PARAMS, **params}, local_threads=2)
    return xr.open_zarr(out, consolidated=False).sortby("time").load()


@pytest.fixture(scope="module")
def whole(cube: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, xr.Dataset]:
    """Each mode's output as one tile."""
    out = tmp_path_factory.mktemp("whole")
    return {
        mode: run(cube, out / f"{mode}.zarr", 256, mode=mode, **extra)
        for mode, extra in MODES.items()
    }


@pytest.mark.parametrize("mode", ["seamless", "reference"])
def test_tiled_equals_whole_image(
    cube: Path, whole: dict[str, xr.Dataset], tmp_path: Path, mode: str
) -> None:
    extra, whole = MODES[mode], whole[mode]
    for tile in (64, 100):
        tiled = run(cube, tmp_path / f"tiled{tile}.zarr", tile, mode=mode, **extra)
        for name in ("fused", "estarfm_code", "similar_pixels"):
            np.testing.assert_array_equal(tiled[name].values, whole[name].values)
    fused = whole["fused"].values  # dates 05-03 and 05-06 (the pair dates are left out)
    assert fused.shape == (2, 3, *SHAPE)
    assert np.isfinite(fused).mean() > 0.95


def _kernel_inputs(cube: Path) -> tuple[np.ndarray, ...]:
    ds = xr.open_zarr(cube, consolidated=False).sortby("time")
    fine = np.where(ds["fine_valid"].values[:, None], ds["fine"].values, np.nan)[[0, 3]]
    coarse = np.where(ds["coarse_valid"].values[:, None], ds["coarse"].values, np.nan)
    return fine, coarse[[0, 3]], coarse[[1, 2]]


@pytest.mark.parametrize("mode", ["seamless", "reference"])
def test_whole_image_equals_the_kernel(cube: Path, whole: dict[str, xr.Dataset], mode: str) -> None:
    """Same numbers as the kernel on whole arrays (thresholds summed in another order: to
    float32 rounding), the coarse gap without prediction, the layers as the kernel's."""
    extra, got = MODES[mode], whole[mode]
    expected = estarfm(*_kernel_inputs(cube), EstarfmParams(**PARAMS, mode=mode, **extra))
    np.testing.assert_allclose(
        got["fused"].values, expected.prediction.astype(np.float32), rtol=1e-5, equal_nan=True
    )
    assert (got["estarfm_code"].values == expected.code).mean() > 0.999
    np.testing.assert_array_equal(got["similar_pixels"].values, expected.count)
    assert np.isnan(got["fused"].values[1, :, 80:90, 10:30]).all()
    assert got["estarfm_code"].attrs["flag_values"] == [0, 1, 2, 3, 4]
    assert "few_similar_pixels" in got["estarfm_code"].attrs["flag_meanings"]


def test_method_declares_pairs_halo_and_validates_parameters() -> None:
    method = get_method("estarfm")
    params = method.make_params({"half_window": "10", "data_range": "0,1"})
    assert method.halo(params) == 10 and params.data_range == (0.0, 1.0)
    assert (method.min_pairs, method.max_pairs) == (2, 2)
    assert method.make_params({}).mode == "seamless"
    with pytest.raises(ConfigError, match="half_window must be an integer >= 1"):
        method.make_params({"half_window": "0"})
    with pytest.raises(ConfigError, match="DN_min < DN_max"):
        method.make_params({"data_range": "5,1"})


def test_cli_fuse_method_estarfm(cube: Path, whole: dict[str, xr.Dataset], tmp_path: Path) -> None:
    out = tmp_path / "cli.zarr"
    done = run_stfcube(
        "fuse", cube, out, "--method", "estarfm", "--tile", "64", "--workers", "1",
        "--threads-per-worker", "2", "--quiet", "-p", "half_window=6", "-p", "num_class=3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cli = xr.open_zarr(out, consolidated=False).sortby("time")
    np.testing.assert_array_equal(cli["fused"].values, whole["seamless"]["fused"].values)
