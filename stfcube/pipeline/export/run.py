"""``export``: the fused product as one COG per date, optionally with its STAC collection.

Everything is checked before anything is written (the store, the dates and bands, the output
folder: see :func:`stfcube.pipeline.store.atomic.check_output_folder`), then the folder is built in
a hidden sibling and renamed into place (:func:`stfcube.pipeline.store.atomic.staged`), so a
half-written export never appears. Its marker file lists what it wrote; ``--overwrite`` replaces
only such a folder, and only while it holds nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stfcube.pipeline.export.cog import window_count, write_cog
from stfcube.pipeline.export.product import FusedProduct, open_product
from stfcube.pipeline.export.stac import item_id, product_collection, stac_grid, write_collection
from stfcube.pipeline.store.atomic import EXPORT_MARKER, check_disjoint, check_output_folder, staged


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
        The export folder.
    cogs : dict
        ``YYYY-MM-DD`` -> the date's COG.
    collection : pathlib.Path or None
        The STAC ``collection.json`` (None without STAC).
    bands : list of str
        The bands in each COG, in order.
    """

    out_dir: Path
    cogs: dict[str, Path]
    collection: Path | None = None
    bands: list[str] = field(default_factory=list)


def export_cog(
    fused: str | Path,
    out_dir: str | Path,
    dates: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    overwrite: bool = False,
    *,
    stac: bool = False,
    compress: str = "deflate",
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write one COG per date of a fused store (all bands in one file) into ``out_dir``.

    Each COG (``<store name>_<YYYY-MM-DD>.tif``) holds the store's values (float32, nodata NaN)
    with 512-px tiles, average overviews, compression, the band names as descriptions and the
    scale/offset that turn the values into physical units (1e-4 for reflectance x 10000). It is
    written window by window: memory stays bounded whatever the image size.

    Parameters
    ----------
    fused
        The fused store (``stfcube fuse``).
    out_dir
        The export folder: missing or empty, or an earlier export with ``overwrite``.
    dates
        Dates ``YYYY-MM-DD`` to export (default: all); each must be completely fused.
    bands
        Band names to export (default: all).
    overwrite
        Replace an earlier export in ``out_dir``.
    stac
        Also write the STAC collection (:func:`export_stac`).
    compress
        ``deflate`` (default) or ``zstd``.
    progress
        Called as ``progress(done, total)`` while writing.

    Returns
    -------
    ExportResult

    Raises
    ------
    InputError, ConfigError, OutputError
        Bad store, dates or bands, or an output folder that may not be written; nothing is
        written then.
    """
    product = open_product(fused, dates, bands)
    if stac:
        stac_grid(product)  # refuses a CRS without EPSG code before writing
    out_dir = Path(out_dir)
    check_disjoint(out_dir, [product.path])
    check_output_folder(out_dir, overwrite=overwrite, kinds=("export",), inputs=[product.path])
    total = len(product.dates) * (window_count(product.shape) + 1)
    steps = _Steps(total, progress)
    with staged(out_dir, replace=True) as staging:
        staging.mkdir()
        cogs = {date: staging / f"{item_id(product, date)}.tif" for date in product.dates}
        for date, path in cogs.items():
            _write_date(product, date, path, compress, steps)
        written = [path.name for path in cogs.values()]
        if stac:
            written += write_collection(product_collection(product, cogs), staging)
        (staging / EXPORT_MARKER).write_text(json.dumps(sorted(written), indent=1) + "\n")
    return ExportResult(
        out_dir=out_dir,
        cogs={date: out_dir / path.name for date, path in cogs.items()},
        collection=out_dir / "collection.json" if stac else None,
        bands=[band.name for band in product.bands],
    )


def export_stac(
    fused: str | Path,
    out_dir: str | Path,
    dates: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    overwrite: bool = False,
    *,
    compress: str = "deflate",
    progress: Callable[[int, int], None] | None = None,
) -> ExportResult:
    """Write the COGs (:func:`export_cog`) and the STAC collection describing them and the store.

    ``out_dir`` gets ``collection.json`` (datacube extension, a ``zarr`` asset pointing at the
    store, the method and parameters) and per date ``<item>.json`` beside ``<item>.tif``
    (``proj:``, ``eo:bands``, ``raster:bands``, provenance): see
    :mod:`stfcube.pipeline.export.stac`.
    The store needs an EPSG CRS. Parameters, result and errors as :func:`export_cog`.
    """
    return export_cog(
        fused,
        out_dir,
        dates,
        bands,
        overwrite,
        stac=True,
        compress=compress,
        progress=progress,
    )


class _Steps:
    """Counts progress steps and reports ``(done, total)``."""

    def __init__(self, total: int, report: Callable[[int, int], None] | None) -> None:
        self.done, self.total, self._report = 0, total, report

    def __call__(self) -> None:
        self.done += 1
        if self._report is not None:
            self._report(self.done, self.total)


def _write_date(product: FusedProduct, date: str, path: Path, compress: str, steps: _Steps) -> None:
    write_cog(
        product.image(date),
        path,
        crs=product.crs,
        transform=product.transform,
        bands=product.bands,
        compress=compress,
        progress=steps,
    )
