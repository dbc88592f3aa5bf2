"""``stfcube train``: fit a learned model on a cube's own pairs; resumable, deterministic on CPU.

Each epoch runs ``steps`` batches of random patches (:class:`PatchSampler`), then predicts every
held-out date from its nearest training pair(s) (the centre ``validation_size`` pixels) and
records the masked MSE, RMSE and SSIM; the best epoch's weights are kept; training stops after
``patience`` epochs without improvement. After every epoch the model, the optimiser, the
sampler's random state and the history go to ``checkpoint.pt`` (written atomically), so a killed
run, run again with the same settings, continues from its last epoch and ends with the weights an
uninterrupted run would have. A time budget (``budget_s``) starts no epoch once that many
seconds of the call have passed (the epoch under way finishes, so the run ends at most one epoch
past it; the model is then the best epoch so far, as after early stopping). EDCSTFN and
GAN-STFM first train their feature autoencoder (``autoencoder_steps`` batches), whose frozen
encoder gives the feature terms of their losses. GAN-STFM trains adversarially
(:class:`~stfcube.pipeline.learned.fitters.AdversarialFitter`), its references drawn from every
fine image of the cube; its best epoch is chosen in its ``frozen`` inference mode.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stfcube.pipeline.errors import ConfigError, InputError, OutputError
from stfcube.pipeline.learned import modeldir as md
from stfcube.pipeline.learned.fitters import make_fitter
from stfcube.pipeline.learned.samples import PatchSampler, Site, load_site, split_dates
from stfcube.pipeline.learned.settings import TrainSettings
from stfcube.pipeline.learned.steps import validate
from stfcube.pipeline.store.cube import open_cube


@dataclass
class TrainReport:
    """What a training run did."""

    model_dir: Path
    epochs_run: int
    best_epoch: int
    resumed_from: int
    seconds: float
    validation: dict[str, Any]
    stopped_by: str = "epochs"


def _config(
    settings: TrainSettings, cube: Any, site: Site, train: list[int], held: list[int]
) -> dict[str, Any]:
    """``config.json`` without the weights' digest (also the resume fingerprint)."""
    days = [str(d)[:10] for d in site.dates]
    return {
        "format": md.FORMAT,
        "model": settings.model,
        "cube": md.cube_signature(cube),
        "halo": _halo(settings.model, site.ratio),
        "training_dates": [days[i] for i in train],
        "validation_dates": [days[i] for i in held],
        "settings": dataclasses.asdict(settings),
    }


def _halo(model: str, ratio: int | None) -> int:
    from stfcube.kernels.learned import model_halo

    return model_halo(model, ratio)


