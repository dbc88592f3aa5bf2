"""``stfcube verify``: a cube or a fused store checked chunk by chunk, fused markers repaired.

A **cube** (``cube/1``) is healthy when every time-dimension variable has as many dates as
``time``, the schema validates, every chunk of the value and validity arrays decodes, no chunk is
missing where the rest of the cube says it holds data (:mod:`stfcube.pipeline.store.chunks`), and
the per-date ``*_valid_fraction`` and ``*_observed`` agree with the validity chunks (which catches a
value chunk deleted together with its validity). A cube is not repaired here: its damaged dates
are ingested again.

A **fused store** (``fused/1``) is healthy when its JSON attributes parse, ``tile_done`` has the
shape (time, tile_y, tile_x) of the stored tile size, every tile marked done has all the chunks of
``fused`` and of the method's layers (``quality``, ...) stored and decodable (the engine stores
them even when they are all fill), and ``complete`` is true only when every tile is done.
``fix=True`` repairs the markers, never the data: it clears the marks of tiles whose data are
damaged (a rerun of ``stfcube fuse`` recomputes them), recreates a missing or misshapen
``tile_done`` empty, resets an unreadable ``pairs_used`` or ``input_revisions`` (clearing every
mark, as what each prediction read is then unknown) and sets ``complete`` to whether every tile
is done.

Memory is bounded by one chunk position (all bands of one chunk) at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from stfcube.pipeline.errors import InputError, OutputError
from stfcube.pipeline.geometry.tiling import tile_counts
from stfcube.pipeline.store.chunks import (
    DECODE_ERRORS,
    VALID_SUFFIX,
    UndecodableChunkError,
    array_in,
    chunk_description,
    chunk_region,
    date_label,
    dimension_names,
    read_chunk,
    unexplained_absence,
)
from stfcube.pipeline.store.cube import SCHEMA as CUBE_SCHEMA
from stfcube.pipeline.store.cube import open_store, validate_cube
from stfcube.pipeline.store.metadata import consolidate, open_group

#: The value stems of a cube, each with its ``<stem>_valid`` validity.
CUBE_STEMS = ("fine", "coarse", "coarse_native")
#: Sensors with per-date bookkeeping (``<sensor>_observed``, ``<sensor>_valid_fraction``).
SENSORS = ("fine", "coarse")
#: Attributes of a fused store holding JSON objects: required ones, then optional ones.
FUSED_JSON_REQUIRED = ("fingerprint", "pairs_used")
FUSED_JSON_OPTIONAL = ("input_revisions", "parameters")
#: JSON attributes that ``--fix`` resets (a rerun of fuse writes them again).
RESETTABLE = ("pairs_used", "input_revisions")
TILE_DONE_DIMS = ("time", "tile_y", "tile_x")
TILE_DONE_LONG_NAME = "1 where the tile's prediction for the date is completely written"


@dataclass
class VerifyReport:
    """What :func:`verify_store` found (and, with ``fix``, repaired) in one store.

    ``problems`` are those still present; ``repaired`` those that ``fix`` resolved.
    """

    path: Path
    kind: str
    chunks_checked: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Whether no problem remains."""
        return not self.problems

    def summary(self) -> str:
        """One line: the store, its kind, the chunks checked and the outcome."""
        state = "healthy" if self.healthy else f"{len(self.problems)} problem(s)"
        fixed = f", {len(self.repaired)} repaired" if self.repaired else ""
        return f"{self.path}: {self.kind}, {self.chunks_checked} chunks checked: {state}{fixed}"


def verify_store(path: str | Path, fix: bool = False) -> VerifyReport:
    """Check a cube or fused store chunk by chunk; with ``fix``, repair a fused store's markers.

    Parameters
    ----------
    path
        The store (its ``stfcube_schema`` attribute says which kind it is).
    fix
        Repair what can be repaired without touching data (fused stores only, see the module
        docstring).

    Returns
    -------
    VerifyReport

    Raises
    ------
    InputError
        When ``path`` is missing, not a Zarr store, or not a store stfcube wrote.
    """
    path = Path(path)
    group = _open_group(path)
    schema = group.attrs.get("stfcube_schema")
    if schema == CUBE_SCHEMA:
        report = VerifyReport(path, "cube")
        _verify_cube(path, group, report)
        return report
    if schema == _fused_schema():
        report = VerifyReport(path, "fused store")
        _verify_fused(path, fix, report)
        return report
    raise InputError(path, f"not a stfcube cube or fused store (stfcube_schema is {schema!r})")


