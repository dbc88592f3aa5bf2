"""Where a site's files lie and the STAC collections that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import pystac

from stfcube.pipeline.simulate.config import SiteConfig
from stfcube.pipeline.simulate.constants import (
    COARSE_COLLECTION,
    FINE_COLLECTION,
    FINE_PIXEL_SIZE,
    NODATA,
    SCALE,
    TRUTH_COLLECTION,
)
from stfcube.pipeline.simulate.stac import (
    VALID_VALUES_KEY,
    AssetSpec,
    BandSpec,
    RasterGrid,
    build_collection,
    build_item,
)

#: EO common name and centre wavelength (micrometres) of each band.
_COMMON_NAMES = {
    "blue": "blue",
    "green": "green",
    "red": "red",
    "nir": "nir",
    "swir1": "swir16",
    "swir2": "swir22",
}
_CENTER_WAVELENGTH_UM = {
    "blue": 0.48,
    "green": 0.56,
    "red": 0.655,
    "nir": 0.865,
    "swir1": 1.61,
    "swir2": 2.2,
}
#: Acquisition time of day (UTC) of every image.
_OVERPASS = time(10, 30, tzinfo=UTC)


def reflectance_bands(config: SiteConfig, pixel_size: float) -> tuple[BandSpec, ...]:
    """The stored reflectance bands of a site's rasters, in file order.

    Parameters
    ----------
    config : SiteConfig
        The site (its bands).
    pixel_size : float
        Pixel size of the raster, in metres.

    Returns
    -------
    tuple of BandSpec
        int16 bands scaled by :data:`SCALE`, nodata :data:`NODATA`.
    """
    return tuple(
        BandSpec(
            name=name,
            data_type="int16",
            nodata=NODATA,
            scale=SCALE,
            offset=0.0,
            unit="1",
            common_name=_COMMON_NAMES[name],
            center_wavelength=_CENTER_WAVELENGTH_UM[name],
            spatial_resolution=pixel_size,
        )
        for name in config.bands
    )


#: The single band of a fine date's clear-pixel mask.
MASK_BAND = BandSpec(name="mask", data_type="uint8", spatial_resolution=FINE_PIXEL_SIZE)


def _item_id(collection: str, day: date) -> str:
    return f"{collection}-{day:%Y%m%d}"


def _asset_path(root: Path, collection: str, day: date, suffix: str = "") -> Path:
    item_id = _item_id(collection, day)
    return root / collection / item_id / f"{item_id}{suffix}.tif"


@dataclass(frozen=True)
class SitePaths:
    """Final raster paths of a site, relative to its root."""

    truth: tuple[Path, ...]
    coarse: tuple[Path, ...]
    fine: tuple[Path, ...]
    mask: tuple[Path, ...]


def site_paths(config: SiteConfig) -> SitePaths:
    """Raster paths of a site, relative to its root: ``<collection>/<item>/<item>[_mask].tif``.

    Parameters
    ----------
    config : SiteConfig
        The site (its dates and fine dates).

    Returns
    -------
    SitePaths
        One truth and one coarse path per day, one fine and one mask path per fine date.
    """
    root = Path()
    dates = config.dates
    fine_dates = [dates[d] for d in config.fine_days]
    return SitePaths(
        truth=tuple(_asset_path(root, TRUTH_COLLECTION, d) for d in dates),
        coarse=tuple(_asset_path(root, COARSE_COLLECTION, d) for d in dates),
        fine=tuple(_asset_path(root, FINE_COLLECTION, d) for d in fine_dates),
        mask=tuple(_asset_path(root, FINE_COLLECTION, d, "_mask") for d in fine_dates),
    )


def _item(
    collection: str, day: date, grid: RasterGrid, assets: list[AssetSpec], *, role: str
) -> pystac.Item:
    """The item of ``collection`` acquired on ``day``, with its ground sample distance."""
    when = datetime.combine(day, _OVERPASS)
    gsd = grid.transform.a
    return build_item(
        _item_id(collection, day), when, grid, assets, role=role, properties={"gsd": gsd}
    )


def catalog_collections(
    config: SiteConfig, root: Path, paths: SitePaths
) -> list[pystac.Collection]:
    """Build the three STAC collections of a site whose files lie under ``root``.

    Parameters
    ----------
    config : SiteConfig
        The site.
    root : pathlib.Path
        Directory the catalog is written to; ``paths`` are relative to it.
    paths : SitePaths
        The site's raster paths (see :func:`site_paths`).

    Returns
    -------
    list of pystac.Collection
        ``sim-fine`` (data and mask assets), ``sim-coarse`` and ``sim-truth``, with their items.
    """
    ratio = config.sensor.ratio
    fine_bands = reflectance_bands(config, FINE_PIXEL_SIZE)
    dates = config.dates
    fine_dates = [dates[d] for d in config.fine_days]

    def data_asset(rel: Path, bands: tuple[BandSpec, ...], title: str) -> AssetSpec:
        return AssetSpec("data", root / rel, ("data",), bands, title=title)

    def daily_items(
        collection: str, role: str, rels: tuple[Path, ...], grid: RasterGrid, title: str
    ) -> list[pystac.Item]:
        bands = reflectance_bands(config, grid.transform.a)
        return [
            _item(collection, d, grid, [data_asset(rel, bands, title)], role=role)
            for d, rel in zip(dates, rels, strict=True)
        ]

    truth_items = daily_items(
        TRUTH_COLLECTION, "truth", paths.truth, config.fine_grid, "Cloud-free fine truth"
    )
    coarse_items = daily_items(
        COARSE_COLLECTION, "coarse", paths.coarse, config.coarse_grid, "Coarse surface reflectance"
    )
    fine_items = [
        _item(
            FINE_COLLECTION,
            d,
            config.fine_grid,
            [
                data_asset(rel, fine_bands, "Fine surface reflectance"),
                AssetSpec(
                    "mask",
                    root / mask_rel,
                    ("cloud",),
                    (MASK_BAND,),
                    title="Clear-pixel mask (1 clear, 0 cloud/shadow/nodata)",
                    extra_fields={VALID_VALUES_KEY: [1]},
                ),
            ],
            role="fine",
        )
        for d, rel, mask_rel in zip(fine_dates, paths.fine, paths.mask, strict=True)
    ]
    return [
        build_collection(
            FINE_COLLECTION,
            "Simulated fine sensor (30 m) with clouds, shadows and nodata; see the mask asset.",
            fine_items,
            role="fine",
            title="Simulated fine sensor",
        ),
        build_collection(
            COARSE_COLLECTION,
            f"Simulated coarse sensor ({FINE_PIXEL_SIZE * ratio:g} m, daily): area average, "
            "PSF blur, misregistration and noise of the fine truth.",
            coarse_items,
            role="coarse",
            title="Simulated coarse sensor",
        ),
        build_collection(
            TRUTH_COLLECTION,
            "Cloud-free fine truth for every day, for evaluation.",
            truth_items,
            role="truth",
            title="Simulated fine truth",
        ),
    ]
