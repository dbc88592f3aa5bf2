"""``stfcube fuse``: fuse a cube into a fine-resolution time series."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._options import (
    TILE_HELP,
    check_device,
    check_memory_limit,
    check_scheduler,
    check_tile,
)
from stfcube.pipeline.commands._progress import progress_bar
from stfcube.pipeline.engine.cluster import ClusterSpec, dask_client
from stfcube.pipeline.errors import ConfigError


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


def check_method_params(method: str, params: dict[str, Any]) -> None:
    """Refuse an unknown method or ``--param`` values it does not accept, before any work.

    Built-in methods report bad values as :class:`ConfigError`; a plugin method's
    ``make_params`` may raise ``TypeError`` or ``ValueError``, reported the same way.
    """
    from stfcube.pipeline.engine.methods.registry import get_method

    try:
        get_method(method).make_params(params)
    except (TypeError, ValueError) as exc:
        given = " ".join(f"{key}={json.dumps(value)}" for key, value in params.items())
        raise ConfigError(f"--param {given}: invalid for method {method}: {exc}") from None


def check_region(cube: Path, region: tuple[int, int, int, int], tile: int) -> None:
    """Refuse a ``--region`` off the tile grid or outside the image of ``cube``."""
    from stfcube.pipeline.geometry.tiling import tile_grid
    from stfcube.pipeline.store.cube import open_cube

    sizes = open_cube(cube).sizes
    try:
        tile_grid((sizes["y"], sizes["x"]), tile, region)
    except ValueError as exc:
        raise ConfigError(f"--region: {exc}") from None


def check_local_gpu() -> None:
    """Refuse ``--device gpu`` on a machine without CuPy or without a usable CUDA device."""
    try:
        import cupy

        devices = cupy.cuda.runtime.getDeviceCount()
    except ImportError:
        raise ConfigError(
            "--device gpu needs CuPy, which is not installed here: pip install 'stfcube[gpu]' "
            "(or give --scheduler, a cluster whose workers have GPUs)"
        ) from None
    except Exception as exc:  # CuPy raises its own CUDA runtime errors without a driver
        raise ConfigError(f"--device gpu: CuPy finds no usable CUDA device ({exc})") from None
    if devices < 1:
        raise ConfigError("--device gpu: this machine has no CUDA device")


def scheduler_client(spec: ClusterSpec) -> AbstractContextManager[Any]:
    """A context yielding a client of ``spec``'s scheduler, or ``None`` without a scheduler."""
    return dask_client(spec) if spec.scheduler else nullcontext(None)


def fuse_command(
    cube: Annotated[
        Path, typer.Argument(exists=True, help="Input cube (Zarr) written by stfcube ingest.")
    ],
    out: Annotated[Path, typer.Argument(help="Output Zarr store (created, extended or resumed).")],
    method: Annotated[
        str, typer.Option(help="Fusion method (`stfcube methods` lists them), or module:Class.")
    ] = "starfm",
    dates: Annotated[
        list[str] | None,
        typer.Option("--date", "--dates", help="Prediction date YYYY-MM-DD (repeatable)."),
    ] = None,
    all_coarse_dates: Annotated[
        bool, typer.Option(help="Predict every coarse date (leave-one-out on pair dates).")
    ] = False,
    pairs: Annotated[
        str | None,
        typer.Option(help="Pair rule: nearest, before, after or N (default: the method's)."),
    ] = None,
    pair_tolerance: Annotated[
        int,
        typer.Option(
            min=0,
            help="Pair a fine image with a coarse one up to this many days away (composites).",
        ),
    ] = 0,
    tile: Annotated[int, typer.Option(help=TILE_HELP, callback=check_tile)] = 512,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable)."),
    ] = None,
    min_pair_valid: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Skip pairs whose fine image has a smaller valid share (0-1)."
        ),
    ] = 0.5,
    region: Annotated[
        str | None, typer.Option(help="Only tiles in ROW0:ROW1,COL0:COL1 (tile multiples).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Address of a running dask scheduler (tcp://host:8786).",
            callback=check_scheduler,
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Local dask workers.")] = None,
    threads_per_worker: Annotated[
        int | None, typer.Option(min=1, help="Threads per local worker.")
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Memory limit per local worker, e.g. 4GiB or auto.", callback=check_memory_limit
        ),
    ] = None,
    processes: Annotated[
        bool, typer.Option(help="Local workers as processes instead of threads.")
    ] = False,
    device: Annotated[
        str, typer.Option(help="cpu or gpu (CuPy on the workers).", callback=check_device)
    ] = "cpu",
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

      stfcube fuse cube.zarr fused.zarr --method coarse-residual --pair-tolerance 8

      stfcube fuse cube.zarr fused.zarr --scheduler tcp://10.0.0.5:8786
    """
    from stfcube.pipeline.engine.run import fuse

    if dates and all_coarse_dates:
        raise ConfigError("give either --date or --all-coarse-dates, not both")
    chosen_dates: list[str] | str | None = "all" if all_coarse_dates else (dates or None)
    params = parse_params(param or [])
    check_method_params(method, params)
    block = parse_region(region)
    if block is not None:
        check_region(cube, block, tile)
    if device == "gpu" and scheduler is None:
        check_local_gpu()
    spec = ClusterSpec(
        scheduler=scheduler,
        workers=workers,
        threads_per_worker=threads_per_worker,
        memory_limit=memory_limit,
        processes=processes,
    )
    screen = console(stderr=True)
    # The scheduler is reached before the engine creates the output store: an unreachable
    # address leaves nothing behind. A local cluster starts once the run is planned.
    with scheduler_client(spec) as client, progress_bar("fusing tiles", screen, quiet=quiet) as bar:
        report = fuse(
            cube,
            out,
            method=method,
            dates=chosen_dates,
            pairs=pairs,
            tile=tile,
            params=params,
            min_pair_valid_fraction=min_pair_valid,
            pair_tolerance_days=pair_tolerance,
            region=block,
            client=client,
            cluster=None if client is not None else spec,
            overwrite=overwrite,
            device=device,
            progress=bar,
        )
    screen.print(report.summary())