def _fused_schema() -> str:
    from stfcube.pipeline.store.fused import FUSED_SCHEMA  # the fused store's schema has one owner

    return FUSED_SCHEMA


def _open_group(path: Path, mode: Literal["r", "r+"] = "r") -> zarr.Group:
    if not path.is_dir():
        raise InputError(path, "store not found" if not path.exists() else "not a Zarr store")
    try:
        return open_group(path, mode=mode)
    except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as exc:
        raise InputError(path, f"not a readable Zarr store ({exc})") from exc


# --------------------------------------------------------------------------------------------
# Cubes


def _verify_cube(path: Path, group: zarr.Group, report: VerifyReport) -> None:
    try:
        time = array_in(group, "time")
    except KeyError:
        report.problems.append("the time coordinate is missing")
        return
    n_t = time.shape[0]
    for name, array in group.arrays():
        dims = dimension_names(array)
        if dims[:1] == ("time",) and array.shape[0] != n_t:
            report.problems.append(f"{name} has {array.shape[0]} dates, time has {n_t}")
    if report.problems:  # the chunk scans below address dates by their index in time
        return
    try:
        validate_cube(open_store(path), path)
    except InputError as exc:
        report.problems.append(exc.problem)
    except DECODE_ERRORS as exc:
        report.problems.append(f"cannot be opened ({exc})")
    report.problems += _coordinate_problems(group, time)
    for stem in CUBE_STEMS:
        if stem in group and stem + VALID_SUFFIX in group:
            counts = _scan_stem(array_in(group, stem), array_in(group, stem + VALID_SUFFIX), report)
            if stem in SENSORS:
                report.problems += _bookkeeping_problems(group, stem, counts)


def _coordinate_problems(group: zarr.Group, time: zarr.Array) -> list[str]:
    """Missing or undecodable chunks of ``time`` and of the per-date bookkeeping."""
    problems = []
    names = ["time"] + [
        f"{sensor}_{kind}"
        for sensor in SENSORS
        for kind in ("observed", "revision", "valid_fraction")
    ]
    for name in names:
        if name not in group:
            continue
        array = array_in(group, name)
        for (index,) in np.ndindex(*array.cdata_shape):
            try:
                block = read_chunk(array, (index,))
            except UndecodableChunkError as exc:
                problems.append(f"{name}: chunk {exc.coords} is {exc.reason}")
                continue
            if block is None and name == "time":
                problems.append(f"time: chunk ({index},) is missing from the store")
    return problems


def _scan_stem(values: zarr.Array, valid: zarr.Array, report: VerifyReport) -> np.ndarray:
    """Check every chunk of a value array and its validity; return valid pixels per date.

    Dates with an undecodable validity chunk get -1 (their count is unknown).
    """
    counts = np.zeros(values.shape[0], dtype=np.int64)
    n_tc, n_bc, n_rc, n_cc = values.cdata_shape
    time_chunk = values.chunks[0]
    for tc, row, col in np.ndindex(n_tc, n_rc, n_cc):
        dates = slice(tc * time_chunk, min((tc + 1) * time_chunk, values.shape[0]))
        mask = _checked_chunk(valid, (tc, row, col), report)
        bands = [_checked_chunk(values, (tc, b, row, col), report) for b in range(n_bc)]
        report.chunks_checked += 1 + n_bc
        if mask is _UNDECODABLE:
            counts[dates] = -1
            continue
        if mask is None:
            present = [b for b in bands if b is not None and b is not _UNDECODABLE]
            stacked = np.concatenate(present, axis=1) if present else np.empty(0)
            _report_absence(valid, (tc, row, col), stacked, report)
        else:
            known = counts[dates] >= 0
            counts[dates] = np.where(known, counts[dates] + mask.sum(axis=(1, 2)), -1)
        for b, block in enumerate(bands):
            if block is None:
                companion = np.zeros(0, dtype=bool) if mask is None else mask
                _report_absence(values, (tc, b, row, col), companion, report)
    return counts


