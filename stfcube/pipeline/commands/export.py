"""``stfcube export``: the fused product as COGs (one per date), optionally with STAC."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._progress import progress_bar
from stfcube.pipeline.export import COMPRESSIONS


def _comma_list(value: str | None) -> list[str] | None:
    """``a,b`` -> ``["a", "b"]`` (None stays None: everything)."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter("empty list; give comma-separated values or leave it out")
    return items


def _check_compress(value: str) -> str:
    if value not in COMPRESSIONS:
        raise typer.BadParameter(f"{value!r} is not a compression; use {' or '.join(COMPRESSIONS)}")
    return value


def export_command(
    fused: Annotated[
        Path,
        typer.Argument(exists=True, help="Fused Zarr store written by stfcube fuse."),
    ],
    cog: Annotated[
        Path,
        typer.Option("--cog", help="Folder to write one COG per date into (missing or empty)."),
    ],
    stac: Annotated[
        bool,
        typer.Option("--stac", help="Also write a STAC collection of the store and the COGs."),
    ] = False,
    dates: Annotated[
        str | None,
        typer.Option(help="Comma-separated dates YYYY-MM-DD to export (default: all)."),
    ] = None,
    bands: Annotated[
        str | None, typer.Option(help="Comma-separated band names to export (default: all).")
    ] = None,
    compress: Annotated[
        str, typer.Option(callback=_check_compress, help="deflate (read everywhere) or zstd.")
    ] = "deflate",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an earlier export in the --cog folder.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Export FUSED as cloud-optimised GeoTIFFs: one per date, all bands in one file.

    Each COG has 512-px tiles, average overviews, compression, nodata (NaN), the band names as
    descriptions and the scale that turns values into reflectance. It is written window by
    window (a 10000² date stays under 2 GiB of memory). With --stac the folder also gets
    collection.json and one item per date (proj:, eo:bands, raster:bands, the method,
    parameters and input scenes), loadable with odc-stac or openEO's load_stac.

    Examples:

      stfcube export site/fused.zarr --cog site/cogs

      stfcube export fused.zarr --cog export --stac --dates 2024-05-03,2024-05-05 --bands red,nir
    """
    from stfcube.pipeline.export import export_cog

    screen = console(stderr=True)
    with progress_bar("exporting windows", screen, quiet=quiet, transient=True) as progress:
        result = export_cog(
            fused,
            cog,
            _comma_list(dates),
            _comma_list(bands),
            overwrite,
            stac=stac,
            compress=compress,
            progress=progress,
        )
    screen.print(
        f"[bold green]wrote[/] {len(result.cogs)} COG(s) of {', '.join(result.bands)} "
        f"to {result.out_dir}"
    )
    if result.collection is not None:
        screen.print(f"  STAC collection: {result.collection}")
