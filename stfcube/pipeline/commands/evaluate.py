"""``stfcube evaluate`` and ``stfcube compare``: accuracy reports of fused cubes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stfcube.pipeline.commands._console import console
from stfcube.pipeline.errors import ConfigError


def parse_pairs(items: list[str] | None, option: str, kind: type) -> list[tuple[Any, Any]]:
    """``A,B`` strings to ``(kind(A), kind(B))`` tuples; ``option`` names the flag in errors."""
    pairs = []
    for item in items or []:
        parts = item.split(",")
        try:
            if len(parts) != 2:
                raise ValueError(item)
            pairs.append((kind(parts[0]), kind(parts[1])))
        except ValueError:
            raise ConfigError(f"{option} expects two {kind.__name__}s A,B, got {item!r}") from None
    return pairs


def _summary_table(rows: list[dict[str, Any]], date_rows: list[dict[str, Any]]) -> Table:
    from stfcube.pipeline.evaluate.tables import MEAN_LABEL

    table = Table(title="mean over dates")
    for column in ("band", "n", "RMSE", "MAE", "bias", "r", "R²", "SSIM", "PSNR"):
        table.add_column(column, justify="right")
    keys = ("rmse", "mae", "bias", "r", "r2", "ssim", "psnr")
    for row in rows:
        if row["date"] == MEAN_LABEL:
            values = ("–" if row[k] is None else f"{row[k]:.4g}" for k in keys)
            table.add_row(row["band"], f"{row['count']:,}", *values)
    mean = next(r for r in date_rows if r["date"] == MEAN_LABEL)
    sam = "–" if mean["sam"] is None else f"{mean['sam']:.3g}°"
    ergas = "–" if mean["ergas"] is None else f"{mean['ergas']:.4g}"
    table.caption = f"SAM {sam}, ERGAS {ergas}"
    return table


def evaluate_command(
    fused: Annotated[
        Path, typer.Argument(exists=True, help="Fused Zarr store written by stfcube fuse.")
    ],
    truth: Annotated[
        str,
        typer.Argument(
            help="Truth cube (fine = truth, fine_valid = mask), or truth scenes to ingest "
            "(STAC catalog/collection path or URL, manifest, or a directory holding one)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report directory to write.")],
    dates: Annotated[
        list[str] | None, typer.Option("--date", help="Date YYYY-MM-DD to evaluate (repeatable).")
    ] = None,
    bands: Annotated[
        list[str] | None, typer.Option("--band", help="Band name to evaluate (repeatable).")
    ] = None,
    point: Annotated[
        list[str] | None,
        typer.Option("--point", help="Time-series location X,Y in CRS units (repeatable)."),
    ] = None,
    pixel: Annotated[
        list[str] | None,
        typer.Option("--pixel", help="Time-series location ROW,COL in pixels (repeatable)."),
    ] = None,
    resolution_ratio: Annotated[
        str | None,
        typer.Option(help="ERGAS h/l, fine/coarse pixel size, e.g. 30/480 (default: the cube's)."),
    ] = None,
    data_range: Annotated[
        float | None,
        typer.Option(help="Data range for SSIM/PSNR (default: truth max - min per band)."),
    ] = None,
    source_cube: Annotated[
        Path | None,
        typer.Option(help="Cube with coarse and base fine images (default: the fused store's)."),
    ] = None,
    max_pictures: Annotated[
        int, typer.Option(help="Dates with quicklook/scatter pictures (0 = every date).")
    ] = 8,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing report directory.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Measure FUSED against TRUTH and write metrics, pictures and a report to --out.

    Per date and band: RMSE, MAE, bias, r, R², SSIM, PSNR, UIQI; per date: SAM and ERGAS.
    Writes metrics.json, metrics.csv, quicklook_<date>.png, scatter_<date>.png, timeseries.png,
    report.md and a self-contained report.html.

    Examples:

      stfcube evaluate site/fused.zarr site/truth.zarr --out site/report

      stfcube evaluate fused.zarr truth.zarr -o report --date 2024-05-10 --pixel 120,340

      stfcube evaluate fused.zarr truth.zarr -o report --data-range 1 --resolution-ratio 30/480
    """
    from stfcube.pipeline.commands._progress import dask_progress
    from stfcube.pipeline.evaluate.run import evaluate

    screen = console()
    with dask_progress("evaluating", screen, quiet=quiet):
        report = evaluate(
            fused,
            truth,
            out,
            dates=dates,
            bands=bands,
            resolution_ratio=resolution_ratio,
            points=parse_pairs(point, "--point", float),
            pixels=parse_pairs(pixel, "--pixel", int),
            data_range=data_range,
            source_cube=source_cube,
            max_pictures=max_pictures or None,
            overwrite=overwrite,
        )
    screen.print(_summary_table(list(report.band_rows), list(report.date_rows)))
    for note in report.notes:
        screen.print(f"[yellow]note:[/] {note}")
    screen.print(f"report: {report.out_dir / 'report.html'}")


def compare_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            exists=True, help="Report directories of stfcube evaluate, or fused stores."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the comparison.")],
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Label per input, in order (repeatable).")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Truth cube, needed when inputs are fused stores.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
) -> None:
    """Put the metrics of several methods side by side, best value per column highlighted.

    Writes compare.md, compare.html and compare.csv to --out.

    Examples:

      stfcube compare reports/starfm reports/fsdaf --out reports/compare

      stfcube compare starfm.zarr fsdaf.zarr --truth truth.zarr --out reports/compare
    """
    from stfcube.pipeline.evaluate.comparison import compare

    result = compare(inputs, out, labels=label, truth=truth, overwrite=overwrite)
    console().print(f"compared {', '.join(result.labels)}: {result.out_dir / 'compare.html'}")
