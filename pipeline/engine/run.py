"""The tiled, distributed, resumable fusion engine behind ``stfcube fuse``.

A run goes in four steps:

1. **Plan** (:func:`plan_fusion`): choose the prediction dates, the usable pairs (fine and coarse
   on one date, fine valid enough), and group the dates that share pairs.
2. **Global statistics**: each group's whole-image statistics (STARFM: the slice thresholds),
   lazy dask reductions computed once, before any tile runs.
3. **Tiles**: one task per (group, tile) reads the tile plus the method's halo straight from the
   cube's Zarr arrays (pixels outside the image are invalid), runs the method's kernel and writes
   the tile's region of the output store. Memory is bounded by the tile size.
4. **Completion markers**: after a tile's data are written, its cells of ``tile_done(time,
   tile_y, tile_x)`` are set. A rerun skips the tiles already marked, so a run killed at any point
   finishes only what is missing and yields the same bytes as an uninterrupted run; a tile
   without its marker is never taken as done.

The output store is created from a metadata-only template in a temporary sibling directory and
renamed into place, so a half-created store never appears. Its ``fingerprint`` attribute holds
the method, its parameters and the tiling; a rerun with other values is refused unless
``overwrite=True``. New prediction dates are appended to an existing store (the incremental
update path), and a date whose pairs changed is recomputed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
import zarr

import pipeline
from pipeline.engine.chunk_cache import read_halo_block, release_run
from pipeline.engine.cluster import ClusterSpec, dask_client
from pipeline.engine.methods.base import FusionMethod, TileInputs, get_method
from pipeline.engine.pairing import PairGroup, parse_rule, plan_groups
from pipeline.errors import ConfigError, OutputError
from pipeline.geometry.tiling import Tile, tile_counts, tile_grid
from pipeline.store.cube import open_store, validate_cube, write_grid

FUSED_SCHEMA = "fused/1"


@dataclass(frozen=True)
class FusionPlan:
    """What a fuse run will compute (no pixels read yet, except the pairs' valid fractions)."""

    method: str
    params: Any
    groups: tuple[PairGroup, ...]
    pair_valid_fraction: Mapping[np.datetime64, float]
    skipped_pairs: tuple[np.datetime64, ...]
    halo: int

    @property
    def dates(self) -> tuple[np.datetime64, ...]:
        """Every prediction date, sorted."""
        return tuple(sorted(d for g in self.groups for d in g.predict_dates))


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

    def summary(self) -> str:
        """One-paragraph human summary."""
        return (
            f"{self.method}: {len(self.dates)} dates in {len(self.groups)} pair groups -> "
            f"{self.out_path}; tiles computed {self.tiles_computed}, already done "
            f"{self.tiles_skipped} of {self.tiles_total}; {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class TileTask:
    """Everything one tile task needs: picklable, small, no arrays but the statistics."""

    cube_path: str
    out_path: str
    method: str
    params: Any
    statistics: Mapping[str, np.ndarray]
    pair_index: tuple[int, ...]
    predict_index: tuple[int, ...]
    out_index: tuple[int, ...]
    tile: Tile
    halo: int
    image_shape: tuple[int, int]
    device: str
    kernel_threads: int
    run: str


# --------------------------------------------------------------------------------------------
# Opening and planning


#: Edge (pixels) of the dask blocks of whole-image reductions (pair valid shares, statistics).
REDUCTION_BLOCK = 1024


def open_cube_raw(cube_path: str | Path, *, spatial_block: int | None = None) -> xr.Dataset:
    """Open and validate a cube lazily in its stored time order (tasks address stored indices).

    ``spatial_block``: see :func:`pipeline.store.cube.open_store` (for whole-image reductions).
    """
    cube = open_store(cube_path, spatial_block=spatial_block)
    validate_cube(cube, cube_path)
    return cube


def _as_dates(
    values: Iterable[Any], cube_times: np.ndarray, cube_path: Path
) -> list[np.datetime64]:
    """Match user dates (text or datetime) to the cube's time values by calendar day."""
    by_day = {np.datetime64(t, "D"): t for t in cube_times}
    dates = []
    for value in values:
        try:
            day = np.datetime64(str(value)[:10] if isinstance(value, str) else value, "D")
        except ValueError as exc:
            raise ConfigError(f"cannot read {value!r} as a date (use YYYY-MM-DD)") from exc
        if day not in by_day:
            first, last = np.datetime64(cube_times.min(), "D"), np.datetime64(cube_times.max(), "D")
            raise ConfigError(
                f"date {day} is not in the cube {cube_path} (it holds {len(cube_times)} dates "
                f"from {first} to {last})"
            )
        dates.append(by_day[day])
    return dates


def plan_fusion(
    cube: xr.Dataset,
    cube_path: Path,
    *,
    method: FusionMethod,
    params: Any,
    dates: Sequence[Any] | str | None,
    pairs: str | int,
    min_pair_valid_fraction: float,
) -> FusionPlan:
    """Choose prediction dates and pairs, and group the dates by their pairs.

    Parameters
    ----------
    dates
        ``None``: every coarse date without a usable pair on that day (the gaps to fill);
        ``"all"``: every coarse date; or explicit dates (each must have a coarse image).
    pairs
        Pair rule, see :mod:`pipeline.engine.pairing`.
    min_pair_valid_fraction
        A fine image whose valid share of pixels is below this is not used as a pair.
    """
    times = cube["time"].values
    coarse_obs = np.asarray(cube["coarse_observed"].values, dtype=bool)
    fine_obs = np.asarray(cube["fine_observed"].values, dtype=bool)
    candidates = np.flatnonzero(fine_obs & coarse_obs)
    if "fine_valid_fraction" in cube.variables:  # recorded at ingest
        fractions = np.asarray(cube["fine_valid_fraction"].values, dtype=float)[candidates]
    elif len(candidates):  # a cube written before fractions were recorded
        fractions = dask.compute(*[cube["fine_valid"][i].mean() for i in candidates])
    else:
        fractions = []
    valid_fraction = {times[i]: float(f) for i, f in zip(candidates, fractions, strict=True)}
    usable = {t for t, f in valid_fraction.items() if f >= min_pair_valid_fraction}
    skipped = tuple(sorted(t for t, f in valid_fraction.items() if f < min_pair_valid_fraction))

    if dates is None:
        targets = [t for t, obs in zip(times, coarse_obs, strict=True) if obs and t not in usable]
    elif isinstance(dates, str) and dates == "all":
        targets = [t for t, obs in zip(times, coarse_obs, strict=True) if obs]
    else:
        targets = _as_dates([dates] if isinstance(dates, str) else dates, times, cube_path)
        has_coarse = dict(zip(times, coarse_obs, strict=True))
        for target in targets:
            if not has_coarse[target]:
                raise ConfigError(
                    f"date {np.datetime64(target, 'D')} has no coarse image in {cube_path}"
                )
    if not targets:
        raise ConfigError(f"no prediction date: every coarse date of {cube_path} has a fine image")
    groups = plan_groups(
        sorted(set(targets)), usable, parse_rule(pairs), method.max_pairs, method.min_pairs
    )
    return FusionPlan(
        method=method.name,
        params=params,
        groups=tuple(groups),
        pair_valid_fraction=valid_fraction,
        skipped_pairs=skipped,
        halo=method.halo(params),
    )


# --------------------------------------------------------------------------------------------
# Output store


def _fingerprint(
    method: FusionMethod,
    params: Any,
    tile: int,
    pairs: str | int,
    min_pair_valid_fraction: float,
    cube_path: Path,
) -> dict[str, Any]:
    return {
        "method": method.name,
        "parameters": method.describe_params(params),
        "tile": tile,
        "pairs": str(pairs),
        "min_pair_valid_fraction": min_pair_valid_fraction,
        "source_cube": str(cube_path.resolve()),
    }


def _template(cube: xr.Dataset, dates: Sequence[np.datetime64], tile: int) -> xr.Dataset:
    """Metadata-only (dask) dataset of the output for ``dates``."""
    n_t, n_b = len(dates), cube.sizes["band"]
    n_y, n_x = cube.sizes["y"], cube.sizes["x"]
    n_ty, n_tx = tile_counts((n_y, n_x), tile)
    chunks = (1, 1, min(tile, n_y), min(tile, n_x))
    coords: dict[str, Any] = {
        "time": np.asarray(dates, dtype="datetime64[ns]"),
        "band": cube["band"].values.astype(object),
        "y": cube["y"],
        "x": cube["x"],
    }
    fused = xr.DataArray(
        da.full((n_t, n_b, n_y, n_x), np.nan, dtype=np.float32, chunks=chunks),
        dims=("time", "band", "y", "x"),
        attrs={"long_name": "fused fine-resolution prediction", **_unit_attrs(cube)},
    )
    quality = xr.DataArray(
        da.zeros((n_t, n_b, n_y, n_x), dtype=np.uint16, chunks=chunks),
        dims=("time", "band", "y", "x"),
        attrs={"long_name": "valid candidates used per pixel (0 = no prediction)"},
    )
    done = xr.DataArray(
        da.zeros((n_t, n_ty, n_tx), dtype=np.uint8, chunks=(1, 1, 1)),
        dims=("time", "tile_y", "tile_x"),
        attrs={"long_name": "1 where the tile's prediction for the date is completely written"},
    )
    out = xr.Dataset({"fused": fused, "quality": quality, "tile_done": done}, coords=coords)
    return write_grid(out, cube.rio.crs, cube.rio.transform(recalc=False))


def _unit_attrs(cube: xr.Dataset) -> dict[str, Any]:
    return {k: v for k, v in cube["fine"].attrs.items() if k in {"units", "source_scale"}}


def _time_encoding() -> dict[str, dict[str, Any]]:
    return {"time": {"units": "seconds since 1970-01-01 00:00:00", "dtype": "int64"}}


def _data_encoding() -> dict[str, dict[str, Any]]:
    return {
        "fused": {"fill_value": np.nan},
        "quality": {"fill_value": 0},
        "tile_done": {"fill_value": 0},
    }


def input_revisions(cube: xr.Dataset, groups: Iterable[PairGroup]) -> dict[str, list[int]]:
    """Per prediction day (``YYYY-MM-DD``): the revision stamps of the images it reads.

    The fine and coarse stamps of each pair date in order, then the day's coarse stamp; 0 where
    the cube has no stamps (see :mod:`pipeline.store.cube`). A prediction is out of date when these
    differ from the ones recorded when it was computed.

    Parameters
    ----------
    cube
        The cube (as stored).
    groups
        The pair groups of the plan.

    Returns
    -------
    dict
        ``YYYY-MM-DD`` -> stamps, for every prediction date of ``groups``.
    """

    def stamps(name: str) -> dict[np.datetime64, int]:
        if name not in cube.variables:
            return {}
        return dict(zip(cube["time"].values, np.asarray(cube[name].values).tolist(), strict=True))

    fine, coarse = stamps("fine_revision"), stamps("coarse_revision")
    return {
        _day(d): [v for p in g.pair_dates for v in (fine.get(p, 0), coarse.get(p, 0))]
        + [coarse.get(d, 0)]
        for g in groups
        for d in g.predict_dates
    }


def prepare_output(
    out_path: Path,
    cube: xr.Dataset,
    plan: FusionPlan,
    fingerprint: Mapping[str, Any],
    *,
    tile: int,
    overwrite: bool,
) -> dict[np.datetime64, int]:
    """Create or extend the output store; return each prediction date's time index in it.

    Dates already in the store keep their index; new dates are appended. A date whose pairs
    changed, or one of whose input images was rewritten since (:func:`input_revisions`), has its
    completion markers cleared so that its tiles are recomputed.
    """
    pairs_used = {
        str(np.datetime64(d, "D")): [str(np.datetime64(p, "D")) for p in g.pair_dates]
        for g in plan.groups
        for d in g.predict_dates
    }
    if out_path.exists() and not out_path.is_dir():
        raise OutputError(f"{out_path}: the output path is a file, not a Zarr store directory")
    if out_path.exists() and overwrite:
        shutil.rmtree(out_path)
    if not out_path.exists():
        _create_store(out_path, cube, plan, fingerprint, pairs_used, tile)
    group = zarr.open_group(str(out_path), mode="r+")
    attrs = group.attrs.asdict()
    if attrs.get("stfcube_schema") != FUSED_SCHEMA:
        raise OutputError(f"{out_path}: exists and is not a stfcube fused store; use another path")
    if json.loads(attrs.get("fingerprint", "{}")) != dict(fingerprint):
        raise OutputError(
            f"{out_path}: exists with other parameters ({attrs.get('fingerprint')}); "
            "pass --overwrite to replace it or choose another output path"
        )
    stored = xr.open_zarr(out_path, consolidated=False)["time"].values
    new_dates = [d for d in plan.dates if d not in set(stored)]
    if new_dates:
        _template(cube, new_dates, tile).to_zarr(
            out_path, mode="a", append_dim="time", compute=False, consolidated=False
        )
        stored = np.concatenate([stored, np.asarray(new_dates, dtype=stored.dtype)])
    index = {t: i for i, t in enumerate(stored)}
    previous = json.loads(attrs.get("pairs_used", "{}"))
    revisions = input_revisions(cube, plan.groups)
    previous_revisions = json.loads(attrs.get("input_revisions", "{}"))
    done = group["tile_done"]
    for day, used in pairs_used.items():
        pairs_changed = day in previous and previous[day] != used
        inputs_rewritten = day in previous_revisions and previous_revisions[day] != revisions[day]
        if pairs_changed or inputs_rewritten:
            done[index[np.datetime64(day, "ns")]] = 0
    group.attrs.update(
        {
            "pairs_used": json.dumps({**previous, **pairs_used}, sort_keys=True),
            "input_revisions": json.dumps({**previous_revisions, **revisions}, sort_keys=True),
            "complete": False,
        }
    )
    return {d: index[d] for d in plan.dates}


def _create_store(
    out_path: Path,
    cube: xr.Dataset,
    plan: FusionPlan,
    fingerprint: Mapping[str, Any],
    pairs_used: Mapping[str, Any],
    tile: int,
) -> None:
    """Write the metadata-only store in a temporary sibling and rename it into place."""
    if not out_path.parent.is_dir():
        raise OutputError(f"{out_path}: its parent directory does not exist")
    template = _template(cube, plan.dates, tile)
    template.attrs = {
        "stfcube_schema": FUSED_SCHEMA,
        "method": plan.method,
        "parameters": json.dumps(fingerprint["parameters"], sort_keys=True),
        "fingerprint": json.dumps(dict(fingerprint), sort_keys=True),
        "pairs_used": json.dumps(dict(pairs_used), sort_keys=True),
        "stfcube_version": pipeline.__version__,
        "source_cube": fingerprint["source_cube"],
        "halo": plan.halo,
        "complete": False,
    }
    for key in ("fine_sensor", "coarse_sensor"):
        if key in cube.attrs:
            template.attrs[key] = cube.attrs[key]
    staging = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex[:8]}.tmp")
    encoding = {**_time_encoding(), **_data_encoding()}
    template.to_zarr(staging, mode="w", compute=False, consolidated=False, encoding=encoding)
    staging.rename(out_path)


# --------------------------------------------------------------------------------------------
# Tile tasks


def run_tile(task: TileTask) -> str:
    """Compute and write one (pair group, tile): the unit of work of the engine.

    Returns the tile's key. The tile's completion markers are set only after all its data
    are written.
    """
    import numba

    numba.set_num_threads(min(task.kernel_threads, numba.config.NUMBA_NUM_THREADS))

    def read(name: str, time_indices: tuple[int, ...], fill: float | bool) -> np.ndarray:
        return read_halo_block(
            task.run,
            task.cube_path,
            name,
            time_indices,
            task.tile,
            task.halo,
            task.image_shape,
            fill,
        )

    inputs = {
        "fine": read("fine", task.pair_index, np.nan),
        "fine_valid": read("fine_valid", task.pair_index, False),
        "coarse": read("coarse", task.pair_index, np.nan),
        "coarse_valid": read("coarse_valid", task.pair_index, False),
        "coarse_pred": read("coarse", task.predict_index, np.nan),
        "coarse_pred_valid": read("coarse_valid", task.predict_index, False),
    }
    if task.device == "gpu":
        import cupy

        inputs = {k: cupy.asarray(v) for k, v in inputs.items()}
    method = get_method(task.method)
    result = method.fuse_tile(TileInputs(**inputs, halo=task.halo), task.statistics, task.params)
    prediction, quality = result.prediction, result.quality
    if task.device == "gpu":
        prediction, quality = prediction.get(), quality.get()
    out = zarr.open_group(task.out_path, mode="r+")
    t = task.tile
    for k, ti in enumerate(task.out_index):
        out["fused"][ti, :, t.row0 : t.row1, t.col0 : t.col1] = prediction[k]
        out["quality"][ti, :, t.row0 : t.row1, t.col0 : t.col1] = quality[k]
    for ti in task.out_index:
        out["tile_done"][ti, t.ty, t.tx] = 1
    return t.key


def _pending_tasks(out_path: Path, tasks: list[TileTask]) -> list[TileTask]:
    """The tasks whose tiles are not yet marked done for every date of their group."""
    done = zarr.open_group(str(out_path), mode="r")["tile_done"][...]
    return [t for t in tasks if not all(done[i, t.tile.ty, t.tile.tx] for i in t.out_index)]


#: Tile columns of a strip: inside a band, tiles run strip by strip, row-major in each strip.
STRIP_TILES = 8


def spatial_shares(tasks: Sequence[TileTask], parts: int) -> list[list[TileTask]]:
    """Split tile tasks into ``parts`` bands of consecutive tile rows, in an order that reuses
    decoded chunks.

    A tile plus halo shares chunks with its eight neighbours. A worker that runs one band finds
    most of them already decoded in its process's cache (:mod:`pipeline.engine.chunk_cache`), where
    round-robin placement would hand neighbouring tiles to different processes. Inside a band,
    tiles run in strips of :data:`STRIP_TILES` columns, row-major in each strip: the row above
    is then still cached, as the cache holds a strip's row of chunks, not a continent's. Bands
    get equal task counts (±1).

    Parameters
    ----------
    tasks
        The tile tasks of a batch, in any order.
    parts
        Number of bands (the workers).

    Returns
    -------
    list of list of TileTask
        At most ``parts`` non-empty bands; together they hold every task once.
    """
    ordered = sorted(tasks, key=lambda t: (t.tile.ty, t.tile.tx, t.out_index))
    size, extra = divmod(len(ordered), max(1, parts))
    shares, start = [], 0
    for part in range(max(1, parts)):
        stop = start + size + (part < extra)
        shares.append(ordered[start:stop])
        start = stop
    return [sorted(share, key=_strip_order) for share in shares if share]


def _strip_order(task: TileTask) -> tuple:
    tile = task.tile
    return (tile.tx // STRIP_TILES, tile.ty, tile.tx, task.out_index)


def _run_tasks(
    tasks: list[TileTask], client: Any, workers: int, on_done: Callable[[str], None]
) -> None:
    """Run tile tasks on a distributed client, or on a local thread pool when ``client`` is None.

    On a client, each worker is given a band of tiles (:func:`spatial_shares`) as a loose
    restriction: it prefers them, and idle or new workers still steal, so balance is kept.
    """
    addresses = sorted(client.nthreads()) if client is not None else []
    shares = spatial_shares(tasks, max(1, len(addresses)))
    if client is not None:
        from distributed import as_completed as dask_as_completed

        futures = []
        if len(addresses) > 1:
            for address, share in zip(addresses, shares, strict=False):
                futures += client.map(
                    run_tile, share, pure=False, workers=[address], allow_other_workers=True
                )
        else:
            futures = client.map(run_tile, [t for share in shares for t in share], pure=False)
        for future in dask_as_completed(futures):
            on_done(future.result())
        return
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        ordered = [t for share in shares for t in share]
        for future in as_completed([pool.submit(run_tile, t) for t in ordered]):
            on_done(future.result())


# --------------------------------------------------------------------------------------------
# Public entry point


@dataclass(frozen=True)
class FusionSetup:
    """A prepared run: plan, whole-image statistics and output store, ready for tile batches.

    Small and picklable, so a flow prepares once and hands it to every batch
    (:func:`run_fusion` with a ``region`` and a run of ``dates``): the whole-image statistics
    are then computed once per run, not once per batch. ``run`` is the run's token: the
    tile tasks' cache of decoded cube chunks (:mod:`pipeline.engine.chunk_cache`) is keyed by it.
    """

    cube_path: Path
    out_path: Path
    method: str
    params: Any
    plan: FusionPlan
    statistics: tuple[Mapping[str, np.ndarray], ...]
    cube_index: Mapping[np.datetime64, int]
    out_index: Mapping[np.datetime64, int]
    image_shape: tuple[int, int]
    tile: int
    device: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


def prepare_fusion(
    cube_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "starfm",
    dates: Sequence[Any] | str | None = None,
    pairs: str | int = "nearest",
    tile: int = 512,
    params: Mapping[str, Any] | None = None,
    min_pair_valid_fraction: float = 0.5,
    overwrite: bool = False,
    device: str = "cpu",
    client: Any = None,
) -> FusionSetup:
    """Plan a run, compute every pair group's global statistics and create/extend the output.

    Parameters are those of :func:`fuse`; ``client`` (optional) computes the statistics.
    """
    cube_path, out_path = Path(cube_path), Path(out_path)
    if device not in {"cpu", "gpu"}:
        raise ConfigError(f"unknown device {device!r}; use cpu or gpu")
    fusion_method = get_method(method)
    method_params = fusion_method.make_params(params)
    cube = open_cube_raw(cube_path, spatial_block=REDUCTION_BLOCK)
    plan = plan_fusion(
        cube,
        cube_path,
        method=fusion_method,
        params=method_params,
        dates=dates,
        pairs=pairs,
        min_pair_valid_fraction=min_pair_valid_fraction,
    )
    fingerprint = _fingerprint(
        fusion_method, method_params, tile, pairs, min_pair_valid_fraction, cube_path
    )
    tile_grid((cube.sizes["y"], cube.sizes["x"]), tile)  # validates the tile size
    out_index = prepare_output(out_path, cube, plan, fingerprint, tile=tile, overwrite=overwrite)
    cube_index = {t: i for i, t in enumerate(cube["time"].values)}
    statistics = _global_statistics(fusion_method, cube, cube_index, plan, method_params, client)
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
    )


def _day(value: np.datetime64) -> str:
    return str(np.datetime64(value, "D"))


def _batch_groups(setup: FusionSetup, dates: Sequence[Any] | None) -> list[tuple[int, PairGroup]]:
    """The plan's groups (with their index) restricted to ``dates`` (all when ``None``)."""
    if dates is None:
        return list(enumerate(setup.plan.groups))
    wanted = {str(d)[:10] for d in dates}
    unknown = wanted - {_day(d) for d in setup.plan.dates}
    if unknown:
        raise ConfigError(f"dates {', '.join(sorted(unknown))} are not in the prepared run")
    batch = []
    for index, group in enumerate(setup.plan.groups):
        chosen = tuple(d for d in group.predict_dates if _day(d) in wanted)
        if chosen:
            batch.append((index, PairGroup(group.pair_dates, chosen)))
    return batch


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
    tiles = tile_grid(setup.image_shape, setup.tile, region)
    workers, kernel_threads = _parallelism(client, local_threads)
    tasks = [
        TileTask(
            cube_path=str(setup.cube_path),
            out_path=str(setup.out_path),
            method=setup.method,
            params=setup.params,
            statistics=setup.statistics[index],
            pair_index=tuple(setup.cube_index[d] for d in group.pair_dates),
            predict_index=tuple(setup.cube_index[d] for d in group.predict_dates),
            out_index=tuple(setup.out_index[d] for d in group.predict_dates),
            tile=t,
            halo=setup.plan.halo,
            image_shape=setup.image_shape,
            device=setup.device,
            kernel_threads=kernel_threads,
            run=setup.run,
        )
        for index, group in groups
        for t in tiles
    ]
    pending = _pending_tasks(setup.out_path, tasks)
    finished = 0

    def on_done(_key: str) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, len(pending))

    try:
        _run_tasks(pending, client, workers, on_done)
    finally:
        release_run(setup.run)  # this process: local pool, thread workers
    if client is not None:  # worker processes; a worker that is gone took its cache with it
        client.run(release_run, setup.run, on_error="ignore")
    if region is None and dates is None:
        zarr.open_group(str(setup.out_path), mode="r+").attrs["complete"] = True
    by_index = {i: t for t, i in setup.cube_index.items()}
    computed = sorted({by_index[i] for t in pending for i in t.predict_index})
    return FuseReport(
        out_path=setup.out_path,
        method=setup.method,
        dates=sorted(_day(d) for _, g in groups for d in g.predict_dates),
        dates_computed=[_day(d) for d in computed],
        tiles_total=len(tasks),
        tiles_computed=len(pending),
        tiles_skipped=len(tasks) - len(pending),
        groups=[
            {"pairs": [_day(p) for p in g.pair_dates], "dates": [_day(d) for d in g.predict_dates]}
            for _, g in groups
        ],
        seconds=time.perf_counter() - started,
        skipped_pairs=[_day(d) for d in setup.plan.skipped_pairs],
    )


