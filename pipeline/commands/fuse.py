"""``stfcube fuse``: fuse a cube into a fine-resolution time series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.commands._progress import progress_bar
from pipeline.engine.cluster import ClusterSpec
from pipeline.errors import ConfigError


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are read as JSON where they parse, else text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    """``ROW0:ROW1,COL0:COL1`` to a tuple of ints."""
    if text is None:
        return None
    try:
        rows, cols = text.split(",")
        r0, r1 = (int(v) for v in rows.split(":"))
        c0, c1 = (int(v) for v in cols.split(":"))
    except ValueError:
        raise ConfigError(f"--region expects ROW0:ROW1,COL0:COL1, got {text!r}") from None
    return r0, r1, c0, c1


def fuse_command(
    cube: Annotated[Path, typer.Argument(help="Input cube (Zarr) written by stfcube ingest.")],
    out: Annotated[Path, typer.Argument(help="Output Zarr store (created, extended or resumed).")],
    method: Annotated[str, typer.Option(help="Fusion method.")] = "starfm",
    dates: Annotated[
        list[str] | None,
        typer.Option("--date", "--dates", help="Prediction date YYYY-MM-DD (repeatable)."),
    ] = None,
    all_coarse_dates: Annotated[
        bool, typer.Option(help="Predict every coarse date (leave-one-out on pair dates).")
    ] = False,
    pairs: Annotated[str, typer.Option(help="Pair rule: nearest, before, after or N.")] = "nearest",
    tile: Annotated[int, typer.Option(help="Tile edge in fine pixels (= output chunk).")] = 512,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable)."),
    ] = None,
    min_pair_valid: Annotated[
        float, typer.Option(help="Skip pairs whose fine image has a smaller valid share.")
    ] = 0.5,
    region: Annotated[
        str | None, typer.Option(help="Only tiles in ROW0:ROW1,COL0:COL1 (tile multiples).")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running dask scheduler (tcp://host:8786).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Local dask workers.")] = None,
    threads_per_worker: Annotated[
        int | None, typer.Option(help="Threads per local worker.")
    ] = None,
    memory_limit: Annotated[
        str | None, typer.Option(help="Memory limit per local worker, e.g. 4GiB.")
    ] = None,
    processes: Annotated[
        bool, typer.Option(help="Local workers as processes instead of threads.")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu or gpu (CuPy on the workers).")] = "cpu",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an output written with other parameters.")
    ] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar; log lines only.")] = False,
) -> None:
    """Fuse CUBE into a fine-resolution time series written to OUT, tile by tile.

    Global statistics are computed once over whole images, then each tile (plus the method's
    halo) is fused on the dask cluster and written as soon as it finishes. A killed run, run
    again with the same arguments, finishes only the missing tiles.

    Examples:

      stfcube fuse site/cube.zarr site/fused.zarr

      stfcube fuse cube.zarr fused.zarr --date 2024-05-10 --date 2024-05-11 --tile 256

      stfcube fuse cube.zarr fused.zarr --all-coarse-dates -p max_search_distance=450

      stfcube fuse cube.zarr fused.zarr --scheduler tcp://10.0.0.5:8786
    """
    from pipeline.engine.run import fuse

    if dates and all_coarse_dates:
        raise ConfigError("give either --date or --all-coarse-dates, not both")
    chosen_dates: list[str] | str | None = "all" if all_coarse_dates else (dates or None)
    spec = ClusterSpec(
        scheduler=scheduler,
        workers=workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        processes=processes,
    )
    console = Console(stderr=True)
    with progress_bar("fusing tiles", console, quiet=quiet) as progress:
        report = fuse(
            cube,
            out,
            method=method,
            dates=chosen_dates,
            pairs=pairs,
            tile=tile,
            params=parse_params(param or []),
            min_pair_valid_fraction=min_pair_valid,
            region=parse_region(region),
            cluster=spec,
            overwrite=overwrite,
            device=device,
            progress=progress,
        )
    console.print(report.summary())
