"""``stfcube run``, ``stfcube submit`` and ``stfcube plan``: operating a region at scale."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._options import check_scheduler
from stfcube.pipeline.errors import ConfigError

#: Scheduler address printed by ``submit --dry-run`` when none is given.
PLACEHOLDER_SCHEDULER = "tcp://SCHEDULER-HOST:8786"


def run_command(
    region: Annotated[
        Path, typer.Argument(exists=True, help="Region config (deploy/regions/*.yaml).")
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run on this dask scheduler (tcp://host:8786) instead of the config's.",
            callback=check_scheduler,
        ),
    ] = None,
) -> None:
    """Bring a region up to date: ingest new scenes, fuse what changed, evaluate.

    Runs the update_flow Prefect flow once, as a daily deployment would. Without
    PREFECT_API_URL a temporary local Prefect server is started for the run.

    Examples:

      stfcube run deploy/regions/demo.yaml

      stfcube run deploy/regions/conus.yaml --scheduler tcp://login01:8786
    """
    from stfcube.pipeline.ops.update import RunnerConfig, load_region_config

    config = load_region_config(region)
    if scheduler is not None:
        config = config.model_copy(update={"runner": RunnerConfig(address=scheduler)})
    from stfcube.flows.update import run_update

    report = run_update(config)
    console().print(report.summary())


def submit_command(
    config: Annotated[Path, typer.Argument(exists=True, help="HPC config (deploy/hpc/*.yaml).")],
    slurm: Annotated[bool, typer.Option("--slurm", help="Submit with sbatch.")] = False,
    pbs: Annotated[bool, typer.Option("--pbs", help="Submit with qsub.")] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Address of the running dask scheduler the workers join (tcp://host:port).",
            callback=check_scheduler,
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worker jobs to submit.")] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the job script, submit nothing.")
    ] = False,
) -> None:
    """Render the batch script of dask worker jobs and submit it (or print it with --dry-run).

    Start a scheduler first (dask scheduler --host 0.0.0.0 on a login node), submit workers
    that join it, then run the region on it (stfcube run REGION --scheduler ADDRESS).

    Examples:

      stfcube submit --slurm deploy/hpc/slurm.yaml --scheduler tcp://login01:8786 --jobs 8

      stfcube submit --pbs deploy/hpc/pbs.yaml --dry-run
    """
    if slurm == pbs:
        raise ConfigError("choose the batch system: --slurm or --pbs")
    # dask-jobqueue is imported only here: it writes ~/.config/dask/jobqueue.yaml on import.
    from stfcube.pipeline.ops.hpc import load_hpc_config, render_job_script, submit_job_script

    hpc = load_hpc_config(config, "slurm" if slurm else "pbs")
    if scheduler is None and not dry_run:
        raise ConfigError("give --scheduler tcp://HOST:PORT, the scheduler the workers join")
    script = render_job_script(hpc, scheduler or PLACEHOLDER_SCHEDULER)
    if dry_run:
        typer.echo(script, nl=False)
        return
    ids = submit_job_script(script, hpc.system, jobs=jobs)
    console().print(f"submitted {len(ids)} {hpc.system} job(s): {' '.join(ids)}")


def plan_command(
    region: Annotated[
        Path, typer.Argument(exists=True, help="Region config (deploy/regions/*.yaml).")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every batch as JSON instead of a summary.")
    ] = False,
    rows: Annotated[int, typer.Option(min=0, help="Batches listed in the summary.")] = 20,
) -> None:
    """Print how a region's run splits into batches and what it costs, without computing.

    With 'grid' and 'calendar' in the config (a product not built yet) nothing is read;
    otherwise the plan covers the dates the region's fused store still needs.

    Examples:

      stfcube plan deploy/regions/conus.yaml

      stfcube plan deploy/regions/demo.yaml --json
    """
    from stfcube.pipeline.ops.plan import THROUGHPUT, describe_plan, plan_region
    from stfcube.pipeline.ops.update import load_region_config

    config = load_region_config(region)
    plan = plan_region(config)
    if not as_json:
        typer.echo("\n".join(describe_plan(plan, config.method, config.device, max_rows=rows)))
        return
    speed = THROUGHPUT.get((config.method, config.device))
    document = {
        "region": config.name,
        "shape": plan.shape,
        "tile": plan.tile,
        "max_tasks_per_batch": plan.max_tasks_per_batch,
        "tasks": plan.tasks,
        "bytes_read": plan.bytes_read,
        "bytes_written": plan.bytes_written,
        "work": plan.work,
        "work_unit": plan.work_unit,
        "hours": plan.hours(config.method, config.device) if speed else None,
        "hours_unit": "GPU-hours" if config.device == "gpu" else "core-hours",
        "batches": [dataclasses.asdict(batch) for batch in plan.batches],
    }
    typer.echo(json.dumps(document, indent=1))