def fuse(
    cube_path: str | Path,
    out_path: str | Path,
    *,
    method: str = "starfm",
    dates: Sequence[Any] | str | None = None,
    pairs: str | int = "nearest",
    tile: int = 512,
    params: Mapping[str, Any] | None = None,
    min_pair_valid_fraction: float = 0.5,
    region: tuple[int, int, int, int] | None = None,
    client: Any = None,
    cluster: ClusterSpec | None = None,
    local_threads: int | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> FuseReport:
    """Fuse a cube into a fine-resolution time series, tile by tile, resumably.

    :func:`prepare_fusion`, then :func:`run_fusion` on the cluster.

    Parameters
    ----------
    cube_path
        The input cube (``stfcube ingest``).
    out_path
        The output Zarr store (created, extended with new dates, or resumed).
    method
        Fusion method name (``"starfm"``).
    dates
        ``None``: coarse dates without a usable fine image; ``"all"``: every coarse date; or a
        list of dates (``"YYYY-MM-DD"``).
    pairs
        Pair rule: ``"nearest"``, ``"before"``, ``"after"`` or a number of nearest pairs.
    tile
        Tile edge in fine pixels (also the output chunk size).
    params
        Method parameters overriding its defaults (e.g. ``{"max_search_distance": 750}``).
    min_pair_valid_fraction
        Fine images with a smaller share of valid pixels are not used as pairs.
    region
        ``(row0, row1, col0, col1)`` limiting the run to a block of tiles.
    client
        A ``distributed.Client`` to run on. Without one, ``cluster`` (a :class:`ClusterSpec`)
        says which cluster to start or connect to; without both, tiles run on a local thread
        pool of ``local_threads`` threads (default: the machine's cores).
    overwrite
        Replace an existing output written with other parameters.
    device
        ``"cpu"`` or ``"gpu"`` (CuPy arrays on the workers).
    progress
        Called as ``progress(done, total)`` after each tile.

    Returns
    -------
    FuseReport
    """
    started = time.perf_counter()
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
        overwrite=overwrite,
        device=device,
        client=client,
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


def _global_statistics(
    method: FusionMethod,
    cube: xr.Dataset,
    cube_index: Mapping[np.datetime64, int],
    plan: FusionPlan,
    params: Any,
    client: Any,
) -> list[dict[str, np.ndarray]]:
    """Every group's whole-image statistics, computed together in one dask pass."""
    lazy = []
    for group in plan.groups:
        index = [cube_index[d] for d in group.pair_dates]
        lazy.append(
            method.global_statistics(
                cube["fine"].data[index], cube["fine_valid"].data[index], params
            )
        )
    return list(dask.compute(*lazy, scheduler=client.get if client is not None else "threads"))
