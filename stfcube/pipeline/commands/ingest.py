"""``stfcube ingest``: scene stacks into one analysis-ready Zarr cube."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.defaults import DEFAULT_CHUNK, RESAMPLING_METHODS


def ingest_command(
    source: Annotated[
        str,
        typer.Argument(
            help="STAC catalog/collection JSON (path or URL), YAML/CSV manifest, or a directory "
            "holding catalog.json or manifest.yaml/.csv."
        ),
    ],
    cube: Annotated[Path, typer.Argument(help="Zarr cube to create or append to.")],
    chunk: Annotated[int, typer.Option(help="Spatial chunk size in pixels.")] = DEFAULT_CHUNK,
    overwrite: Annotated[
        bool, typer.Option(help="Rewrite dates the cube already has for the same sensor.")
    ] = False,
    resampling: Annotated[
        str,
        typer.Option(
            help=f"Coarse-to-fine-grid method: {', '.join(RESAMPLING_METHODS)} (average equals "
            "nearest when the coarse grid nests the fine grid)."
        ),
    ] = "average",
    roles: Annotated[
        str,
        typer.Option(help="Roles to ingest, comma-separated: fine,coarse (default) or truth."),
    ] = "fine,coarse",
    native: Annotated[
        bool | None,
        typer.Option(
            "--native/--no-native",
            help="Require (or skip) keeping coarse images on their native grid; default: keep "
            "it when it nests the fine grid.",
        ),
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Directory the manifest's scene paths are relative to.")
    ] = None,
    fine: Annotated[
        str | None,
        typer.Option(
            help="Catalog fine collection id(s), comma-separated (e.g. landsat-c2-l2): "
            "SOURCE is then a STAC API URL, static catalog or item JSON file."
        ),
    ] = None,
    coarse: Annotated[
        str | None, typer.Option(help="Catalog coarse collection id(s) (e.g. modis-43A4-061).")
    ] = None,
    bbox: Annotated[str | None, typer.Option(help="Catalog region W,S,E,N (degrees).")] = None,
    dates: Annotated[
        str | None, typer.Option(help="Catalog dates YYYY-MM-DD/YYYY-MM-DD (inclusive).")
    ] = None,
    crs: Annotated[
        str | None, typer.Option(help="Catalog grid CRS (default: the fine scenes').")
    ] = None,
    resolution: Annotated[
        float | None, typer.Option(help="Catalog grid pixel size (default: fine sensor's).")
    ] = None,
    bands: Annotated[
        str | None, typer.Option(help="Catalog bands, comma-separated (default: shared ones).")
    ] = None,
    skip_empty: Annotated[
        bool,
        typer.Option(
            help="Leave out (with a warning naming each) scenes outside the fine grid or "
            "without a valid pixel on it, instead of refusing the source."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Ingest SOURCE into CUBE: validate every input first, then write (or append) lazily.

    New dates are appended to an existing cube; dates it already has for a sensor are skipped
    (or rewritten with --overwrite). A failed run leaves an existing cube untouched.

    Examples:

      stfcube ingest site/catalog.json cube.zarr

      stfcube ingest site/catalog.json truth.zarr --roles truth

      stfcube ingest scenes/manifest.yaml cube.zarr --chunk 256

      stfcube ingest https://planetarycomputer.microsoft.com/api/stac/v1 cube.zarr
        --fine landsat-c2-l2 --coarse modis-43A4-061 --bbox 149.0,-35.4,149.1,-35.3
        --dates 2024-09-01/2024-11-30
    """
    from stfcube.pipeline.commands._progress import dask_progress
    from stfcube.pipeline.ingest.catalog.ingest import catalog_query
    from stfcube.pipeline.ingest.scenes import ingest

    screen = console()
    with (
        warnings.catch_warnings(record=True) as caught,
        dask_progress("ingesting", screen, quiet=quiet),
    ):
        warnings.simplefilter("always", UserWarning)
        report = ingest(
            source,
            cube,
            chunk=chunk,
            overwrite=overwrite,
            resampling=resampling,
            roles=tuple(r.strip() for r in roles.split(",") if r.strip()),
            native=native,
            root=root,
            catalog=catalog_query(
                fine, coarse, bbox, dates, crs=crs, resolution=resolution, bands=bands
            ),
            skip_empty=skip_empty,
        )
    for note in dict.fromkeys(
        str(w.message) for w in caught if issubclass(w.category, UserWarning)
    ):
        screen.print(f"[yellow]warning:[/] {note}")
    screen.print(report.summary())
    if report.skipped:
        screen.print(
            f"already in the cube (use --overwrite to rewrite): {', '.join(report.skipped)}"
        )
