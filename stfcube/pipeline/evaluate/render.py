"""Documents of an evaluation: ``metrics.json``, ``metrics.csv``, ``report.md``, ``report.html``.

Works on the JSON-ready report dictionary of :class:`stfcube.pipeline.evaluate.EvaluationReport`,
whose
pictures are already written. Both documents open with a summary (per band, mean over dates, with
pixel count and coverage), then the run's provenance, the scales the metrics used, the per-date
tables (with days from the nearest pair) and the pictures, which stay separate PNG files beside
the documents (linked, so the HTML stays small). The table and page helpers also serve
:mod:`stfcube.pipeline.evaluate.comparison`.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stfcube.pipeline.evaluate.tables import BAND_METRICS, DATE_METRICS, MEAN_LABEL, format_value

CSV_COLUMNS: tuple[str, ...] = (
    "method",
    "date",
    "band",
    "status",
    "count",
    "truth_count",
    "coverage",
    "days_from_pair",
    *BAND_METRICS,
    *DATE_METRICS,
    "data_range",
    "mean_truth",
    "mean_fused",
)
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


def write_metrics(out_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` (the whole report dictionary) and ``metrics.csv``.

    The CSV has one row per date and band, one per date with ``band = all`` holding SAM and
    ERGAS, and the ``mean`` rows; then the same rows of the no-change baseline, if any (column
    ``method``: the run's method, ``nochange`` for the baseline).
    """
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    rows = _csv_rows(report, report.get("method") or "")
    if report.get("baseline"):
        rows += _csv_rows(report["baseline"], report["baseline"]["method"])
    with (out_dir / "metrics.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS})


def _csv_rows(section: Mapping[str, Any], method: str) -> list[dict[str, Any]]:
    """CSV rows of a report's (or its baseline's) ``per_band`` and ``per_date`` rows."""
    offsets = {r["date"]: r.get("days_from_pair") for r in section["per_date"]}
    return [
        *(
            {**r, "method": method, "days_from_pair": offsets.get(r["date"])}
            for r in section["per_band"]
        ),
        *({**r, "method": method, "band": "all"} for r in section["per_date"]),
    ]


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown pipe table of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], best: Sequence[Sequence[bool]] = ()
) -> str:
    """An HTML table of formatted cells; the first two columns are text, ``mean`` rows ruled.

    ``best`` (one flag per cell, optional) highlights the cells that are best in their column.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row):
            cls = "best" if best and best[i][j] else ("text" if j < 2 else "")
            cells.append(f'<td class="{cls}">{html.escape(cell)}</td>')
        mean = ' class="mean"' if row and row[0] == MEAN_LABEL else ""
        body.append(f"<tr{mean}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _baseline_rows(report: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The baseline's per-band rows by ``(date, band)``; empty without a baseline."""
    baseline = report.get("baseline") or {}
    return {(r["date"], r["band"]): r for r in baseline.get("per_band", [])}


def versus_baseline(rmse: float | None, baseline_rmse: float | None) -> str:
    """``better``/``not better`` than no-change, with the run's RMSE as a share of its RMSE."""
    if rmse is None or not baseline_rmse:
        return "–"
    ratio = rmse / baseline_rmse
    return f"{'better' if ratio < 1 else 'not better'} ({ratio:.2f}x RMSE)"


def _summary_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per band, the mean over dates of the headline metrics, with count and coverage, and
    beside them the no-change baseline's (when computed)."""
    header = ["band", "n", "coverage", "RMSE", "r", "SSIM", "bias"]
    baseline = _baseline_rows(report)
    if baseline:
        header += ["no-change coverage", "no-change RMSE", "no-change SSIM", "vs no-change"]
    rows = []
    for r in (r for r in report["per_band"] if r["date"] == MEAN_LABEL):
        row = [
            r["band"],
            format_value(r["count"]),
            _percent(r.get("coverage")),
            *(format_value(r[c]) for c in ("rmse", "r", "ssim", "bias")),
        ]
        if baseline:
            b = baseline[(MEAN_LABEL, r["band"])]
            row += [_percent(b.get("coverage")), format_value(b["rmse"]), format_value(b["ssim"])]
            row.append(versus_baseline(r["rmse"], b["rmse"]))
        rows.append(row)
    return header, rows


def _band_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    baseline = _baseline_rows(report)
    header = ["date", "band", "status", "n", "coverage", *BAND_METRICS]
    header += ["no-change RMSE"] if baseline else []
    rows = [
        [
            r["date"],
            r["band"],
            r["status"],
            format_value(r["count"]),
            _percent(r.get("coverage")),
            *(format_value(r[c]) for c in BAND_METRICS),
            *([format_value(baseline[(r["date"], r["band"])]["rmse"])] if baseline else []),
        ]
        for r in report["per_band"]
    ]
    return header, rows


def _date_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["date", "days from pair", "status", "n (pixel-bands)", "coverage", "SAM (°)", "ERGAS"]
    rows = [
        [
            r["date"],
            format_value(r.get("days_from_pair")),
            r["status"],
            format_value(r["count"]),
            _percent(r.get("coverage")),
            format_value(r["sam"]),
            format_value(r["ergas"]),
        ]
        for r in report["per_date"]
    ]
    return header, rows


