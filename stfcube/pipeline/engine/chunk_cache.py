"""A process-wide LRU cache of decoded Zarr chunks for the tile tasks' halo reads.

A tile task reads its tile plus a halo. With tiles the size of the stored chunks, that window
touches 3 x 3 chunks, and every chunk is decoded again by each of the (up to) 9 tiles that
touch it: decompression, not the kernel, then becomes the engine's largest overhead (and, on an
object store, 9 requests per chunk). The tasks that run in one process (the threads of a worker)
share this cache, so a chunk is decoded about once while its neighbourhood is being fused.

Bounded in bytes (:data:`DEFAULT_MAX_BYTES`, or ``STFCUBE_CHUNK_CACHE_MB``; 0 disables it), so
memory stays independent of the image extent. Entries are keyed by a *run token*: a new fusion run
(which may read a cube rewritten in between) never sees another run's chunks, and a run's entries
are released when its batch of tiles is done.

Every decoded chunk is checked (:mod:`stfcube.pipeline.store.chunks`): a chunk that cannot be
decoded, or
that is missing from the store where the cube says it must hold data, is an
:class:`~stfcube.pipeline.errors.InputError` naming the variable, the date and the chunk, never NaN.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import zarr

from stfcube.pipeline.geometry.tiling import Tile, halo_window, pad_spatial
from stfcube.pipeline.store.chunks import (
    Selection,
    UndecodableChunkError,
    array_in,
    companion_name,
    damaged_chunk_error,
    missing_chunks,
    parent_group,
    read_region,
    store_label,
    unexplained_absence,
)

#: Default budget of decoded chunks per process (bytes).
DEFAULT_MAX_BYTES = 256 * 2**20
#: Opened array handles kept per process (a run reads a handful of arrays).
MAX_OPEN_ARRAYS = 64


class DecodedChunkCache:
    """Decoded spatial chunks ``(run, array, time index, chunk row, chunk column)``, LRU-evicted.

    Thread-safe; two threads missing the same chunk at once both decode it (harmless).

    Parameters
    ----------
    max_bytes
        Budget of the cached arrays; 0 caches nothing.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._arrays: OrderedDict[tuple, zarr.Array] = OrderedDict()
        self._lock = threading.Lock()

    def array(self, run: str, store: str, name: str) -> zarr.Array:
        """The array ``name`` of the Zarr group ``store``, opened once per run and process."""
        return self._opened(
            (run, store, name), lambda: array_in(zarr.open_group(store, mode="r"), name)
        )

    def companion(self, run: str, array: zarr.Array) -> zarr.Array | None:
        """The array deciding whether a missing chunk of ``array`` is legitimate, if stored.

        See :func:`stfcube.pipeline.store.chunks.companion_name` (``fine`` <-> ``fine_valid``).
        """
        name = companion_name(array.path.rpartition("/")[2])
        group = store_label(array)
        try:
            return self._opened((run, group, name), lambda: array_in(parent_group(array), name))
        except KeyError:
            return None

    def _opened(self, key: tuple, opener: Callable[[], zarr.Array]) -> zarr.Array:
        with self._lock:
            opened = self._arrays.get(key)
            if opened is not None:
                self._arrays.move_to_end(key)
                return opened
        opened = opener()
        with self._lock:
            self._arrays[key] = opened
            while len(self._arrays) > MAX_OPEN_ARRAYS:
                self._arrays.popitem(last=False)
        return opened

    def chunk(self, run: str, array: zarr.Array, time_index: int, row: int, col: int) -> np.ndarray:
        """The decoded spatial chunk ``(row, col)`` of ``array[time_index]`` (read-only)."""
        key = (run, str(array.store_path), time_index, row, col)
        with self._lock:
            block = self._entries.get(key)
            if block is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return block
            self.misses += 1
        height, width = array.chunks[-2:]
        rows = slice(row * height, (row + 1) * height)
        cols = slice(col * width, (col + 1) * width)
        block = self._decode(run, array, time_index, rows, cols)
        block.flags.writeable = False
        if block.nbytes <= self.max_bytes:
            with self._lock:
                if key not in self._entries:
                    self._entries[key] = block
                    self.nbytes += block.nbytes
                while self.nbytes > self.max_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self.nbytes -= evicted.nbytes
        return block

    def _decode(
        self, run: str, array: zarr.Array, time_index: int, rows: slice, cols: slice
    ) -> np.ndarray:
        """``array[time_index, ..., rows, cols]``, refusing damaged and wrongly missing chunks."""
        block = _read(array, time_index, rows, cols)
        missing = next(
            missing_chunks(array, _selection(array, time_index, rows, cols), block), None
        )
        if missing is None:
            return block
        companion = self.companion(run, array)
        region = None if companion is None else _read(companion, time_index, rows, cols)
        reason = unexplained_absence(array.path.rpartition("/")[2], region)
        if reason is not None:
            raise damaged_chunk_error(array, missing, time_index, reason)
        return block

    def release(self, run: str) -> None:
        """Drop the chunks and array handles of ``run`` (its tiles are done)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == run]:
                self.nbytes -= self._entries.pop(key).nbytes
            for key in [k for k in self._arrays if k[0] == run]:
                del self._arrays[key]

    def window(
        self, run: str, array: zarr.Array, time_indices: Sequence[int], rows: slice, cols: slice
    ) -> np.ndarray:
        """``array[time_indices, ..., rows, cols]`` (a new array) assembled from cached chunks."""
        height, width = array.chunks[-2:]
        shape = (
            len(time_indices),
            *array.shape[1:-2],
            rows.stop - rows.start,
            cols.stop - cols.start,
        )
        out = np.empty(shape, dtype=array.dtype)
        for k, time_index in enumerate(time_indices):
            for row in range(rows.start // height, (rows.stop - 1) // height + 1):
                y0, y1 = max(rows.start, row * height), min(rows.stop, (row + 1) * height)
                for col in range(cols.start // width, (cols.stop - 1) // width + 1):
                    x0, x1 = max(cols.start, col * width), min(cols.stop, (col + 1) * width)
                    block = self.chunk(run, array, time_index, row, col)
                    out[
                        k, ..., y0 - rows.start : y1 - rows.start, x0 - cols.start : x1 - cols.start
                    ] = block[
                        ...,
                        y0 - row * height : y1 - row * height,
                        x0 - col * width : x1 - col * width,
                    ]
        return out


def _selection(array: zarr.Array, time_index: int, rows: slice, cols: slice) -> Selection:
    return (time_index, *(slice(None),) * (array.ndim - 3), rows, cols)


def _read(array: zarr.Array, time_index: int, rows: slice, cols: slice) -> np.ndarray:
    """``array[time_index, ..., rows, cols]``; an undecodable chunk is an ``InputError``."""
    try:
        return read_region(array, _selection(array, time_index, rows, cols))
    except UndecodableChunkError as exc:
        raise damaged_chunk_error(array, exc.coords, time_index, exc.reason) from exc


def _budget() -> int:
    value = os.environ.get("STFCUBE_CHUNK_CACHE_MB")
    return DEFAULT_MAX_BYTES if value is None else int(float(value) * 2**20)


#: The cache shared by the tile tasks of this process.
CHUNKS = DecodedChunkCache(_budget())


def release_run(run: str) -> None:
    """Free this process's cached chunks of ``run`` (called when a batch of tiles is done).

    Parameters
    ----------
    run
        The fusion run's token (:attr:`stfcube.pipeline.engine.run.FusionSetup.run`).
    """
    CHUNKS.release(run)


def read_halo_block(
    run: str,
    store: str,
    name: str,
    time_indices: Sequence[int],
    tile: Tile,
    halo: int,
    shape: tuple[int, int],
    fill: float | bool,
) -> np.ndarray:
    """``array[time_indices, ..., rows, cols]`` of the halo-extended tile, padded with ``fill``.

    Parameters
    ----------
    run
        The fusion run's token (cache entries of other runs are never used).
    store, name
        The cube's Zarr group and the array ``(time, [band,] y, x)`` to read.
    time_indices
        Stored time indices to read.
    tile, halo, shape
        The tile, its halo and the image shape (pixels outside the image get ``fill``).
    fill
        Value of the pixels outside the image.
    """
    rows, cols, pad = halo_window(tile, halo, shape)
    array = CHUNKS.array(run, store, name)
    block = CHUNKS.window(run, array, list(time_indices), rows, cols)
    return pad_spatial(block, pad, fill)
