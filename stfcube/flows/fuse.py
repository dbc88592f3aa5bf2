"""``fuse_flow``: fuse the dates a region's fused store still needs, batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import unmapped
from prefect_dask import get_dask_client

import stfcube.pipeline.engine.run
from stfcube.flows.runners import retry_options, run_on_region_runner
from stfcube.pipeline.engine.run import FuseReport, FusionSetup
from stfcube.pipeline.ops.plan import Batch, Plan, plan_update
from stfcube.pipeline.ops.update import RegionConfig, UpdatePlan
from stfcube.pipeline.store.lock import store_lock


@task(name="plan-update", cache_policy=NO_CACHE)
def plan_task(config: RegionConfig) -> tuple[UpdatePlan, Plan | None]:
    """The dates to fuse (new, changed, unfinished) and their batches."""
    return plan_update(config)


@contextmanager
def cluster_client() -> Iterator[Client]:
    """A Dask client of the flow's cluster for a task that submits tasks of its own.

    On a Dask worker: a client of the worker's scheduler made for this task only
    (``set_as_default=False``: with a thread cluster, tasks running side by side would otherwise
    swap and close each other's default client, prefect-dask's ``get_dask_client`` failing with
    ``'NoneType' object has no attribute 'address'``), and the task's worker thread given back to
    the cluster while it waits for the tasks it submits (:func:`distributed.secede`, then
    ``rejoin``): without it, batches mapped concurrently hold every worker thread while waiting for
    their own tile tasks, which then never run. Off a worker (a task run in the flow's own
    process): prefect-dask's client of the flow's task runner.
    """
    from distributed import get_worker, rejoin, secede

    try:
        worker = get_worker()
    except ValueError:
        with get_dask_client() as client:
            yield client
        return
    with Client(worker.scheduler.address, set_as_default=False) as client:
        secede()
        try:
            yield client
        finally:
            rejoin()


@task(name="prepare-fusion", cache_policy=NO_CACHE)
def prepare_task(config: RegionConfig, dates: list[str]) -> FusionSetup:
    """Plan the run's dates, compute their whole-image statistics once, create/extend the store."""
    with cluster_client() as client:
        return stfcube.pipeline.engine.run.prepare_fusion(
            config.cube,
            config.fused,
            method=config.method,
            dates=dates,
            pairs=config.pairs,
            tile=config.tile,
            params=config.params,
            min_pair_valid_fraction=config.min_pair_valid_fraction,
            pair_tolerance_days=config.pair_tolerance_days,
            device=config.device,
            client=client,
        )


@task(name="fuse-batch", cache_policy=NO_CACHE)
def fuse_task(setup: FusionSetup, batch: Batch) -> FuseReport:
    """Fuse one batch (a block of tiles x a run of dates) on the flow's Dask cluster."""
    with cluster_client() as client:
        return stfcube.pipeline.engine.run.run_fusion(
            setup, client=client, dates=batch.fuse_dates, region=batch.fuse_region
        )


@dataclass
class FuseStage:
    """What the fuse stage of a flow did: every batch's report, in plan order (empty when up to
    date), and the dates the method cannot predict with why (``YYYY-MM-DD`` -> reason)."""

    reports: list[FuseReport]
    skipped: dict[str, str] = field(default_factory=dict)


def fuse_stage(config: RegionConfig) -> FuseStage:
    """Submit the fusion of a region's outstanding dates in the running flow.

    One preparation for all outstanding dates (plan, global statistics, output store), then
    every batch mapped concurrently: batches only write their own tiles' chunks. The flow holds
    the store's lock (:func:`stfcube.pipeline.store.lock.store_lock`) meanwhile.
    """
    update, plan = plan_task.submit(config).result()
    skipped = dict(update.skipped)
    if plan is None:
        return FuseStage([], skipped)
    dates = sorted({d for batch in plan.batches for d in batch.dates})
    with store_lock(config.fused, "fuse flow"):
        setup = prepare_task.with_options(**retry_options(config.retries)).submit(config, dates)
        fuse = fuse_task.with_options(**retry_options(config.retries))
        batches = fuse.map(unmapped(setup.result()), plan.batches)
        return FuseStage([future.result() for future in batches], skipped)


@flow(name="fuse-region", log_prints=True)
def fuse_region(config: RegionConfig) -> list[FuseReport]:
    """Run :func:`fuse_stage` (the body of :func:`fuse_flow`, on the region's runner)."""
    stage = fuse_stage(config)
    for day, why in sorted(stage.skipped.items()):
        print(f"skipped {day}: {why}")
    return stage.reports


@flow(name="stfcube-fuse", log_prints=True)
def fuse_flow(region: RegionConfig | Path) -> list[FuseReport]:
    """Fuse the prediction dates of a region that are new, whose pairs changed, or unfinished.

    Parameters
    ----------
    region
        A region config, or the path of its YAML file.

    Returns
    -------
    list of FuseReport
        One per batch; ``dates_computed`` says which dates each recomputed.
    """
    return run_on_region_runner(fuse_region, region)
