"""``stfcube simulate``: write a synthetic, seeded STF test site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.commands._progress import progress_bar
from stfcube.pipeline.defaults import SIMULATED_BANDS


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_shift(text: str) -> tuple[float, float]:
    parts = _split(text)
    try:
        rows, cols = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"expected ROWS,COLS in coarse pixels, got {text!r}") from None
    return rows, cols


def simulate_command(
    out_dir: Annotated[Path, typer.Argument(help="Site directory to create (absent or empty).")],
    size: Annotated[int, typer.Option(help="Image size in 30 m pixels (square).")] = 1024,
    days: Annotated[int, typer.Option(help="Number of days (daily coarse and truth).")] = 32,
    seed: Annotated[int, typer.Option(help="Seed: same seed, byte-identical files.")] = 0,
    coarse_ratio: Annotated[
        int, typer.Option(help="Coarse pixel / fine pixel (size must be a multiple).")
    ] = 16,
    fine_every: Annotated[int, typer.Option(help="Days between fine acquisitions.")] = 8,
    start_date: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")] = "2024-05-01",
    bands: Annotated[str, typer.Option(help="Comma-separated bands to write.")] = ",".join(
        SIMULATED_BANDS
    ),
    cloud_dates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated cloudy fine dates, or 'none' "
            "(default: every second fine date, not the first or last)."
        ),
    ] = None,
    psf_sigma: Annotated[
        float, typer.Option(help="Coarse Gaussian PSF sigma, in coarse pixels.")
    ] = 0.5,
    shift: Annotated[
        str, typer.Option(help="Coarse misregistration ROWS,COLS in coarse pixels.")
    ] = "0.2,0.3",
    noise: Annotated[float, typer.Option(help="Coarse noise std, in reflectance.")] = 0.01,
    block_rows: Annotated[
        int | None,
        typer.Option(
            help="Fine rows per streamed block (multiple of the ratio; output unchanged)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a previous site in OUT_DIR.")] = False,
) -> None:
    """Write a synthetic, deterministic STF test site: fine, coarse and truth COGs plus STAC.

    The scene has crop, grassland, forest, urban and water patches with
    per-band phenology, roads and a river narrower than a coarse pixel, a
    harvest and a flood. The fine sensor (30 m) sees it every FINE_EVERY days,
    with clouds on some dates; the coarse sensor sees the area-averaged,
    blurred, shifted and noisy truth every day. OUT_DIR gets catalog.json
    (STAC collections sim-fine, sim-coarse, sim-truth) and site.json.

    [bold]Examples[/]

    stfcube simulate demo-site   [dim](1024², 32 days, seed 0)[/]

    stfcube simulate small --size 256 --days 10 --seed 3

    stfcube simulate big --size 10000 --days 2   [dim](streams to disk, < 2 GiB)[/]

    stfcube simulate clean --cloud-dates none --noise 0 --psf-sigma 0 --shift 0,0
    """
    from stfcube.pipeline.simulate.site import simulate_site

    screen = console(stderr=True)
    if cloud_dates is None:
        clouds: list[str] | None = None
    elif cloud_dates.strip().lower() == "none":
        clouds = []
    else:
        clouds = _split(cloud_dates)
    with progress_bar("simulating rows", screen, transient=True) as progress:
        summary = simulate_site(
            out_dir,
            size=size,
            days=days,
            seed=seed,
            coarse_ratio=coarse_ratio,
            fine_every=fine_every,
            bands=_split(bands),
            cloud_dates=clouds,
            start_date=start_date,
            block_rows=block_rows,
            psf_sigma=psf_sigma,
            misregistration=_parse_shift(shift),
            coarse_noise=noise,
            overwrite=overwrite,
            progress=progress,
        )
    fine = ", ".join(d.isoformat() for d in summary.fine_dates)
    cloudy = ", ".join(d.isoformat() for d in summary.cloud_dates) or "none"
    screen.print(f"[bold green]wrote[/] {summary.catalog}")
    screen.print(
        f"  {size}² fine pixels, {days} days from {summary.dates[0]}, ratio {coarse_ratio}"
    )
    screen.print(f"  fine dates: {fine} (cloudy: {cloudy})")
    for event in summary.events:
        screen.print(f"  {event.kind} on {event.date}: {event.pixels} fine pixels")
