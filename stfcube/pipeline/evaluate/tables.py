"""Rows of an evaluation: metric values per date and band, per date, and their means.

Turns the merged partial sums of :mod:`stfcube.pipeline.evaluate.reduce` into JSON-ready rows (NaN
becomes None), names the metric columns and defines them for the reader, and formats values for
display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stfcube.kernels import metrics as km
from stfcube.pipeline.evaluate.reduce import Partials

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
    "psnr": "10*log10(data_range^2 / MSE) in dB; none where fused equals truth (infinite)",
    "uiqi": "universal image quality index Q (Wang & Bovik 2002), global form: one window over "
    "all valid pixels",
    "sam": "spectral angle mapper: mean over pixels valid in every band of "
    "arccos(<fused, truth> / (|fused| |truth|)), degrees; multi-band data only",
    "ergas": "100 * (h/l) * sqrt(mean_b (RMSE_b / mean(truth_b))^2), h/l = fine / coarse pixel "
    "size (resolution_ratio)",
    "count": "pixels evaluated: valid in the truth and predicted (finite) by the run",
    "coverage": "count / valid truth pixels: the share of the truth the run predicted; runs "
    "with a lower coverage are measured on fewer (often easier) pixels",
    "days_from_pair": "days from the prediction date to the nearest pair the run used",
    "mean": "rows dated 'mean' average the per-date values over dates with valid pixels; "
    "their counts are the totals, their coverage the total count over the total truth pixels",
}


def _clean(value: Any) -> Any:
    """JSON-friendly scalar: NaN and infinities become None, numpy scalars Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def coverage(count: int, truth_count: int) -> float | None:
    """Share of the valid truth pixels that were evaluated (None without truth pixels)."""
    return count / truth_count if truth_count else None


def band_rows(
    partials: Partials,
    dates: Sequence[str],
    bands: Sequence[str],
    data_range: np.ndarray,
    truth_counts: np.ndarray,
) -> list[dict[str, Any]]:
    """Per-(date, band) metric rows, then one ``mean`` row per band.

    ``truth_counts`` (date, band) holds the valid truth pixels each row's coverage divides by.
    """
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
            n, n_truth = int(count[ti, bi]), int(truth_counts[ti, bi])
            row: dict[str, Any] = {
                "date": date,
                "band": band,
                "status": STATUS_OK if n else STATUS_EMPTY,
                "count": n,
                "truth_count": n_truth,
                "coverage": coverage(n, n_truth),
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
    out["truth_count"] = int(sum(r["truth_count"] for r in rows))
    out["coverage"] = coverage(out["count"], out["truth_count"])
    for col in columns:
        vals = [r[col] for r in used if r.get(col) is not None and math.isfinite(r[col])]
        out[col] = float(np.mean(vals)) if vals else None
    return out


def date_rows(
    partials: Partials,
    dates: Sequence[str],
    rows_by_band: Sequence[Mapping[str, Any]],
    resolution_ratio: float | None,
    days_from_pair: Mapping[str, int | None],
) -> list[dict[str, Any]]:
    """Per-date SAM (multi-band data only) and ERGAS rows, then a ``mean`` row.

    A date's ``count`` and ``truth_count`` sum its bands'; ``days_from_pair`` gives each date's
    distance to the nearest pair used (None where unknown).
    """
    multiband = len({r["band"] for r in rows_by_band}) > 1
    rows = []
    for ti, date in enumerate(dates):
        n = int(partials.sam_count[ti])
        dated = [r for r in rows_by_band if r["date"] == date]
        band_stats = [r for r in dated if r["status"] == STATUS_OK]
        ergas = None
        if resolution_ratio is not None and band_stats:
            ergas = km.ergas_from_band_stats(
                [r["rmse"] for r in band_stats],
                [r["mean_truth"] for r in band_stats],
                resolution_ratio,
            )
        sam = partials.sam_sum[ti] / n if n and multiband else None
        count, n_truth = sum(r["count"] for r in dated), sum(r["truth_count"] for r in dated)
        rows.append(
            {
                "date": date,
                "status": STATUS_OK if band_stats else STATUS_EMPTY,
                "days_from_pair": days_from_pair.get(date),
                "count": count,
                "truth_count": n_truth,
                "coverage": coverage(count, n_truth),
                "sam_count": n if multiband else 0,
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
