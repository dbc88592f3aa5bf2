"""The training time budget (``train(..., budget_s=...)``): no epoch starts once it has passed,
at least one epoch runs, and the report says what stopped the training."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.cube_factory import block_mean, synthetic_scene, write_cube

pytest.importorskip("torch")

from stfcube.pipeline.learned import TrainSettings, train

DAYS = ["2024-05-01", "2024-05-05", "2024-05-09", "2024-05-13"]
TINY = {"model": "stfdcnn", "epochs": 3, "steps": 1, "batch": 2, "patch": 32,
        "validation_size": 32}  # fmt: skip


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    truth = synthetic_scene((64, 64), 2, DAYS, seed=5)
    root = tmp_path_factory.mktemp("budget")
    return write_cube(root / "cube.zarr", truth, block_mean(truth, 8), chunk=64)


def test_a_spent_budget_stops_after_one_epoch(cube: Path, tmp_path: Path) -> None:
    report = train(cube, tmp_path / "model", TrainSettings(**TINY), budget_s=0)
    assert (report.epochs_run, report.best_epoch, report.stopped_by) == (1, 1, "budget")
    assert (tmp_path / "model" / "weights.pt").is_file()
    assert not (tmp_path / "model" / "checkpoint.pt").exists()


def test_without_a_budget_every_epoch_runs(cube: Path, tmp_path: Path) -> None:
    report = train(cube, tmp_path / "model", TrainSettings(**TINY), budget_s=None)
    assert (report.epochs_run, report.stopped_by) == (3, "epochs")


def test_a_budget_is_not_a_setting_a_resume_must_repeat(cube: Path, tmp_path: Path) -> None:
    """A run cut by its budget is not finished: killed before its end it resumes under another
    budget (the checkpoint's config does not hold the budget)."""
    calls = {"n": 0}

    def killed(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] > 1:  # the first batch of the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cube, tmp_path / "model", TrainSettings(**TINY), progress=killed, budget_s=60)
    report = train(cube, tmp_path / "model", TrainSettings(**TINY), budget_s=0)
    assert (report.resumed_from, report.epochs_run, report.stopped_by) == (1, 2, "budget")


def test_no_finite_validation_error_writes_no_weights(
    cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training whose every validation is NaN is an error naming the cube, not a model dir
    with ``None`` for weights."""
    import stfcube.pipeline.learned.training as training
    from stfcube.pipeline.errors import InputError

    real = training.validate

    def nan_validation(*args: object, **kwargs: object) -> dict:
        return {**real(*args, **kwargs), "mse": float("nan")}

    monkeypatch.setattr(training, "validate", nan_validation)
    with pytest.raises(InputError, match="no finite validation error"):
        train(cube, tmp_path / "model", TrainSettings(**TINY))
    assert not (tmp_path / "model" / "weights.pt").exists()
