"""The tiled, distributed, resumable fusion engine behind ``stfcube fuse``.

A run goes in four steps:

1. **Plan** (:func:`stfcube.pipeline.engine.planning.plan_fusion`): choose the prediction dates, the
   usable pairs the method's rule picks, and group the dates that share pairs; dates the method
   cannot predict are skipped and reported.
2. **Global statistics**: each group's whole-image statistics, the method's lazy dask reductions
   over the group's fine, coarse and prediction-date images, computed once before any tile.
3. **Tiles** (:mod:`stfcube.pipeline.engine.tasks`): one task per (group, tile) reads what the
   method's
   input spec lists, halo included, runs the method and writes the tile's region of every layer.
   Memory is bounded by the tile size.
4. **Completion markers**: after a tile's data are written, its cells of ``tile_done(time,
   tile_y, tile_x)`` are set. A rerun skips the tiles already marked, so a run killed at any point
   finishes only what is missing and yields the same bytes as an uninterrupted run; a tile
   without its marker is never taken as done.

The output store (:mod:`stfcube.pipeline.store.fused`) is created in a temporary sibling and renamed
into place; its fingerprint holds the method, its parameters and the tiling, and a rerun with other
values is refused unless ``overwrite=True``. New prediction dates are appended (the incremental
update path), and a stale date is recomputed. One run writes a store at a time
(:func:`stfcube.pipeline.store.lock.store_lock`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from stfcube.pipeline.engine.chunk_cache import release_run
from stfcube.pipeline.engine.cluster import ClusterSpec, dask_client
from stfcube.pipeline.engine.dataset_input import dataset_source, staged_dataset_cube
from stfcube.pipeline.engine.methods.base import FusionMethod, StatisticsInputs
from stfcube.pipeline.engine.methods.registry import get_method
from stfcube.pipeline.engine.pairing import PairGroup
from stfcube.pipeline.engine.planning import (
    REDUCTION_BLOCK,
    FusionPlan,
    open_cube_raw,
    plan_fusion,
    tile_notes,
)
from stfcube.pipeline.engine.tasks import (
    NativeGrid,
    TileTask,
    native_grid,
    pending_tasks,
    run_tasks,
)
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.geometry.tiling import tile_grid
from stfcube.pipeline.store.atomic import check_disjoint
from stfcube.pipeline.store.chunks import naming_damaged_chunks
from stfcube.pipeline.store.fused import day, mark_complete_if_done, prepare_output
from stfcube.pipeline.store.lock import store_lock


@dataclass
class FuseReport:
    """What a fuse run did."""

    out_path: Path
    method: str
    dates: list[str]
    dates_computed: list[str]
    tiles_total: int
    tiles_computed: int
    tiles_skipped: int
    groups: list[dict[str, list[str]]]
    seconds: float
    skipped_pairs: list[str] = field(default_factory=list)
    skipped_dates: dict[str, str] = field(default_factory=dict)
    unusable_pairs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One-paragraph human summary, one more line per fine image not used as a pair and
        per date the method had to skip."""
        text = (
            f"{self.method}: {len(self.dates)} dates in {len(self.groups)} pair groups -> "
            f"{self.out_path}; tiles computed {self.tiles_computed}, already done "
            f"{self.tiles_skipped} of {self.tiles_total}; {self.seconds:.1f} s"
        )
        unusable = [f"\nnot a pair: fine {d}: {why}" for d, why in self.unusable_pairs.items()]
        skipped = [f"\nskipped {d}: {why}" for d, why in sorted(self.skipped_dates.items())]
        notes = [f"\nnote: {note}" for note in self.notes]
        return text + "".join(unusable) + "".join(skipped) + "".join(notes)


@dataclass(frozen=True)
class FusionSetup:
    """A prepared run: plan, whole-image statistics and output store, ready for tile batches.

    Small and picklable, so a flow prepares once and hands it to every batch
    (:func:`run_fusion` with a ``region`` and a run of ``dates``): the whole-image statistics
    are then computed once per run, not once per batch. ``run`` is the run's token: the
    tile tasks' cache of decoded cube chunks (:mod:`stfcube.pipeline.engine.chunk_cache`) is keyed
    by it.
    """

    cube_path: Path
    out_path: Path
    method: str
    method_ref: str
    """How workers find the method: its name, or ``module:Class`` for a plugin."""
    params: Any
    plan: FusionPlan
    statistics: tuple[Mapping[str, np.ndarray], ...]
    cube_index: Mapping[np.datetime64, int]
    out_index: Mapping[np.datetime64, int]
    image_shape: tuple[int, int]
    tile: int
    device: str
    bands: tuple[str, ...] = ()
    native: NativeGrid | None = None
    layers: tuple[str, ...] = ()
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


