"""Finding catalog items: STAC API searches, static catalogs and item JSON files.

:func:`find_items` takes a STAC API URL (``http(s)://...``, searched with pystac-client by
collection ids, bbox and date range), a static catalog (a ``catalog.json`` /
``collection.json`` path, walked link by link with
:func:`~stfcube.pipeline.ingest.static_stac.catalog_items`), or item JSON files (a single Item, a
FeatureCollection or a JSON array of Items per file), and keeps the items of some collections
that intersect a region and a date range.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pystac
import pystac_client

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.ingest.static_stac import catalog_items, read_stac

#: A region: west, south, east, north in degrees.
BBox = tuple[float, float, float, float]


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
        When the catalog or a file it links cannot be read, or its links loop (naming the link).
    """
    catalog = read_stac(str(path))
    if not isinstance(catalog, pystac.Catalog):
        raise InputError(path, "is a STAC Item, not a catalog or collection")
    return catalog_items(catalog)


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
        first, last = item_interval(item)
        if last < dates[0] or first > dates[1]:
            return False
    return True


def item_interval(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of an item: its ``start_datetime``/``end_datetime``, else its ``datetime``.

    Raises
    ------
    InputError
        When the item has neither.
    """
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    if start is None or end is None:
        raise InputError(item.id, "datetime is null and there is no start_datetime/end_datetime")
    return start, end
