"""Continental planning: cut a fusion run into bounded batches and estimate its cost.

A fuse run holds one task per (pair group, tile). A continent at 30 m holds tens of thousands
of 512-pixel tiles and dozens of pair groups a year, more than one dask graph should carry, so
the run is cut into *batches*: a spatial block (a whole number of tiles, so every tile stays
whole and lies in exactly one block) times a group of consecutive pair groups. Each batch is one
bounded call of :func:`stfcube.pipeline.engine.run.fuse` (``dates=``, ``region=``) writing its own
regions of the one output store; the flows map over the batches.

Costs come from a model of what the engine does per tile task (see :func:`batch_cost`) and the
kernels' throughput in :data:`THROUGHPUT`, counted in *candidates*: one (pixel, band, pair,
window position) visit of the STARFM similarity test, W² per pixel, band and pair.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from stfcube.pipeline.engine.pairing import PairGroup, plan_groups
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.ops.update import CalendarSpec, RegionConfig, UpdatePlan, dates_to_fuse
from stfcube.pipeline.store.fused import day
from stfcube.pipeline.store.layout import ObjectCount, fused_objects, fused_sharded


@dataclass(frozen=True)
class Throughput:
    """Kernel speed in work units per second (the method's ``cost_unit``: STARFM's
    similar-pixel candidates) on one unit of hardware (a CPU core or a GPU)."""

    work_per_second: float
    unit: str
    source: str


@dataclass(frozen=True)
class MethodCost:
    """What the planner needs of a method: its halo and its work per fine pixel and date."""

    method: str
    halo: int
    unit: str
    per_pixel: Callable[[int], float]
    """Work per fine pixel and prediction date for a number of pairs (all bands)."""
    layers: int = 1
    """Arrays the method writes besides ``fused`` (STARFM: ``quality``)."""


def method_cost(method: str, params: Mapping[str, Any] | None, bands: int) -> MethodCost:
    """The halo and cost model the method declares, for its parameters and ``bands`` bands."""
    from stfcube.pipeline.engine.methods.registry import get_method

    fusion_method = get_method(method)
    values = fusion_method.make_params(params)
    return MethodCost(
        fusion_method.name,
        fusion_method.halo(values),
        fusion_method.cost_unit,
        lambda pairs: fusion_method.cost(values, pairs, bands),
        len(fusion_method.output_layers(values)),
    )


#: Kernel throughput by (method, device). Replace a figure when a benchmark measures it.
THROUGHPUT: dict[tuple[str, str], Throughput] = {
    ("starfm", "cpu"): Throughput(
        2.8e9,
        "core",
        "the numba STARFM kernel measured by benchmarks/bench_starfm.py on the 2-core "
        "development machine (2.8e9-3.1e9 candidates/s per thread with 1 and 2 threads, W = 50, "
        "fsdaf_lgc_sim band 3; the lower figure is used; the kernel's target was 1.5e9)",
    ),
    ("starfm", "gpu"): Throughput(
        2.0e10,
        "GPU",
        "provisional, not measured here: 75x the USDA C figure (the speed-up the cuESTARFM "
        "README reports for a K40 over one CPU core, research/classical_stf.md section 3.3)",
    ),
    ("starfm-usda-c", "cpu"): Throughput(
        0.26e9,
        "core",
        "USDA STARFM C program v1.2.x, single-threaded (issue 7 reference figure); printed "
        "for comparison",
    ),
}


@dataclass(frozen=True)
class Batch:
    """One bounded fuse call: a block of whole tiles times a run of prediction dates."""

    index: int
    region: tuple[int, int, int, int]
    """``(row0, row1, col0, col1)`` of the fine grid; bounds on tile multiples or the edge."""
    dates: tuple[str, ...]
    """Prediction dates (``YYYY-MM-DD``)."""
    whole_image: bool
    """The block is the whole image (then fuse may mark the store complete)."""
    tasks: int
    """Tile tasks (pair groups x tiles)."""
    bytes_read: int
    bytes_written: int
    work: float
    """Kernel work, in the method's cost unit."""

    @property
    def fuse_dates(self) -> list[str]:
        """The ``dates`` that limit :func:`stfcube.pipeline.engine.run.run_fusion` to this batch."""
        return list(self.dates)

    @property
    def fuse_region(self) -> tuple[int, int, int, int] | None:
        """The ``region`` that limits :func:`stfcube.pipeline.engine.run.run_fusion` to this
        batch."""
        return None if self.whole_image else self.region