#: Marks a chunk that is stored but cannot be decoded (already reported).
_UNDECODABLE = np.empty(0)


def _checked_chunk(
    array: zarr.Array, coords: tuple[int, ...], report: VerifyReport
) -> np.ndarray | None:
    """The decoded chunk, ``None`` when missing, :data:`_UNDECODABLE` (reported) when damaged."""
    try:
        return read_chunk(array, coords)
    except UndecodableChunkError as exc:
        report.problems.append(f"{_describe(array, coords)} is {exc.reason}")
        return _UNDECODABLE


def _report_absence(
    array: zarr.Array, coords: tuple[int, ...], companion: np.ndarray, report: VerifyReport
) -> None:
    reason = unexplained_absence(array.path.rpartition("/")[2], companion)
    if reason is not None:
        report.problems.append(f"{_describe(array, coords)} is {reason}")


def _describe(array: zarr.Array, coords: tuple[int, ...]) -> str:
    return chunk_description(array, coords, coords[0] * array.chunks[0])


def _bookkeeping_problems(group: zarr.Group, sensor: str, counts: np.ndarray) -> list[str]:
    """``<sensor>_valid_fraction`` and ``<sensor>_observed`` against the counted valid pixels."""
    valid = array_in(group, sensor + VALID_SUFFIX)
    pixels = valid.shape[1] * valid.shape[2]
    problems = []
    observed = _whole(group, f"{sensor}_observed")
    fraction = _whole(group, f"{sensor}_valid_fraction")
    for t, count in enumerate(counts):
        if count < 0:
            continue
        day = date_label(group, t)
        if observed is not None and not observed[t] and count > 0:
            problems.append(
                f"{sensor}_observed is false on {day} but {sensor}_valid has {count} valid pixels"
            )
        if fraction is None:
            continue
        if np.isnan(fraction[t]):
            problems.append(f"{sensor}_valid_fraction is missing on {day}")
        elif abs(fraction[t] * pixels - count) > 0.5:
            problems.append(
                f"{sensor}_valid_fraction records {round(fraction[t] * pixels)} valid pixels on "
                f"{day}, {sensor}_valid holds {count} (chunks lost or rewritten)"
            )
    return problems


def _whole(group: zarr.Group, name: str) -> np.ndarray | None:
    """A small 1-D array read whole (``None`` when absent or undecodable: reported elsewhere)."""
    if name not in group:
        return None
    try:
        return np.asarray(array_in(group, name)[...])
    except DECODE_ERRORS:
        return None


# --------------------------------------------------------------------------------------------
# Fused stores


@dataclass
class _FusedLayout:
    """A fused store's metadata as far as it could be read."""

    attrs: dict[str, Any]
    problems: list[str]
    unrepairable: list[str]
    reset: list[str]
    tile_done_shape: tuple[int, int, int] | None = None
    tile_done_ok: bool = False
    tile: int | None = None
    layers: tuple[str, ...] = ("fused",)


def check_fused_store(path: str | Path, group: zarr.Group) -> None:
    """Refuse, with one message, a fused store whose metadata a fuse run cannot rely on.

    Metadata only, no chunk is read: the JSON attributes, the arrays and the shape of
    ``tile_done``.

    Parameters
    ----------
    path
        The store, named in the message.
    group
        Its opened root group.

    Raises
    ------
    OutputError
        Naming every problem and how to repair or replace the store.
    """
    layout = _fused_layout(group)
    problems = layout.unrepairable + layout.problems
    if problems:
        raise OutputError(
            f"{path}: damaged fused store: {'; '.join(problems)}; run `stfcube verify {path} "
            "--fix` to repair its markers, or pass --overwrite to replace it"
        )


