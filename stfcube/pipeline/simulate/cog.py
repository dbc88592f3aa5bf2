"""Streaming cloud-optimised GeoTIFF writers: rows arrive block by block, overviews included."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from xml.etree import ElementTree

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from stfcube.pipeline.simulate.stac import BandSpec, RasterGrid

#: COG tile size, and the size under which no further overview level is made.
_COG_BLOCK = 512
#: Fast deflate: level 1 writes 2.6× faster than the default 6 for ~8 % larger files.
_DEFLATE_LEVEL = 1


def overview_shapes(shape: tuple[int, int], block: int = _COG_BLOCK) -> list[tuple[int, int]]:
    """Shapes of the 2× overview levels of a raster, halving (rounding up) until ≤ ``block``."""
    shapes = []
    height, width = shape
    while max(height, width) > block:
        height, width = -(-height // 2), -(-width // 2)
        shapes.append((height, width))
    return shapes


class RowWriter(Protocol):
    """Where an overview level goes: a raster filled by consecutive row blocks."""

    dtype: np.dtype

    def append(self, block: np.ndarray) -> None:
        """Write ``(bands, rows, cols)`` below the rows written so far."""


class _WorkRaster:
    """A work GeoTIFF filled by consecutive row windows, from the top.

    Striped (``rows_per_strip`` rows) and lightly compressed, so that windows aligned on strips
    are written once without read-back, and band-interleaved so that band-by-band reads do not
    decompress every band.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        transform: Affine,
        *,
        crs: str,
        bands: Sequence[BandSpec],
        rows_per_strip: int,
    ) -> None:
        self.path = path
        self.dtype = np.dtype(bands[0].data_type)
        self.next_row = 0
        self._ds = rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=shape[1],
            height=shape[0],
            count=len(bands),
            dtype=bands[0].data_type,
            nodata=bands[0].nodata,
            crs=crs,
            transform=transform,
            blockysize=rows_per_strip,
            compress="ZSTD",
            zstd_level=1,
            interleave="band",
        )
        for i, band in enumerate(bands, start=1):
            self._ds.set_band_description(i, band.name)
            if band.unit is not None:
                self._ds.set_band_unit(i, band.unit)
        self._ds.scales = [b.scale for b in bands]
        self._ds.offsets = [b.offset for b in bands]

    def append(self, block: np.ndarray) -> None:
        """Write ``(bands, rows, cols)`` below the rows written so far."""
        rows = block.shape[1]
        self._ds.write(block, window=Window(0, self.next_row, block.shape[2], rows))
        self.next_row += rows

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._ds.close()


