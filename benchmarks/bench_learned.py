"""Learned models (issues 16, 17) trained on a site under a time budget, vs the classic methods.

Run as ``python3 dev.py bench learned [--budget-s 150] [--models ...] [--size 512]
[--dataset synthetic fsdaf_lgc_sim] [--out DIR]``. For each data set: ingest the cube (inputs)
and the truth, train every model (``stfcube.pipeline.learned.train``, ``--threads`` torch threads,
at
most ``--budget-s`` seconds each: no epoch starts after that), fuse the test dates with each
model (``--method learned``, nearest pair) and with the classic methods, ``evaluate`` every run
against the truth and ``compare`` them (reports under ``--out``). Printed: per method the
training time, epochs and what stopped them, the mean over bands of RMSE and SSIM on the test
dates, the fuse time, and the learned models' inference throughput in fine pixels per second per
core (the test dates fused with tile 256 by 1 worker, then by 2 workers; the engine gives each
task's torch cores / workers threads, so a figure is pixels/s over all the cores the run used;
their "fuse s" is the 1-worker run, the classic methods' is 2 workers with tile 512,
numba compilation or cache loading included), then RMSE per band, then which baselines each
model beats and loses to. GAN-STFM runs in both inference modes: ``frozen`` (as above) and
``window`` (256 px windows overlapping by 64, 1 worker, tile 512), whose seam error is printed
(RMSE within 2 px of a window edge against elsewhere, all test dates and bands). The machine's
load average is printed: timings on a shared machine are upper bounds.

Data sets:

- ``synthetic``: the demo's site (``simulate_site``, ``--size`` px, ``--days`` days, seed 0: fine
  images every 8 days, every second one cloudy). The models train on the cube's pairs (their
  validation date is a pair date too); the test dates are the coarse-only days midway between
  consecutive fine dates, whose fine images no model has seen.
- ``fsdaf_lgc_sim`` (``../shared``; skipped when absent): one pair (2004-11-26) in the input
  cube, 2004-12-28 the truth. Training needs a second pair (a target date other than its
  reference, and a held-out date): every model is refused, which the table says.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from bench_accuracy import SHARED, Prepared, Run, _ingest, prepare_lgc

from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.evaluate import compare, evaluate
from stfcube.pipeline.learned import TrainSettings, train
from stfcube.pipeline.learned.seams import seam_error
from stfcube.pipeline.learned.settings import MODELS

ROOT = Path(__file__).resolve().parents[1]
BASELINES = [
    Run("starfm (1 pair)", "starfm", 1),
    Run("starfm (2 pairs)", "starfm", 2),
    Run("estarfm", "estarfm", 2),
    Run("fsdaf (ISODATA)", "fsdaf", 1, {"mode": "seamless"}),
    Run("fitfc", "fitfc", 1),
    Run("nochange", "nochange", 1),
]
THROUGHPUT_TILE = 256
#: Cores a fuse run uses: the engine's tasks x kernel (numba, torch) threads fill every core.
CORES = os.cpu_count() or 1
#: GAN-STFM's window mode in the benchmark (the engine's defaults).
WINDOW = {"statistics": "window", "window": 256, "overlap": 64}


@dataclass
class Result:
    """One method's run on a data set (training fields empty for the classic methods)."""

    label: str
    report: Path | None = None
    fuse_s: float = 0.0
    train_s: float | None = None
    epochs: str = ""
    pixels_per_core_s: dict[int, float] = field(default_factory=dict)
    why_not: str = ""
    note: str = ""


def prepare_synthetic(work: Path, size: int, days: int) -> Prepared:
    """The demo's site; test dates midway between consecutive fine dates."""
    from stfcube.pipeline.simulate.site import simulate_site

    site = work / "site"
    if not (site / "site.json").exists():
        started = time.perf_counter()
        simulate_site(site, size=size, days=days, seed=0)
        print(f"simulated {size} px, {days} days in {time.perf_counter() - started:.0f} s")
    catalog = site / "catalog.json"
    cube = _ingest(catalog, work / "cube.zarr", ("fine", "coarse"))
    with xr.open_zarr(cube, consolidated=False) as ds:
        fine_days = ds["time"].values[ds["fine_observed"].values].astype("datetime64[D]")
    middles = [a + (b - a) // 2 for a, b in itertools.pairwise(fine_days)]
    return Prepared(
        cube=cube,
        truth=_ingest(catalog, work / "truth.zarr", ("truth",)),
        dates=[str(d)[:10] for d in middles],
        runs=BASELINES,
    )


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label).strip("_")


