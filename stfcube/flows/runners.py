"""Prefect task runners on Dask, built from a region's
:class:`~stfcube.pipeline.ops.update.RunnerConfig`.

- default: a local ``distributed.LocalCluster`` of threads (``processes=False``), so the workers
  share the flow's Prefect API connection instead of starting one temporary server each;
- ``address``: a running scheduler (workers from ``stfcube submit`` or ``dask worker``);
- ``hpc``: a dask-jobqueue cluster (Slurm/PBS, CPU or dask-cuda GPU workers) started from a
  ``deploy/hpc/*.yaml`` config and scaled between ``min_jobs`` and ``max_jobs`` jobs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask.config
from prefect.tasks import exponential_backoff
from prefect_dask import DaskTaskRunner

from stfcube.pipeline.ops.update import RegionConfig, RetryPolicy, RunnerConfig, as_region_config

#: The dask-jobqueue cluster factory, by name: dask-jobqueue (which writes
#: ``~/.config/dask/jobqueue.yaml`` when imported) loads only for ``hpc`` runners.
HPC_CLUSTER_FACTORY = "stfcube.pipeline.ops.hpc.hpc_cluster"


def local_cluster_kwargs(config: RunnerConfig) -> dict[str, Any]:
    """``distributed.LocalCluster`` keyword arguments of a local runner config."""
    kwargs: dict[str, Any] = {
        "n_workers": config.n_workers,
        "processes": config.processes,
        # A free port: the scheduler's HTTP server otherwise takes 8787, which other clusters
        # on a shared machine may hold (dashboard_address=None still binds 8787).
        "dashboard_address": ":0",
    }
    if config.threads_per_worker is not None:
        kwargs["threads_per_worker"] = config.threads_per_worker
    return kwargs


def task_runner(config: RunnerConfig | None = None) -> DaskTaskRunner:
    """The ``DaskTaskRunner`` a runner config asks for (default: a local thread cluster).

    Parameters
    ----------
    config
        Where the tasks run; ``None`` means ``RunnerConfig()``.

    Returns
    -------
    DaskTaskRunner
        Not started: the flow starts (and closes) the cluster when it runs.
    """
    config = config or RunnerConfig()
    if config.address is not None:
        return DaskTaskRunner(address=config.address)
    if config.hpc is not None:
        return DaskTaskRunner(
            cluster_class=HPC_CLUSTER_FACTORY,
            cluster_kwargs={"config_path": str(config.hpc)},
            adapt_kwargs={"minimum_jobs": config.min_jobs, "maximum_jobs": config.max_jobs},
        )
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(config)
    )


def run_on_region_runner(body: Any, region: RegionConfig | Any) -> Any:
    """Run the flow ``body(config)`` with the task runner of the region's ``runner`` section.

    Every public flow is a thin shell around a body flow: the shell takes the region (config or
    YAML path) and picks the Dask cluster, the body holds the tasks.
    """
    config = as_region_config(region)
    return body.with_options(task_runner=task_runner(config.runner))(config)


def retry_options(policy: RetryPolicy) -> dict[str, Any]:
    """``Task.with_options`` arguments for I/O tasks: retries with exponential backoff."""
    delays = exponential_backoff(backoff_factor=policy.delay_seconds)(policy.retries)
    return {
        "retries": policy.retries,
        "retry_delay_seconds": delays,
        "retry_jitter_factor": policy.jitter if policy.delay_seconds > 0 else None,
    }


class _SharedSchedulerSetting:
    """dask's ``scheduler`` setting for the blocks that enter it, process-wide (dask's settings
    are): the first block in sets it, the last one out restores it, so tasks running side by
    side in one process (the cube's and the truth cube's ingest) never restore it under each
    other."""

    def __init__(self, scheduler: str) -> None:
        self.scheduler = scheduler
        self._lock = threading.Lock()
        self._users = 0
        self._setting: dask.config.set | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        """The setting in force for the block."""
        with self._lock:
            if self._users == 0:
                self._setting = dask.config.set(scheduler=self.scheduler)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._setting is not None:
                    self._setting.__exit__(None, None, None)
                    self._setting = None


_THREADS = _SharedSchedulerSetting("threads")


@contextmanager
def local_threads() -> Iterator[None]:
    """Run a task's own dask graphs on threads of its process, not on the flow's cluster.

    Ingest and evaluate make small graphs of short I/O tasks, which the threaded scheduler runs
    faster than the cluster (no hand-over to the scheduler, no wait for the task's own worker
    thread). A module function, so that tasks using it pickle (by reference) for the cluster.
    """
    with _THREADS.held():
        yield
