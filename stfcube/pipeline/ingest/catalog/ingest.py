"""Catalog items (STAC API, static catalog, item files) into a new or an existing cube.

:func:`ingest_catalog` finds the fine and coarse items of a region and date range, checks every
item (collection known, bands and QA present, projection usable, assets readable) *before*
writing anything, loads them lazily onto one grid (:mod:`stfcube.pipeline.ingest.catalog.load`) and
writes with :mod:`stfcube.pipeline.store.cube`: a new cube to a temporary sibling renamed into
place; into an
existing cube (on its own grid and bands) only the images it lacks, new dates appended along
``time`` and a sensor's image for a date that has only the other sensor region-written there,
as the manifest ingest of :mod:`stfcube.pipeline.ingest.scenes` does.

Per date the valid fraction of each sensor over the grid is recorded in the cube attributes
``fine_valid_fraction`` / ``coarse_valid_fraction`` (``{"YYYY-MM-DD": fraction}``); fine dates
below ``flag_below`` are listed in ``fine_flagged_dates``. They are still ingested: the fusion
engine skips pairs by ``fine_valid`` itself.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.ingest.catalog.collections import (
    COARSE_RESAMPLING,
    FINE_RESAMPLING,
    NATIVE_RESAMPLING,
    collection_spec,
    common_bands,
)
from stfcube.pipeline.ingest.catalog.find import BBox, find_items, parse_bbox, parse_dates
from stfcube.pipeline.ingest.catalog.grids import (
    coarse_ratio,
    geobox_of,
    grid_of,
    native_geobox,
    target_geobox,
)
from stfcube.pipeline.ingest.catalog.load import SensorData, load_sensor
from stfcube.pipeline.ingest.catalog.prepare import PreparedItem, check_assets, prepare_items
from stfcube.pipeline.ingest.scenes import (
    ImageKey,
    IngestReport,
    Layer,
    open_existing_cube,
    with_cube_attrs,
)
from stfcube.pipeline.store.cube import (
    COMMON_UNITS,
    DEFAULT_CHUNK,
    SCHEMA,
    SENSORS,
    append_dates,
    build_dataset,
    cube_grid,
    empty_layer,
    merge_source_attrs,
    native_cube_grid,
    open_store,
    summarise,
    write_date,
    write_new_cube,
)
from stfcube.pipeline.store.metadata import consolidate, open_group


@dataclass(frozen=True)
class CatalogQuery:
    """What to take from a catalog and how to grid it.

    Attributes
    ----------
    fine, coarse
        Collection ids of each sensor (either may be empty, not both).
    bbox
        Region, W, S, E, N in degrees.
    dates
        Inclusive (start, end) datetimes, or None for all.
    bands
        Cube band names; default: every band both sensors have, in canonical order.
    crs, resolution
        Target grid; default the fine scenes' CRS (else the region's UTM zone) and resolution.
    fine_invalid, coarse_invalid
        QA flags counted invalid; None for each layout's defaults.
    flag_below
        Fine dates with a smaller valid fraction are listed in ``fine_flagged_dates``.
    check_assets
        Open every asset before writing so that unreachable hrefs fail early.
    """

    fine: tuple[str, ...]
    coarse: tuple[str, ...]
    bbox: BBox
    dates: tuple[dt.datetime, dt.datetime] | None = None
    bands: tuple[str, ...] | None = None
    crs: str | None = None
    resolution: float | None = None
    fine_invalid: tuple[str, ...] | None = None
    coarse_invalid: tuple[str, ...] | None = None
    flag_below: float = 0.5
    check_assets: bool = True


def catalog_query(
    fine: str | None,
    coarse: str | None,
    bbox: str | None,
    dates: str | None,
    *,
    crs: str | None = None,
    resolution: float | None = None,
    bands: str | None = None,
) -> CatalogQuery | None:
    """A :class:`CatalogQuery` from command-line strings, or None when no collection is named.

    Parameters
    ----------
    fine, coarse
        Comma-separated collection ids.
    bbox
        ``W,S,E,N`` in degrees (required with a collection).
    dates
        ``YYYY-MM-DD/YYYY-MM-DD`` (inclusive), or None for all dates.
    crs, resolution, bands
        Optional grid and band choices (``bands`` comma-separated).

    Raises
    ------
    ConfigError
        When a collection is named without a bbox, or a value is malformed.
    """
    if not fine and not coarse:
        return None
    if not bbox:
        raise ConfigError("a catalog ingest needs --bbox W,S,E,N")

    def _ids(text: str | None) -> tuple[str, ...]:
        return tuple(v.strip() for v in (text or "").split(",") if v.strip())

    return CatalogQuery(
        fine=_ids(fine),
        coarse=_ids(coarse),
        bbox=parse_bbox(bbox),
        dates=parse_dates(dates) if dates else None,
        bands=_ids(bands) or None,
        crs=crs,
        resolution=resolution,
    )


def ingest_catalog(
    source: str | Path | Sequence[str | Path],
    cube_path: str | Path,
    query: CatalogQuery,
    *,
    chunk: int = DEFAULT_CHUNK,
    overwrite: bool = False,
) -> IngestReport:
    """Ingest the fine and coarse catalog items of a region and date range into a cube.

    A new cube takes its grid from the query
    (:func:`~stfcube.pipeline.ingest.catalog.grids.target_geobox`).
    An existing cube keeps its grid, native coarse grid, bands and resampling: the items are
    loaded onto them, dates it lacks are appended along ``time``, a sensor's image for a date
    that so far has only the other sensor is region-written into that date, and images it
    already has are skipped (reported), or rewritten in place with ``overwrite`` (a reprocessed
    collection). Everything is checked before anything is written.

    Parameters
    ----------
    source
        STAC API URL, static catalog path, or item JSON file(s).
    cube_path
        The cube's Zarr store; created when absent, appended to when it is a cube.
    query
        Collections, region, dates, bands, grid and QA choices (an existing cube ignores
        ``crs`` and ``resolution``; ``bands``, when given, must be the cube's).
    chunk
        Spatial chunk size.
    overwrite
        Rewrite the images the cube already has for the same sensor and date.

    Returns
    -------
    stfcube.pipeline.ingest.IngestReport

    Raises
    ------
    InputError
        Bad catalog metadata (naming the item id), unreadable assets, no items, a cube band
        missing from a collection, a cube without CRS; nothing written.
    ConfigError
        Bad query (no collection, unknown band or QA flag, bands other than the cube's).
    OutputError
        ``cube_path`` exists and is not a cube.
    """
    started = time.perf_counter()
    cube_path = Path(cube_path)
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive number of pixels, not {chunk}")
    cube = open_existing_cube(cube_path)
    cube_bands = tuple(str(b) for b in cube["band"].values) if cube is not None else None
    if cube_bands and query.bands and tuple(query.bands) != cube_bands:
        raise ConfigError(f"bands {list(query.bands)} differ from the cube's {list(cube_bands)}")
    fine, coarse, bands = _prepare(source, query, cube_bands)
    if query.check_assets:
        check_assets([*fine, *coarse])
    if cube is None:
        geobox = target_geobox(query.bbox, fine, crs=query.crs, resolution=query.resolution)
        native = _native_target(geobox, coarse)
        resampling = COARSE_RESAMPLING
    else:
        geobox, native = _cube_geoboxes(cube, cube_path)
        resampling = str(cube.attrs.get("resampling", COARSE_RESAMPLING))
    sensors = _load(fine, coarse, bands, geobox, native, query, resampling, chunk)
    keys = {(s, day) for s in SENSORS if s in sensors for day in sensors[s].items}
    var_attrs = _var_attrs(sensors)
    if cube is None:
        dates = sorted({day for _, day in keys})
        ds = _dataset(
            sensors,
            keys,
            dates,
            SENSORS,
            bands,
            geobox,
            native,
            chunk,
            attrs=_attrs(query, geobox, native),
            var_attrs=var_attrs,
        )
        write_new_cube(ds, cube_path)
        written: list[ImageKey] = sorted(keys)
        skipped: list[ImageKey] = []
        overwritten: list[ImageKey] = []
        n_times = len(dates)
    else:
        written, skipped, overwritten, n_times = _update(
            cube, cube_path, sensors, keys, bands, (geobox, native), chunk, overwrite
        )
        changed = {s for s, _ in written + overwritten}
        stems = [stem for stem in sensors if _sensor(stem) in changed]
        merge_source_attrs(cube_path, {stem: var_attrs[stem] for stem in stems})
    stored = sorted(written + overwritten)
    flagged = _record_attrs(cube_path, sensors, stored, query.flag_below) if stored else {}
    return IngestReport(
        cube_path=str(cube_path),
        created=cube is None,
        written=tuple(_labels(written)),
        skipped=tuple(_labels(skipped)),
        overwritten=tuple(_labels(overwritten)),
        ignored=0,
        n_times=n_times,
        bands=tuple(bands),
        shape=(int(geobox.shape[0]), int(geobox.shape[1])),
        coarse_native=native is not None,
        resampling=resampling,
        warnings=tuple(f"fine {d}: only {f:.0%} valid" for d, f in flagged.items()),
        seconds=time.perf_counter() - started,
    )


def _labels(keys: Sequence[ImageKey]) -> list[str]:
    return sorted(f"{sensor} {day}" for sensor, day in keys)


def _sensor(stem: str) -> str:
    """The sensor of a variable stem (``coarse_native`` belongs to ``coarse``)."""
    return "coarse" if stem == "coarse_native" else stem


def _prepare(
    source: str | Path | Sequence[str | Path],
    query: CatalogQuery,
    cube_bands: tuple[str, ...] | None,
) -> tuple[list[PreparedItem], list[PreparedItem], tuple[str, ...]]:
    if not query.fine and not query.coarse:
        raise ConfigError("name at least one fine or coarse collection")
    items = find_items(
        source, collections=(*query.fine, *query.coarse), bbox=query.bbox, dates=query.dates
    )
    if not items:
        raise InputError(str(source), "no item of the collections intersects the region and dates")
    first = {item.collection_id: item for item in reversed(items)}
    specs = {
        collection_spec(c, item.id).name: collection_spec(c, item.id) for c, item in first.items()
    }
    bands = cube_bands or query.bands or common_bands(*specs.values())
    if not bands:
        raise ConfigError(f"collections {', '.join(specs)} share no band; choose the bands")
    fine = [i for i in items if i.collection_id in query.fine]
    coarse = [i for i in items if i.collection_id in query.coarse]
    return (
        prepare_items(fine, bands) if fine else [],
        prepare_items(coarse, bands) if coarse else [],
        tuple(bands),
    )


def _native_target(geobox: GeoBox, coarse: list[PreparedItem]) -> GeoBox | None:
    """A new cube's native coarse grid: the fine grid coarsened to the coarse pixel size."""
    if not coarse:
        return None
    ratio = coarse_ratio(geobox.resolution.x, coarse[0].spec.native_resolution)
    return native_geobox(geobox, ratio) if ratio > 1 else None


def _cube_geoboxes(cube: xr.Dataset, path: Path) -> tuple[GeoBox, GeoBox | None]:
    """An existing cube's fine grid and native coarse grid (None when it has none)."""
    grid = cube_grid(cube)
    if grid.crs is None:
        raise InputError(path, "the cube has no CRS, so catalog items cannot be put on its grid")
    native = native_cube_grid(cube)
    return geobox_of(grid), geobox_of(native) if native is not None else None


def _load(
    fine: list[PreparedItem],
    coarse: list[PreparedItem],
    bands: tuple[str, ...],
    geobox: GeoBox,
    native: GeoBox | None,
    query: CatalogQuery,
    resampling: str,
    chunk: int,
) -> dict[str, SensorData]:
    """Per cube stem (fine, coarse, coarse_native), the lazy sensor data."""
    sensors: dict[str, SensorData] = {}
    if fine:
        sensors["fine"] = load_sensor(
            fine,
            bands,
            geobox,
            resampling=FINE_RESAMPLING,
            chunk=chunk,
            invalid=query.fine_invalid,
        )
    if coarse:
        sensors["coarse"] = load_sensor(
            coarse,
            bands,
            geobox,
            resampling=resampling,
            chunk=chunk,
            invalid=query.coarse_invalid,
        )
        if native is not None:
            sensors["coarse_native"] = load_sensor(
                coarse,
                bands,
                native,
                resampling=NATIVE_RESAMPLING,
                chunk=chunk,
                invalid=query.coarse_invalid,
            )
    return sensors


def _dataset(
    sensors: dict[str, SensorData],
    keys: set[ImageKey],
    dates: Sequence[np.datetime64],
    names: Sequence[str],
    bands: tuple[str, ...],
    geobox: GeoBox,
    native: GeoBox | None,
    chunk: int,
    *,
    attrs: dict | None = None,
    var_attrs: dict | None = None,
) -> xr.Dataset:
    """The lazy cube variables of the sensors ``names`` at ``dates``.

    A (sensor, date) in ``keys`` takes that sensor's image, any other an empty layer.
    """
    grids = {"fine": geobox, "coarse": geobox}
    if native is not None:
        grids["coarse_native"] = native

    def _layer(stem: str, day: np.datetime64) -> Layer:
        if (_sensor(stem), day) not in keys:
            height, width = grids[stem].shape
            return empty_layer(len(bands), (int(height), int(width)), chunk)
        when = day.astype("datetime64[ns]")
        data = sensors[stem]
        return data.values.sel(time=when).data, data.valid.sel(time=when).data

    layers: dict[str, Sequence[Layer]] = {
        stem: [_layer(stem, day) for day in dates] for stem in grids if _sensor(stem) in names
    }
    observed: dict[str, Sequence[bool]] = {s: [(s, d) in keys for d in dates] for s in SENSORS}
    return build_dataset(
        dates,
        layers,
        observed,
        grid_of(geobox),
        bands,
        chunk=chunk,
        native=grid_of(native) if native is not None else None,
        attrs=attrs,
        var_attrs=var_attrs,
    )


def _update(
    cube: xr.Dataset,
    cube_path: Path,
    sensors: dict[str, SensorData],
    keys: set[ImageKey],
    bands: tuple[str, ...],
    grids: tuple[GeoBox, GeoBox | None],
    chunk: int,
    overwrite: bool,
) -> tuple[list, list, list, int]:
    """Region-write the images of dates the cube has and append new dates.

    Returns the written, the skipped and the overwritten (sensor, date) keys and the new length
    of ``time``.
    """
    index = {np.datetime64(t, "D"): i for i, t in enumerate(cube["time"].values)}
    observed = {s: cube[f"{s}_observed"].values for s in SENSORS}
    present = sorted(k for k in keys if k[1] in index and observed[k[0]][index[k[1]]])
    skipped, overwritten = ([], present) if overwrite else (present, [])
    written = sorted(keys - set(present))
    in_place: dict[int, list[str]] = {}
    for sensor, day in written + overwritten:
        if day in index:
            in_place.setdefault(index[day], []).append(sensor)
    for position, names in sorted(in_place.items()):
        day = np.datetime64(cube["time"].values[position], "D")
        ds = _dataset(sensors, set(written + overwritten), [day], names, bands, *grids, chunk)
        write_date(with_cube_attrs(ds, cube), cube_path, position)
    new_dates = sorted({day for _, day in written if day not in index})
    if new_dates:
        ds = _dataset(sensors, set(written), new_dates, SENSORS, bands, *grids, chunk)
        append_dates(with_cube_attrs(ds, cube), cube_path)
    return written, skipped, overwritten, len(index) + len(new_dates)


def _var_attrs(sensors: dict[str, SensorData]) -> dict[str, dict]:
    attrs = {}
    for stem in ("fine", "coarse", "coarse_native"):
        entry: dict = {"units": COMMON_UNITS}
        if stem in sensors:
            triples = [t for per_band in sensors[stem].decoding.values() for t in per_band]
            entry.update(
                source_scale=summarise(t[0] for t in triples),
                source_offset=summarise(t[1] for t in triples),
                source_nodata=summarise(t[2] for t in triples),
            )
        attrs[stem] = entry
    return attrs


def _attrs(query: CatalogQuery, geobox: GeoBox, native: GeoBox | None) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "stfcube_schema": SCHEMA,
        "fine_sensor": ",".join(query.fine) or "none",
        "coarse_sensor": ",".join(query.coarse) or "none",
        "resampling": COARSE_RESAMPLING,
        "fine_resampling": FINE_RESAMPLING,
        "source": "stac",
    }
    if native is not None:
        attrs["coarse_ratio"] = round(native.resolution.x / geobox.resolution.x)
        attrs["coarse_native_resampling"] = NATIVE_RESAMPLING
    return attrs


def _record_attrs(
    cube_path: Path,
    sensors: dict[str, SensorData],
    written: Sequence[ImageKey],
    flag_below: float,
) -> dict[str, float]:
    """Merge the written images' item ids and valid fractions into the cube attributes.

    Sets ``fine_items``/``coarse_items``, ``fine_valid_fraction``/``coarse_valid_fraction``,
    ``fine_flagged_dates`` and ``fine_flag_threshold``; returns the flagged fine dates among
    those written, with their valid fraction.
    """
    ds = open_store(cube_path)
    index = {np.datetime64(t, "D"): i for i, t in enumerate(ds["time"].values)}
    group = open_group(cube_path, mode="r+")
    attrs: dict = {}
    for sensor in SENSORS:
        days = sorted(day for s, day in written if s == sensor)
        recorded = f"{sensor}_valid_fraction"  # absent from cubes of earlier versions
        shares = (
            ds[recorded] if recorded in ds.variables else ds[f"{sensor}_valid"].mean(("y", "x"))
        )
        fractions = shares.isel(time=[index[d] for d in days]).values if days else np.array([])
        attrs[f"{sensor}_items"] = {
            **_mapping_attr(group, f"{sensor}_items"),
            **{str(d): list(sensors[sensor].items[d]) for d in days},
        }
        attrs[f"{sensor}_valid_fraction"] = {
            **_mapping_attr(group, f"{sensor}_valid_fraction"),
            **{str(d): round(float(f), 6) for d, f in zip(days, fractions, strict=True)},
        }
    every = attrs["fine_valid_fraction"]
    attrs["fine_flagged_dates"] = sorted(d for d, f in every.items() if f < flag_below)
    attrs["fine_flag_threshold"] = flag_below
    group.attrs.update(attrs)
    consolidate(cube_path)
    fresh = {str(day) for sensor, day in written if sensor == "fine"}
    return {d: every[d] for d in attrs["fine_flagged_dates"] if d in fresh}


def _mapping_attr(group: zarr.Group, name: str) -> dict[str, Any]:
    """A mapping attribute of a Zarr group (empty when absent or not a mapping)."""
    value = group.attrs.get(name)
    return dict(value) if isinstance(value, Mapping) else {}