def _fused_layout(group: zarr.Group) -> _FusedLayout:
    attrs = group.attrs.asdict()
    layout = _FusedLayout(attrs, problems=[], unrepairable=[], reset=[])
    for key in FUSED_JSON_REQUIRED + FUSED_JSON_OPTIONAL:
        if key not in attrs and key not in FUSED_JSON_REQUIRED:
            continue
        problem = _json_problem(attrs.get(key))
        if problem is None:
            continue
        message = f"attribute {key} {problem}"
        if key in RESETTABLE:
            layout.problems.append(message)
            layout.reset.append(key)
        else:
            layout.unrepairable.append(message + " (cannot be repaired)")
    if "complete" in attrs and not isinstance(attrs["complete"], bool):
        layout.problems.append(f"attribute complete is {attrs['complete']!r}, not true or false")
    arrays = {name: array for name, array in group.arrays()}
    layout.layers = ("fused", *fused_layers(attrs))
    missing = [n for n in ("time", *layout.layers) if n not in arrays]
    if missing:
        layout.unrepairable.append(f"array(s) {', '.join(missing)} missing (cannot be repaired)")
        return layout
    fused, n_t = arrays["fused"], arrays["time"].shape[0]
    mismatched = [
        f"{name} {arrays[name].shape}"
        for name in layout.layers
        if arrays[name].shape[0] != n_t or arrays[name].shape[-2:] != fused.shape[-2:]
    ]
    if fused.ndim != 4 or mismatched:
        layout.unrepairable.append(
            f"{', '.join(mismatched or [f'fused {fused.shape}'])} do not match {n_t} dates of "
            f"{fused.shape[-2]} x {fused.shape[-1]} px (cannot be repaired)"
        )
        return layout
    layout.tile = _stored_tile(attrs, fused)
    layout.tile_done_shape = (n_t, *tile_counts((fused.shape[2], fused.shape[3]), layout.tile))
    done = arrays.get("tile_done")
    if done is None:
        layout.problems.append("array tile_done is missing")
    elif done.shape != layout.tile_done_shape or dimension_names(done) != TILE_DONE_DIMS:
        layout.problems.append(
            f"tile_done is ({', '.join(dimension_names(done))}) of shape {done.shape}, expected "
            f"({', '.join(TILE_DONE_DIMS)}) of shape {layout.tile_done_shape} for tiles of "
            f"{layout.tile} pixels"
        )
    else:
        layout.tile_done_ok = True
    return layout


def fused_layers(attrs: dict[str, Any]) -> list[str]:
    """The method's layers a fused store holds besides ``fused`` (its ``layers`` attribute;
    stores written before methods declared layers hold STARFM's ``quality``)."""
    try:
        layers = json.loads(attrs["layers"])
    except (KeyError, TypeError, ValueError):
        return ["quality"]
    return [str(name) for name in layers] if isinstance(layers, list) else ["quality"]


def _json_problem(value: object) -> str | None:
    """Why an attribute is not a JSON object, or ``None`` when it is one."""
    if value is None:
        return "is missing"
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return "is not valid JSON"
    return None if isinstance(parsed, dict) else "is not a JSON object"


def _stored_tile(attrs: dict[str, Any], fused: zarr.Array) -> int:
    """The tile size of the store's fingerprint, else its chunk edge."""
    try:
        tile = json.loads(attrs["fingerprint"])["tile"]
    except (KeyError, TypeError, ValueError):
        tile = None
    return tile if isinstance(tile, int) and tile > 0 else int(fused.chunks[-1])


def _verify_fused(path: Path, fix: bool, report: VerifyReport) -> None:
    group = _open_group(path, "r+" if fix else "r")
    layout = _fused_layout(group)
    report.problems += layout.unrepairable
    if layout.tile_done_shape is None or layout.tile is None:
        report.problems += layout.problems
        return
    stale: list[tuple[str, Cell]] = []
    done_count = 0
    if layout.tile_done_ok:
        stale, done_count = _scan_tiles(group, layout.tile, report)
    total = int(np.prod(layout.tile_done_shape))
    reset_all = bool(layout.reset) or not layout.tile_done_ok
    all_done = not reset_all and not stale and done_count == total
    found = layout.problems + [message for message, _ in stale]
    if layout.attrs.get("complete") is True and not all_done:
        found.append(f"complete is true but {total - done_count} of {total} tiles are not done")
    if not fix:
        report.problems += found
        return
    if reset_all:
        _reset_markers(group, layout, layout.tile_done_shape)
    else:
        done = array_in(group, "tile_done")
        for _, cell in stale:
            done[cell] = 0
    if layout.attrs.get("complete") is not all_done:
        group.attrs["complete"] = all_done
    consolidate(path)
    report.repaired += found


