"""The STAC collection of a fused product: the Zarr cube and one item per exported date.

Written beside the COGs (flat: ``collection.json``, ``<item>.json``, ``<item>.tif``) with
relative links, so the folder can be moved whole. Items carry the projection extension
(``proj:code``, ``proj:shape``, ``proj:transform``, ``proj:bbox``: what openEO's ``load_stac``
and odc-stac need to load the native grid), ``eo:bands`` and ``raster:bands`` on the COG asset,
and the provenance of the date (``stfcube:method``, ``stfcube:parameters``, ``stfcube:pairs``,
``stfcube:inputs``, see :meth:`FusedProduct.provenance`). The collection carries the datacube
extension describing the cube and an asset pointing at the Zarr store. Items have
``stfcube:role`` ``"fine"``: a fused series can be the fine input of another run.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
from pystac.extensions.eo import Band, EOExtension

from stfcube.pipeline.errors import OutputError
from stfcube.pipeline.export.product import FusedProduct
from stfcube.pipeline.simulate.stac import AssetSpec, RasterGrid, build_collection, build_item

#: Role of the exported items and collection (see the module docstring).
ROLE = "fine"
#: Key of the COG asset in each item.
COG_ASSET = "data"
#: Media type of the Zarr store asset.
ZARR_MEDIA_TYPE = "application/vnd+zarr"


def stac_grid(product: FusedProduct) -> RasterGrid:
    """The product's grid for STAC (``proj:code`` needs an EPSG code).

    Raises
    ------
    OutputError
        When the store has no CRS or one without an EPSG code.
    """
    epsg = None if product.crs is None else product.crs.to_epsg()
    if epsg is None:
        what = "no CRS" if product.crs is None else f"a CRS without EPSG code ({product.crs})"
        raise OutputError(
            f"{product.path}: has {what}; the STAC export needs an EPSG CRS (the COG export "
            "alone works: leave out --stac)"
        )
    return RasterGrid(epsg=epsg, shape=product.shape, transform=product.transform)


def item_id(product: FusedProduct, date: str) -> str:
    """The id (and file stem) of a date's item: ``<store name>_<YYYY-MM-DD>``."""
    return f"{product.name}_{date}"


def product_collection(product: FusedProduct, cogs: Mapping[str, Path]) -> pystac.Collection:
    """The collection of ``product``: one item per date of ``cogs`` (date -> COG path).

    Parameters
    ----------
    product
        The exported store.
    cogs
        The COG of each exported date (absolute hrefs until the collection is saved).

    Returns
    -------
    pystac.Collection
    """
    grid = stac_grid(product)
    items = [_item(product, grid, date, cog) for date, cog in sorted(cogs.items())]
    collection = build_collection(
        product.name,
        f"Fused fine-resolution series by stfcube ({product.attrs.get('method')}), from "
        f"{product.attrs.get('source_cube')}.",
        items,
        role=ROLE,
        title=f"{product.name}: stfcube {product.attrs.get('method')} fusion",
        license="other",
    )
    provenance = product.provenance(product.dates[0])
    for key in ("stfcube:method", "stfcube:parameters", "stfcube:version", "stfcube:source_cube"):
        collection.extra_fields[key] = provenance[key]
    collection.add_asset(
        "zarr",
        pystac.Asset(
            href=str(product.path.resolve()),
            title="fused Zarr store (all dates, bands and layers)",
            media_type=ZARR_MEDIA_TYPE,
            roles=["data", "zarr"],
        ),
    )
    _describe_cube(collection, product, grid)
    return collection


def write_collection(collection: pystac.Collection, folder: Path) -> list[str]:
    """Save ``collection`` flat into ``folder``; return the names of the files written.

    Items land beside their COGs as ``<item>.json`` with relative asset hrefs; the Zarr asset
    keeps its absolute path (the store lies outside the folder).
    """
    root = folder.resolve()
    collection.set_self_href(str(root / "collection.json"))
    for item in collection.get_items():
        item.set_self_href(str(root / f"{item.id}.json"))
        item.make_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return ["collection.json", *(f"{item.id}.json" for item in collection.get_items())]


def _item(product: FusedProduct, grid: RasterGrid, date: str, cog: Path) -> pystac.Item:
    asset = AssetSpec(
        key=COG_ASSET,
        href=cog,
        roles=("data",),
        bands=product.bands,
        title=f"fused {', '.join(b.name for b in product.bands)} on {date} (COG)",
    )
    when = datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.UTC)
    item = build_item(
        item_id(product, date),
        when,
        grid,
        [asset],
        role=ROLE,
        properties={"gsd": product.bands[0].spatial_resolution, **product.provenance(date)},
    )
    item.properties["proj:bbox"] = list(grid.bounds())
    for raster_band in item.assets[COG_ASSET].extra_fields["raster:bands"]:
        raster_band["nodata"] = "nan"  # JSON has no NaN: the raster extension spells it so
    eo_asset = EOExtension.ext(item.assets[COG_ASSET], add_if_missing=True)
    eo_asset.bands = [
        Band.create(name=b.name, common_name=b.common_name, center_wavelength=b.center_wavelength)
        for b in product.bands
    ]
    return item


def _describe_cube(collection: pystac.Collection, product: FusedProduct, grid: RasterGrid) -> None:
    """The datacube extension: the store's dimensions and variables."""
    left, bottom, right, top = grid.bounds()
    step = product.bands[0].spatial_resolution
    spatial: dict[str, Any] = {"type": "spatial", "reference_system": grid.epsg, "step": step}
    dimensions = {
        "x": Dimension({**spatial, "axis": "x", "extent": [left, right]}),
        "y": Dimension({**spatial, "axis": "y", "extent": [bottom, top]}),
        "time": Dimension(
            {
                "type": "temporal",
                "extent": [f"{product.dates[0]}T00:00:00Z", f"{product.dates[-1]}T00:00:00Z"],
                "values": [f"{d}T00:00:00Z" for d in product.dates],
            }
        ),
        "band": Dimension({"type": "bands", "values": [b.name for b in product.bands]}),
    }
    variables = {
        "fused": Variable(
            {
                "dimensions": list(product.fused.dims),
                "type": "data",
                "description": "fused fine-resolution prediction",
                **(
                    {"unit": product.fused.attrs["units"]} if "units" in product.fused.attrs else {}
                ),
            }
        )
    }
    for layer, layer_dims in product.layers.items():
        variables[layer] = Variable({"dimensions": list(layer_dims), "type": "auxiliary"})
    DatacubeExtension.ext(collection, add_if_missing=True).apply(dimensions, variables)
