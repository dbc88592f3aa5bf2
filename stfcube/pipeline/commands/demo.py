"""``stfcube demo``: the end-to-end demo on the embedded synthetic site."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._options import TILE_HELP, check_tile
from stfcube.pipeline.errors import OutputError
from stfcube.pipeline.store.atomic import product_kind, remove_product

#: What a demo folder holds: name -> the product kind it must be for --overwrite to replace it.
DEMO_PRODUCTS = {
    "site": ("site",),
    "cube.zarr": ("cube",),
    "truth.zarr": ("cube",),
    "fused.zarr": ("fused",),
    "report": ("report",),
}


def demo_region(out_dir: Path, tile: int) -> dict[str, object]:
    """The region config of the demo: every store under ``out_dir``."""
    return {
        "name": "demo",
        "source": str(out_dir / "site" / "catalog.json"),
        "cube": str(out_dir / "cube.zarr"),
        "fused": str(out_dir / "fused.zarr"),
        "truth": str(out_dir / "truth.zarr"),
        "ingest_truth": True,
        "evaluation": str(out_dir / "report"),
        "method": "starfm",
        "pairs": "nearest",
        "tile": tile,
        "chunk": tile,
        "runner": {"n_workers": 1},
        "retries": {"retries": 2, "delay_seconds": 2},
    }


def demo_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the site, cubes and report.")] = Path(
        "demo-output"
    ),
    size: Annotated[int, typer.Option(help="Site size in fine pixels (multiple of 16).")] = 512,
    days: Annotated[int, typer.Option(help="Days simulated (one coarse image a day).")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed of the site.")] = 0,
    tile: Annotated[int, typer.Option(help=TILE_HELP, callback=check_tile)] = 256,
    overwrite: Annotated[
        bool, typer.Option(help="Delete OUT_DIR first and start from scratch.")
    ] = False,
) -> None:
    """Simulate a site, then run the update flow on it: ingest, fuse, evaluate.

    The flow is ``stfcube.flows.update.update_flow``, the same one a scheduled Prefect deployment
    runs, here with a temporary local Prefect server and nothing reaching the network. Run it
    again and the flow finds nothing new to do.

    Examples:

      stfcube demo

      stfcube demo /tmp/demo --size 1024 --days 48
    """
    from stfcube.flows.update import (
        run_update,  # Prefect is imported only by the commands that use it
    )
    from stfcube.pipeline.simulate.site import simulate_site

    screen = console(stderr=True)
    if overwrite and out_dir.exists():
        if product_kind(out_dir / "site") != "site":
            raise OutputError(f"{out_dir}: --overwrite only replaces a previous demo folder")
        for name, kinds in DEMO_PRODUCTS.items():  # what the demo wrote; other files stay
            if (out_dir / name).exists():
                remove_product(out_dir / name, kinds)
    site = out_dir / "site"
    if (site / "site.json").exists():
        screen.print(f"using the existing site {site} (--overwrite starts afresh)")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        summary = simulate_site(site, size=size, days=days, seed=seed)
        screen.print(
            f"simulated {size}x{size} px, {days} days -> {summary.out_dir} "
            f"in {time.perf_counter() - started:.1f} s"
        )
    report = run_update(demo_region(out_dir, tile))
    screen.print(report.summary())
    screen.print(
        f"\nopen {out_dir / 'report' / 'report.html'} for the metrics and pictures;\n"
        f"the fused cube is {out_dir / 'fused.zarr'} "
        "(xarray.open_zarr; .rio gives CRS and transform)"
    )
