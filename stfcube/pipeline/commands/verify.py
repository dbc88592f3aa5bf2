"""``stfcube verify``: check a cube or fused store chunk by chunk, repair fused markers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.errors import InputError

#: Problems listed one per line; the rest are counted.
MAX_LISTED = 50


def verify_command(
    store: Annotated[Path, typer.Argument(help="A cube (stfcube ingest) or a fused store.")],
    fix: Annotated[
        bool,
        typer.Option(
            "--fix",
            help="Clear the done-markers of fused tiles whose data are damaged (a rerun of "
            "fuse recomputes them), rebuild a damaged tile_done and set complete. Never "
            "deletes data.",
        ),
    ] = False,
) -> None:
    """Check that every expected chunk is present and decodable and the markers agree.

    Exit code 0 when the store is healthy (or was repaired), 2 when problems remain (an
    ``InputError`` after the list).
    """
    from stfcube.pipeline.store.verify import verify_store

    report = verify_store(store, fix=fix)
    typer.echo(report.summary())
    for title, items in (("repaired", report.repaired), ("problem", report.problems)):
        for item in items[:MAX_LISTED]:
            typer.echo(f"  {title}: {item}")
        if len(items) > MAX_LISTED:
            typer.echo(f"  ... and {len(items) - MAX_LISTED} more {title} lines")
    if report.repaired:
        typer.echo("rerun `stfcube fuse` with the same options to recompute the cleared tiles")
    if report.healthy:
        return
    if report.kind == "cube":
        hint = "a cube is repaired by ingesting its damaged dates again (--overwrite)"
    elif fix:
        hint = "replace the store with `stfcube fuse ... --overwrite`"
    else:
        hint = f"`stfcube verify {store} --fix` repairs the markers"
    raise InputError(store, f"{len(report.problems)} problem(s) remain; {hint}")
