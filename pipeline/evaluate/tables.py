"""Rows of an evaluation: metric values per date and band, per date, and their means.

Turns the merged partial sums of :mod:`pipeline.evaluate.reduce` into JSON-ready rows (NaN becomes
None), names the metric columns and defines them for the reader, and formats values for display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kernels import metrics as km
from pipeline.evaluate.reduce import Partials

#: Metric columns of a per-(date, band) row, in report order.
BAND_METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "r", "r2", "ssim", "psnr", "uiqi")
#: Metric columns of a per-date (all bands) row.
DATE_METRICS: tuple[str, ...] = ("sam", "ergas")
STATUS_OK = "ok"
STATUS_EMPTY = "no valid pixels"
MEAN_LABEL = "mean"

DEFINITIONS: dict[str, str] = {
    "rmse": "sqrt(mean((fused - truth)^2)) over pixels valid in both",
    "mae": "mean(|fused - truth|)",
    "bias": "mean(fused - truth); positive = fused too high",
    "r": "Pearson correlation coefficient of fused and truth",
    "r2": "coefficient of determination 1 - SS_res/SS_tot, SS_res = sum((fused - truth)^2), "
    "SS_tot = sum((truth - mean(truth))^2); can be negative; not r^2",
    "ssim": "mean SSIM (Wang et al. 2004) as skimage.metrics.structural_similarity: 7x7 uniform "
    "window, K1=0.01, K2=0.03, sample covariance, data_range as stated; averaged over pixels "
    "whose whole window is valid (image border and masked neighbourhoods excluded)",
    "psnr": "10*log10(data_range^2 / MSE) in dB",
    "uiqi": "universal image quality index Q (Wang & Bovik 2002), global form: one window over "
    "all valid pixels",
    "sam": "spectral angle mapper: mean over pixels valid in every band of "
    "arccos(<fused, truth> / (|fused| |truth|)), degrees",
    "ergas": "100 * (h/l) * sqrt(mean_b (RMSE_b / mean(truth_b))^2), h/l = fine / coarse pixel "
    "size (resolution_ratio)",
    "mean": "rows dated 'mean' average the per-date values over dates with valid pixels; "
    "their count is the total",
}


def _clean(value: Any) -> Any:
    """JSON-friendly scalar: NaN becomes None, numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def band_rows(
    partials: Partials, dates: Sequence[str], bands: Sequence[str], data_range: np.ndarray
) -> list[dict[str, Any]]:
    """Per-(date, band) metric rows, then one ``mean`` row per band."""
    m = partials.moments
    with np.errstate(invalid="ignore", divide="ignore"):
        ssim = np.where(partials.ssim_count > 0, partials.ssim_sum / partials.ssim_count, np.nan)
    values = {
        "rmse": km.rmse_from_moments(m),
        "mae": km.mae_from_moments(m),
        "bias": km.bias_from_moments(m),
        "r": km.pearson_r_from_moments(m),
        "r2": km.r2_from_moments(m),
        "ssim": ssim,
        "psnr": km.psnr_from_moments(m, data_range[None, :]),
        "uiqi": km.uiqi_from_moments(m),
        "mean_truth": km.mean_truth_from_moments(m),
        "mean_fused": km.mean_fused_from_moments(m),
    }
    count = km.count_from_moments(m)
    rows = []
    for ti, date in enumerate(dates):
        for bi, band in enumerate(bands):
            n = int(count[ti, bi])
            row: dict[str, Any] = {
                "date": date,
                "band": band,
                "status": STATUS_OK if n else STATUS_EMPTY,
                "count": n,
                "data_range": float(data_range[bi]),
            }
            row.update({k: _clean(v[ti, bi]) if n else None for k, v in values.items()})
            rows.append(row)
    for band in bands:
        rows.append(_mean_row([r for r in rows if r["band"] == band], {"band": band}, BAND_METRICS))
    return rows


def _mean_row(
    rows: Sequence[Mapping[str, Any]], keys: Mapping[str, Any], columns: Sequence[str]
) -> dict[str, Any]:
    """Average of ``columns`` over the rows with valid pixels (finite values only)."""
    used = [r for r in rows if r["status"] == STATUS_OK]
    out: dict[str, Any] = {"date": MEAN_LABEL, **keys}
    out["status"] = STATUS_OK if used else STATUS_EMPTY
    out["count"] = int(sum(r["count"] for r in rows))
    for col in columns:
        vals = [r[col] for r in used if r.get(col) is not None and math.isfinite(r[col])]
        out[col] = float(np.mean(vals)) if vals else None
    return out


def date_rows(
    partials: Partials,
    dates: Sequence[str],
    rows_by_band: Sequence[Mapping[str, Any]],
    resolution_ratio: float | None,
) -> list[dict[str, Any]]:
    """Per-date SAM and ERGAS rows, then a ``mean`` row."""
    rows = []
    for ti, date in enumerate(dates):
        n = int(partials.sam_count[ti])
        band_stats = [r for r in rows_by_band if r["date"] == date and r["status"] == STATUS_OK]
        ergas = None
        if resolution_ratio is not None and band_stats:
            ergas = km.ergas_from_band_stats(
                [r["rmse"] for r in band_stats],
                [r["mean_truth"] for r in band_stats],
                resolution_ratio,
            )
        sam = partials.sam_sum[ti] / n if n else None
        rows.append(
            {
                "date": date,
                "status": STATUS_OK if band_stats else STATUS_EMPTY,
                "count": n,
                "sam": _clean(sam),
                "ergas": _clean(ergas),
            }
        )
    rows.append(_mean_row(rows, {}, DATE_METRICS))
    return rows


def format_value(value: Any) -> str:
    """A metric value as shown in tables and plots: 4 significant digits, ``–`` for None."""
    if value is None:
        return "–"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.4g}"