@dataclass(frozen=True)
class Plan:
    """Batches of a run and their totals."""

    shape: tuple[int, int]
    bands: int
    tile: int
    halo: int
    work_unit: str
    max_tasks_per_batch: int
    n_groups: int
    n_dates: int
    batches: tuple[Batch, ...]
    statistics_bytes: int
    """Bytes the run's global statistics read once, before any batch (every pair image, whole)."""
    objects: ObjectCount = field(default_factory=lambda: ObjectCount(0, 0, 0))
    """Objects of the fused store once written (:mod:`stfcube.pipeline.store.layout`)."""

    @property
    def tasks(self) -> int:
        """Tile tasks over all batches."""
        return sum(b.tasks for b in self.batches)

    @property
    def bytes_read(self) -> int:
        """Bytes read by the run: global statistics once, then every batch (uncompressed)."""
        return self.statistics_bytes + sum(b.bytes_read for b in self.batches)

    @property
    def bytes_written(self) -> int:
        """Bytes written over all batches (uncompressed)."""
        return sum(b.bytes_written for b in self.batches)

    @property
    def work(self) -> float:
        """Kernel work over all batches (:attr:`work_unit`)."""
        return sum(b.work for b in self.batches)

    def hours(self, method: str, device: str) -> float:
        """Estimated compute hours (core-hours on CPU, GPU-hours on GPU) from :data:`THROUGHPUT`."""
        try:
            speed = THROUGHPUT[method, device]
        except KeyError:
            known = ", ".join(f"{m}/{d}" for m, d in THROUGHPUT)
            raise ConfigError(
                f"no throughput figure for {method} on {device}; known: {known}"
            ) from None
        return self.work / speed.work_per_second / 3600.0


