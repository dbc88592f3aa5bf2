"""Find catalog items and load them, decoded and masked, onto one target grid.

Sources of items (:func:`find_items`):

- a STAC API URL (``http(s)://...``, searched with pystac-client by collection ids, bbox and
  date range);
- a static catalog (a ``catalog.json`` / ``collection.json`` path, walked with pystac);
- item JSON files (a single Item, a FeatureCollection or a JSON array of Items per file).

Loading (:func:`load_sensor`) goes through ``odc.stac.load`` onto an odc-geo ``GeoBox``, lazily
(dask chunks). Items are first *normalised* (:func:`prepare_item`): their band and QA assets
are re-keyed to the cube's band names, and ``raster:bands`` gets the collection's default
``nodata`` and data type where the catalog omits them, so that one load can mix catalogs and
sensors (HLS L30 and S30, PC and USGS Landsat). Items of one date are fused by odc-stac in the
target grid (first valid pixel wins), which stitches scenes from several UTM zones into one
seamless image. MODIS items, whose CRS is only ``proj:wkt2`` (``proj:epsg: null``), are
reprojected from the sinusoidal grid. Resampling per sensor is stated in
:mod:`pipeline.ingest.catalog.collections`.

The coarse sensor is loaded twice: onto the fine grid and onto its *native-size* grid, the
fine grid coarsened by the integer ratio ``ceil(coarse pixel / fine pixel)`` (MODIS 463.3 m over
Landsat 30 m: 15.44, so 16 x 30 m = 480 m), which nests exactly in the fine grid.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import odc.stac
import pystac
import pystac_client
import rasterio
import xarray as xr
from odc.geo import xy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox
from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info

from pipeline.errors import ConfigError, InputError
from pipeline.ingest.catalog.collections import (
    DATE_RULES,
    DERIVED_BANDS,
    QA_RESAMPLING,
    CollectionSpec,
    Decoding,
    collection_spec,
)
from pipeline.ingest.catalog.qa import decoder
from pipeline.store.cube import COMMON_UNIT_FACTOR

#: Key of the QA asset in normalised items (``stfcube_qa_<band>`` for per-band QA).
QA_KEY = "stfcube_qa"
#: The MODIS sinusoidal CRS (sphere of radius 6371007.181 m), used when an item has no CRS.
MODIS_SINUSOIDAL = CRS.from_proj4(
    "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
)

BBox = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# Finding items


def parse_bbox(text: str) -> BBox:
    """``"W,S,E,N"`` (degrees) to a tuple, checked.

    Raises
    ------
    ConfigError
        When it is not four numbers with W < E and S < N inside lon/lat bounds.
    """
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"bbox {text!r} is not four comma-separated numbers W,S,E,N") from exc
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise ConfigError(f"bbox {text!r} is not W<E, S<N in degrees")
    return west, south, east, north


def parse_dates(text: str) -> tuple[dt.datetime, dt.datetime]:
    """``"YYYY-MM-DD/YYYY-MM-DD"`` (inclusive days) to UTC datetimes (start, end of day).

    Raises
    ------
    ConfigError
        When the range is malformed or reversed.
    """
    try:
        first, last = (dt.date.fromisoformat(p.strip()) for p in text.split("/"))
    except ValueError as exc:
        raise ConfigError(f"date range {text!r} is not YYYY-MM-DD/YYYY-MM-DD") from exc
    if last < first:
        raise ConfigError(f"date range {text!r} ends before it starts")
    start = dt.datetime.combine(first, dt.time.min, dt.UTC)
    end = dt.datetime.combine(last, dt.time.max, dt.UTC)
    return start, end


def find_items(
    source: str | Path | Sequence[str | Path],
    *,
    collections: Sequence[str],
    bbox: BBox | None = None,
    dates: tuple[dt.datetime, dt.datetime] | None = None,
) -> list[pystac.Item]:
    """Items of some collections intersecting a region and date range.

    Parameters
    ----------
    source
        A STAC API URL, a static catalog file, or one or more item JSON files.
    collections
        Collection ids to keep (as the catalog spells them).
    bbox
        Region (W, S, E, N degrees), or None for everything.
    dates
        Inclusive (start, end) datetimes, or None for everything.

    Returns
    -------
    list of pystac.Item
        In the source's order.

    Raises
    ------
    InputError
        When the source cannot be read or an item is malformed (named by its id).
    """
    if isinstance(source, str | Path) and str(source).startswith(("http://", "https://")):
        return search_api(str(source), collections=collections, bbox=bbox, dates=dates)
    paths = [source] if isinstance(source, str | Path) else list(source)
    if len(paths) == 1 and _is_catalog(Path(paths[0])):
        items = read_static_catalog(paths[0])
    else:
        items = [item for path in paths for item in read_item_files(path)]
    return [i for i in items if _matches(i, collections, bbox, dates)]


def search_api(
    url: str,
    *,
    collections: Sequence[str],
    bbox: BBox | None,
    dates: tuple[dt.datetime, dt.datetime] | None,
) -> list[pystac.Item]:
    """Search a STAC API (pystac-client ``/search``).

    Raises
    ------
    InputError
        When the API cannot be reached or answers an error.
    """
    try:
        client = pystac_client.Client.open(url)
        search = client.search(collections=list(collections), bbox=bbox, datetime=dates)
        documents = list(search.items_as_dicts())
    except (pystac_client.exceptions.APIError, OSError, pystac.STACError, ValueError) as exc:
        raise InputError(url, f"STAC API search failed ({exc})") from exc
    return [_item_from_dict(d, url) for d in documents]


def read_static_catalog(path: str | Path) -> list[pystac.Item]:
    """Every item of a static catalog or collection, recursively.

    Raises
    ------
    InputError
        When the catalog or one of its items cannot be read.
    """
    try:
        catalog = pystac.read_file(str(path))
        if not isinstance(catalog, pystac.Catalog):
            raise InputError(path, "is a STAC Item, not a catalog or collection")
        return list(catalog.get_items(recursive=True))
    except (OSError, pystac.STACError, ValueError, KeyError) as exc:
        raise InputError(path, f"cannot read the static catalog ({exc})") from exc


def read_item_files(path: str | Path) -> list[pystac.Item]:
    """Items of one JSON file: an Item, a FeatureCollection or an array of Items.

    Relative asset hrefs are resolved against the file's directory.

    Raises
    ------
    InputError
        When the file is missing or not JSON, or an item is malformed (naming its id).
    """
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read item JSON ({exc})") from exc
    if isinstance(document, dict) and document.get("type") == "FeatureCollection":
        document = document.get("features", [])
    documents = document if isinstance(document, list) else [document]
    items = [_item_from_dict(d, str(path)) for d in documents]
    for item in items:
        item.set_self_href(str(Path(path).resolve()))
        item.make_asset_hrefs_absolute()
    return items


def _item_from_dict(document: Any, path: str) -> pystac.Item:
    """A pystac Item from a JSON document, or an :class:`InputError` naming the item."""
    item_id = document.get("id", "?") if isinstance(document, dict) else "?"
    if not isinstance(document, dict) or document.get("type") != "Feature":
        raise InputError(path, f"item {item_id}: not a STAC Item (type must be Feature)")
    props = document.get("properties") or {}
    interval = props.get("start_datetime") and props.get("end_datetime")
    if props.get("datetime") is None and not interval:
        raise InputError(
            path, f"item {item_id}: datetime is null and there is no start_datetime/end_datetime"
        )
    try:
        item = pystac.Item.from_dict(document, preserve_dict=True)
    except (pystac.STACError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"item {item_id}: not a valid STAC Item ({exc})") from exc
    return item


def _is_catalog(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("type") in ("Catalog", "Collection")
    except (OSError, ValueError, AttributeError):
        return False


def _matches(
    item: pystac.Item,
    collections: Sequence[str],
    bbox: BBox | None,
    dates: tuple[dt.datetime, dt.datetime] | None,
) -> bool:
    if item.collection_id not in collections:
        return False
    if bbox is not None and item.bbox is not None:
        w, s, e, n = item.bbox[:2] + item.bbox[-2:] if len(item.bbox) == 6 else item.bbox
        if e < bbox[0] or w > bbox[2] or n < bbox[1] or s > bbox[3]:
            return False
    if dates is not None:
        first, last = _interval(item)
        if last < dates[0] or first > dates[1]:
            return False
    return True


def _interval(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    if start is None or end is None:
        raise InputError(item.id, "datetime is null and there is no start_datetime/end_datetime")
    return start, end


# --------------------------------------------------------------------------------------------
# Normalising items


@dataclass(frozen=True)
class PreparedItem:
    """A catalog item ready for ``odc.stac.load``.

    Attributes
    ----------
    item
        Copy of the item whose assets are exactly the cube bands (keyed by band name) and the
        QA layer(s) (:data:`QA_KEY`), with ``raster:bands`` completed.
    spec
        Its collection table.
    day
        Its cube date (``datetime64[D]``, by the collection's date rule).
    decoding
        Band name -> decoding to physical values.
    """

    item: pystac.Item
    spec: CollectionSpec
    day: np.datetime64
    decoding: dict[str, Decoding]


def item_day(item: pystac.Item, rule: str) -> np.datetime64:
    """The cube date of an item.

    Parameters
    ----------
    item
        The item.
    rule
        ``"solar_day"``: the local solar day of ``datetime`` at the item's centre longitude;
        ``"midpoint"``: the day holding the midpoint of ``start_datetime``/``end_datetime``
        (``datetime`` when there is no interval).

    Raises
    ------
    InputError
        When the item has neither a datetime nor an interval.
    """
    if rule not in DATE_RULES:
        raise ConfigError(f"unknown date rule {rule!r}")
    start, end = _interval(item)
    if rule == "midpoint":
        moment = start + (end - start) / 2
    else:
        moment = item.datetime or start
        if item.bbox is not None:
            lon = (item.bbox[0] + item.bbox[-2]) / 2
            moment += dt.timedelta(hours=lon / 15.0)
    return np.datetime64(moment.date(), "D")


def _asset_key(item: pystac.Item, candidates: tuple[str, ...], what: str) -> str:
    for key in candidates:
        if key in item.assets:
            return key
    raise InputError(item.id, f"has no asset for {what} (looked for {', '.join(candidates)})")


def prepare_item(item: pystac.Item, bands: Sequence[str]) -> PreparedItem:
    """Re-key an item's assets to cube bands and complete their ``raster:bands``.

    Parameters
    ----------
    item
        A catalog item of a supported collection.
    bands
        Cube band names to read (derived bands such as ``ndvi`` read their inputs).

    Returns
    -------
    PreparedItem

    Raises
    ------
    InputError
        Naming the item, when its collection is unknown, a band is not in its collection or
        has no asset, or it lacks a CRS the loader can use.
    """
    spec = collection_spec(item.collection_id, item.id)
    read = _bands_to_read(spec, bands, item.id)
    assets: dict[str, pystac.Asset] = {}
    decoding: dict[str, Decoding] = {}
    for band in read:
        key = _asset_key(item, spec.bands[band], f"band {band}")
        decoding[band] = spec.item_decoding(item, key)
        assets[band] = _completed(item.assets[key], decoding[band].nodata, decoding[band].data_type)
    fill = spec.qa_fill()
    if spec.band_qa:
        for band in read:
            key = _asset_key(item, spec.band_qa[band], f"the QA of band {band}")
            assets[f"{QA_KEY}_{band}"] = _completed(item.assets[key], fill, spec.qa_data_type)
    else:
        key = _asset_key(item, spec.qa_assets, f"its QA layer ({spec.qa_decoder})")
        assets[QA_KEY] = _completed(item.assets[key], fill, spec.qa_data_type)
    clone = item.clone()
    clone.assets = {}
    clone.set_self_href(None)  # hrefs are absolute now: nothing may re-resolve them
    for key, asset in assets.items():
        clone.add_asset(key, asset)
    _ensure_crs(clone, spec)
    return PreparedItem(clone, spec, item_day(item, spec.date_rule), decoding)


def _bands_to_read(spec: CollectionSpec, bands: Sequence[str], item_id: str) -> list[str]:
    read: list[str] = []
    for band in bands:
        if band in spec.bands:
            needed: Iterable[str] = (band,)
        elif band in DERIVED_BANDS and spec.has_band(band):
            needed = DERIVED_BANDS[band]
        else:
            raise InputError(
                item_id,
                f"band {band!r} is not available in collection {spec.name} "
                f"(it has {', '.join(spec.bands)})",
            )
        read.extend(b for b in needed if b not in read)
    return read


def _absolute_href(asset: pystac.Asset) -> str:
    """The asset's href: as written when it is a URL or an absolute local path, else resolved
    against the item's location."""
    href = asset.href
    if "://" in href or Path(href).is_absolute():
        return href
    return asset.get_absolute_href() or href


def _completed(asset: pystac.Asset, nodata: float | None, data_type: str) -> pystac.Asset:
    """Copy of an asset whose first ``raster:bands`` entry has ``nodata`` and ``data_type``."""
    copy = asset.clone()
    copy.href = _absolute_href(asset)
    copy.owner = None
    bands = [dict(b) for b in copy.extra_fields.get("raster:bands") or [{}]]
    bands[0].setdefault("data_type", data_type)
    if nodata is not None:
        bands[0].setdefault("nodata", nodata)
    copy.extra_fields["raster:bands"] = bands
    return copy


def _ensure_crs(item: pystac.Item, spec: CollectionSpec) -> None:
    """Give MODIS items without any CRS field the sinusoidal WKT2; reject other CRS-less items."""
    props = item.properties
    has_crs = any(props.get(k) for k in ("proj:epsg", "proj:wkt2", "proj:projjson", "proj:code"))
    has_grid = props.get("proj:transform") and props.get("proj:shape")
    asset_grids = all(
        a.extra_fields.get("proj:transform") and a.extra_fields.get("proj:shape")
        for a in item.assets.values()
    )
    if has_crs and (has_grid or asset_grids):
        return
    if not has_crs and spec.sensor.startswith("modis") and has_grid:
        props["proj:wkt2"] = MODIS_SINUSOIDAL.to_wkt()
        return
    raise InputError(
        item.id,
        "has no usable projection metadata (proj:epsg or proj:wkt2 with proj:shape and "
        "proj:transform); it cannot be placed on the target grid",
    )


def prepare_items(items: Sequence[pystac.Item], bands: Sequence[str]) -> list[PreparedItem]:
    """:func:`prepare_item` for every item; an empty list is an error."""
    if not items:
        raise InputError(None, "no catalog items matched the collections, region and dates")
    return [prepare_item(item, bands) for item in items]


def check_assets(prepared: Sequence[PreparedItem], *, workers: int = 8) -> None:
    """Open every asset's header (in threads) so that unreachable hrefs fail early.

    Raises
    ------
    InputError
        Naming the item, the asset and the href that cannot be opened.
    """

    def _probe(job: tuple[str, str, str]) -> None:
        item_id, key, href = job
        try:
            with rasterio.open(href):
                pass
        except (rasterio.errors.RasterioIOError, OSError) as exc:
            raise InputError(item_id, f"asset {key} cannot be read from {href} ({exc})") from exc

    jobs = [(p.item.id, k, a.href) for p in prepared for k, a in p.item.assets.items()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_probe, jobs))