def _fuse(prepared: Prepared, out: Path, run: Run, tile: int, workers: int) -> float:
    """Fuse the test dates into ``out`` (replaced); the wall time in seconds."""
    started = time.perf_counter()
    fuse(prepared.cube, out, method=run.method, dates=prepared.dates, pairs=run.pairs,
         params=run.params, tile=tile, local_threads=workers, overwrite=True,
         **prepared.fuse_options)  # fmt: skip
    return time.perf_counter() - started


def _evaluate(prepared: Prepared, fused: Path, out: Path) -> Path:
    report = evaluate(fused, prepared.truth, out, dates=prepared.dates,
                      resolution_ratio=prepared.resolution_ratio, max_pictures=1,
                      overwrite=True)  # fmt: skip
    return Path(report.out_dir)


def run_learned(
    prepared: Prepared, work: Path, model: str, args: argparse.Namespace
) -> list[Result]:
    """Train ``model`` under the budget, fuse the test dates on 1 and 2 workers, evaluate (and
    GAN-STFM's window mode on 1 worker)."""
    result = Result(model)
    settings = TrainSettings(model=model, epochs=100_000, steps=args.steps, threads=args.threads)
    try:
        trained = train(prepared.cube, work / "models" / model, settings, overwrite=True,
                        budget_s=args.budget_s)  # fmt: skip
    except (ConfigError, InputError) as exc:
        result.why_not = f"cannot train: {exc}"
        return [result]
    result.train_s = trained.seconds
    result.epochs = f"{trained.epochs_run} (best {trained.best_epoch}, {trained.stopped_by})"
    run = Run(model, "learned", 1, {"model": str(trained.model_dir)})
    with xr.open_zarr(prepared.cube, consolidated=False) as ds:
        pixels = ds.sizes["y"] * ds.sizes["x"] * len(prepared.dates)
    for workers in (1, 2):
        fused = work / "fused" / f"{model}-{workers}.zarr"
        seconds = _fuse(prepared, fused, run, THROUGHPUT_TILE, workers)
        result.pixels_per_core_s[workers] = pixels / seconds / CORES
        if workers == 1:
            result.fuse_s = seconds
            result.report = _evaluate(prepared, fused, work / "reports" / model)
    results = [result]
    if model == "ganstfm":
        results.append(_window_mode(prepared, work, result, run, pixels))
    return results


def _window_mode(prepared: Prepared, work: Path, frozen: Result, run: Run, pixels: int) -> Result:
    """GAN-STFM's window mode: fuse (1 worker, tile 512), evaluate, measure the seams."""
    label = f"{frozen.label} (window)"
    result = Result(label, train_s=frozen.train_s, epochs=frozen.epochs)
    fused = work / "fused" / "ganstfm-window.zarr"
    window_run = Run(label, "learned", 1, {**run.params, **WINDOW})
    result.fuse_s = _fuse(prepared, fused, window_run, 512, 1)
    result.pixels_per_core_s[1] = pixels / result.fuse_s / CORES
    result.report = _evaluate(prepared, fused, work / "reports" / _slug(label))
    dates = np.array(prepared.dates, dtype="datetime64[ns]")
    with (
        xr.open_zarr(fused, consolidated=False) as out,
        xr.open_zarr(prepared.truth, consolidated=False) as truth,
    ):
        prediction = out["fused"].sel(time=dates).values
        reference = truth["fine"].sel(time=dates)
        valid = truth["fine_valid"].sel(time=dates).values[:, None]
        seam = seam_error(prediction, reference.values, valid, WINDOW["window"], WINDOW["overlap"])
    result.note = (
        f"seam RMSE within {seam.width} px of a window edge {seam.border:.1f}, elsewhere "
        f"{seam.inside:.1f} (ratio {seam.ratio:.3f})"
    )
    return result


def run_baseline(prepared: Prepared, work: Path, run: Run) -> Result:
    """Fuse the test dates with a classic method (2 workers, tile 512) and evaluate."""
    result = Result(run.label)
    fused = work / "fused" / f"{_slug(run.label)}.zarr"
    try:
        result.fuse_s = _fuse(prepared, fused, run, 512, 2)
    except (ConfigError, InputError) as exc:
        result.why_not = f"cannot run: {exc}"
        return result
    result.report = _evaluate(prepared, fused, work / "reports" / _slug(run.label))
    return result


def _band_means(report: Path) -> dict[str, dict[str, float]]:
    """Per band: RMSE and SSIM over the test dates (the report's ``mean`` rows)."""
    rows = json.loads((report / "metrics.json").read_text())["per_band"]
    return {r["band"]: {"rmse": r["rmse"], "ssim": r["ssim"]} for r in rows if r["date"] == "mean"}