def _sum_2x2(values: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Sum of each 2 × 2 block of ``(bands, even rows, even cols)``, in ``dtype``."""
    return (
        values[:, 0::2, 0::2].astype(dtype)
        + values[:, 1::2, 0::2]
        + values[:, 0::2, 1::2]
        + values[:, 1::2, 1::2]
    )


class OverviewPyramid:
    """2× average overviews of a raster that arrives by row blocks, written as it streams.

    Level k holds, per band, the mean of the valid (not nodata) full-resolution values of each
    ``2^k × 2^k`` block, rounded half up; nodata where none is valid. Levels are cascaded
    through exact integer sums and counts, so the result does not depend on how the rows are
    blocked. An odd last row or column is averaged alone, as GDAL does.

    Parameters
    ----------
    levels : sequence of RowWriter
        Targets of levels 1, 2, ... (each half the size of the one before, rounded up).
    nodata : float or None
        Stored nodata value of the raster, or None when every value is valid.
    """

    def __init__(self, levels: Sequence[RowWriter], nodata: float | None) -> None:
        self._levels = list(levels)
        self._nodata = nodata
        self._pending: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(levels)

    def push(self, block: np.ndarray) -> None:
        """Feed the next rows ``(bands, rows, cols)`` of the full-resolution raster."""
        if not self._levels:
            return
        if self._nodata is None:
            self._reduce(0, block, np.ones(block.shape, dtype=np.uint8), final=False)
        else:
            valid = block != self._nodata
            self._reduce(0, np.where(valid, block, 0), valid.view(np.uint8), final=False)

    def close(self) -> None:
        """Write the rows still pending (odd last rows) of every level."""
        for level in range(len(self._levels)):
            pending = self._pending[level]
            if pending is not None:
                self._pending[level] = None
                self._reduce(level, *pending, final=True)

    def _reduce(self, level: int, sums: np.ndarray, counts: np.ndarray, final: bool) -> None:
        """Add rows of level ``level - 1`` sums and counts; write the complete level rows."""
        pending = self._pending[level]
        if pending is not None:
            sums = np.concatenate([pending[0], sums], axis=1)
            counts = np.concatenate([pending[1], counts], axis=1)
            self._pending[level] = None
        rows = sums.shape[1] if final else sums.shape[1] // 2 * 2
        if rows < sums.shape[1]:
            self._pending[level] = (sums[:, rows:], counts[:, rows:])
        if rows == 0:
            return
        sums, counts = sums[:, :rows], counts[:, :rows]
        if rows % 2 or sums.shape[2] % 2:
            pad = ((0, 0), (0, rows % 2), (0, sums.shape[2] % 2))
            sums, counts = np.pad(sums, pad), np.pad(counts, pad)
        # int32 holds the sum of 4^7 int16 values: enough for the first 7 levels.
        sums = _sum_2x2(sums, np.int32 if level < 7 else np.int64)
        counts = _sum_2x2(counts, np.int32)
        # Mean rounded half up, in exact integer arithmetic (a shift when no pixel is missing).
        bits = 2 * (level + 1)
        if counts.min() == 1 << bits:
            mean = (sums + (1 << (bits - 1))) >> bits
        else:
            mean = (2 * sums + counts) // np.maximum(2 * counts, 1)
        if self._nodata is not None:
            mean[counts == 0] = self._nodata
        target = self._levels[level]
        target.append(mean.astype(target.dtype))
        if level + 1 < len(self._levels):
            self._reduce(level + 1, sums, counts, final=final)


class CogSink:
    """One raster written by row blocks into work GeoTIFFs (base and overviews), then a COG.

    GDAL computes COG overviews band by band over the whole image, which thrashes its cache once
    the image outgrows it (minutes per 10000² file); the overviews are therefore built while
    streaming (:class:`OverviewPyramid`) and handed to the COG driver through a VRT.

    Parameters
    ----------
    final : pathlib.Path
        Path of the COG to write.
    work_dir : pathlib.Path
        Directory of the work files (removed by :meth:`finish`).
    grid : RasterGrid
        The raster's grid.
    bands : sequence of BandSpec
        Its bands (one data type and nodata for all).
    rows_per_strip : int
        Strip height of the work GeoTIFF; row blocks should be a multiple of it.
    """

    def __init__(
        self,
        final: Path,
        work_dir: Path,
        *,
        grid: RasterGrid,
        bands: Sequence[BandSpec],
        rows_per_strip: int,
    ) -> None:
        self.final = final
        self._vrt = work_dir / f"{final.stem}.vrt"
        opened: list[_WorkRaster] = []
        try:
            opened.append(
                _WorkRaster(
                    work_dir / final.name,
                    grid.shape,
                    grid.transform,
                    crs=grid.crs_code,
                    bands=bands,
                    rows_per_strip=rows_per_strip,
                )
            )
            for level, shape in enumerate(overview_shapes(grid.shape), start=1):
                opened.append(
                    _WorkRaster(
                        work_dir / f"{final.stem}.ovr{level}.tif",
                        shape,
                        grid.transform * Affine.scale(2**level),
                        crs=grid.crs_code,
                        bands=bands,
                        rows_per_strip=1,
                    )
                )
        except BaseException:
            for raster in opened:
                raster.close()
            raise
        self._base, *overviews = opened
        self._overviews = overviews
        self._pyramid = OverviewPyramid(overviews, bands[0].nodata)

    def write(self, data: np.ndarray, row0: int) -> None:
        """Write ``(bands, rows, cols)`` (or ``(rows, cols)``) at ``row0``, the next row due."""
        if row0 != self._base.next_row:
            raise ValueError(f"{self.final.name}: rows must arrive in order ({row0=})")
        block = data if data.ndim == 3 else data[None]
        self._base.append(block)
        self._pyramid.push(block)

    def finish(self) -> None:
        """Complete the overviews, copy everything into the final COG, remove the work files."""
        self._pyramid.close()
        self.abort()
        source = self._base.path
        if self._overviews:
            _write_vrt_with_overviews(source, [o.path for o in self._overviews], self._vrt)
            source = self._vrt
        rasterio.shutil.copy(
            source,
            self.final,
            driver="COG",
            compress="DEFLATE",
            predictor="YES",
            level=_DEFLATE_LEVEL,
            blocksize=_COG_BLOCK,
            overviews="FORCE_USE_EXISTING" if self._overviews else "NONE",
            num_threads="ALL_CPUS",
        )
        for path in (self._base.path, *(o.path for o in self._overviews), self._vrt):
            path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Close the work files without making the COG."""
        for raster in (self._base, *self._overviews):
            raster.close()


def _write_vrt_with_overviews(base: Path, overviews: Sequence[Path], vrt: Path) -> None:
    """Write a VRT of ``base`` whose bands list ``overviews`` (same bands) as their overviews."""
    rasterio.shutil.copy(base, vrt, driver="VRT")
    tree = ElementTree.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        for path in overviews:
            overview = ElementTree.SubElement(band, "Overview")
            source = ElementTree.SubElement(overview, "SourceFilename", relativeToVRT="0")
            source.text = str(path)
            ElementTree.SubElement(overview, "SourceBand").text = band.get("band")
    tree.write(vrt)
