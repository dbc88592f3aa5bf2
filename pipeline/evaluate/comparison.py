"""Several evaluations side by side: :func:`compare` and its tables (best value highlighted).

Reads the ``metrics.json`` of earlier :func:`pipeline.evaluate.evaluate` runs, or evaluates fused
stores first, and writes ``compare.md``, ``compare.html`` and ``compare.csv`` with one table per
band and one for the spectral metrics, each row the mean over dates of one run.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, InputError
from pipeline.evaluate.render import html_page, html_table, md_table
from pipeline.evaluate.run import evaluate, staged_report_dir
from pipeline.evaluate.tables import BAND_METRICS, DATE_METRICS, MEAN_LABEL, format_value

#: Metric columns where a higher value is better (lower is better for the rest, but bias).
HIGHER_IS_BETTER = frozenset({"r", "r2", "ssim", "psnr", "uiqi"})
CLOSER_TO_ZERO_IS_BETTER = frozenset({"bias"})


@dataclass(frozen=True)
class ComparisonReport:
    """What :func:`compare` wrote: one label per evaluation and the side-by-side tables."""

    out_dir: Path
    labels: tuple[str, ...]
    files: dict[str, str]


def compare(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    truth: str | Path | None = None,
    overwrite: bool = False,
    **evaluate_options: Any,
) -> ComparisonReport:
    """Put several evaluations side by side (best value per column highlighted).

    Parameters
    ----------
    inputs : sequence of str or Path
        Report directories of :func:`evaluate`, or fused stores (then ``truth`` is required and
        each is evaluated into ``out_dir/<label>/``).
    out_dir : str or Path
        Where ``compare.md``, ``compare.html`` and ``compare.csv`` go.
    labels : sequence of str, optional
        One label per input; default the fused store's method, else the input's name.
    truth : str or Path, optional
        Truth cube for inputs that are fused stores.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    **evaluate_options
        Passed to :func:`evaluate` for fused-store inputs (``dates``, ``data_range``, ...).

    Returns
    -------
    ComparisonReport
        Labels and written files.
    """
    out_dir = Path(out_dir)
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise ConfigError("compare needs at least two reports or fused stores")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels for {len(paths)} inputs")
    with staged_report_dir(out_dir, overwrite, [*paths, *([truth] if truth else [])]) as staging:
        evaluations = []
        for i, path in enumerate(paths):
            if _is_fused_store(path):
                if truth is None:
                    raise ConfigError(f"{path} is a fused store: pass truth to evaluate it")
                name = labels[i] if labels else f"{i + 1}_{path.stem}"
                evaluations.append(
                    evaluate(path, truth, staging / name, **evaluate_options).to_dict()
                )
            else:
                evaluations.append(_load_evaluation(path))
        names = list(labels) if labels else _default_labels(evaluations, paths)
        files = write_comparison(staging, dict(zip(names, evaluations, strict=True)))
    return ComparisonReport(out_dir=out_dir, labels=tuple(names), files=files)


def _default_labels(evaluations: Sequence[Mapping[str, Any]], paths: Sequence[Path]) -> list[str]:
    """Method names, made unique with the input names where two are equal."""
    names = [str(e.get("method") or p.stem) for e, p in zip(evaluations, paths, strict=True)]
    if len(set(names)) == len(names):
        return names
    return [f"{n} ({p.name})" for n, p in zip(names, paths, strict=True)]


def _load_evaluation(path: Path) -> dict[str, Any]:
    metrics = path / "metrics.json" if path.is_dir() else path
    if not metrics.is_file():
        raise InputError(path, "no metrics.json: not a report directory of `stfcube evaluate`")
    try:
        return json.loads(metrics.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(metrics, f"unreadable metrics file ({exc})") from exc


def _is_fused_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").exists() and not (path / "metrics.json").exists()


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
            mean = _mean_row(ev["per_band"], band)
            rows.append([label, *(mean.get(c) for c in BAND_METRICS)])
        tables.append((f"band {band} (mean over dates)", list(BAND_METRICS), rows))
    rows = []
    for label, ev in evaluations.items():
        mean = _mean_row(ev["per_date"])
        rows.append([label, *(mean.get(c) for c in DATE_METRICS)])
    tables.append(("all bands (mean over dates)", list(DATE_METRICS), rows))
    return tables


def _mean_row(rows: Sequence[Mapping[str, Any]], band: str | None = None) -> Mapping[str, Any]:
    """The ``mean`` row of an evaluation's table (of ``band`` if given); empty when absent."""
    return next((r for r in rows if r["date"] == MEAN_LABEL and r.get("band") == band), {})


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
        text = [[r[0], *(format_value(v) for v in r[1:])] for r in rows]
        md_rows = [
            [t[0], *(f"**{v}**" if flags[j][i] else v for j, v in enumerate(t[1:]))]
            for i, t in enumerate(text)
        ]
        md += ["", f"## {title}", "", md_table(["method", *columns], md_rows)]
        best = [[False, *(flags[j][i] for j in range(len(columns)))] for i in range(len(rows))]
        parts += [f"<h2>{html.escape(title)}</h2>", html_table(["method", *columns], text, best)]
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
    (out_dir / "compare.html").write_text(html_page("stfcube comparison", "".join(parts)))
    fields = ["table", "method", *BAND_METRICS, *DATE_METRICS, "best"]
    with (out_dir / "compare.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    return {
        "compare_md": "compare.md",
        "compare_html": "compare.html",
        "compare_csv": "compare.csv",
    }
