"""Pictures and documents of an evaluation: quicklooks, scatter density, time series, tables.

Everything here works on small in-memory arrays (decimated chips, pixel series) and on the
JSON-ready report dictionary of :class:`pipeline.evaluate.EvaluationReport`; reading the cubes is
``pipeline.evaluate.run``'s job. Figures use matplotlib's Agg backend. ``report.html`` is
self-contained: inline CSS and PNGs embedded as base64.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

#: Metric columns per band and per date, in table order, with the direction that is better.
BAND_COLUMNS: tuple[str, ...] = ("rmse", "mae", "bias", "r", "r2", "ssim", "psnr", "uiqi")
DATE_COLUMNS: tuple[str, ...] = ("sam", "ergas")
HIGHER_IS_BETTER = frozenset({"r", "r2", "ssim", "psnr", "uiqi"})
CLOSER_TO_ZERO_IS_BETTER = frozenset({"bias"})
CSV_COLUMNS: tuple[str, ...] = (
    "date",
    "band",
    "status",
    "count",
    *BAND_COLUMNS,
    *DATE_COLUMNS,
    "data_range",
    "mean_truth",
    "mean_fused",
)
STRETCH_PERCENTILES = (2.0, 98.0)
_DPI = 110
_NODATA_GREY = "0.85"
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em}
h1,h2,h3{color:#123}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}
th{background:#eef2f6}
td.text{text-align:left}
td.best{background:#d7f0d7;font-weight:bold}
tr.mean td{border-top:2px solid #888}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
code{background:#f4f4f4;padding:0 0.2em}
.notes li{color:#7a4b00}
"""


@dataclass(frozen=True)
class Composite:
    """A way to show a cube as an image: three bands as RGB, or one band in greyscale."""

    name: str
    bands: tuple[str, ...]


@dataclass(frozen=True)
class PointSeries:
    """Series at one location: label and, per source, ``(times, values[time, band])`` or None."""

    label: str
    series: Mapping[str, tuple[np.ndarray, np.ndarray] | None]


def composites_for(bands: Sequence[str]) -> list[Composite]:
    """True colour (red/green/blue) and false colour (nir/red/green) when present, else grey.

    Parameters
    ----------
    bands : sequence of str
        Available band names.

    Returns
    -------
    list of Composite
        At least one composite; a greyscale view of the first band when no triple is present.
    """
    names = {b.lower(): b for b in bands}
    found = []
    for label, triple in (
        ("true colour", ("red", "green", "blue")),
        ("false colour", ("nir", "red", "green")),
    ):
        if all(t in names for t in triple):
            found.append(Composite(label, tuple(names[t] for t in triple)))
    return found or [Composite(f"{bands[0]} (greyscale)", (bands[0],))]


def percentile_limits(reference: np.ndarray) -> tuple[float, float]:
    """Robust ``(low, high)`` display limits: the 2nd and 98th percentiles of finite values."""
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, STRETCH_PERCENTILES)
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def stretch(image: np.ndarray, limits: Sequence[tuple[float, float]]) -> np.ndarray:
    """Linear stretch of a ``(channel, h, w)`` image to RGBA in ``[0, 1]`` (alpha 0 where NaN).

    Parameters
    ----------
    image : numpy.ndarray
        One or three channels.
    limits : sequence of (low, high)
        One pair per channel, e.g. from :func:`percentile_limits` of the truth.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 4)`` float RGBA; one channel is repeated as grey.
    """
    scaled = np.stack([(image[c] - lo) / (hi - lo) for c, (lo, hi) in enumerate(limits)], axis=-1)
    if scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    alpha = np.all(np.isfinite(scaled), axis=-1, keepdims=True).astype(np.float64)
    rgb = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)
    return np.concatenate([rgb, alpha], axis=-1)


