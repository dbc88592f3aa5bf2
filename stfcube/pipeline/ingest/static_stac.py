"""Static STAC catalogs following the stfcube convention, read into a scene stack.

The convention: ``"stfcube:role"`` (``fine``/``coarse``/``truth``) on items or their collection,
a multi-band asset ``data`` with ``raster:bands`` (scale, offset, nodata) and band names, and an
optional single-band asset ``mask`` with ``"stfcube:valid_values"``.

:func:`catalog_items` walks a catalog's links one by one (also for the catalog front-end of
:mod:`stfcube.pipeline.ingest.catalog`), so that a broken link, a linked file that is not STAC JSON,
or
links that loop back to a catalog already read are one :class:`~stfcube.pipeline.errors.InputError`
naming the link, never a traceback or a ``RecursionError``.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
import pystac

from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.readers import ROLES, Scene, SceneStack
from stfcube.pipeline.store.cube import COMMON_UNIT_FACTOR

#: What reading a STAC file raises when it is missing, unreachable or malformed.
_READ_ERRORS = (OSError, ValueError, TypeError, KeyError, pystac.STACError)


def read_stac(href: str) -> pystac.STACObject:
    """The STAC catalog, collection or item at ``href`` (path or URL).

    Raises
    ------
    InputError
        When it cannot be read or is not STAC JSON.
    """
    try:
        return pystac.read_file(href)
    except _READ_ERRORS as exc:
        raise InputError(href, f"cannot read the STAC document: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """Why a STAC file could not be read, in a few words (pystac wraps the cause)."""
    cause = exc.__cause__ if isinstance(exc, pystac.STACError) and exc.__cause__ else exc
    if isinstance(cause, FileNotFoundError):
        return "no such file"
    if isinstance(cause, OSError):
        return cause.strerror or str(cause)
    if isinstance(cause, json.JSONDecodeError):
        return f"not valid JSON ({cause})"
    return f"{type(cause).__name__}: {cause}"


def _linked(link: pystac.Link, owner: pystac.STACObject) -> pystac.STACObject:
    """The object a link points to, read now; an :class:`InputError` naming the link if not."""
    href = link.get_absolute_href() or link.href
    try:
        link.resolve_stac_object(root=owner.get_root())
    except _READ_ERRORS as exc:
        raise InputError(
            href,
            f"cannot read the STAC {link.rel} linked from {owner.get_self_href() or owner.id}: "
            f"{_reason(exc)}",
        ) from exc
    return cast(pystac.STACObject, link.target)  # resolved: an object, no longer an href


def catalog_items(catalog: pystac.Catalog) -> list[pystac.Item]:
    """Every item of a catalog or collection and of its children, in pystac's order.

    Raises
    ------
    InputError
        Naming the link, when a linked file is missing or not STAC JSON, an ``item`` link leads
        to something else than an item, a ``child`` link to something else than a catalog, or
        a child link leads back to a catalog already read (links that loop).
    """
    items: list[pystac.Item] = []
    seen = {catalog.get_self_href()}
    pending = [catalog]
    while pending:
        parent = pending.pop()
        for link in parent.get_links(pystac.RelType.ITEM):
            item = _linked(link, parent)
            if not isinstance(item, pystac.Item):
                raise InputError(link.get_absolute_href(), "linked as an item but is no STAC Item")
            items.append(item)
        children = []
        for link in parent.get_links(pystac.RelType.CHILD):
            href = link.get_absolute_href()
            if href in seen:
                raise InputError(
                    href,
                    f"linked as a child of {parent.get_self_href()} but already read: the "
                    "catalog's links loop",
                )
            seen.add(href)
            child = _linked(link, parent)
            if not isinstance(child, pystac.Catalog):
                raise InputError(href, "linked as a child but is no STAC catalog or collection")
            children.append(child)
        pending.extend(reversed(children))
    return items


def _item_role(item: pystac.Item) -> str | None:
    role = item.properties.get("stfcube:role")
    link = item.get_single_link(pystac.RelType.COLLECTION)
    if role is None and link is not None:
        collection = _linked(link, item)
        if isinstance(collection, pystac.Catalog):
            role = collection.extra_fields.get("stfcube:role")
    return role


def _asset_bands(asset: pystac.Asset, item: pystac.Item) -> list[dict[str, Any]]:
    """Per-band ``name``/``labels``/``scale``/``offset``/``nodata`` of an asset (STAC 1.0 or 1.1
    style); ``labels`` are the band's ``name`` and ``common_name`` given."""
    raster = asset.extra_fields.get("raster:bands")
    eo = asset.extra_fields.get("eo:bands") or item.properties.get("eo:bands")
    if raster is None and "bands" in asset.extra_fields:  # STAC 1.1 unified bands
        unified = asset.extra_fields["bands"]
        raster = [
            {k.removeprefix("raster:"): v for k, v in b.items() if k != "name"} for b in unified
        ]
        eo = [{"name": b.get("name"), "common_name": b.get("eo:common_name")} for b in unified]
    count = len(raster or eo or [])
    bands = []
    for i in range(count):
        r = raster[i] if raster and i < len(raster) else {}
        e = eo[i] if eo and i < len(eo) else {}
        bands.append(
            {
                "name": e.get("name") or e.get("common_name") or f"b{i + 1}",
                "labels": tuple(str(e[k]) for k in ("name", "common_name") if e.get(k)),
                "scale": r.get("scale"),
                "offset": r.get("offset", 0.0),
                "nodata": r.get("nodata"),
            }
        )
    return bands


