"""Stored chunks read with integrity: a chunk that is missing or cannot be decoded is named.

Zarr reads a chunk that is not in the store as the array's fill value, and stfcube's cube writes
let Zarr skip the chunks equal to it (``write_empty_chunks`` off): an unobserved date, or a chunk
entirely clouded or outside the scene, stores no chunk at all. A missing chunk is therefore
legitimate exactly where its fill value agrees with the rest of the cube, which each pair of a value
array and its validity (``fine`` / ``fine_valid``) decides (:func:`unexplained_absence`):

- a value chunk (NaN) may be missing only where its validity has no valid pixel, since a valid
  pixel has a finite value in every band;
- a validity chunk (all False) may be missing only where the values hold no finite value, since
  ingest writes NaN wherever a pixel is not valid.

Anything else is damage (a deleted or truncated file), reported with the variable, the date and the
chunk index (:func:`damaged_chunk_error`). These checks run once per decoded chunk, never per pixel:
a chunk's existence is looked up only when its decoded block equals the fill value.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from stfcube.pipeline.errors import InputError

#: Suffix of a validity array: ``<stem>_valid`` holds the validity of the values ``<stem>``.
VALID_SUFFIX = "_valid"

#: What decoding a damaged chunk raises (Zstd errors are RuntimeError; a wrong size ValueError).
DECODE_ERRORS = (RuntimeError, ValueError, TypeError, OSError, zarr.errors.BaseZarrError)

Selection = tuple[int | slice, ...]


class UndecodableChunkError(Exception):
    """A stored chunk whose bytes cannot be decoded (``coords``: its index in the chunk grid)."""

    def __init__(self, coords: tuple[int, ...], reason: str) -> None:
        self.coords = coords
        self.reason = reason
        super().__init__(f"chunk {coords}: {reason}")


def chunk_exists(array: zarr.Array, coords: tuple[int, ...]) -> bool:
    """Whether the chunk ``coords`` (index in the chunk grid) of ``array`` is in its store.

    In a sharded array (:mod:`stfcube.pipeline.store.layout`) the chunk is looked up in its shard's
    index: it exists when the shard exists and its index entry is not empty.
    """
    if array.shards is None:
        key = f"{array.path}/{array.metadata.encode_chunk_key(coords)}".lstrip("/")
        return bool(sync(array.store.exists(key)))
    per_shard = tuple(s // c for s, c in zip(array.shards, array.chunks, strict=True))
    shard = tuple(i // n for i, n in zip(coords, per_shard, strict=True))
    index = shard_index(array, shard)
    if index is None:
        return False
    local = tuple(i % n for i, n in zip(coords, per_shard, strict=True))
    return bool((index[local] != _EMPTY_ENTRY).any())


#: Offset and length of a chunk that a shard does not hold (the sharding specification).
_EMPTY_ENTRY = np.uint64(2**64 - 1)


def shard_index(array: zarr.Array, shard: tuple[int, ...]) -> np.ndarray | None:
    """The index of one shard, ``(*chunks_per_shard, 2)`` uint64 (offset, length), or ``None``
    when the shard is not in the store.

    Read as the Zarr v3 sharding specification lays it out (little-endian uint64 pairs, a CRC32C
    checksum after them when the index codecs include one), at the shard's end or start.

    Raises
    ------
    UndecodableChunkError
        When the shard is too short to hold its index.
    """
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    codec = getattr(array.metadata, "codecs", (None,))[0]
    per_shard = tuple(s // c for s, c in zip(array.shards or (), array.chunks, strict=True))
    checksum = any(type(c).__name__ == "Crc32cCodec" for c in getattr(codec, "index_codecs", ()))
    size = 16 * int(np.prod(per_shard)) + 4 * checksum
    at_start = str(getattr(codec, "index_location", "end")).endswith("start")
    request: OffsetByteRequest | RangeByteRequest | SuffixByteRequest = (
        RangeByteRequest(0, size) if at_start else SuffixByteRequest(size)
    )
    key = f"{array.path}/{array.metadata.encode_chunk_key(shard)}".lstrip("/")
    buffer = sync(array.store.get(key, prototype=default_buffer_prototype(), byte_range=request))
    if buffer is None:
        return None
    raw = buffer.to_bytes()
    if len(raw) != size:
        raise UndecodableChunkError(shard, f"shard of {len(raw)} bytes holds no index")
    return np.frombuffer(raw[: size - 4 * checksum], dtype="<u8").reshape(*per_shard, 2)


def chunk_region(array: zarr.Array, coords: tuple[int, ...]) -> tuple[slice, ...]:
    """The array region of the chunk ``coords`` (clipped at the array's edge)."""
    return tuple(
        slice(i * size, min((i + 1) * size, extent))
        for i, size, extent in zip(coords, array.chunks, array.shape, strict=True)
    )


def is_fill(block: np.ndarray, fill_value: object) -> bool:
    """Whether every value of ``block`` is ``fill_value`` (NaN matches NaN); first value first."""
    if block.size == 0:
        return True
    if isinstance(fill_value, float | np.floating) and np.isnan(fill_value):
        return bool(np.isnan(block.flat[0]) and np.isnan(block).all())
    return bool(block.flat[0] == fill_value and (block == fill_value).all())


def read_chunk(array: zarr.Array, coords: tuple[int, ...]) -> np.ndarray | None:
    """The decoded chunk ``coords`` of ``array``, or ``None`` when the store does not hold it.

    Raises
    ------
    UndecodableChunkError
        When the chunk's bytes cannot be decoded.
    """
    if not chunk_exists(array, coords):
        return None
    try:
        return np.asarray(array[chunk_region(array, coords)])
    except DECODE_ERRORS as exc:
        raise UndecodableChunkError(coords, f"undecodable ({exc})") from exc


def _chunks_of(array: zarr.Array, selection: Selection) -> Iterator[tuple[tuple[int, ...], tuple]]:
    """Each chunk a basic selection touches: (its coords, its part of the selected block)."""
    per_dim: list[list[tuple[int, slice | None]]] = []
    for item, size, extent in zip(selection, array.chunks, array.shape, strict=True):
        if isinstance(item, int):
            per_dim.append([(item // size, None)])
            continue
        start, stop, _ = item.indices(extent)
        first, last = start // size, (stop - 1) // size
        per_dim.append(
            [
                (c, slice(max(start, c * size) - start, min(stop, (c + 1) * size) - start))
                for c in range(first, last + 1)
            ]
        )
    for combo in itertools.product(*per_dim):
        coords = tuple(c for c, _ in combo)
        yield coords, tuple(part for _, part in combo if part is not None)


def read_region(array: zarr.Array, selection: Selection) -> np.ndarray:
    """``array[selection]`` (a basic selection), naming the chunk that cannot be decoded.

    Raises
    ------
    UndecodableChunkError
        For the first chunk of the selection whose bytes cannot be decoded.
    """
    try:
        return np.asarray(array[selection])
    except DECODE_ERRORS as exc:
        for coords, _ in _chunks_of(array, selection):
            read_chunk(array, coords)  # raises for the culprit
        raise UndecodableChunkError((), f"undecodable ({exc})") from exc


def missing_chunks(
    array: zarr.Array, selection: Selection, block: np.ndarray
) -> Iterator[tuple[int, ...]]:
    """The chunks of a read ``block = array[selection]`` that the store does not hold.

    Only chunks whose part of the block equals the fill value are looked up.
    """
    for coords, part in _chunks_of(array, selection):
        if is_fill(block[part], array.fill_value) and not chunk_exists(array, coords):
            yield coords


def companion_name(name: str) -> str:
    """The array that decides whether a missing chunk of ``name`` is legitimate.

    ``fine`` -> ``fine_valid`` and ``fine_valid`` -> ``fine`` (see the module docstring).
    """
    return name.removesuffix(VALID_SUFFIX) if name.endswith(VALID_SUFFIX) else name + VALID_SUFFIX


def unexplained_absence(name: str, companion: np.ndarray | None) -> str | None:
    """Why a missing chunk of ``name`` is damage, or ``None`` when its fill value is consistent.

    Parameters
    ----------
    name
        The array whose chunk is missing (a value array or its ``*_valid`` validity).
    companion
        The decoded region of :func:`companion_name` at the chunk's place (its time indices and
        pixels), ``None`` when the store has no such array.

    Returns
    -------
    str or None
        The reason, phrased to follow "chunk ... is".
    """
    if companion is None:
        return "missing from the store"
    other = companion_name(name)
    if name.endswith(VALID_SUFFIX):
        if np.isfinite(companion).any():
            return f"missing from the store although {other} holds values there"
        return None
    if companion.any():
        return f"missing from the store although {other} marks valid pixels there"
    return None


def dimension_names(array: zarr.Array) -> tuple[str, ...]:
    """The array's dimension names (``dim_<i>`` where the store names none)."""
    names = getattr(array.metadata, "dimension_names", None) or ()
    return tuple(n or f"dim_{i}" for i, n in enumerate(names)) or tuple(
        f"dim_{i}" for i in range(array.ndim)
    )


def array_in(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group`` (``KeyError`` when there is none)."""
    item = group[name]
    if not isinstance(item, zarr.Array):
        raise KeyError(name)
    return item


def parent_group(array: zarr.Array) -> zarr.Group:
    """The group that holds ``array`` (read-only)."""
    return zarr.open_group(store=array.store, path=array.path.rpartition("/")[0], mode="r")


def store_label(array: zarr.Array) -> str:
    """The store (folder or URL) of the group holding ``array``, for messages."""
    root = str(getattr(array.store, "root", array.store))
    parent = array.path.rpartition("/")[0]
    return f"{root}/{parent}" if parent else root


def date_label(group: zarr.Group, time_index: int) -> str:
    """The date of ``time_index`` in a store's ``time`` array (``time index N`` if unreadable)."""
    from xarray.coding.times import decode_cf_datetime

    try:
        times = array_in(group, "time")
        value = np.asarray(times[time_index : time_index + 1])
        units = str(times.attrs["units"])
        calendar = str(times.attrs.get("calendar", "proleptic_gregorian"))
        return str(decode_cf_datetime(value, units, calendar).astype("datetime64[D]")[0])
    except (KeyError, IndexError, TypeError, *DECODE_ERRORS):
        return f"time index {time_index}"


def chunk_description(array: zarr.Array, coords: tuple[int, ...], time_index: int) -> str:
    """``variable fine, date 2024-05-03, chunk (4, 1, 0, 2) of (time, band, y, x)``."""
    dims = ", ".join(dimension_names(array))
    date = date_label(parent_group(array), time_index)
    name = array.path.rpartition("/")[2]
    return f"variable {name}, date {date}, chunk {coords} of ({dims})"


def damaged_chunk_error(
    array: zarr.Array, coords: tuple[int, ...], time_index: int, reason: str
) -> InputError:
    """The error for one damaged chunk, naming the store, variable, date and chunk index."""
    return InputError(
        store_label(array),
        f"{chunk_description(array, coords, time_index)} is {reason}; the store is damaged "
        f"(`stfcube verify {store_label(array)}` lists every damaged chunk)",
    )


def dense_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of ``group``, writing every chunk, even one equal to the fill value.

    The fusion engine writes its tiles so: a chunk missing from a tile marked done is then
    damage, never an all-fill tile (:func:`stfcube.pipeline.store.verify.verify_store`).
    """
    return array_in(group, name).with_config({"write_empty_chunks": True})


@contextmanager
def naming_damaged_chunks(
    store: str | Path, names: Sequence[str], time_indices: Sequence[int]
) -> Iterator[None]:
    """Turn a decoding error of a whole-array read (a dask reduction) into one naming the chunk.

    Only after a failure are the chunks of ``names`` at ``time_indices`` decoded one by one to
    find the damaged one; when none is, the original error propagates.

    Raises
    ------
    InputError
        Naming the variable, date and chunk that cannot be decoded.
    """
    try:
        yield
    except DECODE_ERRORS as exc:
        group = zarr.open_group(str(store), mode="r")
        for name in names:
            array = array_in(group, name)
            for t in time_indices:
                for rest in np.ndindex(*array.cdata_shape[1:]):
                    coords = (t // array.chunks[0], *rest)
                    try:
                        read_chunk(array, coords)
                    except UndecodableChunkError as damaged:
                        raise damaged_chunk_error(array, coords, t, damaged.reason) from exc
        raise