def spatial_blocks(
    shape: tuple[int, int], tile: int, max_tiles: int
) -> list[tuple[int, int, int, int]]:
    """Cut an image into the fewest blocks of whole tiles holding at most ``max_tiles`` tiles.

    Among the layouts with the fewest blocks, the one with the most square blocks is chosen;
    blocks are as even as the tile grid allows and cover every pixel exactly once.

    Parameters
    ----------
    shape
        Image rows and columns.
    tile
        Tile edge in pixels.
    max_tiles
        Largest number of tiles in one block.

    Returns
    -------
    list of (row0, row1, col0, col1)
        Row-major; bounds are tile multiples or the image edge.
    """
    if max_tiles < 1:
        raise ValueError(f"max_tiles must be positive, got {max_tiles}")
    rows, cols = shape
    n_ty, n_tx = -(-rows // tile), -(-cols // tile)
    layouts = []
    for blocks_y in range(1, n_ty + 1):
        by = -(-n_ty // blocks_y)
        if by > max_tiles:
            continue
        blocks_x = -(-n_tx // min(n_tx, max_tiles // by))
        bx = -(-n_tx // blocks_x)
        layouts.append((blocks_y * blocks_x, abs(math.log(by / bx)), blocks_y, blocks_x))
    _, _, blocks_y, blocks_x = min(layouts)
    edges_y = [min(i * n_ty // blocks_y * tile, rows) for i in range(blocks_y + 1)]
    edges_x = [min(i * n_tx // blocks_x * tile, cols) for i in range(blocks_x + 1)]
    return [
        (y0, y1, x0, x1)
        for y0, y1 in itertools.pairwise(edges_y)
        for x0, x1 in itertools.pairwise(edges_x)
    ]


def _halo_extent(start: int, stop: int, tile: int, halo: int, size: int) -> int:
    """Sum over the tiles in ``start:stop`` of their halo-extended length clipped to the image."""
    edges = np.arange(start, stop, tile)
    ends = np.minimum(edges + tile, stop)
    return int((np.minimum(ends + halo, size) - np.maximum(edges - halo, 0)).sum())


def batch_cost(
    shape: tuple[int, int],
    region: tuple[int, int, int, int],
    groups: Sequence[PairGroup],
    *,
    bands: int,
    tile: int,
    cost: MethodCost,
) -> tuple[int, int, int, float]:
    """Tasks, bytes read, bytes written and kernel work of one batch.

    The model follows the engine (:mod:`stfcube.pipeline.engine.run`): per tile task, the
    halo-extended tile of the pairs' fine and coarse images and of each prediction date's coarse
    image (float32 bands + 1-byte validity each); per predicted pixel and band, a float32 value and
    a uint16 quality.
    Sizes are uncompressed. The global statistics are read once per run, not per batch
    (:attr:`Plan.statistics_bytes`); the pairs' valid shares are recorded in the cube at ingest.
    """
    rows, cols = shape
    r0, r1, c0, c1 = region
    tiles = (-(-(r1 - r0) // tile)) * (-(-(c1 - c0) // tile))
    halo = cost.halo
    extended = _halo_extent(r0, r1, tile, halo, rows) * _halo_extent(c0, c1, tile, halo, cols)
    read = 0
    written = 0
    work = 0.0
    pixels = (r1 - r0) * (c1 - c0)
    for group in groups:
        images = 2 * len(group.pair_dates) + len(group.predict_dates)
        read += extended * images * (4 * bands + 1)
        written += pixels * bands * 6 * len(group.predict_dates)
        work += float(pixels) * cost.per_pixel(len(group.pair_dates)) * len(group.predict_dates)
    return tiles * len(groups), read, written, work


def group_runs(groups: Sequence[PairGroup], max_groups: int) -> list[list[PairGroup]]:
    """Consecutive runs of at most ``max_groups`` pair groups (the date side of batches)."""
    return [list(groups[i : i + max_groups]) for i in range(0, len(groups), max_groups)]


def plan_batches(
    shape: tuple[int, int],
    groups: Sequence[PairGroup],
    *,
    bands: int,
    tile: int,
    cost: MethodCost,
    max_tasks_per_batch: int = 20_000,
) -> Plan:
    """Cut a fusion run into batches of at most ``max_tasks_per_batch`` tile tasks.

    Whole-image batches are preferred (fewest re-reads of the global statistics); when the image
    alone exceeds the bound, each batch takes one pair group and a block of tiles.

    Parameters
    ----------
    shape
        Fine grid rows and columns.
    groups
        Pair groups to compute (from :func:`stfcube.pipeline.ops.update.dates_to_fuse` or
        :func:`calendar_groups`).
    bands
        Bands per image.
    tile
        Tile edge in pixels (the fuse ``tile``).
    cost
        The method's halo and cost model (:func:`method_cost`).
    max_tasks_per_batch
        Bound on tile tasks per batch.

    Returns
    -------
    Plan
    """
    if not groups:
        raise ConfigError("nothing to plan: no prediction dates")
    rows, cols = shape
    n_tiles = (-(-rows // tile)) * (-(-cols // tile))
    groups_per_batch = max(1, min(len(groups), max_tasks_per_batch // n_tiles))
    blocks = spatial_blocks(shape, tile, max(1, max_tasks_per_batch // groups_per_batch))
    batches: list[Batch] = []
    for run in group_runs(groups, groups_per_batch):
        dates = tuple(sorted(day(d) for g in run for d in g.predict_dates))
        for region in blocks:
            tasks, read, written, work = batch_cost(
                shape, region, run, bands=bands, tile=tile, cost=cost
            )
            batches.append(
                Batch(
                    index=len(batches),
                    region=region,
                    dates=dates,
                    whole_image=region == (0, rows, 0, cols),
                    tasks=tasks,
                    bytes_read=read,
                    bytes_written=written,
                    work=work,
                )
            )
    n_dates = sum(len(g.predict_dates) for g in groups)
    pair_dates = {p for g in groups for p in g.pair_dates}
    statistics = len(pair_dates) * rows * cols * (4 * bands + 1)
    return Plan(
        shape,
        bands,
        tile,
        cost.halo,
        cost.unit,
        max_tasks_per_batch,
        len(groups),
        n_dates,
        tuple(batches),
        statistics,
        fused_objects(n_dates, shape, tile, bands, layers=cost.layers),
    )


def calendar_groups(
    calendar: CalendarSpec, pairs: str | int, max_pairs: int | None = 2
) -> list[PairGroup]:
    """Pair groups of a product that does not exist yet, from its acquisition calendar.

    Fine and coarse images are assumed on every ``fine_every_days``-th day (with a coarse image
    the same day, so each is a pair) and coarse images every ``coarse_every_days``; the
    prediction dates are the coarse dates without a fine image, grouped by the engine's own
    pair rule (:func:`stfcube.pipeline.engine.pairing.plan_groups`).
    """
    days = (calendar.end - calendar.start).days
    fine = {calendar.start + timedelta(d) for d in range(0, days + 1, calendar.fine_every_days)}
    coarse = {calendar.start + timedelta(d) for d in range(0, days + 1, calendar.coarse_every_days)}
    pair_dates = [np.datetime64(d, "D") for d in sorted(fine & coarse)]
    targets = [np.datetime64(d, "D") for d in sorted(coarse - fine)]
    if not targets:
        raise ConfigError("the calendar has no coarse date without a fine image to predict")
    groups, _ = plan_groups(targets, pair_dates, pairs, max_pairs)
    return groups


def plan_update(config: RegionConfig) -> tuple[UpdatePlan, Plan | None]:
    """The dates a region's fused store still needs, cut into batches (None: up to date).

    Reads the cube's metadata and its pair images' validity, not the pixels to fuse.
    """
    from stfcube.pipeline.engine.planning import open_cube_raw

    update = dates_to_fuse(
        config.cube,
        config.fused,
        method=config.method,
        pairs=config.pairs,
        params=config.params,
        min_pair_valid_fraction=config.min_pair_valid_fraction,
        pair_tolerance_days=config.pair_tolerance_days,
    )
    if not update.groups:
        return update, None
    sizes = open_cube_raw(config.cube).sizes
    plan = plan_batches(
        (sizes["y"], sizes["x"]),
        update.groups,
        bands=sizes["band"],
        tile=config.tile,
        cost=method_cost(config.method, config.params, sizes["band"]),
        max_tasks_per_batch=config.batching.max_tasks_per_batch,
    )
    return update, plan


def plan_region(config: RegionConfig) -> Plan:
    """Plan a region: from its ``grid`` and ``calendar`` when given, else from its cube.

    With ``grid`` and ``calendar`` (a product not built yet) nothing is read. Otherwise the
    batches cover the dates still to fuse (:func:`plan_update`).

    Raises
    ------
    ConfigError
        Only one of ``grid`` and ``calendar`` is given, or nothing is left to fuse.
    """
    from stfcube.pipeline.engine.methods.registry import get_method

    if config.grid is not None and config.calendar is not None:
        method = get_method(config.method)
        return plan_batches(
            (config.grid.height, config.grid.width),
            calendar_groups(
                config.calendar, config.pairs or method.default_pairs, method.max_pairs
            ),
            bands=config.grid.bands,
            tile=config.tile,
            cost=method_cost(config.method, config.params, config.grid.bands),
            max_tasks_per_batch=config.batching.max_tasks_per_batch,
        )
    if config.grid is not None or config.calendar is not None:
        raise ConfigError(f"region {config.name}: give both 'grid' and 'calendar', or neither")
    _, plan = plan_update(config)
    if plan is None:
        raise ConfigError(
            f"region {config.name}: {config.fused} is up to date with {config.cube}, nothing to "
            "fuse (scenes still only in the source are ingested by stfcube run)"
        )
    return plan


def format_bytes(n: float) -> str:
    """Human size with binary prefixes (``1.5 TiB``)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    power = min(int(math.log(n, 1024)) if n >= 1 else 0, len(units) - 1)
    return f"{int(n)} B" if power == 0 else f"{n / 1024**power:.1f} {units[power]}"


def describe_plan(plan: Plan, method: str, device: str, *, max_rows: int = 20) -> list[str]:
    """Text lines summarising a plan: totals, compute estimate, and the first batches."""
    rows, cols = plan.shape
    speed = THROUGHPUT.get((method, device))
    unit = "GPU-hours" if device == "gpu" else "core-hours"
    lines = [
        f"grid {rows} x {cols} px, {plan.bands} bands, tile {plan.tile}, halo {plan.halo} "
        f"(from {method})",
        f"{plan.n_dates} prediction dates in {plan.n_groups} pair groups",
        f"{len(plan.batches)} batches, {plan.tasks} tile tasks "
        f"(at most {max(b.tasks for b in plan.batches)} per batch, bound "
        f"{plan.max_tasks_per_batch})",
        f"read {format_bytes(plan.bytes_read)}, write {format_bytes(plan.bytes_written)} "
        "(uncompressed)",
        f"kernel work {plan.work:.3g} {plan.work_unit}",
        f"fused store: {plan.objects.total:,} objects ({plan.objects.data:,} data "
        f"{'shards' if fused_sharded(plan.shape, plan.tile) else 'chunks'}, "
        f"{plan.objects.markers:,} tile_done chunks, {plan.objects.metadata} metadata)",
    ]
    if speed is not None:
        lines.append(
            f"estimate {plan.hours(method, device):,.0f} {unit} at "
            f"{speed.work_per_second:.3g} {plan.work_unit}/s per {speed.unit}"
        )
        lines.append(f"  (throughput: {speed.source})")
    reference = THROUGHPUT.get(("starfm-usda-c", "cpu"))
    if method == "starfm" and device == "cpu" and reference is not None:
        lines.append(
            f"for comparison, the USDA C program: "
            f"{plan.hours('starfm-usda-c', 'cpu'):,.0f} core-hours "
            f"at {reference.work_per_second:.3g}/s per core"
        )
    lines.append("batch  rows            cols            dates  first..last             tasks")
    for batch in plan.batches[:max_rows]:
        r0, r1, c0, c1 = batch.region
        lines.append(
            f"{batch.index:5d}  {r0:>6}:{r1:<7} {c0:>6}:{c1:<7} {len(batch.dates):5d}  "
            f"{batch.dates[0]}..{batch.dates[-1]}  {batch.tasks:6d}"
        )
    if len(plan.batches) > max_rows:
        lines.append(f"... {len(plan.batches) - max_rows} more batches (use --json for all)")
    return lines
