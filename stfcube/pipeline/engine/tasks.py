"""Tile tasks: the unit of work of the engine, and how they are ordered and scheduled.

A :class:`TileTask` is small and picklable (no arrays but the group's global statistics). Its
:func:`run_tile` reads exactly what the method's
:class:`~stfcube.pipeline.engine.methods.base.InputSpec`
lists (fine-grid arrays halo-extended, native coarse blocks, static layers) straight from the
cube through the per-process chunk cache, runs the method with its per-process state, writes the
tile's region of every output layer, and only then sets the tile's completion markers.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from stfcube.pipeline.engine.chunk_cache import CHUNKS, read_halo_block
from stfcube.pipeline.engine.methods.base import InputSpec, TileInputs
from stfcube.pipeline.engine.methods.registry import get_method, method_state
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.geometry.tiling import Tile, clip_window, pad_spatial
from stfcube.pipeline.store.chunks import array_in
from stfcube.pipeline.store.fused import write_tile
from stfcube.pipeline.store.metadata import open_group


@dataclass(frozen=True)
class NativeGrid:
    """The cube's native coarse grid relative to its fine grid.

    ``row0``/``col0``: fine-pixel position of the native grid's top-left corner (integers: the
    grids are nested); ``ratio``: fine pixels per coarse pixel; ``shape``: native pixels.
    """

    ratio: int
    row0: int
    col0: int
    shape: tuple[int, int]


def native_grid(cube: xr.Dataset) -> NativeGrid | None:
    """The native coarse grid of a cube, or ``None`` when it has none."""
    if "coarse_native" not in cube:
        return None
    fine_x, fine_y = cube["x"].values, cube["y"].values
    coarse_x, coarse_y = cube["x_coarse"].values, cube["y_coarse"].values
    res_x, res_y = fine_x[1] - fine_x[0], fine_y[1] - fine_y[0]
    ratio = int(cube.attrs.get("coarse_ratio") or round((coarse_x[1] - coarse_x[0]) / res_x))
    # pixel-edge positions of both grids, in fine pixels
    col0 = (coarse_x[0] - ratio * res_x / 2 - (fine_x[0] - res_x / 2)) / res_x
    row0 = (coarse_y[0] - ratio * res_y / 2 - (fine_y[0] - res_y / 2)) / res_y
    return NativeGrid(ratio, round(row0), round(col0), (len(coarse_y), len(coarse_x)))


@dataclass(frozen=True)
class TileTask:
    """Everything one tile task needs: picklable, small, no arrays but the statistics."""

    cube_path: str
    out_path: str
    method: str
    params: Any
    statistics: Mapping[str, np.ndarray]
    pair_index: tuple[int, ...]
    pair_coarse_index: tuple[int, ...]
    predict_index: tuple[int, ...]
    out_index: tuple[int, ...]
    pair_dates: tuple[np.datetime64, ...]
    predict_dates: tuple[np.datetime64, ...]
    bands: tuple[str, ...]
    tile: Tile
    halo: int
    spec: InputSpec
    native: NativeGrid | None
    layers: tuple[str, ...]
    image_shape: tuple[int, int]
    device: str
    kernel_threads: int
    run: str


def _read_native(task: TileTask, name: str, index: Sequence[int], fill: float | bool) -> Any:
    """A native-grid block covering the halo-extended tile plus the method's coarse halo."""
    grid = task.native
    assert grid is not None  # planning refuses native inputs without a native grid
    window = _native_window(task)
    rows, cols, pad = clip_window(window, grid.shape)
    array = CHUNKS.array(task.run, task.cube_path, name)
    if rows.stop > rows.start and cols.stop > cols.start:
        block = CHUNKS.window(task.run, array, list(index), rows, cols)
    else:
        block = np.empty((len(index), *array.shape[1:-2], 0, 0), dtype=array.dtype)
        pad = ((window[1] - window[0], 0), (window[3] - window[2], 0))
    return pad_spatial(block, pad, fill)