def _select(image: np.ndarray, bands: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    return image[[list(bands).index(b) for b in wanted]]


def _blank(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_quicklook(
    path: Path,
    context: Mapping[str, np.ndarray | None],
    fused: np.ndarray,
    truth: np.ndarray,
    bands: Sequence[str],
    *,
    fused_label: str = "fused",
    title: str = "",
) -> None:
    """Side-by-side composites: context images (coarse, base fine), fused, truth and the error.

    One row per composite of :func:`composites_for`. All images of a row share one 2–98 %
    stretch taken from the truth, so brightness differences are real. The error panel shows
    ``fused − truth`` of the row's first band with a diverging colormap and symmetric limits
    (98th percentile of ``|error|``).

    Parameters
    ----------
    path : Path
        PNG to write.
    context : mapping of str to array or None
        Titled ``(band, h, w)`` images shown before the fused one; None draws "not available".
    fused, truth : numpy.ndarray
        ``(band, h, w)`` chips, NaN where invalid.
    bands : sequence of str
        Band names of the chips' first axis.
    fused_label, title : str
        Panel and figure titles.
    """
    composites = composites_for(bands)
    panels = {**context, fused_label: fused, "truth": truth}
    ncols = len(panels) + 1
    fig = Figure(layout="constrained", figsize=(3.2 * ncols, 3.3 * len(composites)))
    axes = fig.subplots(len(composites), ncols, squeeze=False)
    for row, comp in zip(axes, composites, strict=True):
        ref = _select(truth, bands, comp.bands)
        if not np.isfinite(ref).any():
            ref = _select(fused, bands, comp.bands)
        limits = [percentile_limits(channel) for channel in ref]
        for ax, (name, image) in zip(row, panels.items(), strict=False):
            if image is None:
                _blank(ax, name, "not available")
                continue
            ax.set_facecolor(_NODATA_GREY)
            ax.imshow(stretch(_select(image, bands, comp.bands), limits), interpolation="nearest")
            ax.set_title(f"{name}\n{comp.name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        _error_panel(fig, row[-1], fused, truth, bands, comp.bands[0])
    fig.suptitle(title)
    fig.savefig(path, dpi=_DPI)


def _error_panel(
    fig: Figure,
    ax: Axes,
    fused: np.ndarray,
    truth: np.ndarray,
    bands: Sequence[str],
    band: str,
) -> None:
    b = list(bands).index(band)
    error = fused[b].astype(np.float64) - truth[b]
    finite = np.abs(error[np.isfinite(error)])
    if finite.size == 0:
        _blank(ax, f"error ({band})", "no valid pixels")
        return
    limit = float(np.percentile(finite, STRETCH_PERCENTILES[1])) or float(finite.max()) or 1.0
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=_NODATA_GREY)
    im = ax.imshow(
        np.ma.masked_invalid(error), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax.set_title(f"fused − truth ({band})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.4g}"


def plot_scatter(
    path: Path,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    stats: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "",
) -> None:
    """Density scatter (hexbin, log colour) of fused against truth, one panel per band.

    Parameters
    ----------
    path : Path
        PNG to write.
    data : mapping of band to (fused values, truth values)
        Valid-pixel samples (1-D arrays of equal length).
    stats : mapping of band to metric row
        Full-resolution metrics; ``r``, ``rmse`` and ``count`` are annotated.
    title : str
        Figure title.
    """
    n = len(data)
    fig = Figure(layout="constrained", figsize=(4.2 * n, 4.0))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (band, (fused, truth)) in zip(axes[0], data.items(), strict=True):
        if fused.size == 0:
            _blank(ax, band, "no valid pixels")
            continue
        both = np.concatenate([fused, truth])
        lo, hi = float(both.min()), float(both.max())
        hi = hi if hi > lo else lo + 1.0
        hb = ax.hexbin(
            truth,
            fused,
            gridsize=80,
            extent=(lo, hi, lo, hi),
            mincnt=1,
            norm=LogNorm(),
            cmap="viridis",
        )
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="1:1")
        row = stats.get(band, {})
        ax.text(
            0.03,
            0.97,
            "\n".join(
                f"{name} = {_fmt(row.get(key))}"
                for name, key in (("r", "r"), ("RMSE", "rmse"), ("n", "count"))
            ),
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("truth")
        ax.set_ylabel("fused")
        ax.set_title(band)
        fig.colorbar(hb, ax=ax, fraction=0.046, pad=0.04, label="pixels")
    fig.suptitle(title)
    fig.savefig(path, dpi=_DPI)


_SERIES_STYLE: dict[str, dict[str, Any]] = {
    "coarse": {"color": "0.55", "marker": ".", "ls": "-", "lw": 0.8},
    "fine observations": {"color": "tab:green", "marker": "o", "ls": "none", "ms": 5},
    "fused": {"color": "tab:blue", "marker": ".", "ls": "-", "lw": 1.2},
    "truth": {"color": "tab:red", "marker": "x", "ls": "none", "ms": 7},
}


def plot_timeseries(path: Path, points: Sequence[PointSeries], bands: Sequence[str]) -> None:
    """Series at each location (rows) and band (columns): coarse, fine, fused and truth.

    Parameters
    ----------
    path : Path
        PNG to write.
    points : sequence of PointSeries
        Locations and their series; missing series are left out of the legend.
    bands : sequence of str
        Band names of the series' second axis.
    """
    fig = Figure(layout="constrained", figsize=(4.5 * len(bands), 2.8 * len(points)))
    axes = fig.subplots(len(points), len(bands), squeeze=False, sharex=True)
    for row, point in zip(axes, points, strict=True):
        for bi, (ax, band) in enumerate(zip(row, bands, strict=True)):
            for name, series in point.series.items():
                if series is None:
                    continue
                times, values = series
                keep = np.isfinite(values[:, bi])
                if keep.any():
                    ax.plot(times[keep], values[keep, bi], label=name, **_SERIES_STYLE[name])
            ax.set_title(f"{point.label} — {band}", fontsize=9)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=8)
    fig.savefig(path, dpi=_DPI)


# --------------------------------------------------------------------------------------------
# Metrics files and documents


def write_metrics(out_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` (the whole report dictionary) and ``metrics.csv``.

    The CSV has one row per date and band, one per date with ``band = all`` holding SAM and
    ERGAS, and the ``mean`` rows.
    """
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    rows = [*report["per_band"], *({**r, "band": "all"} for r in report["per_date"])]
    with (out_dir / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS})


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], best: Sequence[Sequence[bool]] = ()
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            cls = "best" if best and best[i][j] else ("text" if j < 2 else "")
            cells.append(f'<td class="{cls}">{html.escape(cell)}</td>')
        mean = ' class="mean"' if row and row[0] == "mean" else ""
        body.append(f"<tr{mean}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _band_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["date", "band", "status", "n", *BAND_COLUMNS]
    rows = [
        [r["date"], r["band"], r["status"], _fmt(r["count"]), *(_fmt(r[c]) for c in BAND_COLUMNS)]
        for r in report["per_band"]
    ]
    return header, rows


def _date_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["date", "status", "n (all bands)", "SAM (°)", "ERGAS"]
    rows = [
        [r["date"], r["status"], _fmt(r["count"]), _fmt(r["sam"]), _fmt(r["ergas"])]
        for r in report["per_date"]
    ]
    return header, rows


def _figures(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(caption, file) of every picture, in reading order."""
    files = report["files"]
    order = [
        (key, f"quicklook {key.split(':', 1)[1]}") for key in files if key.startswith("quicklook:")
    ]
    order += [
        (key, f"scatter {key.split(':', 1)[1]}") for key in files if key.startswith("scatter:")
    ]
    order += [("timeseries", "time series")] if "timeseries" in files else []
    return [(caption, files[key]) for key, caption in order]


def _settings_lines(report: Mapping[str, Any]) -> list[str]:
    s = report["settings"]
    ranges = ", ".join(f"{b} {_fmt(v)}" for b, v in s["data_range"].items())
    return [
        f"fused: {report['fused']} (method: {report.get('method') or 'unknown'})",
        f"truth: {report['truth']}",
        f"data range for SSIM/PSNR ({s['data_range_source']}): {ranges}",
        f"ERGAS resolution ratio h/l: {_fmt(s['resolution_ratio'])}",
        f"SSIM: {s['ssim_window']}x{s['ssim_window']} uniform window, K1={s['ssim_k1']}, "
        f"K2={s['ssim_k2']}",
        f"pictures decimated with stride {s['chip_stride']} (1 = full resolution)",
    ]


def write_reports(out_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``report.md`` (images linked) and ``report.html`` (self-contained) of an evaluation.

    The PNGs named in ``report["files"]`` must already be in ``out_dir``.
    """
    title = f"stfcube evaluation — {report.get('method') or 'fused'}"
    band_header, band_rows = _band_table(report)
    date_header, date_rows = _date_table(report)
    definitions = report["settings"]["definitions"]
    md = [f"# {title}", "", *(f"- {line}" for line in _settings_lines(report)), ""]
    if report["notes"]:
        md += ["## Notes", "", *(f"- {n}" for n in report["notes"]), ""]
    md += ["## Per date (all bands)", "", _md_table(date_header, date_rows), ""]
    md += ["## Per date and band", "", _md_table(band_header, band_rows), ""]
    md += ["## Pictures", ""]
    md += [f"### {caption}\n\n![{caption}]({name})\n" for caption, name in _figures(report)]
    md += ["## Definitions", "", *(f"- **{k}**: {v}" for k, v in definitions.items()), ""]
    (out_dir / "report.md").write_text("\n".join(md))

    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1><ul>"]
    parts += [f"<li>{esc(line)}</li>" for line in _settings_lines(report)]
    parts.append("</ul>")
    if report["notes"]:
        parts.append('<h2>Notes</h2><ul class="notes">')
        parts += [f"<li>{esc(n)}</li>" for n in report["notes"]]
        parts.append("</ul>")
    parts += ["<h2>Per date (all bands)</h2>", _html_table(date_header, date_rows)]
    parts += [
        "<h2>Per date and band</h2>",
        _html_table(band_header, band_rows),
        "<h2>Pictures</h2>",
    ]
    for caption, name in _figures(report):
        data = base64.b64encode((out_dir / name).read_bytes()).decode("ascii")
        parts.append(
            f'<h3>{esc(caption)}</h3><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        )
    parts.append("<h2>Definitions</h2><ul>")
    parts += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in definitions.items()]
    parts.append("</ul>")
    (out_dir / "report.html").write_text(_html_page(title, "".join(parts)))


def _html_page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def best_flags(values: Sequence[float | None], column: str) -> list[bool]:
    """Which entries are best in a column (ties all marked; None never best).

    Lower is better except for :data:`HIGHER_IS_BETTER`; for ``bias`` the smallest ``|bias|``.
    """

    def score(v: float) -> float:
        if column in HIGHER_IS_BETTER:
            return -v
        return abs(v) if column in CLOSER_TO_ZERO_IS_BETTER else v

    scores = [None if v is None or math.isnan(v) else score(v) for v in values]
    known = [s for s in scores if s is not None]
    if not known:
        return [False] * len(values)
    top = min(known)
    return [s is not None and s == top for s in scores]


def _comparison_tables(
    evaluations: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, columns, rows of raw values) per band and one for the spectral metrics."""
    bands: list[str] = []
    for ev in evaluations.values():
        bands += [b for b in ev["bands"] if b not in bands]
    tables = []
    for band in bands:
        rows = []
        for label, ev in evaluations.items():
            mean = next(
                (r for r in ev["per_band"] if r["date"] == "mean" and r["band"] == band), None
            )
            rows.append([label, *((mean or {}).get(c) for c in BAND_COLUMNS)])
        tables.append((f"band {band} (mean over dates)", list(BAND_COLUMNS), rows))
    rows = []
    for label, ev in evaluations.items():
        mean = next((r for r in ev["per_date"] if r["date"] == "mean"), {})
        rows.append([label, *(mean.get(c) for c in DATE_COLUMNS)])
    tables.append(("all bands (mean over dates)", list(DATE_COLUMNS), rows))
    return tables


def write_comparison(out_dir: Path, evaluations: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Write ``compare.md``, ``compare.html`` and ``compare.csv`` for labelled evaluations.

    Parameters
    ----------
    out_dir : Path
        Existing directory.
    evaluations : mapping of label to report dictionary
        ``metrics.json`` contents of each evaluation, in display order.

    Returns
    -------
    dict of str to str
        Written files by role.
    """
    md = ["# stfcube comparison", ""]
    md += [f"- **{label}**: {ev['fused']} vs {ev['truth']}" for label, ev in evaluations.items()]
    parts = ["<h1>stfcube comparison</h1><ul>"]
    parts += [
        f"<li><b>{html.escape(label)}</b>: {html.escape(str(ev['fused']))}</li>"
        for label, ev in evaluations.items()
    ]
    parts.append("</ul><p>Best value per column highlighted.</p>")
    csv_rows = []
    for title, columns, rows in _comparison_tables(evaluations):
        flags = [best_flags([r[j + 1] for r in rows], c) for j, c in enumerate(columns)]
        text = [[r[0], *(_fmt(v) for v in r[1:])] for r in rows]
        md_rows = [
            [t[0], *(f"**{v}**" if flags[j][i] else v for j, v in enumerate(t[1:]))]
            for i, t in enumerate(text)
        ]
        md += ["", f"## {title}", "", _md_table(["method", *columns], md_rows)]
        best = [[False, *(flags[j][i] for j in range(len(columns)))] for i in range(len(rows))]
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(["method", *columns], text, best)]
        for i, r in enumerate(rows):
            winners = [c for j, c in enumerate(columns) if flags[j][i]]
            csv_rows.append(
                {
                    "table": title,
                    "method": r[0],
                    **{c: "" if v is None else v for c, v in zip(columns, r[1:], strict=True)},
                    "best": " ".join(winners),
                }
            )
    (out_dir / "compare.md").write_text("\n".join(md) + "\n")
    (out_dir / "compare.html").write_text(_html_page("stfcube comparison", "".join(parts)))
    fields = ["table", "method", *BAND_COLUMNS, *DATE_COLUMNS, "best"]
    with (out_dir / "compare.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    return {
        "compare_md": "compare.md",
        "compare_html": "compare.html",
        "compare_csv": "compare.csv",
    }