def _one_value(bands: list[dict[str, Any]], key: str, where: str) -> float | None:
    values = {b[key] for b in bands}
    if len(values) > 1:
        raise InputError(where, f"asset 'data' bands have different {key} values {sorted(values)}")
    return values.pop() if values else None


def _href(asset: pystac.Asset, key: str, where: str) -> str:
    href = asset.get_absolute_href()
    if not href:
        raise InputError(where, f"asset {key!r} has no href")
    return href


def _stac_scene(item: pystac.Item, unit_factor: float) -> tuple[Scene, tuple[str, ...], str]:
    """Scene, band names and sensor name of one stfcube-convention STAC item."""
    where = item.get_self_href() or item.id
    role = _item_role(item)
    if role not in ROLES:
        raise InputError(where, f"unknown stfcube:role {role!r} (expected one of {ROLES})")
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(where, "item has neither datetime nor start_datetime")
    if "data" not in item.assets:
        raise InputError(where, "item has no 'data' asset")
    asset = item.assets["data"]
    bands = _asset_bands(asset, item)
    scale = _one_value(bands, "scale", where)
    offset = _one_value(bands, "offset", where) or 0.0
    factor = 1.0 if scale is None else unit_factor
    mask_path, valid_values = None, ()
    if "mask" in item.assets:
        mask = item.assets["mask"]
        valid_values = tuple(mask.extra_fields.get("stfcube:valid_values", ()))
        if not valid_values:
            raise InputError(where, "asset 'mask' has no stfcube:valid_values")
        mask_path = _href(mask, "mask", where)
    scene = Scene(
        role=role,
        date=np.datetime64(when.date(), "D"),
        path=_href(asset, "data", where),
        bands=tuple(range(1, len(bands) + 1)),
        scale=(1.0 if scale is None else scale) * factor,
        offset=offset * factor,
        nodata=_one_value(bands, "nodata", where),
        mask_path=mask_path,
        mask_valid_values=valid_values,
        band_labels=tuple(b["labels"] for b in bands),
    )
    sensor = item.properties.get("platform") or item.collection_id or role
    return scene, tuple(b["name"] for b in bands), sensor


def load_stac(href: str, *, unit_factor: float = COMMON_UNIT_FACTOR) -> SceneStack:
    """Scenes of a STAC catalog or collection that follows the stfcube convention.

    Parameters
    ----------
    href
        Path or URL of ``catalog.json`` / ``collection.json``.
    unit_factor
        Multiplies ``raster:bands`` scale and offset (which map raw DN to physical reflectance)
        so that the cube holds common units (reflectance x 10000). Assets without a scale are
        taken as already in common units.

    Returns
    -------
    SceneStack

    Raises
    ------
    InputError
        When the catalog, a linked file or an item cannot be read or breaks the convention.
    """
    root = read_stac(href)
    if isinstance(root, pystac.Item):
        items = [root]
    elif isinstance(root, pystac.Catalog):
        items = catalog_items(root)
    else:
        raise InputError(href, f"a {type(root).__name__} is not a catalog, collection or item")
    scenes: list[Scene] = []
    names: dict[str, tuple[str, ...]] = {}
    sensors: dict[str, str] = {}
    for item in items:
        scene, band_names, sensor = _stac_scene(item, unit_factor)
        if names.setdefault(scene.role, band_names) != band_names:
            raise InputError(
                item.get_self_href() or item.id,
                f"band names {list(band_names)} differ from the other {scene.role} items' "
                f"{list(names[scene.role])}",
            )
        sensors.setdefault(scene.role, sensor)
        scenes.append(scene)
    if not scenes:
        raise InputError(href, "the catalog holds no items")
    band_names = names.get("fine") or names.get("truth") or next(iter(names.values()))
    return SceneStack(
        source=href,
        scenes=tuple(scenes),
        band_names=band_names,
        fine_sensor=sensors.get("fine") or sensors.get("truth", "fine"),
        coarse_sensor=sensors.get("coarse", "coarse"),
    )