def _native_window(task: TileTask) -> tuple[int, int, int, int]:
    """``(row0, row1, col0, col1)`` on the native grid of the task's block."""
    grid, t, h, extra = task.native, task.tile, task.halo, task.spec.native_halo
    assert grid is not None
    r0 = (t.row0 - h - grid.row0) // grid.ratio - extra
    r1 = -(-(t.row1 + h - grid.row0) // grid.ratio) + extra
    c0 = (t.col0 - h - grid.col0) // grid.ratio - extra
    c1 = -(-(t.col1 + h - grid.col0) // grid.ratio) + extra
    return r0, r1, c0, c1


def _read_static(task: TileTask, name: str) -> np.ndarray:
    """A time-less ``([band,] y, x)`` layer of the halo-extended tile (outside: NaN or 0)."""
    array = zarr.open_array(str(Path(task.cube_path) / name), mode="r")
    t, h = task.tile, task.halo
    rows, cols, pad = clip_window(
        (t.row0 - h, t.row1 + h, t.col0 - h, t.col1 + h), task.image_shape
    )
    block = np.asarray(array[..., rows, cols])
    fill = np.nan if np.issubdtype(block.dtype, np.floating) else 0
    return pad_spatial(block, pad, fill)


def tile_inputs(task: TileTask) -> TileInputs:
    """Read the arrays of one halo-extended tile that the method's input spec lists."""

    def read(name: str, index: tuple[int, ...], fill: float | bool) -> np.ndarray:
        return read_halo_block(
            task.run, task.cube_path, name, index, task.tile, task.halo, task.image_shape, fill
        )

    wanted = task.spec.fine_grid
    arrays: dict[str, Any] = {}
    for key, name, index in (
        ("fine", "fine", task.pair_index),
        ("coarse", "coarse", task.pair_coarse_index),
        ("coarse_pred", "coarse", task.predict_index),
    ):
        arrays[key] = read(name, index, np.nan) if key in wanted else None
        arrays[f"{key}_valid"] = read(f"{name}_valid", index, False) if key in wanted else None
    native: dict[str, Any] = {}
    for key, index in (("coarse", task.pair_coarse_index), ("coarse_pred", task.predict_index)):
        if key in task.spec.native:
            native[key] = _read_native(task, "coarse_native", index, np.nan)
            native[f"{key}_valid"] = _read_native(task, "coarse_native_valid", index, False)
    offset, inside = (0, 0), None
    if task.native is not None:
        r0, r1, c0, c1 = _native_window(task)
        rows, cols = task.native.shape
        inside = (max(0, -r0), min(r1, rows) - r0, max(0, -c0), min(c1, cols) - c0)
        offset = (
            task.native.row0 + r0 * task.native.ratio - (task.tile.row0 - task.halo),
            task.native.col0 + c0 * task.native.ratio - (task.tile.col0 - task.halo),
        )
    return TileInputs(
        **arrays,
        halo=task.halo,
        tile=task.tile,
        pair_dates=task.pair_dates,
        predict_dates=task.predict_dates,
        bands=task.bands,
        native=native,
        native_offset=offset,
        ratio=task.native.ratio if task.native is not None else None,
        static={name: _read_static(task, name) for name in task.spec.static},
        image_shape=task.image_shape,
        native_inside=inside,
    )


def limit_kernel_threads(threads: int) -> None:
    """Give this task's kernel ``threads`` threads: numba's, and torch's when a method loaded it.

    The engine runs several tile tasks side by side; each kernel's own thread pool is sized so
    that tasks x kernel threads fill the cores without oversubscribing them.
    """
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def run_tile(task: TileTask) -> str:
    """Compute and write one (pair group, tile): the unit of work of the engine.

    Returns the tile's key. The tile's completion markers are set only after all its data
    are written.
    """
    method = get_method(task.method)
    state = method_state(task.method, task.params, task.device)
    limit_kernel_threads(task.kernel_threads)
    inputs = method.to_device(tile_inputs(task), task.device)
    result = method.to_host(method.fuse_tile(inputs, task.statistics, task.params, state))
    missing = set(task.layers) - set(result.layers)
    if missing:
        raise ConfigError(f"{task.method} returned no layer(s) {sorted(missing)} it declared")
    t = task.tile
    values = {"fused": result.prediction}
    values.update((name, v) for name, v in result.layers.items() if name in task.layers)
    write_tile(task.out_path, t, task.out_index, values)
    return t.key


def pending_tasks(out_path: Path, tasks: list[TileTask]) -> list[TileTask]:
    """The tasks whose tiles are not yet marked done for every date of their group."""
    done = np.asarray(array_in(open_group(out_path), "tile_done")[...])
    return [t for t in tasks if not all(done[i, t.tile.ty, t.tile.tx] for i in t.out_index)]


#: Tile columns of a strip: inside a band, tiles run strip by strip, row-major in each strip.
STRIP_TILES = 8


def spatial_shares(tasks: Sequence[TileTask], parts: int) -> list[list[TileTask]]:
    """Split tile tasks into ``parts`` bands of consecutive tile rows, in an order that reuses
    decoded chunks.

    A tile plus halo shares chunks with its eight neighbours. A worker that runs one band finds
    most of them already decoded in its process's cache
    (:mod:`stfcube.pipeline.engine.chunk_cache`),
    where round-robin placement would hand neighbouring tiles to different processes. Inside a
    band, tiles run in strips of :data:`STRIP_TILES` columns, row-major in each strip: the row
    above is then still cached, as the cache holds a strip's row of chunks, not a continent's.
    Bands get equal task counts (±1).

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


def run_tasks(
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
