"""GAN-STFM end to end (issue 17): stfcube train --model ganstfm + fuse --method learned on a
128 px synthetic site; the frozen mode's tiles equal the whole image, the window mode's seam
error is measured; references from a fine image without a coarse one; resume; refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.engine import fuse
from stfcube.pipeline.errors import ConfigError

torch = pytest.importorskip("torch")

from stfcube.pipeline.learned import TrainSettings, train  # noqa: E402
from stfcube.pipeline.learned.seams import seam_error  # noqa: E402

PAIRS = ["2024-05-01", "2024-05-05", "2024-05-09", "2024-05-13"]
FINE_ONLY, PREDICT = "2024-05-10", "2024-05-17"
SIZE, RATIO = 128, 8
TINY = {"model": "ganstfm", "epochs": 2, "steps": 2, "batch": 2, "patch": 32,
        "autoencoder_steps": 2, "validation_size": 64, "widths": (4, 4, 8, 8)}  # fmt: skip
WINDOW = {"statistics": "window", "window": 64, "overlap": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """Four pairs, a fine image without a coarse one, a coarse-only date to predict."""
    truth = synthetic_scene((SIZE, SIZE), 3, [*PAIRS, FINE_ONLY, PREDICT], seed=4)
    root = tmp_path_factory.mktemp("ganstfm")
    coarse = block_mean({d: truth[d] for d in [*PAIRS, PREDICT]}, RATIO)
    fine = {d: truth[d] for d in [*PAIRS, FINE_ONLY]}
    return write_cube(root / "cube.zarr", fine, coarse, chunk=64), truth


@pytest.fixture(scope="module")
def model(site: tuple[Path, dict[str, np.ndarray]]) -> Path:
    out = site[0].parent / "model"
    train(site[0], out, TrainSettings(**TINY))
    return out


def fused(cube: Path, out: Path, model: Path, tile: int, **params: object) -> np.ndarray:
    fuse(cube, out, method="learned", tile=tile, params={"model": str(model), **params},
         local_threads=2)  # fmt: skip
    return xr.open_zarr(out, consolidated=False)["fused"].values[0]


def test_training_draws_references_from_fine_images_without_coarse(model: Path) -> None:
    """The held-out pair date 05-09 is validated from the nearest fine image, 05-10 (no coarse
    image that day), in both inference modes."""
    metrics = json.loads((model / "metrics.json").read_text())
    files = {p.name for p in model.iterdir()}
    assert files == {"config.json", "weights.pt", "metrics.json", "curves.png"}
    (date,) = metrics["validation"]
    assert date == "2024-05-09" and metrics["validation"][date]["references"] == [FINE_ONLY]
    assert np.isfinite(metrics["validation"][date]["window"]["mse"])
    config = json.loads((model / "config.json").read_text())
    assert config["halo"] == 8 and config["settings"]["widths"] == [4, 4, 8, 8]


def test_frozen_mode_tiled_equals_whole_image(
    site: tuple[Path, dict[str, np.ndarray]], model: Path, tmp_path: Path
) -> None:
    whole = fused(site[0], tmp_path / "whole.zarr", model, SIZE)
    assert np.isfinite(whole).all() and whole.shape == (3, SIZE, SIZE)
    tiled = fused(site[0], tmp_path / "t48.zarr", model, 48)
    np.testing.assert_allclose(tiled * 1e-4, whole * 1e-4, rtol=0, atol=1e-5)


def test_window_mode_seam_error(
    site: tuple[Path, dict[str, np.ndarray]], model: Path, tmp_path: Path
) -> None:
    """Windows of 64 px overlapping by 16, feathered: tiles equal the whole image (the grid is
    the image's), and the error within 2 px of a window edge is within 10 % of the error
    elsewhere."""
    whole = fused(site[0], tmp_path / "whole.zarr", model, SIZE, **WINDOW)
    tiled = fused(site[0], tmp_path / "t64.zarr", model, 64, **WINDOW)
    np.testing.assert_allclose(tiled * 1e-4, whole * 1e-4, rtol=0, atol=1e-5)
    truth = site[1][PREDICT]
    seam = seam_error(whole, truth, np.ones(truth.shape[-2:], bool), 64, 16)
    print(f"\nganstfm window mode seam RMSE: border {seam.border:.1f}, inside {seam.inside:.1f}, "
          f"ratio {seam.ratio:.3f}")  # fmt: skip
    assert seam.ratio <= 1.10


def test_resume_after_a_kill_ends_as_an_uninterrupted_run(
    site: tuple[Path, dict[str, np.ndarray]], model: Path, tmp_path: Path
) -> None:
    """The checkpoint holds the discriminator and both optimisers: a run killed in its second
    epoch ends with the weights of the uninterrupted one (``model``)."""
    settings = TrainSettings(**TINY)

    def killed(done: int, total: int) -> None:
        if done > settings.steps:  # the first batch of the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(site[0], tmp_path / "resumed", settings, progress=killed)
    assert "discriminator" in torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert train(site[0], tmp_path / "resumed", settings).resumed_from == 1
    a = torch.load(model / "weights.pt")
    b = torch.load(tmp_path / "resumed" / "weights.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_settings_and_parameters_are_refused(
    site: tuple[Path, dict[str, np.ndarray]], model: Path, tmp_path: Path
) -> None:
    for bad, message in (({"patch": 36}, "multiple of 8"), ({"batch": 1}, ">= 2"),
                         ({"widths": (4, 8)}, "four positive widths")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            TrainSettings(**{**TINY, **bad})
    out = tmp_path / "f.zarr"
    with pytest.raises(ConfigError, match="statistics must be one of frozen, window"):
        fuse(site[0], out, method="learned", params={"model": str(model), "statistics": "tile"})
    cnn = tmp_path / "cnn"
    shutil.copytree(model, cnn)
    config = json.loads((cnn / "config.json").read_text())
    (cnn / "config.json").write_text(json.dumps({**config, "model": "stfdcnn"}))
    with pytest.raises(ConfigError, match="GAN-STFM parameter"):
        fuse(site[0], out, method="learned", params={"model": str(cnn), "window": 128})
    assert not out.exists()
