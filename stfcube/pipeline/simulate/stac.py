"""Write static STAC catalogs (pystac) that describe stfcube rasters.

A catalog written here is ``SELF_CONTAINED``: every link and asset href is relative, so the
directory can be moved or copied as a whole. Items carry the projection extension (native grid),
the EO extension (band names) and the raster extension (``nodata``, ``data_type``, ``scale``,
``offset``, ``unit`` per band), plus the stfcube fields below, which tell ingest what each
collection and asset is for:

- ``"stfcube:role"`` (collection ``extra_fields`` and item ``properties``): ``"fine"``,
  ``"coarse"`` or ``"truth"``.
- ``"stfcube:valid_values"`` (asset ``extra_fields`` of a mask asset): the mask values that mean
  "usable pixel".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
from affine import Affine
from pyproj import CRS, Transformer
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

#: Key of the role of a collection (``extra_fields``) or item (``properties``).
ROLE_KEY = "stfcube:role"
#: Key, in a mask asset's ``extra_fields``, of the list of mask values that mean "usable".
VALID_VALUES_KEY = "stfcube:valid_values"
#: Roles that a collection of stfcube inputs can play.
ROLES = ("fine", "coarse", "truth")

_WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True)
class BandSpec:
    """One band of a raster asset, as declared in ``eo:bands`` and ``raster:bands``.

    Attributes
    ----------
    name : str
        Band name used by stfcube (``blue``, ``nir``, ``swir1``, ...).
    data_type : str
        Stored data type, a ``raster:bands`` data type (``int16``, ``uint8``, ...).
    nodata : float or None
        Stored value meaning "no data", or None when every value is data.
    scale, offset : float
        Physical value = stored value × scale + offset.
    unit : str or None
        Unit of the physical value (``"1"`` for reflectance).
    common_name : str or None
        EO common name (``swir16`` for ``swir1``, ...); None for non-spectral bands.
    center_wavelength : float or None
        Centre wavelength in micrometres.
    spatial_resolution : float or None
        Pixel size in CRS units.
    """

    name: str
    data_type: str
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    common_name: str | None = None
    center_wavelength: float | None = None
    spatial_resolution: float | None = None


@dataclass(frozen=True)
class RasterGrid:
    """The native pixel grid of a raster: CRS (EPSG code), shape and affine transform.

    Attributes
    ----------
    epsg : int
        EPSG code of the projected CRS.
    shape : tuple of int
        ``(rows, cols)``.
    transform : affine.Affine
        Pixel-corner affine transform (north-up).
    """

    epsg: int
    shape: tuple[int, int]
    transform: Affine

    @property
    def crs_code(self) -> str:
        """The CRS as an authority string, e.g. ``"EPSG:32633"``."""
        return f"EPSG:{self.epsg}"

    def bounds(self) -> tuple[float, float, float, float]:
        """Return ``(left, bottom, right, top)`` of the grid in its CRS."""
        rows, cols = self.shape
        x0, y0 = self.transform * (0, 0)
        x1, y1 = self.transform * (cols, rows)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def footprint_wgs84(self, points_per_edge: int = 16) -> dict[str, Any]:
        """Return the grid outline as a GeoJSON polygon in EPSG:4326.

        Parameters
        ----------
        points_per_edge : int
            Vertices per edge, so that the curved outline of a projected rectangle is followed.

        Returns
        -------
        dict
            GeoJSON ``Polygon`` with longitude/latitude coordinates, counter-clockwise.
        """
        left, bottom, right, top = self.bounds()
        steps = [i / points_per_edge for i in range(points_per_edge)]
        ring = (
            [(left + (right - left) * t, bottom) for t in steps]
            + [(right, bottom + (top - bottom) * t) for t in steps]
            + [(right - (right - left) * t, top) for t in steps]
            + [(left, top - (top - bottom) * t) for t in steps]
        )
        to_wgs84 = Transformer.from_crs(CRS.from_epsg(self.epsg), _WGS84, always_xy=True)
        lons, lats = to_wgs84.transform([p[0] for p in ring], [p[1] for p in ring])
        coords = [[round(lon, 7), round(lat, 7)] for lon, lat in zip(lons, lats, strict=True)]
        coords.append(coords[0])
        return {"type": "Polygon", "coordinates": [coords]}

    def bbox_wgs84(self) -> list[float]:
        """Return ``[west, south, east, north]`` of the grid in EPSG:4326 (densified edges)."""
        ring = self.footprint_wgs84()["coordinates"][0]
        lons = [p[0] for p in ring]
        lats = [p[1] for p in ring]
        return [min(lons), min(lats), max(lons), max(lats)]


@dataclass(frozen=True)
class AssetSpec:
    """One raster asset of an item.

    Attributes
    ----------
    key : str
        Asset key in the item (``data``, ``mask``).
    href : pathlib.Path
        Location of the file when the catalog is written (made relative on save).
    roles : tuple of str
        STAC asset roles (``("data",)``, ``("cloud",)``).
    bands : tuple of BandSpec
        The bands of the file, in file order.
    title : str or None
        Human-readable title.
    media_type : str
        Media type; a cloud-optimised GeoTIFF by default.
    extra_fields : Mapping
        Further asset fields (e.g. ``{"stfcube:valid_values": [1]}``).
    """

    key: str
    href: Path
    roles: tuple[str, ...]
    bands: tuple[BandSpec, ...]
    title: str | None = None
    media_type: str = pystac.MediaType.COG
    extra_fields: Mapping[str, Any] = field(default_factory=dict)


def _raster_band(band: BandSpec) -> RasterBand:
    return RasterBand.create(
        nodata=band.nodata,
        data_type=DataType(band.data_type),
        scale=band.scale,
        offset=band.offset,
        unit=band.unit,
        spatial_resolution=band.spatial_resolution,
    )


def _eo_band(band: BandSpec) -> Band:
    return Band.create(
        name=band.name, common_name=band.common_name, center_wavelength=band.center_wavelength
    )


def _add_asset(item: pystac.Item, spec: AssetSpec) -> None:
    asset = pystac.Asset(
        href=str(spec.href.resolve()),
        title=spec.title,
        media_type=spec.media_type,
        roles=list(spec.roles),
        extra_fields=dict(spec.extra_fields),
    )
    item.add_asset(spec.key, asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [_raster_band(b) for b in spec.bands]
    if any(b.common_name for b in spec.bands):
        EOExtension.ext(asset, add_if_missing=True).bands = [_eo_band(b) for b in spec.bands]


def build_item(
    item_id: str,
    when: datetime,
    grid: RasterGrid,
    assets: Sequence[AssetSpec],
    *,
    role: str,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """Build one STAC item for rasters on a common native grid.

    Parameters
    ----------
    item_id : str
        Item id, unique in its collection.
    when : datetime.datetime
        Acquisition time (timezone-aware).
    grid : RasterGrid
        Native grid of the assets (projection extension: ``proj:code``, ``proj:shape``,
        ``proj:transform``).
    assets : sequence of AssetSpec
        The item's raster files.
    role : str
        ``"fine"``, ``"coarse"`` or ``"truth"``, stored as ``properties["stfcube:role"]``.
    properties : Mapping, optional
        Further item properties (``gsd``, ``platform``, ...).

    Returns
    -------
    pystac.Item
        The item, with absolute asset hrefs until its catalog is saved.

    Raises
    ------
    ValueError
        If ``role`` is not one of :data:`ROLES` or ``when`` has no timezone.
    """
    if role not in ROLES:
        raise ValueError(f"unknown stfcube role {role!r}; expected one of {ROLES}")
    if when.tzinfo is None:
        raise ValueError(f"item {item_id}: datetime {when.isoformat()} has no timezone")
    item = pystac.Item(
        id=item_id,
        geometry=grid.footprint_wgs84(),
        bbox=grid.bbox_wgs84(),
        datetime=when,
        properties={**(properties or {}), ROLE_KEY: role},
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = grid.crs_code
    proj.shape = list(grid.shape)
    proj.transform = list(grid.transform)[:6]
    for spec in assets:
        _add_asset(item, spec)
    return item


def build_collection(
    collection_id: str,
    description: str,
    items: Sequence[pystac.Item],
    *,
    role: str,
    title: str | None = None,
    license: str = "CC0-1.0",
) -> pystac.Collection:
    """Build a collection around items, with extents computed from them.

    Parameters
    ----------
    collection_id : str
        Collection id (also its folder name in the saved catalog).
    description : str
        What the collection holds.
    items : sequence of pystac.Item
        At least one item.
    role : str
        ``"fine"``, ``"coarse"`` or ``"truth"``, stored as ``extra_fields["stfcube:role"]``.
    title : str, optional
        Human-readable title.
    license : str
        SPDX license id of the data.

    Returns
    -------
    pystac.Collection
        The collection, holding the items.

    Raises
    ------
    ValueError
        If ``items`` is empty or ``role`` is unknown.
    """
    if not items:
        raise ValueError(f"collection {collection_id}: no items")
    if role not in ROLES:
        raise ValueError(f"unknown stfcube role {role!r}; expected one of {ROLES}")
    bboxes = [item.bbox for item in items if item.bbox is not None]
    union = [
        min(b[0] for b in bboxes),
        min(b[1] for b in bboxes),
        max(b[2] for b in bboxes),
        max(b[3] for b in bboxes),
    ]
    times = sorted(item.datetime for item in items if item.datetime is not None)
    extent = pystac.Extent(
        spatial=pystac.SpatialExtent([union]),
        temporal=pystac.TemporalExtent([[times[0], times[-1]]]),
    )
    collection = pystac.Collection(
        id=collection_id,
        description=description,
        extent=extent,
        title=title,
        license=license,
        extra_fields={ROLE_KEY: role},
    )
    for item in items:
        collection.add_item(item)
    return collection


def write_catalog(
    root: Path,
    catalog_id: str,
    description: str,
    collections: Sequence[pystac.Collection],
    *,
    title: str | None = None,
) -> Path:
    """Save a self-contained static catalog with relative links and asset hrefs.

    The layout is pystac's default: ``root/catalog.json``,
    ``root/<collection>/collection.json`` and ``root/<collection>/<item>/<item>.json``. Asset
    files should already lie inside ``root`` (typically beside their item JSON), so that their
    relative hrefs stay valid when the directory moves.

    Parameters
    ----------
    root : pathlib.Path
        Catalog directory (created if missing).
    catalog_id, description : str
        Catalog id and description.
    collections : sequence of pystac.Collection
        The collections, with their items.
    title : str, optional
        Catalog title.

    Returns
    -------
    pathlib.Path
        Path of ``catalog.json``.
    """
    root.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog(id=catalog_id, description=description, title=title)
    for collection in collections:
        catalog.add_child(collection)
    # A trailing separator: pystac would take a directory name with a dot for a file name.
    catalog.normalize_hrefs(f"{root.resolve().as_posix()}/")
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"