def _offset_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Mean RMSE per band against the days from the nearest pair (dates pooled per offset)."""
    offsets = {r["date"]: r.get("days_from_pair") for r in report["per_date"]}
    bands = list(report["bands"])
    header = ["days from pair", "dates", *(f"RMSE {b}" for b in bands)]
    rows = []
    for offset in sorted({o for o in offsets.values() if o is not None}):
        dates = {d for d, o in offsets.items() if o == offset}
        cells = []
        for band in bands:
            values = [
                r["rmse"]
                for r in report["per_band"]
                if r["date"] in dates and r["band"] == band and r["rmse"] is not None
            ]
            cells.append(format_value(sum(values) / len(values) if values else None))
        rows.append([str(offset), str(len(dates)), *cells])
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
    ranges = ", ".join(f"{b} {format_value(v)}" for b, v in s["data_range"].items())
    ratio_source = s.get("resolution_ratio_source")
    return [
        f"fused: {report['fused']} (method: {report.get('method') or 'unknown'})",
        f"truth: {report['truth']}",
        f"data range for SSIM/PSNR ({s['data_range_source']}): {ranges}",
        f"ERGAS resolution ratio h/l: {format_value(s['resolution_ratio'])}"
        + (f" ({ratio_source})" if ratio_source else ""),
        f"SSIM: {s['ssim_window']}x{s['ssim_window']} uniform window, K1={s['ssim_k1']}, "
        f"K2={s['ssim_k2']}",
        f"pictures decimated with stride {s['chip_stride']} (1 = full resolution)",
    ]


def _provenance_lines(report: Mapping[str, Any]) -> list[str]:
    p = report.get("provenance") or {}
    if not p:
        return []
    baseline = report.get("baseline")
    compared = (
        f"no-change baseline: {baseline['method']} on {baseline['pixels']}"
        if baseline
        else "no-change baseline: not computed (see the notes)"
    )
    pairs = p.get("pairs_used") or {}
    used = "; ".join(f"{d} <- {', '.join(v)}" for d, v in sorted(pairs.items())) or "unknown"
    params = json.dumps(p.get("parameters") or {}, sort_keys=True)
    return [
        f"method: {p.get('method') or 'unknown'}, stfcube {p.get('stfcube_version') or '?'}",
        f"parameters: {params}",
        f"pairs used: {used}",
        f"source cube: {p.get('source_cube') or 'unknown'}",
        compared,
    ]


def _sections(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of the report's tables, in reading order."""
    return [
        ("Summary (mean over dates)", *_summary_table(report)),
        ("Per date (all bands)", *_date_table(report)),
        ("Against days from the nearest pair", *_offset_table(report)),
        ("Per date and band", *_band_table(report)),
    ]


def write_reports(out_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``report.md`` and ``report.html`` of an evaluation, both linking the pictures.

    The PNGs named in ``report["files"]`` must already be in ``out_dir``.
    """
    title = f"stfcube evaluation — {report.get('method') or 'fused'}"
    definitions = report["settings"]["definitions"]
    sections = _sections(report)
    summary, rest = sections[0], sections[1:]
    md = [f"# {title}", "", f"## {summary[0]}", "", md_table(summary[1], summary[2]), ""]
    md += ["## Run", "", *(f"- {line}" for line in _provenance_lines(report))]
    md += [*(f"- {line}" for line in _settings_lines(report)), ""]
    if report["notes"]:
        md += ["## Notes", "", *(f"- {n}" for n in report["notes"]), ""]
    for name, header, rows in rest:
        md += [f"## {name}", "", md_table(header, rows), ""]
    md += ["## Pictures", ""]
    md += [f"### {caption}\n\n![{caption}]({name})\n" for caption, name in _figures(report)]
    md += ["## Definitions", "", *(f"- **{k}**: {v}" for k, v in definitions.items()), ""]
    (out_dir / "report.md").write_text("\n".join(md))

    esc = html.escape
    parts = [f"<h1>{esc(title)}</h1>", f"<h2>{esc(summary[0])}</h2>"]
    parts += [html_table(summary[1], summary[2]), "<h2>Run</h2><ul>"]
    parts += [f"<li>{esc(line)}</li>" for line in _provenance_lines(report)]
    parts += [f"<li>{esc(line)}</li>" for line in _settings_lines(report)]
    parts.append("</ul>")
    if report["notes"]:
        parts.append('<h2>Notes</h2><ul class="notes">')
        parts += [f"<li>{esc(n)}</li>" for n in report["notes"]]
        parts.append("</ul>")
    for name, header, rows in rest:
        parts += [f"<h2>{esc(name)}</h2>", html_table(header, rows)]
    parts.append("<h2>Pictures</h2>")
    parts += [
        f'<h3>{esc(caption)}</h3><a href="{esc(name)}"><img alt="{esc(caption)}" '
        f'src="{esc(name)}" loading="lazy"></a>'
        for caption, name in _figures(report)
    ]
    parts.append("<h2>Definitions</h2><ul>")
    parts += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in definitions.items()]
    parts.append("</ul>")
    (out_dir / "report.html").write_text(html_page(title, "".join(parts)))


def html_page(title: str, body: str) -> str:
    """A self-contained HTML document with the report style sheet."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