# --------------------------------------------------------------------------------------------
# Grids


def target_geobox(
    bbox: BBox,
    fine: Sequence[PreparedItem],
    *,
    crs: str | None = None,
    resolution: float | None = None,
) -> GeoBox:
    """The fine grid: the region in one CRS, pixel-aligned with the fine scenes.

    Parameters
    ----------
    bbox
        Region (W, S, E, N degrees).
    fine
        The prepared fine items (may be empty: then ``crs`` defaults to the region's UTM zone
        and ``resolution`` must be given).
    crs
        Target CRS; default the most common EPSG code of the fine items, else the UTM zone of
        the region's centre.
    resolution
        Pixel size in CRS units; default the fine collection's native resolution.

    Returns
    -------
    odc.geo.geobox.GeoBox
        Covering ``bbox``; its pixel edges fall on those of the fine scenes in that CRS.
    """
    target = crs or _most_common_epsg([_item_epsg(p.item) for p in fine]) or _utm_crs(bbox)
    if resolution is None:
        if not fine:
            raise ConfigError("give a resolution: without a fine sensor it has no default")
        resolution = fine[0].spec.native_resolution
    anchor = _anchor(fine, CRS.from_user_input(target), resolution)
    projected = BoundingBox(*bbox, crs="EPSG:4326").to_crs(target)
    return GeoBox.from_bbox(projected, crs=target, resolution=resolution, anchor=anchor)


