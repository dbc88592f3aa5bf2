"""FSDAF through the engine (issue 14): both modes tiled == whole image, the seamless whole image
== the kernel, a static class-map layer, and ``stfcube fuse --method fsdaf``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from helpers.cli import run_stfcube
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.kernels.fsdaf import FsdafParams, fsdaf
from stfcube.pipeline.engine import fuse, get_method
from stfcube.pipeline.errors import ConfigError

DAYS = ["2024-05-01", "2024-05-03", "2024-05-04"]
SHAPE = (52, 60)  # not a multiple of the coarse ratio: partial coarse pixels at the edges
RATIO = 8
PARAMS: dict[str, Any] = {
    "window_radius": 3,
    "n_similar": 6,
    "scale_factor": RATIO,
    "tps_radius": 2,
    "dn_max": 20000.0,
    "class_map": "landcover",
}


def _classes() -> np.ndarray:
    rows, cols = np.indices(SHAPE)
    return ((rows // 13 + cols // 20) % 3 + 1).astype(np.uint8)


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fine image (a cloud), three bands, daily coarse on a native 240 m grid, a class map."""
    truth = synthetic_scene(SHAPE, 3, DAYS, seed=7)
    cloud = np.ones(SHAPE, dtype=bool)
    cloud[30:36, 10:20] = False
    return write_cube(
        tmp_path_factory.mktemp("fsdaf") / "cube.zarr",
        {"2024-05-01": truth["2024-05-01"]},
        block_mean(truth, RATIO),
        fine_valid={"2024-05-01": cloud},
        chunk=16,
        native_ratio=RATIO,
        static={"landcover": _classes()},
    )


def run(cube: Path, out: Path, tile: int, **params: object) -> xr.Dataset:
    fuse(cube, out, method="fsdaf", tile=tile, params={**PARAMS, **params}, local_threads=2)
    return xr.open_zarr(out, consolidated=False).sortby("time")


@pytest.mark.parametrize(("mode", "extra"), [("seamless", {}), ("reference", {"block_size": 2})])
def test_tiled_equals_whole_image(
    cube: Path, tmp_path: Path, mode: str, extra: dict[str, Any]
) -> None:
    whole = run(cube, tmp_path / "whole.zarr", 128, mode=mode, **extra)
    tiled = run(cube, tmp_path / "tiled.zarr", 16, mode=mode, **extra)
    for name in ("fused", "class", "residual"):
        np.testing.assert_array_equal(tiled[name].values, whole[name].values)
    fused = whole["fused"].values
    assert np.isnan(fused[:, :, 30:36, 10:20]).all() and np.isfinite(fused).mean() > 0.95
    expected = _classes()
    expected[30:36, 10:20] = 0  # no class under the cloud
    np.testing.assert_array_equal(whole["class"].values[0], expected)


def test_whole_image_equals_the_kernel(cube: Path, tmp_path: Path) -> None:
    ds = xr.open_zarr(cube, consolidated=False).sortby("time")
    fine = np.where(ds["fine_valid"].values[0, None], ds["fine"].values[0], np.nan)
    native = np.where(ds["coarse_native_valid"].values[:, None], ds["coarse_native"].values, np.nan)
    kernel_params = {k: v for k, v in PARAMS.items() if k != "class_map"}
    params = FsdafParams(**kernel_params, mode="seamless")
    got = run(cube, tmp_path / "whole.zarr", 128, mode="seamless")["fused"].values
    # the seamless statistics cover all prediction dates at once; per date they are the same
    for d in (1, 2):
        expected = fsdaf(fine, native[0], native[d], RATIO, params, classes=_classes())
        np.testing.assert_allclose(got[d - 1], expected.astype(np.float32), rtol=1e-6)


def test_method_declares_inputs_halo_and_validates() -> None:
    method = get_method("fsdaf")
    params = method.make_params({"mode": "seamless", "class_map": "landcover"})
    assert method.halo(params) == 2 * 20 + 16
    spec = method.inputs(params)
    assert spec.native == frozenset({"coarse", "coarse_pred"}) and spec.static == ("landcover",)
    assert spec.native_halo == 2 * params.tps_radius
    reference = method.make_params({})
    assert method.halo(reference) == 2 * 480 + 16 and method.inputs(reference).native == set()
    assert (method.min_pairs, method.max_pairs) == (1, 1)
    with pytest.raises(ConfigError, match="mode must be one of"):
        method.make_params({"mode": "fast"})


def test_seamless_scale_factor_must_match_the_cube(cube: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set scale_factor=8"):
        run(cube, tmp_path / "bad.zarr", 128, mode="seamless", scale_factor=4)


def test_cli_fuse_method_fsdaf(cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.zarr"
    done = run_stfcube(
        "fuse", cube, out, "--method", "fsdaf", "--tile", "64", "--workers", "1",
        "--threads-per-worker", "2", "--quiet", "-p", "mode=seamless", "-p", "window_radius=3",
        "-p", "n_similar=6", "-p", "scale_factor=8", "-p", "tps_radius=2",
        "-p", "dn_max=20000", "-p", "class_map=landcover",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    api = run(cube, tmp_path / "api.zarr", 64, mode="seamless")
    cli = xr.open_zarr(out, consolidated=False).sortby("time")
    np.testing.assert_array_equal(cli["fused"].values, api["fused"].values)
    np.testing.assert_array_equal(cli["class"].values, api["class"].values)
