"""``update_flow``: the operational loop for a region, run daily by a deployment.

Ingest the scenes the source gained since the last run, fuse the prediction dates that are new
or whose pairs changed (batch by batch for large regions), and evaluate where truth exists, all
in one flow run on one Dask cluster (the region's ``runner``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow

from flows.evaluate import evaluate_stage
from flows.fuse import fuse_stage
from flows.ingest import ingest_stage
from flows.runners import run_on_region_runner
from pipeline.engine.run import FuseReport
from pipeline.evaluate.run import EvaluationReport
from pipeline.ingest.scenes import IngestReport
from pipeline.ops.update import RegionConfig, as_region_config


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
        return "\n".join(lines)


@flow(name="update-region", log_prints=True)
def update_region(config: RegionConfig) -> UpdateReport:
    """Ingest, fuse and evaluate one region (the body of :func:`update_flow`)."""
    ingested = ingest_stage(config)
    fused = fuse_stage(config)
    evaluation = evaluate_stage(config)
    report = UpdateReport(config.name, ingested, fused.reports, evaluation, fused.skipped)
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
