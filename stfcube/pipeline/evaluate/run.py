"""Accuracy of a fused cube against truth: :func:`evaluate` and the report it returns.

:func:`evaluate` opens a fused store (schema ``fused/1``) and a truth cube (schema ``cube/1``, whose
``fine`` variable is the truth and ``fine_valid`` its mask), computes per date and band RMSE, MAE,
bias, Pearson r, R², SSIM, PSNR and global UIQI, the pixel count and the coverage (share of the
valid truth pixels predicted), and per date SAM (multi-band data) and ERGAS, in one dask pass over
the chunks plus one pass over the truth (its valid pixels and extremes). The scales the metrics
use (data range, ERGAS ratio) come from the cubes, never from the pixels a run covered
(:mod:`~stfcube.pipeline.evaluate.scales`). Each
chunk is reduced to a few mergeable partial sums (:mod:`stfcube.kernels.metrics`), so memory stays
bounded by a few chunks whatever the cube size. Decimated chips for quicklooks and scatter plots are
read in the same pass.

The steps live beside this module: :mod:`~stfcube.pipeline.evaluate.inputs` (opening, selecting,
aligning),
:mod:`~stfcube.pipeline.evaluate.reduce` (the metrics pass),
:mod:`~stfcube.pipeline.evaluate.tables` (metric rows),
:mod:`~stfcube.pipeline.evaluate.figures` and :mod:`~stfcube.pipeline.evaluate.plots` (pictures),
:mod:`~stfcube.pipeline.evaluate.render` (documents); :mod:`~stfcube.pipeline.evaluate.comparison`
puts several evaluations side by side.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from stfcube.kernels import metrics as km
from stfcube.pipeline.engine.dataset_input import DATASET_LABEL, dataset_source
from stfcube.pipeline.evaluate.baseline import (
    BASELINE_PIXELS,
    NOCHANGE,
    baseline_inputs,
    pair_dates_by_date,
)
from stfcube.pipeline.evaluate.figures import (
    picture_indices,
    series_locations,
    write_quicklooks,
    write_scatters,
    write_timeseries,
)
from stfcube.pipeline.evaluate.inputs import (
    align_inputs,
    check_fused,
    check_same_grid,
    check_truth,
    open_fused,
    open_source_cube,
    open_truth,
    parse_resolution_ratio,
    select_bands,
    select_dates,
    truth_cube,
)
from stfcube.pipeline.evaluate.reduce import MAX_CHIP, compute_partials_together
from stfcube.pipeline.evaluate.render import write_metrics, write_reports
from stfcube.pipeline.evaluate.scales import (
    choose_data_ranges,
    ergas_resolution_ratio,
    summarise_truth,
)
from stfcube.pipeline.evaluate.tables import (
    DEFINITIONS,
    MEAN_LABEL,
    STATUS_EMPTY,
    band_rows,
    date_rows,
)
from stfcube.pipeline.store.atomic import REPORT_MARKER, check_output_folder, staged
from stfcube.pipeline.store.fused import json_attr


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate` measured and wrote.

    Attributes
    ----------
    out_dir : Path
        Report directory.
    fused_path : Path or str
        The evaluated fused store (``xarray.Dataset <token>`` for a Dataset).
    truth : str
        The truth as given (cube path, or the scenes' source; ``xarray.Dataset``).
    truth_id : str
        The truth's absolute path (a URL as given; a Dataset's token): what :func:`compare`
        checks.
    method : str or None
        Fusion method named by the fused store.
    dates, bands : tuple of str
        Evaluated dates (ISO) and band names.
    band_rows : tuple of dict
        One row per date and band (keys ``date``, ``band``, ``status``, ``count``, the
        :data:`~stfcube.pipeline.evaluate.tables.BAND_METRICS`, ``data_range``, ``mean_truth``,
        ``mean_fused``), then one ``mean`` row per band.
    date_rows : tuple of dict
        One row per date (``date``, ``status``, ``count``, ``sam``, ``ergas``), then ``mean``.
    settings : dict
        Data ranges and their source, resolution ratio and its source, SSIM window and the
        metric definitions.
    provenance : dict
        What the fused store says of its run: method, parameters, pairs used per date,
        stfcube version, source cube.
    files : dict
        Written files by role, relative to ``out_dir``.
    notes : tuple of str
        Remarks for the reader (missing context, defaults taken).
    baseline : dict or None
        The no-change baseline on the run's pixels and pairs: ``method`` (``nochange``),
        ``pixels``, and ``per_band`` / ``per_date`` rows as :attr:`band_rows` /
        :attr:`date_rows`; None when it could not be computed (a note says why).
    """

    out_dir: Path
    fused_path: Path | str
    truth: str
    truth_id: str
    method: str | None
    dates: tuple[str, ...]
    bands: tuple[str, ...]
    band_rows: tuple[dict[str, Any], ...]
    date_rows: tuple[dict[str, Any], ...]
    settings: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    baseline: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the content of ``metrics.json``)."""
        return {
            "stfcube_report": "evaluation/1",
            "fused": str(self.fused_path),
            "truth": self.truth,
            "truth_id": self.truth_id,
            "method": self.method,
            "dates": list(self.dates),
            "bands": list(self.bands),
            "settings": self.settings,
            "provenance": self.provenance,
            "per_band": [dict(row) for row in self.band_rows],
            "per_date": [dict(row) for row in self.date_rows],
            "files": dict(self.files),
            "notes": list(self.notes),
            "baseline": self.baseline,
        }

    def metrics(self) -> xr.Dataset:
        """The metrics as a Dataset over the evaluated dates (``time``) and bands.

        Per date and band: ``count``, ``truth_count``, ``coverage``, ``data_range``, the
        :data:`~stfcube.pipeline.evaluate.tables.BAND_METRICS` and the means, over ``(time,
        band)``; per date: ``days_from_pair``, ``sam_count`` and the
        :data:`~stfcube.pipeline.evaluate.tables.DATE_METRICS`, over ``time``. NaN where a metric
        is undefined; the ``mean`` rows are left out (``metrics().mean("time")`` is not the
        pooled mean: see :attr:`band_rows`). With a :attr:`baseline`, its per date and band
        ``count``, ``coverage``, metrics and means too, prefixed ``nochange_``.
        ``.to_dataframe()`` gives the pandas table.
        """
        per_band = _frame(self.band_rows, ["time", "band"])
        per_date = _frame(self.date_rows, ["time"])
        per_date = per_date[[c for c in per_date.columns if c not in per_band.columns]]
        parts = [per_band.to_xarray(), per_date.to_xarray()]
        if self.baseline:
            base = _frame(self.baseline["per_band"], ["time", "band"])
            base = base.drop(columns=["status", "truth_count", "data_range"])
            parts.append(base.add_prefix(f"{NOCHANGE}_").to_xarray())
        metrics = xr.merge(parts)
        return metrics.assign_attrs(method=self.method or "", fused=str(self.fused_path))


def _frame(rows: Sequence[dict[str, Any]], index: list[str]) -> pd.DataFrame:
    """Report rows without the ``mean`` rows, as a frame indexed by ``index`` (dates as
    ``time``), metric columns as numbers (NaN where undefined)."""
    frame = pd.DataFrame([r for r in rows if r["date"] != MEAN_LABEL])
    frame["time"] = pd.to_datetime(frame.pop("date")).astype("datetime64[ns]")
    numeric = [c for c in frame.columns if c not in (*index, "status")]
    frame[numeric] = frame[numeric].apply(pd.to_numeric)
    return frame.set_index(index)


@contextmanager
def staged_report_dir(
    out_dir: Path, overwrite: bool, inputs: Sequence[str | Path] = ()
) -> Iterator[Path]:
    """Build a report in a temporary sibling of ``out_dir``, renamed onto it when complete.

    The caller writes into the yielded directory. On normal exit it replaces ``out_dir``; on
    any error it is removed and ``out_dir`` is left as it was.

    Raises
    ------
    OutputError
        As :func:`stfcube.pipeline.store.atomic.check_output_folder` (a report replaces only a
        report).
    """
    check_output_folder(out_dir, overwrite=overwrite, kinds=("report",), inputs=inputs)
    with staged(out_dir, replace=True) as staging:
        staging.mkdir()
        (staging / REPORT_MARKER).write_text("written by stfcube evaluate/compare\n")
        yield staging


def evaluate(
    fused: str | Path | xr.Dataset,
    truth: str | Path | xr.Dataset,
    out_dir: str | Path,
    *,
    dates: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    resolution_ratio: float | str | None = None,
    points: Sequence[tuple[float, float]] | None = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    data_range: float | None = None,
    source_cube: str | Path | None = None,
    max_chip: int = MAX_CHIP,
    max_pictures: int | None = 8,
    overwrite: bool = False,
) -> EvaluationReport:
    """Evaluate a fused store against truth and write the report directory.

    Parameters
    ----------
    fused : str, Path or xarray.Dataset
        Fused Zarr store (``fused/1``), or a Dataset holding ``fused(time, band, y, x)``
        (:func:`stfcube.open_fused`, or one built alike).
    truth : str, Path or xarray.Dataset
        Truth on the fused grid: a cube (``cube/1``; ``fine`` is the truth, ``fine_valid`` its
        mask) as a path or a Dataset, or scenes (STAC catalog/collection, manifest, a directory
        holding one) that are ingested with ``roles=("truth",)`` into a temporary cube beside
        ``out_dir``.
    out_dir : str or Path
        Report directory: ``metrics.json``, ``metrics.csv``, ``quicklook_<date>.png``,
        ``scatter_<date>.png``, ``timeseries.png``, ``report.md``, ``report.html``.
    dates : sequence of str, optional
        ISO dates to evaluate; default every fused date observed in the truth.
    bands : sequence of str, optional
        Band names; default all bands in both.
    resolution_ratio : float or str, optional
        ERGAS ``h/l`` (fine / coarse pixel size, e.g. ``30/480``); default from the native
        coarse grid of the source or truth cube, else their ``coarse_ratio`` when above 1.
        ERGAS is omitted (with a note) when unknown.
    points : sequence of (x, y), optional
        Time-series locations in CRS units.
    pixels : sequence of (row, col), optional
        Time-series locations in pixel indices. Default (neither given): the centre pixel.
    data_range : float, optional
        Data range ``L`` for SSIM and PSNR; default the truth's nominal range (its
        ``valid_range``, or its units: ``reflectance x 10000`` spans 10000, ``NDVI x 10000``
        20000), else per band ``max − min`` of the valid truth over the evaluated dates.
    source_cube : str or Path, optional
        Cube the fusion read (coarse and base fine for the pictures); default the fused
        store's ``source_cube`` attribute.
    max_chip : int
        Longest side of the decimated quicklook/scatter chips.
    max_pictures : int or None
        Dates that get a quicklook and a scatter plot, spread evenly over the evaluated dates
        (first and last included); ``None`` for every date. Metrics cover every date.
    overwrite : bool
        Replace an existing non-empty report directory.

    Returns
    -------
    EvaluationReport
        The metrics and the written files.

    Raises
    ------
    InputError, ConfigError, OutputError
        On unreadable or mismatched inputs, bad options or an unwritable report directory.
    """
    out_dir = Path(out_dir)
    notes: list[str] = []
    if isinstance(fused, xr.Dataset):
        fused_ds, fused_path = check_fused(fused, DATASET_LABEL), None
    else:
        fused_path = Path(fused)
        fused_ds = open_fused(fused_path)
    on_disk = [x for x in (fused, truth) if not isinstance(x, xr.Dataset)]
    check_output_folder(out_dir, overwrite=overwrite, kinds=("report",), inputs=on_disk)
    with tempfile.TemporaryDirectory(prefix=".stfcube-truth-", dir=out_dir.parent) as workdir:
        chunk = max(fused_ds["fused"].encoding.get("chunks", (1, 1, 512, 512))[-2:])
        if isinstance(truth, xr.Dataset):
            truth_ds, truth_path = check_truth(truth, DATASET_LABEL), DATASET_LABEL
        else:
            truth_ds = open_truth(truth_cube(truth, Path(workdir), int(chunk), notes))
            truth_path = str(truth)
        check_same_grid(fused_ds, truth_ds, truth_path)
        sel_dates = select_dates(fused_ds, truth_ds, dates, truth_path)
        sel_bands = select_bands(fused_ds, truth_ds, bands, truth_path)
        ratio = parse_resolution_ratio(resolution_ratio)
        locations = series_locations(fused_ds, points, pixels, notes)
        with staged_report_dir(out_dir, overwrite, on_disk) as staging:
            source = open_source_cube(fused_ds, fused_path, source_cube, notes)
            ratio, ratio_source = ergas_resolution_ratio(ratio, (source, truth_ds), notes)
            inputs = align_inputs(fused_ds, truth_ds, sel_dates, sel_bands)
            summary = summarise_truth(inputs)
            ranges, range_source = choose_data_ranges(
                data_range, truth_ds["fine"], summary, sel_bands, notes
            )
            provenance = run_provenance(fused_ds)
            pairs = pair_dates_by_date(provenance["pairs_used"], sel_dates)
            base_inputs = baseline_inputs(inputs, fused_ds, source, pairs, sel_bands, notes)
            passes = [(inputs, max_chip), *([(base_inputs, 1)] if base_inputs else [])]
            (partials, chips), *base_pass = compute_partials_together(passes, ranges)
            b_rows = band_rows(partials, sel_dates, sel_bands, ranges, summary.counts)
            offsets = days_from_pair(provenance["pairs_used"], sel_dates)
            d_rows = date_rows(partials, sel_dates, b_rows, ratio, offsets)
            baseline = None
            for base, _ in base_pass:
                base_rows = band_rows(base, sel_dates, sel_bands, ranges, summary.counts)
                baseline = {
                    "method": NOCHANGE,
                    "pixels": BASELINE_PIXELS,
                    "per_band": base_rows,
                    "per_date": date_rows(base, sel_dates, base_rows, ratio, offsets),
                }
            notes.extend(
                f"{r['date']}: no valid pixels" for r in d_rows if r["status"] == STATUS_EMPTY
            )
            notes.extend(coverage_notes(d_rows))
            if len(sel_bands) < 2:
                notes.append("SAM not computed: it needs more than one band")
            method = fused_ds.attrs.get("method")
            picks = picture_indices(len(sel_dates), max_pictures)
            files = {"metrics_json": "metrics.json", "metrics_csv": "metrics.csv"}
            files |= write_quicklooks(
                staging, chips, fused_ds, source, sel_dates, sel_bands, method, picks
            )
            files |= write_scatters(staging, chips, sel_dates, sel_bands, b_rows, picks)
            files |= write_timeseries(staging, fused_ds, truth_ds, source, sel_bands, locations)
            files |= {"report_md": "report.md", "report_html": "report.html"}
            report = EvaluationReport(
                out_dir=out_dir,
                fused_path=fused_path or dataset_source(fused_ds),
                truth=truth_path,
                truth_id=truth_identity(truth),
                method=method,
                dates=tuple(sel_dates),
                bands=tuple(sel_bands),
                band_rows=tuple(b_rows),
                date_rows=tuple(d_rows),
                settings=_settings(
                    sel_bands, (ranges, range_source), (ratio, ratio_source), chips.stride
                ),
                provenance=provenance,
                files=files,
                notes=tuple(notes),
                baseline=baseline,
            )
            write_metrics(staging, report.to_dict())
            write_reports(staging, report.to_dict())
    return report


def truth_identity(truth: str | Path | xr.Dataset) -> str:
    """The truth's absolute path, a URL as given, or a Dataset's
    :func:`~stfcube.pipeline.engine.dataset_input.dataset_source`: equal for reports of the
    same truth."""
    if isinstance(truth, xr.Dataset):
        return dataset_source(truth)
    text = str(truth)
    return text if "://" in text else str(Path(text).resolve())


def run_provenance(fused: Any) -> dict[str, Any]:
    """Method, parameters, pairs used per date, version and source cube of a fused store."""
    attrs = fused.attrs
    return {
        "method": attrs.get("method"),
        "parameters": json_attr(attrs, "parameters"),
        "pairs_used": json_attr(attrs, "pairs_used"),
        "stfcube_version": attrs.get("stfcube_version"),
        "source_cube": attrs.get("source_cube"),
    }


def days_from_pair(pairs_used: Mapping[str, Any], dates: Sequence[str]) -> dict[str, int | None]:
    """Days from each date to the nearest pair it was predicted from (None where unknown).

    A pair is recorded as its fine date, or ``fine~coarse`` when the two dates differ; the fine
    date counts.
    """
    out: dict[str, int | None] = {}
    for date, used in pair_dates_by_date(pairs_used, dates).items():
        day = np.datetime64(date, "D")
        gaps = [abs(int((np.datetime64(p, "D") - day).astype(int))) for p in used]
        out[date] = min(gaps) if gaps else None
    return out


def coverage_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A note for every date whose prediction leaves valid truth pixels out."""
    return [
        f"{r['date']}: {r['truth_count'] - r['count']:,} of {r['truth_count']:,} valid truth "
        f"pixel-bands not predicted (coverage {r['coverage']:.2%}): its metrics cover the rest only"
        for r in rows
        if r["date"] != MEAN_LABEL and r["coverage"] is not None and r["coverage"] < 1
    ]


def _settings(
    bands: Sequence[str],
    ranges: tuple[np.ndarray, str],
    resolution_ratio: tuple[float | None, str],
    chip_stride: int,
) -> dict[str, Any]:
    """The ``settings`` of an :class:`EvaluationReport`: the scales and where they come from."""
    return {
        "data_range": dict(zip(bands, map(float, ranges[0]), strict=True)),
        "data_range_source": ranges[1],
        "resolution_ratio": resolution_ratio[0],
        "resolution_ratio_source": resolution_ratio[1],
        "ssim_window": km.SSIM_WIN_SIZE,
        "ssim_k1": km.SSIM_K1,
        "ssim_k2": km.SSIM_K2,
        "chip_stride": chip_stride,
        "definitions": DEFINITIONS,
    }
