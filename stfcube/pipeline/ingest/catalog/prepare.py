"""Normalising catalog items for one load: assets re-keyed to cube bands, metadata completed.

:func:`prepare_item` re-keys an item's band and QA assets to the cube's band names and gives
``raster:bands`` the collection's default ``nodata`` and data type where the catalog omits
them, so that one load can mix catalogs and sensors (HLS L30 and S30, PC and USGS Landsat).
MODIS items whose CRS is missing get the sinusoidal CRS. :func:`check_assets` opens every asset
before anything is written, so that unreachable hrefs fail early.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
from pyproj import CRS

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.ingest.catalog.collections import (
    DATE_RULES,
    DERIVED_BANDS,
    CollectionSpec,
    Decoding,
    collection_spec,
)
from stfcube.pipeline.ingest.catalog.find import item_interval

#: Key of the QA asset in normalised items (``stfcube_qa_<band>`` for per-band QA).
QA_KEY = "stfcube_qa"
#: The MODIS sinusoidal CRS (sphere of radius 6371007.181 m), used when an item has no CRS.
MODIS_SINUSOIDAL = CRS.from_proj4(
    "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
)


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
    start, end = item_interval(item)
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
