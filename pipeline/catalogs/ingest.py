"""Catalog items (STAC API, static catalog, item files) into a new cube.

:func:`ingest_catalog` finds the fine and coarse items of a region and date range, checks every
item (collection known, bands and QA present, projection usable, assets readable) *before*
writing anything, loads them lazily onto one grid (:mod:`pipeline.catalogs.load`) and writes the
cube with :mod:`pipeline.cube` (a temporary sibling renamed into place).

Per date the valid fraction of each sensor over the grid is recorded in the cube attributes
``fine_valid_fraction`` / ``coarse_valid_fraction`` (``{"YYYY-MM-DD": fraction}``); fine dates
below ``flag_below`` are listed in ``fine_flagged_dates``. They are still ingested: the fusion
engine skips pairs by ``fine_valid`` itself.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS as RioCRS

from pipeline.catalogs.collections import (
    COARSE_RESAMPLING,
    FINE_RESAMPLING,
    NATIVE_RESAMPLING,
    collection_spec,
    common_bands,
)
from pipeline.catalogs.load import (
    BBox,
    PreparedItem,
    SensorData,
    check_assets,
    coarse_ratio,
    find_items,
    load_sensor,
    native_geobox,
    parse_bbox,
    parse_dates,
    prepare_items,
    target_geobox,
)
from pipeline.cube import (
    COMMON_UNITS,
    DEFAULT_CHUNK,
    SCHEMA,
    build_dataset,
    empty_layer,
    open_store,
    summarise,
    write_new_cube,
)
from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.ingest import IngestReport
from pipeline.readers import Grid


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
) -> IngestReport:
    """Ingest the fine and coarse catalog items of a region and date range into a new cube.

    Parameters
    ----------
    source
        STAC API URL, static catalog path, or item JSON file(s).
    cube_path
        The new cube's Zarr store (must not exist).
    query
        Collections, region, dates, bands, grid and QA choices.
    chunk
        Spatial chunk size.

    Returns
    -------
    pipeline.ingest.IngestReport

    Raises
    ------
    InputError
        Bad catalog metadata (naming the item id), unreadable assets, no items; nothing written.
    ConfigError
        Bad query (no collection, unknown band or QA flag).
    OutputError
        ``cube_path`` exists.
    """
    started = time.perf_counter()
    cube_path = Path(cube_path)
    if cube_path.exists():
        raise OutputError(f"{cube_path}: already exists (catalog ingest writes a new cube)")
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive number of pixels, not {chunk}")
    fine, coarse, bands = _prepare(source, query)
    if query.check_assets:
        check_assets([*fine, *coarse])
    geobox = target_geobox(query.bbox, fine, crs=query.crs, resolution=query.resolution)
    sensors = _load(fine, coarse, bands, geobox, query, chunk)
    ds = _dataset(sensors, bands, geobox, chunk, _attrs(query, sensors, geobox))
    write_new_cube(ds, cube_path)
    fractions = _record_valid_fractions(cube_path, query.flag_below)
    written = [f"{stem} {day}" for stem in ("fine", "coarse") if stem in sensors
               for day in sensors[stem].items]
    return IngestReport(
        cube_path=str(cube_path),
        created=True,
        written=tuple(sorted(written)),
        skipped=(),
        overwritten=(),
        ignored=0,
        n_times=ds.sizes["time"],
        bands=tuple(bands),
        shape=tuple(geobox.shape),
        coarse_native="coarse_native" in sensors,
        resampling=COARSE_RESAMPLING,
        warnings=tuple(f"fine {d}: only {f:.0%} valid" for d, f in fractions.items()),
        seconds=time.perf_counter() - started,
    )


def _prepare(
    source: str | Path | Sequence[str | Path], query: CatalogQuery
) -> tuple[list[PreparedItem], list[PreparedItem], tuple[str, ...]]:
    if not query.fine and not query.coarse:
        raise ConfigError("name at least one fine or coarse collection")
    items = find_items(
        source, collections=(*query.fine, *query.coarse), bbox=query.bbox, dates=query.dates
    )
    if not items:
        raise InputError(
            str(source), "no item of the collections intersects the region and dates"
        )
    first = {item.collection_id: item for item in reversed(items)}
    specs = {collection_spec(c, item.id).name: collection_spec(c, item.id)
             for c, item in first.items()}
    bands = query.bands or common_bands(*specs.values())
    if not bands:
        raise ConfigError(f"collections {', '.join(specs)} share no band; choose the bands")
    fine = [i for i in items if i.collection_id in query.fine]
    coarse = [i for i in items if i.collection_id in query.coarse]
    return (
        prepare_items(fine, bands) if fine else [],
        prepare_items(coarse, bands) if coarse else [],
        tuple(bands),
    )


def _load(
    fine: list[PreparedItem],
    coarse: list[PreparedItem],
    bands: tuple[str, ...],
    geobox: GeoBox,
    query: CatalogQuery,
    chunk: int,
) -> dict[str, SensorData]:
    """Per cube stem (fine, coarse, coarse_native), the lazy sensor data."""
    sensors: dict[str, SensorData] = {}
    if fine:
        sensors["fine"] = load_sensor(
            fine, bands, geobox, resampling=FINE_RESAMPLING, chunk=chunk,
            invalid=query.fine_invalid,
        )
    if coarse:
        sensors["coarse"] = load_sensor(
            coarse, bands, geobox, resampling=COARSE_RESAMPLING, chunk=chunk,
            invalid=query.coarse_invalid,
        )
        ratio = coarse_ratio(geobox.resolution.x, coarse[0].spec.native_resolution)
        if ratio > 1:
            sensors["coarse_native"] = load_sensor(
                coarse, bands, native_geobox(geobox, ratio), resampling=NATIVE_RESAMPLING,
                chunk=chunk, invalid=query.coarse_invalid,
            )
    return sensors


def _grid(geobox: GeoBox) -> Grid:
    return Grid(RioCRS.from_wkt(geobox.crs.to_wkt()), geobox.transform, *geobox.shape)


def _dataset(
    sensors: dict[str, SensorData],
    bands: tuple[str, ...],
    geobox: GeoBox,
    chunk: int,
    attrs: dict,
) -> xr.Dataset:
    dates = sorted({d for data in sensors.values() for d in data.items})
    grids = {"fine": geobox, "coarse": geobox}
    if "coarse_native" in sensors:
        grids["coarse_native"] = sensors["coarse_native"].values.odc.geobox
    layers: dict[str, list] = {stem: [] for stem in ("fine", "coarse", *sensors)}
    for stem in layers:
        data = sensors.get(stem)
        for day in dates:
            if data is None or day not in data.items:
                layers[stem].append(empty_layer(len(bands), tuple(grids[stem].shape), chunk))
                continue
            when = np.datetime64(day, "ns")
            layers[stem].append(
                (data.values.sel(time=when).data, data.valid.sel(time=when).data)
            )
    observed = {
        s: [s in sensors and d in sensors[s].items for d in dates] for s in ("fine", "coarse")
    }
    return build_dataset(
        dates, layers, observed, _grid(geobox), bands, chunk=chunk,
        native=_grid(grids["coarse_native"]) if "coarse_native" in grids else None,
        attrs=attrs, var_attrs=_var_attrs(sensors),
    )


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


def _attrs(query: CatalogQuery, sensors: dict[str, SensorData], geobox: GeoBox) -> dict:
    attrs = {
        "stfcube_schema": SCHEMA,
        "fine_sensor": ",".join(query.fine) or "none",
        "coarse_sensor": ",".join(query.coarse) or "none",
        "resampling": COARSE_RESAMPLING,
        "fine_resampling": FINE_RESAMPLING,
        "source": "stac",
        "fine_items": _items_attr(sensors.get("fine")),
        "coarse_items": _items_attr(sensors.get("coarse")),
    }
    if "coarse_native" in sensors:
        native = sensors["coarse_native"].values.odc.geobox
        attrs["coarse_ratio"] = round(native.resolution.x / geobox.resolution.x)
        attrs["coarse_native_resampling"] = NATIVE_RESAMPLING
    return attrs


def _items_attr(data: SensorData | None) -> dict[str, list[str]]:
    if data is None:
        return {}
    return {str(day): list(ids) for day, ids in data.items.items()}


def _record_valid_fractions(cube_path: Path, flag_below: float) -> dict[str, float]:
    """Write the per-date valid fractions into the cube attributes; return flagged fine dates."""
    ds = open_store(cube_path)
    days = [str(np.datetime64(t, "D")) for t in ds["time"].values]
    attrs: dict = {}
    for stem in ("fine", "coarse"):
        observed = ds[f"{stem}_observed"].values
        fraction = ds[f"{stem}_valid"].mean(("y", "x")).values
        attrs[f"{stem}_valid_fraction"] = {
            d: round(float(f), 6) for d, f, o in zip(days, fraction, observed, strict=True) if o
        }
    flagged = {d: f for d, f in attrs["fine_valid_fraction"].items() if f < flag_below}
    attrs["fine_flagged_dates"] = sorted(flagged)
    attrs["fine_flag_threshold"] = flag_below
    zarr.open_group(str(cube_path), mode="r+", zarr_format=3).attrs.update(attrs)
    return flagged
