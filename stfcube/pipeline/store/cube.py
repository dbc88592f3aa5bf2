"""The analysis-ready cube: schema constants, opening, validation and chunk-wise writing.

The schema is fixed in ``docs/design.md`` ("The cube"). In short, one Zarr v3 store with
``fine``/``coarse`` (time, band, y, x) float32 values in common units, ``fine_valid``/
``coarse_valid`` (time, y, x) bool, optionally ``coarse_native``/``coarse_native_valid`` on the
native coarse grid, a union ``time`` axis with ``fine_observed``/``coarse_observed`` flags,
``fine_revision``/``coarse_revision`` stamps and ``fine_valid_fraction``/``coarse_valid_fraction``
(share of valid pixels, computed as the images are written, so planning never re-reads masks),
and a rioxarray ``spatial_ref``.

Revision stamps: every write of a sensor's image at a date gives that (sensor, date) a fresh
random int64 stamp (0 = never written). The fusion engine records the stamps of the images each
prediction read, so a rewritten scene (``stfcube ingest --overwrite``) makes the predictions that
used it out of date; cubes written before stamps existed simply have none (nothing is detected).

Common units: every value is ``raw * source_scale + source_offset``, with the scale chosen per
source so that all sensors share one unit; by convention reflectance (and indices such as NDVI)
x 10000, the unit of Landsat-like integer products and of STARFM's default data range.

Writing is dask-driven and never loads the cube: a new cube is written to a temporary sibling
and renamed into place; new dates are appended along ``time``; an existing date is rewritten
with a region write. Dates are stored in append order; :func:`open_cube` sorts them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from stfcube.pipeline.defaults import DEFAULT_CHUNK as DEFAULT_CHUNK
from stfcube.pipeline.errors import InputError, OutputError
from stfcube.pipeline.geometry.grid import Grid
from stfcube.pipeline.store.atomic import staged
from stfcube.pipeline.store.journal import has_journal, journaled_write, roll_back
from stfcube.pipeline.store.layout import cube_shard_edge
from stfcube.pipeline.store.metadata import (
    NATIVE_VARIABLES,
    band_coords,
    consolidate,
    geozarr_attrs,
    open_group,
    stated_units,
    value_attrs,
    with_time_attrs,
    write_grid_mappings,
)
from stfcube.pipeline.store.metadata import TIME_ENCODING as TIME_ENCODING

#: Value of the ``stfcube_schema`` attribute.
SCHEMA = "cube/1"
#: The two sensors of a cube; ``truth`` scenes are written as ``fine`` in a separate cube.
SENSORS = ("fine", "coarse")
#: Default common units (see the module docstring).
COMMON_UNITS = "reflectance x 10000"
#: Factor from physical reflectance (0..1) to the common units.
COMMON_UNIT_FACTOR = 10000.0
#: Zstandard level of the data chunks.
ZSTD_LEVEL = 3
#: Per-variable attributes describing the decoding from the sources.
SOURCE_ATTRS = ("source_scale", "source_offset", "source_nodata")
#: ``long_name`` of each value variable.
LONG_NAMES = {
    "fine": "fine-resolution image",
    "coarse": "coarse image resampled onto the fine grid",
    "coarse_native": "coarse image on its native grid",
}

#: Edge (pixels) of the blocks of stored chunks one dask task writes in a store without shards.
WRITE_EDGE = 1024

_DATA_DIMS = ("time", "band", "y", "x")
_VALID_DIMS = ("time", "y", "x")
_NATIVE_DIMS = ("time", "band", "y_coarse", "x_coarse")
_NATIVE_VALID_DIMS = ("time", "y_coarse", "x_coarse")


def open_cube(path: str | Path) -> xr.Dataset:
    """Open a cube lazily, validated and sorted by time.

    Parameters
    ----------
    path
        The cube's Zarr store.

    Returns
    -------
    xarray.Dataset
        Dask-backed dataset; ``.rio.crs`` is the cube's CRS (``None`` for pixel-grid cubes).

    Raises
    ------
    InputError
        When ``path`` is missing, not a Zarr store, or not a valid cube.
    """
    ds = open_store(path)
    validate_cube(ds, path)
    return ds.sortby("time")


def open_store(
    path: str | Path, *, spatial_block: int | None = None, recover: bool = False
) -> xr.Dataset:
    """Open a Zarr store lazily as stored (time in append order), without validation.

    Dask chunks are the stored chunks; with ``spatial_block`` (pixels) each dask chunk spans
    several stored chunks in y and x, about ``spatial_block`` pixels a side (a multiple of the
    stored chunk, at least one). Whole-image reductions use that: one task per block instead of
    one per stored chunk cuts the scheduler's per-task cost, which dominates small chunks.

    A store whose last write was interrupted (:mod:`stfcube.pipeline.store.journal`) is refused, or,
    with ``recover=True`` (writers: ingest), rolled back to its state before that write first.
    """
    if not Path(path).exists():
        raise InputError(path, "cube not found")
    if has_journal(path):
        if not recover:
            raise InputError(
                path,
                "an interrupted ingest left a write unfinished; rerun the ingest (it rolls the "
                "cube back, then writes again) or run `stfcube verify --fix` on it",
            )
        roll_back(path)
    try:
        ds = xr.open_zarr(path, consolidated=False, decode_coords="all")
        if spatial_block is None or "fine" not in ds:
            return ds
        stored_y, stored_x = ds["fine"].data.chunksize[-2:]
        blocks = {
            "y": stored_y * max(1, spatial_block // stored_y),
            "x": stored_x * max(1, spatial_block // stored_x),
        }
        return xr.open_zarr(path, consolidated=False, decode_coords="all", chunks=blocks)
    except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as exc:
        raise InputError(path, f"not a readable Zarr store ({exc})") from exc


def validate_cube(ds: xr.Dataset, path: str | Path | None = None) -> None:
    """Check a dataset against the cube schema.

    Parameters
    ----------
    ds
        The dataset (as opened from the store).
    path
        Named in the error message.

    Raises
    ------
    InputError
        Listing every schema violation found.
    """
    problems = []
    if ds.attrs.get("stfcube_schema") != SCHEMA:
        problems.append(
            f"attribute stfcube_schema is {ds.attrs.get('stfcube_schema')!r}, not {SCHEMA!r}"
        )
    expected = {
        "fine": (_DATA_DIMS, np.float32),
        "fine_valid": (_VALID_DIMS, np.bool_),
        "coarse": (_DATA_DIMS, np.float32),
        "coarse_valid": (_VALID_DIMS, np.bool_),
    }
    if "coarse_native" in ds or "coarse_native_valid" in ds:
        expected["coarse_native"] = (_NATIVE_DIMS, np.float32)
        expected["coarse_native_valid"] = (_NATIVE_VALID_DIMS, np.bool_)
    for name, (dims, dtype) in expected.items():
        if name not in ds:
            problems.append(f"variable {name} is missing")
        elif ds[name].dims != dims or ds[name].dtype != dtype:
            problems.append(
                f"{name} is {ds[name].dtype}{ds[name].dims}, expected {np.dtype(dtype)}{dims}"
            )
    for name in ("fine_observed", "coarse_observed"):
        if name not in ds.coords or ds[name].dims != ("time",):
            problems.append(f"coordinate {name}(time) is missing")
    if "time" in ds.indexes and not ds.indexes["time"].is_unique:
        problems.append("time has duplicate dates")
    if problems:
        raise InputError(path, "not a valid stfcube cube: " + "; ".join(problems))


def cube_grid(ds: xr.Dataset) -> Grid:
    """The fine grid of a cube (CRS from ``spatial_ref``, transform from its GeoTransform)."""
    fine = ds.drop_vars(
        [n for n in ds.variables if "y_coarse" in ds[n].dims or n in NATIVE_VARIABLES]
    )
    fine = fine.drop_vars([n for n in fine.coords if str(n).startswith("spatial_ref_")])
    return Grid(fine.rio.crs, fine.rio.transform(recalc=False), ds.sizes["y"], ds.sizes["x"])


def native_cube_grid(ds: xr.Dataset) -> Grid | None:
    """The native coarse grid of a cube, or ``None`` when it has no ``coarse_native``."""
    if "coarse_native" not in ds:
        return None
    fine = cube_grid(ds)
    ratio = int(ds.attrs["coarse_ratio"])
    t = fine.transform
    return Grid(
        fine.crs,
        type(t)(t.a * ratio, 0.0, t.c, 0.0, t.e * ratio, t.f),
        ds.sizes["y_coarse"],
        ds.sizes["x_coarse"],
    )


def empty_layer(nbands: int, shape: tuple[int, int], chunk: int) -> tuple[da.Array, da.Array]:
    """Lazy all-NaN values (band, y, x) and all-False validity (y, x) for an unobserved date."""
    cy, cx = min(chunk, shape[0]), min(chunk, shape[1])
    values = da.full((nbands, *shape), np.nan, dtype=np.float32, chunks=(nbands, cy, cx))
    valid = da.zeros(shape, dtype=bool, chunks=(cy, cx))
    return values, valid


def _stack(
    layers: Sequence[tuple[da.Array, da.Array]], chunk: int
) -> tuple[da.Array, da.Array, dict[str, Any], dict[str, Any]]:
    """Values and validity of all dates with one dask chunk per shard, or per block of whole
    stored chunks (all bands, about :data:`WRITE_EDGE` pixels a side: fewer, larger writes) in
    a store without shards, and their Zarr encodings: the stored chunks, and the shards
    (:mod:`stfcube.pipeline.store.layout`).
    """
    values = da.stack([v for v, _ in layers])
    valid = da.stack([m for _, m in layers])
    n_b, rows, cols = values.shape[1:]
    cy, cx = min(chunk, rows), min(chunk, cols)
    edge = cube_shard_edge((rows, cols), chunk)
    if edge is None:
        by, bx = cy * max(1, WRITE_EDGE // cy), cx * max(1, WRITE_EDGE // cx)
        return (
            values.rechunk((1, n_b, by, bx)),
            valid.rechunk((1, by, bx)),
            {"chunks": (1, 1, cy, cx)},
            {"chunks": (1, cy, cx)},
        )
    sy, sx = min(edge, -(-rows // cy) * cy), min(edge, -(-cols // cx) * cx)
    return (
        values.rechunk((1, n_b, sy, sx)),
        valid.rechunk((1, sy, sx)),
        {"chunks": (1, 1, cy, cx), "shards": (1, n_b, sy, sx)},
        {"chunks": (1, cy, cx), "shards": (1, sy, sx)},
    )


def build_dataset(
    times: Sequence[np.datetime64],
    layers: dict[str, Sequence[tuple[da.Array, da.Array]]],
    observed: dict[str, Sequence[bool]],
    grid: Grid,
    band_names: Sequence[str],
    *,
    chunk: int,
    native: Grid | None = None,
    attrs: dict | None = None,
    var_attrs: dict[str, dict] | None = None,
) -> xr.Dataset:
    """Assemble a lazy cube dataset for some dates.

    Parameters
    ----------
    times
        The dates, one per layer.
    layers
        Per variable stem (``"fine"``, ``"coarse"``, ``"coarse_native"``), one
        ``(values (band, y, x), valid (y, x))`` pair per date (use :func:`empty_layer` where the
        sensor has no image).
    observed
        ``{"fine": [...], "coarse": [...]}``: whether each date has an image of that sensor.
        Only the sensors in ``layers`` get their per-date coordinates (``*_observed``,
        ``*_revision``, ``*_valid_fraction``), so a region write of one sensor leaves the
        other's as they are in the store.
    grid
        The fine grid (coordinates and ``spatial_ref``).
    band_names
        The ``band`` coordinate.
    chunk
        Spatial chunk size.
    native
        The native coarse grid, when ``layers`` holds ``"coarse_native"``.
    attrs, var_attrs
        Dataset attributes and per data-variable attributes (validity variables get none).

    Returns
    -------
    xarray.Dataset
        Dask-backed, chunked (1, 1, C, C) / (1, C, C).
    """
    coords: dict = {
        "time": np.asarray(times, dtype="datetime64[ns]"),
        "band": np.asarray(list(band_names), dtype=object),
        "y": grid.y_coords(),
        "x": grid.x_coords(),
        **band_coords(band_names),
    }
    for sensor in SENSORS:
        if sensor in layers:
            coords[f"{sensor}_observed"] = ("time", np.asarray(observed[sensor], dtype=bool))
            coords[f"{sensor}_revision"] = ("time", revision_stamps(observed[sensor]))
    data_vars = {}
    for stem, stem_layers in layers.items():
        dims, valid_dims = (
            (_NATIVE_DIMS, _NATIVE_VALID_DIMS)
            if stem == "coarse_native"
            else (_DATA_DIMS, _VALID_DIMS)
        )
        values, valid, values_encoding, valid_encoding = _stack(stem_layers, chunk)
        data_vars[stem] = xr.Variable(
            dims, values, _cf_attrs(stem, (var_attrs or {}).get(stem, {})), values_encoding
        )
        data_vars[f"{stem}_valid"] = xr.Variable(
            valid_dims, valid, {"long_name": f"1 where {stem} holds a valid value"}, valid_encoding
        )
        if stem in SENSORS:
            coords[f"{stem}_valid_fraction"] = ("time", valid.mean(axis=(1, 2), dtype=np.float64))
    if native is not None:
        coords["y_coarse"] = native.y_coords()
        coords["x_coarse"] = native.x_coords()
    ds = with_time_attrs(xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {})))
    return write_grid_mappings(
        ds, grid.crs, grid.transform, native.transform if native is not None else None
    )


def _cf_attrs(stem: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """A value variable's attributes with its CF ones
    (:func:`stfcube.pipeline.store.metadata.value_attrs`)
    derived from the quantity its ``units`` (or ``stfcube_units``) state."""
    stated = stated_units(attrs)
    if stated is None:
        return dict(attrs)
    return {**attrs, **value_attrs(stated, LONG_NAMES.get(stem, stem))}


def revision_stamps(written: Sequence[bool]) -> np.ndarray:
    """One fresh random stamp (int64, > 0) on the written dates, 0 on the others.

    Parameters
    ----------
    written
        Per date of a write, whether the sensor's image is written.

    Returns
    -------
    numpy.ndarray
        int64 stamps, one per date.
    """
    stamp = secrets.randbits(62) + 1
    return np.where(np.asarray(written, dtype=bool), stamp, 0).astype(np.int64)


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    """Time encoding, compression and the stored chunks (the dask chunks, or the shards and
    inner chunks that :func:`build_dataset` put in the variables' encoding)."""
    encoding: dict[str, dict] = {"time": dict(TIME_ENCODING)}
    for name, var in ds.data_vars.items():
        chunks = tuple(c[0] for c in var.chunks or ())
        encoding[str(name)] = {
            "chunks": chunks,
            **{k: v for k, v in var.encoding.items() if k in ("chunks", "shards")},
            "compressors": [ZstdCodec(level=ZSTD_LEVEL)],
        }
    return encoding


def write_new_cube(ds: xr.Dataset, path: str | Path) -> None:
    """Write a brand-new cube: to a temporary sibling directory, renamed into place at the end.

    Raises
    ------
    OutputError
        When ``path`` already exists.
    """
    path = Path(path)
    if path.exists():
        raise OutputError(f"{path}: already exists")
    grid = cube_grid(ds)
    ds = ds.assign_attrs(geozarr_attrs(grid.crs, grid.transform, grid.shape))
    with staged(path) as staging:
        ds.to_zarr(staging, mode="w-", consolidated=False, zarr_format=3, encoding=_encoding(ds))
        consolidate(staging)


#: Per-date bookkeeping coordinates that cubes written by earlier versions may lack.
_OPTIONAL_KINDS = ("revision", "valid_fraction")


def _time_only(ds: xr.Dataset, path: str | Path) -> xr.Dataset:
    """Drop every variable without a time dimension (they are already in the store), and the
    bookkeeping coordinates the store predates (revision stamps, valid fractions)."""
    stored = set(open_group(path).array_keys())
    optional = {f"{sensor}_{kind}" for sensor in SENSORS for kind in _OPTIONAL_KINDS}
    dropped = [n for n, v in ds.variables.items() if "time" not in v.dims]
    dropped += [n for n in ds.variables if n in optional and n not in stored]
    return ds.drop_vars(dropped)


def append_dates(ds: xr.Dataset, path: str | Path) -> None:
    """Append the dates of ``ds`` (all cube variables) along ``time`` to an existing cube.

    All or nothing (:func:`stfcube.pipeline.store.journal.journaled_write`): if the write fails or
    the process is killed, the cube is rolled back to exactly what it was, never left with dates
    in ``time`` whose data were not written.
    """
    stored = zarr.open_array(str(Path(path) / "time"), mode="r").shape[0]
    with journaled_write(path, range(stored, stored + ds.sizes["time"])):
        _time_only(ds, path).to_zarr(path, append_dim="time", consolidated=False, zarr_format=3)
        consolidate(path)


def write_date(ds: xr.Dataset, path: str | Path, index: int) -> None:
    """Region-write one date (``ds`` has time length 1) at time position ``index`` of a cube.

    Only the variables present in ``ds`` are written (for example ``fine``, ``fine_valid`` and
    ``fine_observed``), so the other sensor's data at that date are left as they are. All or
    nothing, as :func:`append_dates`.
    """
    with journaled_write(path, [index]):
        _time_only(ds, path).to_zarr(
            path, region={"time": slice(index, index + 1)}, consolidated=False, zarr_format=3
        )
        consolidate(path)


def merge_source_attrs(path: str | Path, var_attrs: dict[str, dict]) -> None:
    """Fold the source decoding of newly written scenes into the variables' attributes.

    ``source_scale``/``source_offset``/``source_nodata`` stay a single value while all scenes
    agree and become the sorted list of distinct values otherwise.
    """
    group = open_group(path, mode="r+")
    for name, attrs in var_attrs.items():
        if name not in group:
            continue
        array = group[name]
        stored: dict[str, Any] = dict(array.attrs.asdict())
        updates = {
            key: _merge(stored[key], attrs[key]) if key in stored else attrs[key]
            for key in SOURCE_ATTRS
        }
        if any(updates[key] != array.attrs.get(key) for key in SOURCE_ATTRS):
            array.attrs.update(updates)
    consolidate(path)


def summarise(values: Iterable[float | None]) -> float | list | None:
    """One value when all agree, else the sorted distinct values (``None`` sorts first)."""
    distinct = sorted(set(values), key=lambda v: (v is not None, v if v is not None else 0.0))
    return distinct[0] if len(distinct) == 1 else distinct


def _merge(old: float | list | None, new: float | list | None) -> float | list | None:
    def _as_list(value: float | list | None) -> list:
        return list(value) if isinstance(value, list) else [value]

    return summarise([*_as_list(old), *_as_list(new)])