#: A tile_done cell: (time index, tile row, tile column).
Cell = tuple[int, int, int]


def _scan_tiles(
    group: zarr.Group, tile: int, report: VerifyReport
) -> tuple[list[tuple[str, Cell]], int]:
    """Every marker that cannot stand (with its cell), and the number of sound done tiles."""
    done = array_in(group, "tile_done")
    layers = [array_in(group, name) for name in ("fused", *fused_layers(group.attrs.asdict()))]
    stale: list[tuple[str, Cell]] = []
    sound = 0
    for t in range(done.shape[0]):
        markers, damaged = _marker_row(done, t)
        report.chunks_checked += markers.size
        stale += [
            (f"tile_done at date {date_label(group, t)}, tile {cell[1:]} is {reason}", cell)
            for cell, reason in damaged
        ]
        for ty, tx in zip(*np.nonzero(markers), strict=True):
            cell = (t, int(ty), int(tx))
            if markers[ty, tx] != 1:
                stale.append(
                    (
                        f"tile_done is {markers[ty, tx]} at date {date_label(group, t)}, "
                        f"tile {cell[1:]} (expected 0 or 1)",
                        cell,
                    )
                )
                continue
            problem = _tile_data_problem(layers, cell, tile, report)
            if problem is None:
                sound += 1
            else:
                stale.append((problem, cell))
    return stale, sound


def _marker_row(done: zarr.Array, t: int) -> tuple[np.ndarray, list[tuple[Cell, str]]]:
    """The markers of date ``t`` (0 where undecodable) and the undecodable cells."""
    try:
        return np.asarray(done[t]), []
    except DECODE_ERRORS:
        pass
    markers = np.zeros(done.shape[1:], dtype=done.dtype)
    damaged = []
    for ty, tx in np.ndindex(*markers.shape):
        coords = tuple(i // c for i, c in zip((t, ty, tx), done.chunks, strict=True))
        try:
            block = read_chunk(done, coords)
        except UndecodableChunkError as exc:
            damaged.append(((t, ty, tx), exc.reason))
            continue
        origin = [region.start for region in chunk_region(done, coords)]
        markers[ty, tx] = (
            0 if block is None else block[t - origin[0], ty - origin[1], tx - origin[2]]
        )
    return markers, damaged


def _tile_data_problem(
    layers: list[zarr.Array], cell: Cell, tile: int, report: VerifyReport
) -> str | None:
    """Why a tile marked done is not, or ``None`` when all its layers' chunks are sound."""
    t, ty, tx = cell
    height, width = layers[0].chunks[-2:]
    for array in layers:
        for band in np.ndindex(*array.cdata_shape[1:-2]):
            coords = (t // array.chunks[0], *band, ty * tile // height, tx * tile // width)
            report.chunks_checked += 1
            try:
                reason = None if read_chunk(array, coords) is not None else "missing from the store"
            except UndecodableChunkError as exc:
                reason = exc.reason
            if reason is not None:
                return (
                    f"{chunk_description(array, coords, t)} is {reason}, yet tile_done marks "
                    f"tile {cell[1:]} done"
                )
    return None


def _reset_markers(group: zarr.Group, layout: _FusedLayout, shape: tuple[int, int, int]) -> None:
    """Every marker cleared (``tile_done`` recreated when missing or misshapen) and the
    unreadable JSON attributes emptied: a rerun of fuse then recomputes every tile."""
    if layout.tile_done_ok:
        array_in(group, "tile_done")[...] = 0
    else:
        attrs = dict(array_in(group, "tile_done").attrs) if "tile_done" in group else {}
        fused = array_in(group, "fused")
        block = (fused.shards or fused.chunks)[0]  # the store's dates per shard (layout)
        group.create_array(
            "tile_done",
            shape=shape,
            chunks=(block, *shape[1:]) if block > 1 else (1, 1, 1),
            dtype="uint8",
            fill_value=0,
            dimension_names=TILE_DONE_DIMS,
            attributes=attrs or {"long_name": TILE_DONE_LONG_NAME},
            overwrite=True,
        )
    for key in layout.reset:
        group.attrs[key] = "{}"
