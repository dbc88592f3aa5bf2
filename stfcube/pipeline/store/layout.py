"""Store layout at scale: the Zarr v3 shard-shape rules and the object counts they give.

A file system or object store pays per object, and a continental year at 30 m, one object per
(date, band, 512-pixel tile), is hundreds of millions of them. Large stores are therefore
*sharded* (Zarr v3 ``sharding_indexed``): one object (a shard) holds many chunks, each still
readable alone (the shard ends with an index of its chunks). Small stores (at most
:data:`SHARD_MIN_BLOCKS` chunks or tiles per date) keep one object per chunk, which every Zarr
reader handles.

**Cube** (written by ingest with dask, whole dates at a time): a shard is one date, all bands and
``SHARD_FACTOR x SHARD_FACTOR`` spatial chunks (``(1, bands, 8C, 8C)`` for values, ``(1, 8C, 8C)``
for validity; inner chunks stay ``(1, 1, C, C)``). Each dask task computes and writes exactly one
shard, so no two writers ever touch a shard; a date appended or rewritten is a whole number of
shards (time extent 1), which the ingest journal links and restores as before.

**Fused store** (written tile by tile by concurrent tasks): a shard is ``SHARD_DATES`` dates, all
bands and one tile, ``(64, bands, T, T)``, inner chunks ``(1, 1, T, T)`` (one date and band of a
tile, as before). A task writes one tile for the dates of its pair group, so the tasks of the
other pair groups whose dates fall in the same 64-date block write the same shard: each shard
write (read, replace the task's chunks, write the whole shard to a temporary file renamed over
the old one) runs under that shard's lock (:func:`stfcube.pipeline.store.lock.shard_lock`), so no
write is lost and a reader never sees a half-written shard. ``tile_done`` then has one chunk per
64-date block, ``(64, tiles_y, tiles_x)``, written under its lock too. Tasks stay independent and a
killed run resumes as before: a task's markers are set only after its data, under the lock, and a
shard rewritten by a task that died is only a shard whose markers are still 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Spatial chunks per shard edge in a large cube.
SHARD_FACTOR = 8
#: Dates per shard in a large fused store.
SHARD_DATES = 64
#: Stores with at most this many chunks (cube) or tiles (fused) per date are not sharded.
SHARD_MIN_BLOCKS = 1024


def _blocks(extent: int, size: int) -> int:
    return -(-extent // size)


def cube_shard_edge(shape: tuple[int, int], chunk: int) -> int | None:
    """Spatial shard edge (pixels) of a cube on a grid of ``shape``, ``None``: not sharded.

    Parameters
    ----------
    shape
        The variable's grid (rows, columns): the fine grid, or the native coarse grid.
    chunk
        The spatial chunk edge C.

    Returns
    -------
    int or None
        ``SHARD_FACTOR * C`` when the grid holds more than :data:`SHARD_MIN_BLOCKS` chunks.
    """
    rows, cols = shape
    if _blocks(rows, chunk) * _blocks(cols, chunk) <= SHARD_MIN_BLOCKS:
        return None
    return SHARD_FACTOR * chunk


def fused_sharded(shape: tuple[int, int], tile: int) -> bool:
    """Whether a fused store on ``shape`` with tiles of ``tile`` pixels is sharded."""
    return _blocks(shape[0], tile) * _blocks(shape[1], tile) > SHARD_MIN_BLOCKS


def fused_time_block(shape: tuple[int, int], tile: int) -> int:
    """Dates per shard (and per ``tile_done`` chunk) of a fused store: 64 when sharded, else 1."""
    return SHARD_DATES if fused_sharded(shape, tile) else 1


@dataclass(frozen=True)
class ObjectCount:
    """Objects (files) of a store: data chunks or shards, and everything else."""

    data: int
    markers: int
    metadata: int

    @property
    def total(self) -> int:
        """All objects."""
        return self.data + self.markers + self.metadata


def fused_objects(
    n_dates: int, shape: tuple[int, int], tile: int, bands: int, layers: int = 1
) -> ObjectCount:
    """Objects of a fully written fused store (the engine writes every tile, fill included).

    Parameters
    ----------
    n_dates
        Prediction dates.
    shape
        Fine grid (rows, columns).
    tile
        Tile edge (pixels).
    bands
        Bands.
    layers
        Per-band arrays the method writes besides ``fused`` (STARFM: ``quality``).

    Returns
    -------
    ObjectCount
        Metadata counts the ``zarr.json`` of the root, the data arrays, ``tile_done`` and the
        coordinates (time, band and its two coordinates, y, x, spatial_ref), plus one chunk per
        1-D coordinate.
    """
    tiles = _blocks(shape[0], tile) * _blocks(shape[1], tile)
    block = fused_time_block(shape, tile)
    time_blocks = _blocks(n_dates, block)
    per_array = tiles * time_blocks if block > 1 else tiles * n_dates * bands
    markers = time_blocks if block > 1 else tiles * n_dates
    coordinates = 7  # time, band, common_name, center_wavelength, y, x, spatial_ref
    metadata = 1 + (1 + layers) + 1 + 2 * coordinates  # zarr.json of each node, 1-D chunks
    return ObjectCount(per_array * (1 + layers), markers, metadata)


def cube_objects(
    dates: Sequence[int], shape: tuple[int, int], chunk: int, bands: int
) -> ObjectCount:
    """Objects of a cube: an upper bound, as chunks without a valid pixel are not stored.

    Parameters
    ----------
    dates
        Per sensor, its dates with an image (e.g. ``(46, 365)``: fine every 8 days, coarse daily).
    shape
        Fine grid (rows, columns).
    chunk
        Spatial chunk edge.
    bands
        Bands.
    """
    edge = cube_shard_edge(shape, chunk)
    rows, cols = shape
    if edge is None:
        per_date = _blocks(rows, chunk) * _blocks(cols, chunk) * (bands + 1)
    else:
        per_date = _blocks(rows, edge) * _blocks(cols, edge) * 2
    return ObjectCount(per_date * sum(dates), 0, 1 + 4 * len(dates) + 12)


def format_count(n: int) -> str:
    """``1.67e+06`` style for large counts, digits for small ones."""
    return f"{n:,}" if n < 100_000 else f"{n:.3g}".replace("e+0", "e").replace("e+", "e")
