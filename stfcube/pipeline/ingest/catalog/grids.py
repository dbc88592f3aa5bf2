"""Catalog grids: the fine grid of a region, its native-size coarse grid, odc-geo conversions.

The fine grid covers the region in one CRS, pixel-aligned with the fine scenes. The coarse
sensor's *native-size* grid is the fine grid coarsened by the integer ratio
``ceil(coarse pixel / fine pixel)`` (MODIS 463.3 m over Landsat 30 m: 15.44, so 16 x 30 m =
480 m), which nests exactly in the fine grid.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pystac
from odc.geo import xy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox
from pyproj import CRS
from pyproj.aoi import AreaOfInterest
from pyproj.database import query_utm_crs_info
from rasterio.crs import CRS as RioCRS

from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.geometry.grid import Grid
from stfcube.pipeline.ingest.catalog.find import BBox
from stfcube.pipeline.ingest.catalog.prepare import PreparedItem


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
        if not (epsg and transform and math.isclose(transform[0], resolution)):
            continue
        if CRS.from_epsg(epsg) == crs:
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


def geobox_of(grid: Grid) -> GeoBox:
    """The odc-geo ``GeoBox`` of a grid that has a CRS.

    Raises
    ------
    ValueError
        For a grid without CRS (callers check first: catalog items need one).
    """
    if grid.crs is None:
        raise ValueError("a grid without CRS has no GeoBox")
    return GeoBox(grid.shape, grid.transform, grid.crs.to_wkt())


def grid_of(geobox: GeoBox) -> Grid:
    """The :class:`~stfcube.pipeline.geometry.grid.Grid` of an odc-geo ``GeoBox``."""
    crs = None if geobox.crs is None else RioCRS.from_wkt(geobox.crs.to_wkt())
    height, width = geobox.shape
    return Grid(crs, geobox.transform, height, width)
