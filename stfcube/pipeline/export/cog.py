"""One cloud-optimised GeoTIFF per fused date, written window by window.

The image is read from the store in windows of :data:`WINDOW` pixels a side (all bands) and
written into a tiled, uncompressed work GeoTIFF beside the COG, which gets 2x average overviews
down to one tile; GDAL's COG driver then copies both into the final layout (512-px tiles,
compression, the IFDs before the data). The work file is uncompressed on purpose: GDAL rewrites
overview blocks as its cache evicts them, which in place costs nothing but in a compressed file
appends every version (an 8 GiB temporary file and minutes for one 10000 x 10000 date). It
needs the raw size of the date on disk (4 bytes per pixel and band, plus a third) until the COG
is written. Memory stays bounded by one window plus GDAL's block cache
(:data:`GDAL_CACHE_MB`) whatever the image size (``python3 dev.py bench export``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from stfcube.pipeline.export import COMPRESSIONS
from stfcube.pipeline.simulate.cog import overview_shapes
from stfcube.pipeline.simulate.stac import BandSpec

#: COG tile edge in pixels.
COG_BLOCK = 512
#: Edge of the windows read from the store (a multiple of :data:`COG_BLOCK`): 2048 px is 16 MiB
#: per float32 band.
WINDOW = 4 * COG_BLOCK
#: GDAL block cache while writing (MB).
GDAL_CACHE_MB = 256


def windows(shape: tuple[int, int], size: int = WINDOW) -> Iterator[Window]:
    """The ``size``-px windows covering a ``(rows, cols)`` raster, row by row."""
    rows, cols = shape
    for row in range(0, rows, size):
        for col in range(0, cols, size):
            yield Window(col, row, min(size, cols - col), min(size, rows - row))


def window_count(shape: tuple[int, int], size: int = WINDOW) -> int:
    """How many windows :func:`windows` yields."""
    return -(-shape[0] // size) * -(-shape[1] // size)


def write_cog(
    image: xr.DataArray,
    path: Path,
    *,
    crs: CRS | None,
    transform: Affine,
    bands: Sequence[BandSpec],
    compress: str = "deflate",
    progress: Callable[[], None] | None = None,
    window: int = WINDOW,
) -> None:
    """Write ``image`` (band, y, x) as a COG at ``path``, window by window.

    Parameters
    ----------
    image
        The date's bands, lazily indexed (only one window is in memory at a time).
    path
        The COG to write; a hidden work file beside it is removed afterwards.
    crs, transform
        The grid (``crs`` None: a pixel-grid raster without CRS).
    bands
        One per band of ``image``: its description (name), nodata, scale, offset and unit.
    compress
        One of :data:`COMPRESSIONS`.
    progress
        Called after each window, and once more when the COG is complete.
    window
        Edge in pixels of the windows read from ``image``.
    """
    if compress not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compress!r}; use one of {COMPRESSIONS}")
    work = path.with_name(f".{path.stem}.work.tif")
    rows, cols = image.sizes["y"], image.sizes["x"]
    dtype = np.dtype(bands[0].data_type)
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": len(bands),
        "dtype": dtype.name,
        "nodata": bands[0].nodata,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": COG_BLOCK,
        "blockysize": COG_BLOCK,
        "interleave": "pixel",
        "bigtiff": "if_safer",
    }
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_PAM_ENABLED="NO"):
            with rasterio.open(work, "w", **profile) as out:
                _describe(out, bands)
                for part in windows((rows, cols), window):
                    block = image.isel(
                        y=slice(part.row_off, part.row_off + part.height),
                        x=slice(part.col_off, part.col_off + part.width),
                    ).values
                    out.write(np.asarray(block, dtype=dtype), window=part)
                    if progress is not None:
                        progress()
                levels = len(overview_shapes((rows, cols), COG_BLOCK))
                out.build_overviews([2**k for k in range(1, levels + 1)], Resampling.average)
            rasterio.shutil.copy(
                work,
                path,
                driver="COG",
                compress=compress.upper(),
                predictor="YES",
                blocksize=COG_BLOCK,
                overviews="AUTO",
                bigtiff="IF_SAFER",
                num_threads="ALL_CPUS",
            )
    finally:
        work.unlink(missing_ok=True)
    if progress is not None:
        progress()


def _describe(out: rasterio.io.DatasetWriter, bands: Sequence[BandSpec]) -> None:
    """Band descriptions (names), units, scales and offsets."""
    for i, band in enumerate(bands, start=1):
        out.set_band_description(i, band.name)
        if band.unit is not None:
            out.set_band_unit(i, band.unit)
    out.scales = [band.scale for band in bands]
    out.offsets = [band.offset for band in bands]