def _item_epsg(item: pystac.Item) -> int | None:
    """The item-level EPSG code (``proj:epsg``, or ``proj:code`` as pystac migrates it)."""
    props = item.properties
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return props.get("proj:epsg")


def _most_common_epsg(epsgs: Sequence[int | None]) -> str | None:
    codes = Counter(e for e in epsgs if e)
    return f"EPSG:{codes.most_common(1)[0][0]}" if codes else None


def _utm_crs(bbox: BBox) -> str:
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    info = query_utm_crs_info(
        datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat)
    )
    return f"EPSG:{info[0].code}"


def _anchor(fine: Sequence[PreparedItem], crs: CRS, resolution: float) -> Any:
    """Sub-pixel offset of the fine scenes' pixel edges in ``crs`` (default: on the axes)."""
    for p in fine:
        epsg, transform = _item_epsg(p.item), p.item.properties.get("proj:transform")
        same_grid = transform and math.isclose(transform[0], resolution)
        if epsg and same_grid and CRS.from_epsg(epsg) == crs:
            return xy_((transform[2] / resolution) % 1.0, (transform[5] / resolution) % 1.0)
    return "default"


def coarse_ratio(fine_resolution: float, coarse_resolution: float) -> int:
    """Integer ratio of the native coarse grid: ``ceil(coarse / fine)`` (never finer than the
    source; 463.3 m over 30 m gives 16, i.e. 480 m)."""
    return max(1, math.ceil(coarse_resolution / fine_resolution - 1e-9))


