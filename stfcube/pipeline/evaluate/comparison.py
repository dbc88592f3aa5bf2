"""Several evaluations side by side: :func:`compare` and its tables (best value highlighted).

Reads the ``metrics.json`` of earlier :func:`stfcube.pipeline.evaluate.evaluate` runs, or evaluates
fused stores first, and writes ``compare.md``, ``compare.html`` and ``compare.csv`` with one table
per band and one for the spectral metrics, each row the mean over dates of one run, with its pixel
count and coverage.

Only like is compared with like: evaluations of different truths or dates are refused
(:class:`~stfcube.pipeline.errors.InputError`, exit 2). In each table only the runs with the highest
coverage are ranked: a run that left truth pixels unpredicted is measured on other (fewer)
pixels, so it is marked ``†`` and named in a note, never highlighted as best. Different SSIM/PSNR
data ranges are named in a note too. The no-change baseline of the first evaluation that has one
is shown once, below the runs, for reference (never ranked; none when a run is ``nochange``).
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

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.evaluate.baseline import NOCHANGE
from stfcube.pipeline.evaluate.render import html_page, html_table, md_table
from stfcube.pipeline.evaluate.run import evaluate, staged_report_dir
from stfcube.pipeline.evaluate.tables import BAND_METRICS, DATE_METRICS, MEAN_LABEL, format_value

#: Metric columns where a higher value is better (lower is better for the rest, but bias).
HIGHER_IS_BETTER = frozenset({"r", "r2", "ssim", "psnr", "uiqi"})
CLOSER_TO_ZERO_IS_BETTER = frozenset({"bias"})
#: Columns before the metrics in every table: pixels evaluated and share of the truth they are.
COUNT_COLUMNS: tuple[str, ...] = ("count", "coverage")
#: Mark of a run not ranked because it covers less of the truth than others.
PARTIAL_MARK = "†"


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

    Raises
    ------
    InputError
        When the evaluations have different truths or dates (naming the first that differs).
    ConfigError
        On fewer than two inputs, a label count that does not match, or a fused store without
        ``truth``.
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
        check_comparable(evaluations, paths)
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


def check_comparable(evaluations: Sequence[Mapping[str, Any]], paths: Sequence[Path]) -> None:
    """Refuse evaluations of different truths or dates (their metrics do not compare).

    Raises
    ------
    InputError
        Naming the first input whose truth or dates differ from the first input's.
    """
    first = evaluations[0]
    for ev, path in zip(evaluations[1:], paths[1:], strict=True):
        truth, other = ev.get("truth_id", ev["truth"]), first.get("truth_id", first["truth"])
        if truth != other:
            raise InputError(
                path,
                f"evaluated against truth {truth}, {paths[0]} against {other}: compare needs "
                "evaluations of the same truth",
            )
        if list(ev["dates"]) != list(first["dates"]):
            raise InputError(
                path,
                f"evaluated on dates {', '.join(ev['dates'])}, {paths[0]} on "
                f"{', '.join(first['dates'])}: compare needs evaluations of the same dates "
                "(evaluate both with the same --date options)",
            )


def best_flags(
    values: Sequence[float | None], column: str, ranked: Sequence[bool] | None = None
) -> list[bool]:
    """Which entries are best in a column (ties all marked; None never best).

    Lower is better except for :data:`HIGHER_IS_BETTER`; for ``bias`` the smallest ``|bias|``.
    Only entries flagged in ``ranked`` (default: all) can be best.
    """

    def score(v: float) -> float:
        if column in HIGHER_IS_BETTER:
            return -v
        return abs(v) if column in CLOSER_TO_ZERO_IS_BETTER else v

    allowed = list(ranked) if ranked is not None else [True] * len(values)
    scores = [
        None if v is None or math.isnan(v) or not ok else score(v)
        for v, ok in zip(values, allowed, strict=True)
    ]
    known = [s for s in scores if s is not None]
    if not known:
        return [False] * len(values)
    top = min(known)
    return [s is not None and s == top for s in scores]


def ranked_runs(coverages: Sequence[float | None]) -> list[bool]:
    """Runs that are ranked: those with the highest coverage (all when none is known)."""
    known = [c for c in coverages if c is not None]
    if not known:
        return [True] * len(coverages)
    top = max(known)
    return [c is not None and math.isclose(c, top, rel_tol=0, abs_tol=1e-12) for c in coverages]


@dataclass(frozen=True)
class _Table:
    """One comparison table: raw values per run, which runs are ranked, and its notes."""

    title: str
    columns: list[str]
    rows: list[list[Any]]  # label, count, coverage, metrics...
    ranked: list[bool]
    #: Rows after this many runs are shown for reference (the baseline): never ranked or noted.
    n_runs: int | None = None

    def is_run(self, index: int) -> bool:
        """Whether row ``index`` is a run (not the reference baseline)."""
        return self.n_runs is None or index < self.n_runs

    def label(self, index: int) -> str:
        """Row ``index``'s label, marked :data:`PARTIAL_MARK` when a run is left unranked."""
        unranked = self.is_run(index) and not self.ranked[index]
        return self.rows[index][0] + (f" {PARTIAL_MARK}" if unranked else "")

    def flags(self) -> list[list[bool]]:
        """Best flags per column (count and coverage are never ranked)."""
        return [
            best_flags([r[j] for r in self.rows], c, self.ranked)
            if c not in COUNT_COLUMNS
            else [False] * len(self.rows)
            for j, c in enumerate(self.columns, start=1)
        ]

    def notes(self) -> list[str]:
        """One note per run left unranked for its lower coverage."""
        runs = [r for i, r in enumerate(self.rows) if self.is_run(i)]
        top = max((r[2] for r in runs if r[2] is not None), default=None)
        notes = []
        for row, ranked in zip(runs, self.ranked[: len(runs)], strict=True):
            if ranked or top is None:
                continue
            notes.append(
                f"{row[0]} {PARTIAL_MARK}: covers {_percent(row[2])} of the valid truth pixels "
                f"(others {_percent(top)}): not ranked, its metrics cover its own pixels only"
            )
        return notes


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _comparison_tables(evaluations: Mapping[str, Mapping[str, Any]]) -> list[_Table]:
    """One table per band and one for the spectral metrics, each run's mean over dates."""
    bands: list[str] = []
    for ev in evaluations.values():
        bands += [b for b in ev["bands"] if b not in bands]
    specs: list[tuple[str, str | None, str, Sequence[str]]] = [
        (f"band {band} (mean over dates)", band, "per_band", BAND_METRICS) for band in bands
    ]
    specs.append(("all bands (mean over dates)", None, "per_date", DATE_METRICS))
    baseline = _reference_baseline(evaluations)
    tables = []
    for title, band, key, metrics in specs:
        columns = [*COUNT_COLUMNS, *metrics]
        rows: list[list[Any]] = [
            [label, *(_mean_row(ev[key], band).get(c) for c in columns)]
            for label, ev in evaluations.items()
        ]
        ranked = ranked_runs([r[2] for r in rows])
        n_runs = len(rows)
        if baseline is not None:
            rows.append([baseline[0], *(_mean_row(baseline[1][key], band).get(c) for c in columns)])
            ranked.append(False)
        tables.append(_Table(title, columns, rows, ranked, n_runs))
    return tables