def _cell(value: float | None, digits: str) -> str:
    return "–" if value is None else format(value, digits)


def _tables(results: list[Result]) -> list[str]:
    """The summary table (means over bands) and the RMSE per band."""
    done = [r for r in results if r.report is not None]
    bands = {r.label: _band_means(r.report) for r in done if r.report is not None}
    lines = [
        "| method | train s | epochs (best, stop) | RMSE | SSIM | fuse s | px/s/core 1 w | 2 w |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in done:
        per_band = bands[r.label].values()
        lines.append(
            f"| {r.label} | {_cell(r.train_s, '.0f')} | {r.epochs or '–'} | "
            f"{np.mean([b['rmse'] for b in per_band]):.1f} | "
            f"{np.mean([b['ssim'] for b in per_band]):.4f} | {r.fuse_s:.1f} | "
            f"{_cell(r.pixels_per_core_s.get(1), ',.0f')} | "
            f"{_cell(r.pixels_per_core_s.get(2), ',.0f')} |"
        )
    names = list(next(iter(bands.values()))) if bands else []
    lines += ["", "RMSE per band:", f"| method | {' | '.join(names)} |", "|---" * (len(names) + 1)]
    lines[-1] += "|"
    for label, per_band in bands.items():
        cells = " | ".join(format(per_band[b]["rmse"], ".1f") for b in names)
        lines.append(f"| {label} | {cells} |")
    return lines


def _verdicts(results: list[Result]) -> list[str]:
    """Per learned model: the baselines it beats and loses to (mean RMSE), bands won."""
    bands = {r.label: _band_means(r.report) for r in results if r.report is not None}
    trained = {r.label for r in results if r.train_s is not None}
    learned = [label for label in bands if label in trained]
    lines = []
    for model in learned:
        beats, loses = [], []
        for other in (label for label in bands if label not in trained):
            mine, theirs = bands[model], bands[other]
            won = sum(mine[b]["rmse"] < theirs[b]["rmse"] for b in mine)
            better = np.mean([v["rmse"] for v in mine.values()]) < np.mean(
                [v["rmse"] for v in theirs.values()]
            )
            (beats if better else loses).append(f"{other} ({won}/{len(mine)} bands)")
        lines.append(
            f"- {model} beats on mean RMSE: {', '.join(beats) or 'none'}; "
            f"loses to: {', '.join(loses) or 'none'}"
        )
    return lines


def run_dataset(name: str, prepared: Prepared, work: Path, args: argparse.Namespace) -> list[str]:
    """Train, fuse, evaluate and compare on one prepared data set; the printed lines."""
    results = [r for model in args.models for r in run_learned(prepared, work, model, args)]
    if any(r.report is not None for r in results):
        results += [run_baseline(prepared, work, run) for run in prepared.runs]
    else:
        results.append(Result("classic methods", why_not="not run: no learned model to compare"))
    reports = {r.label: r.report for r in results if r.report is not None}
    lines = [f"## {name}: test dates {', '.join(prepared.dates)}"]
    if len(reports) >= 2:
        compare(list(reports.values()), work / "compare", labels=list(reports), overwrite=True)
        lines += [*_tables(results), "", *_verdicts(results)]
        lines.append(f"compare: {work / 'compare' / 'compare.html'}")
    lines += [f"- {r.label}: {r.why_not or r.note}" for r in results if r.why_not or r.note]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=150.0, help="training seconds/model")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--size", type=int, default=512, help="synthetic site edge (px)")
    parser.add_argument("--days", type=int, default=24, help="synthetic site days")
    parser.add_argument("--steps", type=int, default=20, help="training batches per epoch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument(
        "--dataset", nargs="+", choices=("synthetic", "fsdaf_lgc_sim"),
        default=["synthetic", "fsdaf_lgc_sim"],
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench_learned")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for name in args.dataset:
        work = args.out / name
        if name == "fsdaf_lgc_sim" and not SHARED.is_dir():
            print(f"## {name}: skipped, shared data not found at {SHARED}\n")
            continue
        shutil.rmtree(work / "fused", ignore_errors=True)
        (work / "fused").mkdir(parents=True)
        if name == "synthetic":
            prepared = prepare_synthetic(work, args.size, args.days)
        else:
            prepared = prepare_lgc(work)
        for line in run_dataset(name, prepared, work, args):
            print(line, flush=True)
        print(flush=True)
    total = time.perf_counter() - started
    print(f"load average at end {os.getloadavg()[0]:.1f}; total {total:.0f} s")


if __name__ == "__main__":
    main()