def _fingerprint(
    method: FusionMethod[Any],
    params: Any,
    tile: int,
    pairs: str | int | None,
    min_pair_valid_fraction: float,
    pair_tolerance_days: int,
    source: str,
) -> dict[str, Any]:
    return {
        "method": method.name,
        "parameters": method.describe_params(params),
        "tile": tile,
        "pairs": str(pairs if pairs is not None else method.default_pairs),
        "pair_tolerance_days": pair_tolerance_days,
        "min_pair_valid_fraction": min_pair_valid_fraction,
        "source_cube": source,
    }


def prepare_fusion(
    cube_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "starfm",
    dates: Sequence[Any] | str | None = None,
    pairs: str | int | None = None,
    tile: int = 512,
    params: Mapping[str, Any] | None = None,
    min_pair_valid_fraction: float = 0.5,
    pair_tolerance_days: int = 0,
    overwrite: bool = False,
    device: str = "cpu",
    client: Any = None,
    source: str | None = None,
) -> FusionSetup:
    """Plan a run, compute every pair group's global statistics and create/extend the output.

    Parameters are those of :func:`fuse`; ``client`` (optional) computes the statistics;
    ``source`` is what the output records as its source cube (default: ``cube_path``).
    """
    cube_path, out_path = Path(cube_path), Path(out_path)
    check_disjoint(out_path, [cube_path])
    if device not in {"cpu", "gpu"}:
        raise ConfigError(f"unknown device {device!r}; use cpu or gpu")
    fusion_method = get_method(method)
    if device not in fusion_method.devices:
        raise ConfigError(f"{fusion_method.name} does not run on {device}")
    method_params = fusion_method.make_params(params)
    cube = open_cube_raw(cube_path, spatial_block=REDUCTION_BLOCK)
    fusion_method.check_cube(cube, cube_path, method_params)
    plan = plan_fusion(
        cube,
        cube_path,
        method=fusion_method,
        params=method_params,
        dates=dates,
        pairs=pairs,
        min_pair_valid_fraction=min_pair_valid_fraction,
        pair_tolerance_days=pair_tolerance_days,
    )
    fingerprint = _fingerprint(
        fusion_method,
        method_params,
        tile,
        pairs,
        min_pair_valid_fraction,
        pair_tolerance_days,
        source or str(cube_path.resolve()),
    )
    try:
        tile_grid((cube.sizes["y"], cube.sizes["x"]), tile)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    layers = fusion_method.output_layers(method_params)
    out_index = prepare_output(
        out_path,
        cube,
        plan.groups,
        plan.skipped_dates,
        fingerprint,
        layers,
        tile=tile,
        overwrite=overwrite,
        cube_path=cube_path,
    )
    cube_index = {t: i for i, t in enumerate(cube["time"].values)}
    read = sorted(
        {cube_index[d] for g in plan.groups for d in (*g.pair_dates, *g.coarse_dates)}
        | {cube_index[d] for d in plan.dates}
    )
    with naming_damaged_chunks(cube_path, ("fine", "fine_valid", "coarse", "coarse_valid"), read):
        statistics = _global_statistics(
            fusion_method, cube, cube_index, plan, method_params, client
        )
    return FusionSetup(
        cube_path=cube_path.resolve(),
        out_path=out_path.resolve(),
        method=fusion_method.name,
        params=method_params,
        plan=plan,
        statistics=tuple(statistics),
        cube_index=cube_index,
        out_index=out_index,
        image_shape=(cube.sizes["y"], cube.sizes["x"]),
        tile=tile,
        device=device,
        bands=tuple(str(b) for b in cube["band"].values),
        native=native_grid(cube) if plan.spec.native else None,
        layers=tuple(layer.name for layer in layers),
        method_ref=method if ":" in method else fusion_method.name,
    )