def native_geobox(fine: GeoBox, ratio: int) -> GeoBox:
    """The fine grid coarsened by ``ratio``: same origin, ``ceil(shape / ratio)`` pixels."""
    t = fine.transform
    height, width = fine.shape
    return GeoBox(
        (-(-height // ratio), -(-width // ratio)),
        type(t)(t.a * ratio, 0.0, t.c, 0.0, t.e * ratio, t.f),
        fine.crs,
    )


# --------------------------------------------------------------------------------------------
# Loading


@dataclass(frozen=True)
class SensorData:
    """One sensor's images on one grid, decoded to common units.

    Attributes
    ----------
    values
        (time, band, y, x) float32 DataArray, reflectance x 10000 (or index x 10000); NaN where
        not valid. Dask-backed.
    valid
        (time, y, x) bool DataArray: inside a scene, no band at nodata or out of range, QA clear.
    items
        Per date, the ids of the items fused into it.
    decoding
        Per band, the distinct (scale, offset, nodata) of the sources, in common units.
    """

    values: xr.DataArray
    valid: xr.DataArray
    items: dict[np.datetime64, tuple[str, ...]]
    decoding: dict[str, tuple[tuple[float, float, float | None], ...]]


def load_sensor(
    prepared: Sequence[PreparedItem],
    bands: Sequence[str],
    geobox: GeoBox,
    *,
    resampling: str,
    chunk: int = 512,
    invalid: Iterable[str] | None = None,
) -> SensorData:
    """Load one sensor's items onto a grid, one image per date.

    Parameters
    ----------
    prepared
        Items of one sensor (:func:`prepare_items`), possibly of several collections with the
        same QA layout.
    bands
        Cube band names, in cube order.
    geobox
        Target grid.
    resampling
        Resampling of the band assets where reprojected (QA always ``nearest``).
    chunk
        Spatial dask chunk size.
    invalid
        QA flag names counted invalid; None for the layout's defaults.

    Returns
    -------
    SensorData
        Lazy (dask) arrays; nothing is read yet.
    """
    qa_name = _one_qa_layout(prepared)
    qa = decoder(qa_name)
    flags = qa.default_invalid if invalid is None else frozenset(invalid)
    days = sorted({p.day for p in prepared})
    day_of = {id(p.item): p.day for p in prepared}
    keys = list(dict.fromkeys(k for p in prepared for k in p.item.assets))
    read_bands = [k for k in keys if not k.startswith(QA_KEY)]
    loaded = odc.stac.load(
        [p.item for p in prepared],
        bands=keys,
        geobox=geobox,
        groupby=lambda item, parsed, idx: day_of[id(item)],
        resampling={k: QA_RESAMPLING if k.startswith(QA_KEY) else resampling for k in keys},
        chunks={"y": chunk, "x": chunk},
        fail_on_error=True,
    )
    loaded = loaded.assign_coords(time=np.asarray(days, dtype="datetime64[ns]"))
    decodings = _decodings_per_day(prepared, days, read_bands)
    physical = {b: _decode(loaded[b], decodings[b]) for b in read_bands}
    valid = _qa_valid(loaded, qa.decode, flags)
    for band in read_bands:
        valid = valid & np.isfinite(physical[band])
    layers = [_band_values(physical, band) for band in bands]
    values = xr.concat(layers, dim="band").assign_coords(band=list(bands))
    values = values.transpose("time", "band", "y", "x")
    values = values.where(valid).astype(np.float32)
    items = {d: tuple(p.item.id for p in prepared if p.day == d) for d in days}
    return SensorData(values, valid, items, _summary(decodings))


def _one_qa_layout(prepared: Sequence[PreparedItem]) -> str:
    layouts = {p.spec.qa_decoder for p in prepared}
    if len(layouts) != 1:
        raise ConfigError(
            f"one sensor mixes QA layouts {sorted(layouts)}; load them as separate sensors"
        )
    return layouts.pop()


def _decodings_per_day(
    prepared: Sequence[PreparedItem], days: Sequence[np.datetime64], bands: Sequence[str]
) -> dict[str, list[Decoding]]:
    """Per band, the decoding of each date; the items fused into one date must agree."""
    result: dict[str, list[Decoding]] = {b: [] for b in bands}
    for day in days:
        group = [p for p in prepared if p.day == day]
        for band in bands:
            found = {p.decoding[band] for p in group if band in p.decoding}
            if len(found) != 1:
                ids = ", ".join(p.item.id for p in group)
                raise InputError(
                    ids, f"items of {day} decode band {band} differently: {sorted(map(str, found))}"
                )
            result[band].append(found.pop())
    return result


def _decode(raw: xr.DataArray, decodings: Sequence[Decoding]) -> xr.DataArray:
    """Raw counts (time, y, x) to common units, NaN at nodata or out of the valid range."""

    def _per_day(values: list[float | None], missing: float) -> xr.DataArray:
        return xr.DataArray([missing if v is None else v for v in values], dims="time")

    scale = _per_day([d.scale for d in decodings], 1.0)
    offset = _per_day([d.offset for d in decodings], 0.0)
    fill = _per_day([d.nodata for d in decodings], np.nan)
    low = _per_day([d.valid_range and d.valid_range[0] for d in decodings], -np.inf)
    high = _per_day([d.valid_range and d.valid_range[1] for d in decodings], np.inf)
    ok = (raw != fill) & (raw >= low) & (raw <= high)
    physical = raw.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32)
    return (physical * np.float32(COMMON_UNIT_FACTOR)).where(ok)


def _qa_valid(loaded: xr.Dataset, decode: Any, flags: frozenset[str]) -> xr.DataArray:
    qa_vars = [k for k in loaded.data_vars if str(k).startswith(QA_KEY)]
    valid = decode(loaded[qa_vars[0]], flags)
    for name in qa_vars[1:]:
        valid = valid & decode(loaded[name], flags)
    return valid


def _band_values(physical: dict[str, xr.DataArray], band: str) -> xr.DataArray:
    if band in physical:
        return physical[band]
    red, nir = (physical[b] for b in DERIVED_BANDS[band])
    return (nir - red) / (nir + red) * np.float32(COMMON_UNIT_FACTOR)


def _summary(
    decodings: dict[str, list[Decoding]],
) -> dict[str, tuple[tuple[float, float, float | None], ...]]:
    """Per band read, the distinct (scale, offset, nodata) to common units."""
    return {
        band: tuple(
            sorted(
                {
                    (d.scale * COMMON_UNIT_FACTOR, d.offset * COMMON_UNIT_FACTOR, d.nodata)
                    for d in days
                },
                key=str,
            )
        )
        for band, days in decodings.items()
    }
