"""``update_flow``: the operational loop for a region, run daily by a deployment.

Ingest the scenes the source gained since the last run, fuse the prediction dates that are new
or whose pairs changed (batch by batch for large regions), and evaluate where truth exists, all
in one flow run on one Dask cluster (the region's ``runner``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prefect import flow

from stfcube.flows.evaluate import evaluate_stage
from stfcube.flows.fuse import fuse_stage
from stfcube.flows.ingest import ingest_stage
from stfcube.flows.runners import run_on_region_runner
from stfcube.pipeline.engine.run import FuseReport
from stfcube.pipeline.evaluate.run import EvaluationReport
from stfcube.pipeline.ingest.scenes import IngestReport
from stfcube.pipeline.ops.update import RegionConfig, as_region_config


@dataclass(frozen=True)
class StageTime:
    """Wall time of a stage and how busy it kept the machine's cores."""

    wall_s: float
    cpu_busy: float
    """CPU time of this process (user + system, every thread: the local Dask workers are
    threads) over wall time x cores, in [0, 1]; workers in other processes are not counted."""


@contextmanager
def stage_clock(times: dict[str, StageTime], name: str) -> Iterator[None]:
    """Record the :class:`StageTime` of the block under ``name``."""
    process = psutil.Process()
    cpu0, wall0 = sum(process.cpu_times()[:2]), time.perf_counter()
    try:
        yield
    finally:
        wall = time.perf_counter() - wall0
        cpu = sum(process.cpu_times()[:2]) - cpu0
        times[name] = StageTime(wall, cpu / max(wall, 1e-9) / (os.cpu_count() or 1))


@dataclass
class UpdateReport:
    """What one update of a region did."""

    region: str
    ingested: list[IngestReport]
    fused: list[FuseReport]
    evaluation: EvaluationReport | None
    skipped: dict[str, str] = field(default_factory=dict)
    """Dates the method cannot predict (e.g. after the last fine image for a two-pair method),
    with the reason."""
    stage_times: dict[str, StageTime] = field(default_factory=dict)
    """Wall time and core use of each stage (``ingest``, ``fuse``, ``evaluate``)."""

    @property
    def dates_computed(self) -> list[str]:
        """Prediction dates (re)computed by this update, sorted."""
        return sorted({d for report in self.fused for d in report.dates_computed})

    def summary(self) -> str:
        """One line per stage, and one per date the method had to skip."""
        written = sum(len(r.written) for r in self.ingested)
        lines = [f"{self.region}: ingested {written} new scene dates"]
        lines.append(
            f"fused {len(self.dates_computed)} dates in {len(self.fused)} batches"
            if self.fused
            else "fused store up to date"
        )
        lines += [f"skipped {day}: {why}" for day, why in sorted(self.skipped.items())]
        if self.evaluation is not None:
            lines.append(f"evaluation -> {self.evaluation.out_dir}")
        if self.stage_times:
            lines.append(
                "time: "
                + ", ".join(
                    f"{name} {t.wall_s:.1f} s ({t.cpu_busy:.0%} of the cores)"
                    for name, t in self.stage_times.items()
                )
            )
        return "\n".join(lines)


@flow(name="update-region", log_prints=True)
def update_region(config: RegionConfig) -> UpdateReport:
    """Ingest, fuse and evaluate one region (the body of :func:`update_flow`)."""
    times: dict[str, StageTime] = {}
    with stage_clock(times, "ingest"):
        ingested = ingest_stage(config)
    with stage_clock(times, "fuse"):
        fused = fuse_stage(config)
    with stage_clock(times, "evaluate"):
        evaluation = evaluate_stage(config)
    report = UpdateReport(config.name, ingested, fused.reports, evaluation, fused.skipped, times)
    print(report.summary())
    return report


@flow(name="stfcube-update", log_prints=True)
def update_flow(region: RegionConfig | Path) -> UpdateReport:
    """Bring a region's cube, fused store and evaluation up to date with its source.

    Parameters
    ----------
    region
        A region config, or the path of its YAML file.

    Returns
    -------
    UpdateReport
    """
    return run_on_region_runner(update_region, region)


def run_update(region: RegionConfig | str | Path | dict[str, Any]) -> UpdateReport:
    """Run :func:`update_flow` for a region from Python or a CLI command (e.g. ``stfcube demo``).

    Parameters
    ----------
    region
        A region config, the path of its YAML file, or a mapping of its fields.

    Returns
    -------
    UpdateReport
    """
    return update_flow(as_region_config(region))