def _prepare_dir(out_dir: Path, config: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Create ``out_dir`` or find what it holds: the checkpoint to resume, or ``None``.

    Raises
    ------
    OutputError
        When it holds anything but a model of these settings (unless ``overwrite``, which
        removes only the model files), or a finished model of these settings.
    """
    import torch

    files = (md.CONFIG, md.WEIGHTS, md.CHECKPOINT, md.METRICS, md.CURVES)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        checkpoint = out_dir / md.CHECKPOINT
        if overwrite:
            for name in files:
                (out_dir / name).unlink(missing_ok=True)
        elif checkpoint.is_file():
            saved = torch.load(checkpoint, weights_only=False)
            if saved["config"] != config:
                raise OutputError(
                    f"{out_dir}: holds an unfinished training with other settings or data "
                    "(--overwrite starts afresh)"
                )
            return dict(saved)
        else:
            raise OutputError(
                f"{out_dir}: not empty (a trained model or other files); --overwrite replaces "
                "a model"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    return None


def _save_atomic(obj: Any, path: Path) -> None:
    import torch

    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


def _write_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training and validation loss per epoch, and the validation RMSE (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [h["train_loss"] for h in history], label="training loss")
    left.plot(epochs, [h["validation_mse"] for h in history], label="validation MSE (scaled)")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, [h["validation_rmse"] for h in history], color="C2")
    right.set_xlabel("epoch")
    right.set_ylabel("validation RMSE (cube units)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _finish(out_dir: Path, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Write weights, config (with their digest), metrics and curves; drop the checkpoint."""
    import torch

    torch.save(state["best_state"], out_dir / md.WEIGHTS)
    best = state["history"][state["best_epoch"] - 1]
    metrics = {
        "best_epoch": state["best_epoch"],
        "validation": best["validation"],
        "epochs": state["history"],
    }
    (out_dir / md.METRICS).write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    _write_curves(state["history"], out_dir / md.CURVES)
    final = {**config, "weights_sha256": md.sha256(out_dir / md.WEIGHTS)}
    (out_dir / md.CONFIG).write_text(json.dumps(final, indent=1), encoding="utf-8")
    (out_dir / md.CHECKPOINT).unlink(missing_ok=True)


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Deterministic torch algorithms on ``threads`` threads inside the block."""
    import torch

    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def train(
    cube_path: str | Path,
    out_dir: str | Path,
    settings: TrainSettings,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    budget_s: float | None = None,
) -> TrainReport:
    """Train ``settings.model`` on the pairs of a cube and write the model directory.

    Parameters
    ----------
    cube_path
        The cube (``stfcube ingest``).
    out_dir
        The model directory (created; resumed when it holds this training's checkpoint).
    settings
        The training settings.
    overwrite
        Replace a model (or unfinished training) of other settings in ``out_dir``.
    progress
        Called as ``progress(done, total)`` after every batch.
    budget_s
        Wall-clock seconds of this call after which no new epoch starts (at least one epoch
        runs); ``None``: no limit. Not part of the settings: a resumed run may use another.

    Raises
    ------
    InputError
        A cube with fewer than 2 usable pairs (nothing is written).
    ConfigError, OutputError
        Bad settings, or an ``out_dir`` holding something else.
    """
    md.require_torch()
    import torch

    started = time.perf_counter()
    cube_path, out_dir = Path(cube_path), Path(out_dir)
    cube = open_cube(cube_path)
    site = load_site(
        cube_path,
        cube,
        min_valid=settings.min_valid,
        native=settings.model == "dcstfn",
        fine_only=settings.model == "ganstfm",
    )
    train_pos, held_pos = split_dates(len(site.paired), settings.validation_fraction)
    train_idx, held = [site.paired[i] for i in train_pos], [site.paired[i] for i in held_pos]
    if settings.pairs == 2 and len(site.paired) < 3:
        raise ConfigError(
            f"--pairs 2 needs at least 3 usable pairs; {cube_path} has {len(site.paired)}"
        )
    try:
        sampler = PatchSampler(site, train_idx, settings.model, settings.patch, settings.pairs)
    except ValueError as exc:
        raise ConfigError(f"--patch: {exc}") from None
    config = _config(settings, cube, site, train_idx, held)
    saved = _prepare_dir(out_dir, config, overwrite)
    with _deterministic(settings.threads):
        torch.manual_seed(settings.seed)
        rng = np.random.default_rng(settings.seed)
        fitter = make_fitter(site, train_idx, settings, rng)
        model = fitter.model
        state: dict[str, Any] = {
            "epoch": 0,
            "history": [],
            "best": float("inf"),
            "best_epoch": 0,
            "bad": 0,
            "best_state": None,
        }
        if saved is not None:
            fitter.load(saved)
            rng.bit_generator.state = saved["rng"]
            state = saved["state"]
        resumed_from = state["epoch"]
        total = settings.epochs * settings.steps
        stopped_by = "epochs"
        while state["epoch"] < settings.epochs and state["bad"] < settings.patience:
            if budget_s is not None and state["epoch"] > resumed_from:
                if time.perf_counter() - started >= budget_s:
                    stopped_by = "budget"
                    break
            losses = []
            for step in range(settings.steps):
                losses.append(fitter.step(sampler.batch(rng, settings.batch)))
                if progress is not None:
                    progress(state["epoch"] * settings.steps + step + 1, total)
            result = validate(model, site, train_idx, held, settings)
            state["epoch"] += 1
            rmse = float(np.nanmean([np.mean(d["rmse"]) for d in result["dates"].values()]))
            state["history"].append(
                {
                    "epoch": state["epoch"],
                    "train_loss": float(np.mean(losses)),
                    "validation_mse": result["mse"],
                    "validation_rmse": rmse,
                    "validation": result["dates"],
                }
            )
            if result["mse"] < state["best"]:
                state.update(
                    best=result["mse"],
                    best_epoch=state["epoch"],
                    bad=0,
                    best_state={k: v.clone() for k, v in model.state_dict().items()},
                )
            else:
                state["bad"] += 1
            _save_atomic(
                {
                    "config": config,
                    **fitter.state(),
                    "state": state,
                    "rng": rng.bit_generator.state,
                },
                out_dir / md.CHECKPOINT,
            )
    if state["best_state"] is None:
        raise InputError(
            cube_path,
            f"training {settings.model} gave no finite validation error in {state['epoch']} "
            "epoch(s) (no valid pixel shared by the validation dates and their pairs?): no "
            f"weights written to {out_dir}",
        )
    _finish(out_dir, config, state)
    if state["bad"] >= settings.patience:
        stopped_by = "patience"
    best = state["history"][state["best_epoch"] - 1]["validation"]
    return TrainReport(
        out_dir,
        state["epoch"],
        state["best_epoch"],
        resumed_from,
        time.perf_counter() - started,
        best,
        stopped_by,
    )
