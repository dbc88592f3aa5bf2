"""Dask clusters for the engine: a local cluster sized to the machine, or a running scheduler."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from stfcube.pipeline.errors import ConfigError


@dataclass(frozen=True)
class ClusterSpec:
    """How to get dask workers.

    Attributes
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts a local cluster.
    workers
        Local workers (default: one per two cores, at least one).
    threads_per_worker
        Tile tasks run at once per local worker (default: the cores divided among the
        workers); each tile kernel then gets one thread, so the machine is used without
        oversubscription.
    memory_limit
        Per-worker memory limit for a local cluster (``"4GiB"``; default: dask's share of RAM).
    processes
        Local workers as separate processes, or (default) as threads of this process. The
        kernels release the GIL, so threads avoid per-process JIT loads, pickling and IPC:
        measured on 2 cores, the pipeline's overhead over a bare kernel call was ~1-2 %
        with threads and 7-16 % with processes (``benchmarks/bench_engine.py``).
    connect_timeout
        How long to try reaching ``scheduler`` before giving up.
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    processes: bool = False
    connect_timeout: str = "10s"


def local_layout(spec: ClusterSpec, cores: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) of a local cluster: the spec's, or sized to ``cores``."""
    cores = cores or os.cpu_count() or 1
    workers = spec.workers or max(1, cores // 2)
    threads = spec.threads_per_worker or max(1, cores // workers)
    return workers, threads


@contextmanager
def dask_client(spec: ClusterSpec) -> Iterator[object]:
    """A ``distributed.Client`` for ``spec``, closed (with its local cluster) on exit.

    Raises
    ------
    ConfigError
        When the scheduler address cannot be reached.
    """
    from distributed import Client, LocalCluster

    if spec.scheduler:
        try:
            client = Client(spec.scheduler, timeout=spec.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the dask scheduler at {spec.scheduler}: {exc}"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    workers, threads = local_layout(spec)
    cluster_kwargs: dict[str, object] = {
        "n_workers": workers,
        "threads_per_worker": threads,
        "processes": spec.processes,
        "dashboard_address": ":0",  # a free port: never collide with another cluster's 8787
    }
    if spec.memory_limit:
        cluster_kwargs["memory_limit"] = spec.memory_limit
    with LocalCluster(**cluster_kwargs) as cluster, Client(cluster) as client:
        yield client
