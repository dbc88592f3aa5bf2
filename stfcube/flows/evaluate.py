"""``evaluate_flow``: score a region's fused store against its truth cube."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import stfcube.pipeline.evaluate.run
from stfcube.flows.runners import local_threads, retry_options, run_on_region_runner
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.evaluate.run import EvaluationReport
from stfcube.pipeline.ops.update import RegionConfig, as_region_config


@task(name="evaluate", cache_policy=NO_CACHE)
def evaluate_task(fused: Path, truth: Path, out_dir: Path, cube: Path) -> EvaluationReport:
    """Evaluate every fused date the truth observed; rewrite the report directory."""
    with local_threads():
        return stfcube.pipeline.evaluate.evaluate(
            fused, truth, out_dir, source_cube=cube, overwrite=True
        )


def evaluate_stage(config: RegionConfig) -> EvaluationReport | None:
    """Submit the evaluation of a region in the running flow (None when it has no truth)."""
    if config.truth is None:
        return None
    evaluate = evaluate_task.with_options(**retry_options(config.retries))
    return evaluate.submit(config.fused, config.truth, config.evaluation_dir, config.cube).result()


@flow(name="evaluate-region", log_prints=True)
def evaluate_region(config: RegionConfig) -> EvaluationReport | None:
    """Run :func:`evaluate_stage` (the body of :func:`evaluate_flow`, on the region's runner)."""
    return evaluate_stage(config)


@flow(name="stfcube-evaluate", log_prints=True)
def evaluate_flow(region: RegionConfig | Path) -> EvaluationReport | None:
    """Evaluate a region's fused store against its truth cube.

    Parameters
    ----------
    region
        A region config (with ``truth``), or the path of its YAML file.

    Returns
    -------
    EvaluationReport
    """
    config = as_region_config(region)
    if config.truth is None:
        raise ConfigError(f"region {config.name} has no 'truth' cube to evaluate against")
    return run_on_region_runner(evaluate_region, config)
