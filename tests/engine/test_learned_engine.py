"""Learned fusion end to end (issue 16): stfcube train + fuse --method learned for each model on
a 128 px synthetic site, tiled == whole image, resume after a kill, refusals."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers.checksums import file_checksums
from helpers.cli import one_line, run_stfcube, run_stfcube_in_process
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.engine import fuse
from stfcube.pipeline.errors import ConfigError, InputError

torch = pytest.importorskip("torch")

from stfcube.pipeline.learned import TrainSettings, train  # noqa: E402

DAYS = ["2024-05-01", "2024-05-05", "2024-05-09", "2024-05-13", "2024-05-17"]
SIZE, RATIO = 128, 8
TINY = {"epochs": 2, "steps": 2, "batch": 2, "patch": 32, "autoencoder_steps": 2,
        "validation_size": 64}  # fmt: skip
MODELS = ("edcstfn", "dcstfn", "stfdcnn")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four pairs and a coarse-only date, three bands, native coarse grid at ratio 8."""
    truth = synthetic_scene((SIZE, SIZE), 3, DAYS, seed=3)
    root = tmp_path_factory.mktemp("learned")
    return write_cube(root / "cube.zarr", {d: truth[d] for d in DAYS[:4]},
                      block_mean(truth, RATIO), chunk=64, native_ratio=RATIO)  # fmt: skip


@pytest.fixture(scope="module")
def models(site: Path) -> dict[str, Path]:
    out = {}
    for name in MODELS:
        out[name] = site.parent / name
        train(site, out[name], TrainSettings(model=name, **TINY))
    return out


def fused(site: Path, out: Path, model: Path, tile: int) -> np.ndarray:
    fuse(site, out, method="learned", tile=tile, params={"model": str(model)}, local_threads=2)
    return xr.open_zarr(out, consolidated=False)["fused"].values


@pytest.mark.parametrize("name", MODELS)
def test_train_writes_a_model_dir(models: dict[str, Path], name: str) -> None:
    files = {p.name for p in models[name].iterdir()}
    assert files == {"config.json", "weights.pt", "metrics.json", "curves.png"}


@pytest.mark.parametrize("name", MODELS)
def test_tiled_equals_whole_image(
    site: Path, models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """Tiles 64 and 100 == one tile within 1e-5 of reflectance (0.1 in the cube's x 10000)."""
    whole = fused(site, tmp_path / "whole.zarr", models[name], SIZE)
    assert np.isfinite(whole).all() and whole.shape == (1, 3, SIZE, SIZE)
    for tile in (64, 100):
        tiled = fused(site, tmp_path / f"t{tile}.zarr", models[name], tile)
        np.testing.assert_allclose(tiled * 1e-4, whole * 1e-4, rtol=0, atol=1e-5)


def test_cli_train_and_fuse(site: Path, tmp_path: Path) -> None:
    model, out = tmp_path / "m", tmp_path / "f.zarr"
    args = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    train = ("train", site, "--model", "stfdcnn", "--out", model, "--quiet", *args)
    result = run_stfcube_in_process(*train)  # the console script's process: tested elsewhere
    assert result.returncode == 0, result.stderr
    result = run_stfcube_in_process("fuse", site, out, "--method", "learned", "-p",
                                    f"model={model}", "--tile", "64", "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert np.isfinite(xr.open_zarr(out, consolidated=False)["fused"].values).all()


def test_resume_after_a_kill_ends_as_an_uninterrupted_run(site: Path, tmp_path: Path) -> None:
    settings = TrainSettings(model="stfdcnn", **{**TINY, "epochs": 3})
    train(site, tmp_path / "straight", settings)
    calls = {"n": 0}

    def killed(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] > settings.steps:  # the first batch of the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(site, tmp_path / "resumed", settings, progress=killed)
    assert (tmp_path / "resumed" / "checkpoint.pt").is_file()
    report = train(site, tmp_path / "resumed", settings)
    assert report.resumed_from == 1
    a = torch.load(tmp_path / "straight" / "weights.pt")
    b = torch.load(tmp_path / "resumed" / "weights.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fewer_than_two_pairs_is_refused_writing_nothing(tmp_path: Path) -> None:
    truth = synthetic_scene((32, 32), 2, DAYS[:3], seed=1)
    cube = write_cube(tmp_path / "one.zarr", {DAYS[0]: truth[DAYS[0]]}, truth, chunk=32)
    before = file_checksums(tmp_path)
    with pytest.raises(InputError, match="1 usable fine\\+coarse pair"):
        train(cube, tmp_path / "model", TrainSettings(model="stfdcnn", **TINY))
    result = run_stfcube("train", cube, "--out", tmp_path / "model", "--quiet")
    assert result.returncode == 2 and "training needs at least 2" in one_line(result.stderr)
    assert file_checksums(tmp_path) == before and not (tmp_path / "model").exists()


def test_model_of_other_bands_or_ratio_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    truth = synthetic_scene((64, 64), 3, DAYS[:2], seed=2)
    other = write_cube(tmp_path / "other.zarr", {DAYS[0]: truth[DAYS[0]]}, block_mean(truth, 8),
                       bands=["red", "green", "nir"], chunk=32, native_ratio=8)  # fmt: skip
    before = file_checksums(tmp_path)
    out = tmp_path / "f.zarr"
    with pytest.raises(ConfigError, match="trained on bands"):
        fuse(other, out, method="learned", tile=32, params={"model": str(models["stfdcnn"])})
    ratio = write_cube(tmp_path / "ratio.zarr", {DAYS[0]: truth[DAYS[0]]}, block_mean(truth, 16),
                       chunk=32, native_ratio=16)  # fmt: skip
    before = file_checksums(tmp_path)
    with pytest.raises(ConfigError, match="coarse/fine ratio of 8"):
        fuse(ratio, out, method="learned", tile=32, params={"model": str(models["dcstfn"])})
    result = run_stfcube("fuse", other, out, "--method", "learned", "-p",
                         f"model={models['edcstfn']}")  # fmt: skip
    assert result.returncode == 2 and "trained on bands" in one_line(result.stderr)
    assert file_checksums(tmp_path) == before and not out.exists()


def test_corrupt_weights_are_refused(models: dict[str, Path], site: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(models["edcstfn"], broken)
    weights = broken / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ConfigError, match="corrupt"):
        fuse(site, tmp_path / "f.zarr", method="learned", params={"model": str(broken)})
    assert not (tmp_path / "f.zarr").exists()
    with pytest.raises(ConfigError, match="-p model=MODEL_DIR"):
        fuse(site, tmp_path / "f.zarr", method="learned")


def test_without_torch_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    from stfcube.pipeline.learned.modeldir import require_torch

    with pytest.raises(ConfigError, match=r"stfcube\[learned\]"):
        require_torch()


def test_tile_tasks_share_the_cores_with_torch() -> None:
    """A tile task sizes torch's thread pool as numba's, so tasks x threads fit the cores."""
    import numba

    from stfcube.pipeline.engine.tasks import limit_kernel_threads

    before = torch.get_num_threads(), numba.get_num_threads()
    try:
        limit_kernel_threads(1)
        assert torch.get_num_threads() == 1 == numba.get_num_threads()
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