def _batch_groups(setup: FusionSetup, dates: Sequence[Any] | None) -> list[tuple[int, PairGroup]]:
    """The plan's groups (with their index) restricted to ``dates`` (all when ``None``)."""
    if dates is None:
        return list(enumerate(setup.plan.groups))
    wanted = {str(d)[:10] for d in dates}
    unknown = wanted - {day(d) for d in setup.plan.dates}
    if unknown:
        raise ConfigError(f"dates {', '.join(sorted(unknown))} are not in the prepared run")
    batch = []
    for index, group in enumerate(setup.plan.groups):
        chosen = tuple(d for d in group.predict_dates if day(d) in wanted)
        if chosen:
            batch.append((index, group.predicting(chosen)))
    return batch


#: Tile tasks per worker thread the engine aims for: with fewer, one long task at the end of a
#: run leaves the other cores idle (a 512 px demo site is 4 tiles).
TASKS_PER_THREAD = 3


def date_runs(
    groups: list[tuple[int, PairGroup]], n_tiles: int, workers: int
) -> list[tuple[int, PairGroup]]:
    """Pair groups with their prediction dates cut into runs, when tiles x groups would give the
    workers fewer than :data:`TASKS_PER_THREAD` tasks each.

    A run of dates is one task per tile: its candidates' date-independent work (search, gather)
    is shared by the run's dates, so groups are cut only as far as needed to fill the cores, into
    runs of consecutive dates of near-equal length.
    """
    base = n_tiles * len(groups)
    wanted = TASKS_PER_THREAD * workers
    if not base or base >= wanted:
        return groups
    per_group = -(-wanted // base)  # ceil
    runs = []
    for index, group in groups:
        dates = group.predict_dates
        for part in np.array_split(np.arange(len(dates)), min(per_group, len(dates))):
            runs.append((index, group.predicting([dates[i] for i in part])))
    return runs


def _tasks(
    setup: FusionSetup,
    groups: list[tuple[int, PairGroup]],
    region: tuple[int, int, int, int] | None,
    workers: int,
    kernel_threads: int,
) -> list[TileTask]:
    try:
        tiles = tile_grid(setup.image_shape, setup.tile, region)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    per_date = get_method(setup.method_ref).per_date_statistics
    return [
        TileTask(
            cube_path=str(setup.cube_path),
            out_path=str(setup.out_path),
            method=setup.method_ref,
            params=setup.params,
            statistics=_date_rows(
                setup.statistics[index], setup.plan.groups[index], group, per_date
            ),
            pair_index=tuple(setup.cube_index[d] for d in group.pair_dates),
            pair_coarse_index=tuple(setup.cube_index[d] for d in group.coarse_dates),
            predict_index=tuple(setup.cube_index[d] for d in group.predict_dates),
            out_index=tuple(setup.out_index[d] for d in group.predict_dates),
            pair_dates=group.pair_dates,
            predict_dates=group.predict_dates,
            bands=setup.bands,
            tile=t,
            halo=setup.plan.halo,
            spec=setup.plan.spec,
            native=setup.native,
            layers=setup.layers,
            image_shape=setup.image_shape,
            device=setup.device,
            kernel_threads=kernel_threads,
            run=setup.run,
        )
        for index, group in date_runs(groups, len(tiles), workers)
        for t in tiles
    ]


def _date_rows(
    statistics: Mapping[str, np.ndarray],
    planned: PairGroup,
    group: PairGroup,
    per_date: frozenset[str],
) -> Mapping[str, np.ndarray]:
    """A group's statistics for a task predicting some of its dates: the rows of the
    method's per-date statistics (:attr:`FusionMethod.per_date_statistics`) for those dates."""
    if group.predict_dates == planned.predict_dates or not per_date:
        return statistics
    rows = [planned.predict_dates.index(d) for d in group.predict_dates]
    return {k: v[rows] if k in per_date else v for k, v in statistics.items()}


def run_fusion(
    setup: FusionSetup,
    *,
    dates: Sequence[Any] | None = None,
    region: tuple[int, int, int, int] | None = None,
    client: Any = None,
    local_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FuseReport:
    """Fuse the tiles of a prepared run that are not done yet (all, or one batch of them).

    Parameters
    ----------
    setup
        From :func:`prepare_fusion`.
    dates
        Only these prediction dates (a batch's run of dates); default every planned date.
    region
        Only the tiles in ``(row0, row1, col0, col1)`` (a batch's block); default all.
    client, local_threads, progress
        As for :func:`fuse`.
    """
    started = time.perf_counter()
    groups = _batch_groups(setup, dates)
    workers, kernel_threads = _parallelism(client, local_threads)
    tasks = _tasks(setup, groups, region, workers, kernel_threads)
    pending = pending_tasks(setup.out_path, tasks)
    finished = 0

    def on_done(_key: str) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, len(pending))

    try:
        run_tasks(pending, client, workers, on_done)
    finally:
        release_run(setup.run)  # this process: local pool, thread workers
    if client is not None:  # worker processes; a worker that is gone took its cache with it
        client.run(release_run, setup.run, on_error="ignore")
    mark_complete_if_done(setup.out_path)
    by_index = {i: t for t, i in setup.cube_index.items()}
    computed = sorted({by_index[i] for t in pending for i in t.predict_index})
    return FuseReport(
        out_path=setup.out_path,
        method=setup.method,
        dates=sorted(day(d) for _, g in groups for d in g.predict_dates),
        dates_computed=[day(d) for d in computed],
        tiles_total=len(tasks),
        tiles_computed=len(pending),
        tiles_skipped=len(tasks) - len(pending),
        groups=[
            {"pairs": [day(p) for p in g.pair_dates], "dates": [day(d) for d in g.predict_dates]}
            for _, g in groups
        ],
        seconds=time.perf_counter() - started,
        skipped_pairs=[day(d) for d in setup.plan.skipped_pairs],
        skipped_dates={day(d): why for d, why in setup.plan.skipped_dates.items()},
        unusable_pairs={day(d): why for d, why in setup.plan.unusable_pairs.items()},
        notes=tile_notes(
            setup.tile,
            setup.plan.halo,
            len(setup.bands),
            max(2 * len(g.pair_dates) + len(g.predict_dates) for _, g in groups),
        )
        if groups
        else [],
    )


def fuse(
    cube: str | Path | xr.Dataset,
    out_path: str | Path,
    *,
    method: str = "starfm",
    dates: Sequence[Any] | str | None = None,
    pairs: str | int | None = None,
    tile: int = 512,
    params: Mapping[str, Any] | None = None,
    min_pair_valid_fraction: float = 0.5,
    pair_tolerance_days: int = 0,
    region: tuple[int, int, int, int] | None = None,
    client: Any = None,
    cluster: ClusterSpec | None = None,
    local_threads: int | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> FuseReport:
    """Fuse a cube into a fine-resolution time series, tile by tile, resumably.

    :func:`prepare_fusion`, then :func:`run_fusion` on the cluster, holding the output store's
    lock (a second run into the same store is refused).

    Parameters
    ----------
    cube
        The input cube (``stfcube ingest``): its path, or an ``xarray.Dataset`` with the cube
        schema (``xr.open_zarr(cube_path)``, or one built alike), which is validated and
        staged into a temporary cube beside the output for the run
        (:mod:`stfcube.pipeline.engine.dataset_input`).
    out_path
        The output Zarr store (created, extended with new dates, or resumed).
    method
        Fusion method name (``stfcube methods`` lists them) or ``"module:Class"``.
    dates
        ``None``: coarse dates without a usable fine image; ``"all"``: every coarse date; or a
        list of dates (``"YYYY-MM-DD"``).
    pairs
        Pair rule: ``"nearest"``, ``"before"``, ``"after"`` or a number of nearest pairs
        (``None``: the method's default).
    tile
        Tile edge in fine pixels (also the output chunk size).
    params
        Method parameters overriding its defaults (e.g. ``{"max_search_distance": 750}``).
    min_pair_valid_fraction
        Fine images with a smaller share of valid pixels are not used as pairs.
    pair_tolerance_days
        Largest distance between a pair's fine and coarse dates (coarse composites).
    region
        ``(row0, row1, col0, col1)`` limiting the run to a block of tiles.
    client
        A ``distributed.Client`` to run on. Without one, ``cluster`` (a :class:`ClusterSpec`)
        says which cluster to start or connect to; without both, tiles run on a local thread
        pool of ``local_threads`` threads (default: the machine's cores).
    overwrite
        Replace an existing fused store written with other parameters (never anything else).
    device
        ``"cpu"`` or ``"gpu"`` (the method moves its arrays there).
    progress
        Called as ``progress(done, total)`` after each tile.

    Returns
    -------
    FuseReport
        What the run did; :func:`stfcube.open_fused` opens ``report.out_path`` as a Dataset.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    given = cube if isinstance(cube, xr.Dataset) else None
    if given is None:
        check_disjoint(out_path, [Path(cube)])
    with store_lock(out_path, "fuse"), _cube_on_disk(cube, out_path) as cube_path:
        # Planned and prepared before any cluster starts, so bad input fails fast; the statistics
        # run on the caller's client if there is one, else on local threads (a bounded reduction).
        setup = prepare_fusion(
            cube_path,
            out_path,
            method=method,
            dates=dates,
            pairs=pairs,
            tile=tile,
            params=params,
            min_pair_valid_fraction=min_pair_valid_fraction,
            pair_tolerance_days=pair_tolerance_days,
            overwrite=overwrite,
            device=device,
            client=client,
            source=None if given is None else dataset_source(given),
        )
        with _client_context(client, cluster) as active_client:
            report = run_fusion(
                setup,
                region=region,
                client=active_client,
                local_threads=local_threads,
                progress=progress,
            )
    report.seconds = time.perf_counter() - started
    return report


def _cube_on_disk(cube: str | Path | xr.Dataset, out_path: Path) -> Any:
    """A context yielding the path of the cube to fuse: ``cube`` itself, or a Dataset's staged
    copy (:func:`stfcube.pipeline.engine.dataset_input.staged_dataset_cube`)."""
    if isinstance(cube, xr.Dataset):
        return staged_dataset_cube(cube, out_path)
    return nullcontext(Path(cube))


def _client_context(client: Any, cluster: ClusterSpec | None) -> Any:
    """A context yielding the client to use: the caller's, a new one for ``cluster``, or None."""
    if client is None and cluster is not None:
        return dask_client(cluster)
    return nullcontext(client)


def _parallelism(client: Any, local_threads: int | None) -> tuple[int, int]:
    """(concurrent tile tasks for a local pool, numba threads per tile kernel)."""
    cores = os.cpu_count() or 1
    if client is None:
        workers = local_threads or cores
        return workers, max(1, cores // workers)
    n_threads = sum(client.nthreads().values()) or 1
    return n_threads, max(1, cores // n_threads)


def _statistics_inputs(
    cube: xr.Dataset, cube_index: Mapping[np.datetime64, int], group: PairGroup
) -> StatisticsInputs:
    """Lazy whole images of one pair group (dask arrays, nothing read)."""
    fine = [cube_index[d] for d in group.pair_dates]
    coarse = [cube_index[d] for d in group.coarse_dates]
    pred = [cube_index[d] for d in group.predict_dates]
    native = {}
    if "coarse_native" in cube:
        for key, index in (("coarse", coarse), ("coarse_pred", pred)):
            native[key] = cube["coarse_native"].data[index]
            native[f"{key}_valid"] = cube["coarse_native_valid"].data[index]
    return StatisticsInputs(
        fine=cube["fine"].data[fine],
        fine_valid=cube["fine_valid"].data[fine],
        coarse=cube["coarse"].data[coarse],
        coarse_valid=cube["coarse_valid"].data[coarse],
        coarse_pred=cube["coarse"].data[pred],
        coarse_pred_valid=cube["coarse_valid"].data[pred],
        pair_dates=group.pair_dates,
        predict_dates=group.predict_dates,
        native=native,
        static={
            str(name): var.data for name, var in cube.data_vars.items() if "time" not in var.dims
        },
    )


def _global_statistics(
    method: FusionMethod[Any],
    cube: xr.Dataset,
    cube_index: Mapping[np.datetime64, int],
    plan: FusionPlan,
    params: Any,
    client: Any,
) -> list[dict[str, np.ndarray]]:
    """Every group's whole-image statistics, computed together in one dask pass."""
    lazy = [
        method.global_statistics(_statistics_inputs(cube, cube_index, group), params)
        for group in plan.groups
    ]
    return list(dask.compute(*lazy, scheduler=client.get if client is not None else "threads"))