def _reference_baseline(
    evaluations: Mapping[str, Mapping[str, Any]],
) -> tuple[str, Mapping[str, Any]] | None:
    """(label, baseline section) of the first evaluation with a no-change baseline; None when
    none has one or a run is itself ``nochange`` (it is then in the table already)."""
    if any(ev.get("method") == NOCHANGE for ev in evaluations.values()):
        return None
    for label, ev in evaluations.items():
        if ev.get("baseline"):
            return f"{ev['baseline']['method']} (baseline, pixels of {label})", ev["baseline"]
    return None


def _mean_row(rows: Sequence[Mapping[str, Any]], band: str | None = None) -> Mapping[str, Any]:
    """The ``mean`` row of an evaluation's table (of ``band`` if given); empty when absent."""
    return next((r for r in rows if r["date"] == MEAN_LABEL and r.get("band") == band), {})


def _range_notes(evaluations: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A note when the evaluations' SSIM/PSNR data ranges differ."""
    ranges = {
        label: (ev["settings"].get("data_range"), ev["settings"].get("data_range_source"))
        for label, ev in evaluations.items()
    }
    if len({json.dumps(r, sort_keys=True) for r in ranges.values()}) <= 1:
        return []
    shown = "; ".join(f"{label}: {r[0]} ({r[1]})" for label, r in ranges.items())
    return [f"SSIM and PSNR used different data ranges and do not compare: {shown}"]


def _cell(value: Any, column: str) -> str:
    return _percent(value) if column == "coverage" else format_value(value)


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
    first = next(iter(evaluations.values()))
    md = ["# stfcube comparison", "", f"Truth: {first['truth']}; dates: "]
    md[-1] += ", ".join(first["dates"])
    md += [f"- **{label}**: {ev['fused']}" for label, ev in evaluations.items()]
    md += ["", "Best value per column in bold, among the runs with the highest coverage."]
    parts = [f"<h1>stfcube comparison</h1><p>{html.escape(md[2])}</p><ul>"]
    parts += [
        f"<li><b>{html.escape(label)}</b>: {html.escape(str(ev['fused']))}</li>"
        for label, ev in evaluations.items()
    ]
    parts.append(
        "</ul><p>Best value per column highlighted, among the runs with the highest coverage.</p>"
    )
    range_notes = _range_notes(evaluations)
    md += [f"\n> {n}" for n in range_notes]
    parts += [f'<ul class="notes"><li>{html.escape(n)}</li></ul>' for n in range_notes]
    csv_rows = []
    for table in _comparison_tables(evaluations):
        flags = table.flags()
        text = [
            [table.label(i), *(_cell(v, c) for v, c in zip(r[1:], table.columns, strict=True))]
            for i, r in enumerate(table.rows)
        ]
        md_rows = [
            [t[0], *(f"**{v}**" if flags[j][i] else v for j, v in enumerate(t[1:]))]
            for i, t in enumerate(text)
        ]
        header = ["method", *table.columns]
        md += ["", f"## {table.title}", "", md_table(header, md_rows)]
        md += [f"\n> {n}" for n in table.notes()]
        best = [
            [False, *(flags[j][i] for j in range(len(table.columns)))] for i in range(len(text))
        ]
        parts += [f"<h2>{html.escape(table.title)}</h2>", html_table(header, text, best)]
        if table.notes():
            parts.append('<ul class="notes">')
            parts += [f"<li>{html.escape(n)}</li>" for n in table.notes()]
            parts.append("</ul>")
        for i, (r, ok) in enumerate(zip(table.rows, table.ranked, strict=True)):
            winners = [c for j, c in enumerate(table.columns) if flags[j][i]]
            values = zip(table.columns, r[1:], strict=True)
            csv_rows.append(
                {
                    "table": table.title,
                    "method": r[0],
                    **{c: "" if v is None else v for c, v in values},
                    "ranked": ok,
                    "best": " ".join(winners),
                }
            )
    (out_dir / "compare.md").write_text("\n".join(md) + "\n")
    (out_dir / "compare.html").write_text(html_page("stfcube comparison", "".join(parts)))
    fields = ["table", "method", *COUNT_COLUMNS, *BAND_METRICS, *DATE_METRICS, "ranked", "best"]
    with (out_dir / "compare.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    return {
        "compare_md": "compare.md",
        "compare_html": "compare.html",
        "compare_csv": "compare.csv",
    }
