"""``ingest_flow``: bring a region's new scenes into its cube (and its truth cube)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import stfcube.pipeline.ingest.scenes
from stfcube.flows.runners import local_threads, retry_options, run_on_region_runner
from stfcube.pipeline.ingest.scenes import IngestReport
from stfcube.pipeline.ops.update import RegionConfig

if TYPE_CHECKING:
    from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(
    source: str,
    cube: Path,
    chunk: int,
    roles: tuple[str, ...],
    catalog: CatalogQuery | None = None,
) -> IngestReport:
    """Append the source's scenes of ``roles`` not yet in ``cube`` (a no-op when none are new).

    With ``catalog``, ``source`` is read as that query's catalog items (``roles`` unused).
    """
    with local_threads():
        return stfcube.pipeline.ingest.ingest(
            source, cube, chunk=chunk, roles=roles, catalog=catalog
        )


def ingest_stage(config: RegionConfig) -> list[IngestReport]:
    """Submit the ingest tasks of a region in the running flow; return their reports.

    The input cube first, then (``ingest_truth``) the truth cube from the same source; a region
    with a ``catalog`` section ingests the query of that section.
    """
    ingest = ingest_task.with_options(**retry_options(config.retries))
    catalog = config.catalog.query() if config.catalog is not None else None
    targets: list[tuple[Path, tuple[str, ...], CatalogQuery | None]] = [
        (config.cube, ("fine", "coarse"), catalog)
    ]
    if config.ingest_truth and config.truth is not None:
        targets.append((config.truth, ("truth",), None))
    futures = [
        ingest.submit(config.source, cube, config.chunk, roles, query)
        for cube, roles, query in targets
    ]
    return [future.result() for future in futures]


@flow(name="ingest-region", log_prints=True)
def ingest_region(config: RegionConfig) -> list[IngestReport]:
    """Run :func:`ingest_stage` (the body of :func:`ingest_flow`, on the region's runner)."""
    return ingest_stage(config)


@flow(name="stfcube-ingest", log_prints=True)
def ingest_flow(region: RegionConfig | Path) -> list[IngestReport]:
    """Ingest a region's new scenes into its cube (and its truth cube when configured).

    Parameters
    ----------
    region
        A region config, or the path of its YAML file.

    Returns
    -------
    list of IngestReport
        The input cube's report, then the truth cube's.
    """
    return run_on_region_runner(ingest_region, region)
