"""ESTARFM, NumPy reference: the IDL program's per-pixel steps written out, one pixel at a time.

Clear rather than fast (a Python loop over pixels, NumPy over each window). Contract: see
:mod:`stfcube.kernels.estarfm._prepare`. Per output pixel, as Zhu's program (2018 revision) computes
it:

1. similar pixels: window pixels valid in all five images with ``|F_k(x, b) - F_k(c, b)| <
   threshold[k, b]`` for both pairs and every band;
2. more than 5: spectral correlation ``R`` of each candidate (NaN -> 0.5), weights ``(1/C_D) /
   sum(1/C_D)`` with ``C_D = (1 - R) (1 + d/w) + 1e-7``; per band the conversion coefficient
   ``V`` (regression of ``[F1, F2]`` on ``[C1, C2]`` over the candidates when their mean coarse
   change reaches ``min_change``; kept when ``1 - F_cdf(F; 1, 2n - 2) <= 0.05`` and ``0 < V <=
   5``, else 1); temporal weights from the window-mean coarse changes; ``F_k = F_k(c) + sum(w V
   (C0 - Ck))``, ``T1 F_1 + T2 F_2``, replaced by ``T1 sum(w F1) + T2 sum(w F2)`` outside the
   open data range;
3. otherwise: ``T1 (F1(c) + d1) + T2 (F2(c) + d2)`` with the signed window-mean changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

from stfcube.kernels.estarfm._prepare import (
    FEW_CANDIDATES,
    FITTED_V,
    OUT_OF_RANGE,
    UNIT_V,
    Constants,
    TileArrays,
    blank_outputs,
)
from stfcube.kernels.estarfm.params import MIN_CANDIDATES, SIGNIFICANCE


def predict(tile: TileArrays, consts: Constants) -> tuple[Any, Any, Any]:
    """Prediction, code and candidate count of every output pixel (see module doc)."""
    row0, row1, col0, col1 = tile.window
    prediction, code, count = blank_outputs(np, tile)
    with np.errstate(all="ignore"):
        for y in range(row0, row1):
            for x in range(col0, col1):
                if tile.pair_valid[y, x]:
                    _pixel(tile, consts, y, x, prediction, code, count)
    return prediction, code, count


def similar_pixels(tile: TileArrays, consts: Constants, y: int, x: int) -> tuple[Any, Any]:
    """Rows and columns (row-major order) of the window pixels similar to ``(y, x)``."""
    w = consts.half_window
    rows = slice(max(0, y - w), min(tile.fine.shape[2], y + w + 1))
    cols = slice(max(0, x - w), min(tile.fine.shape[3], x + w + 1))
    similar = tile.pair_valid[rows, cols].copy()
    for k in range(2):
        for b in range(tile.fine.shape[1]):
            distance = np.abs(tile.fine[k, b, rows, cols] - tile.fine[k, b, y, x])
            similar &= distance < consts.thresholds[k, b]
    r, c = np.nonzero(similar)
    return r + rows.start, c + cols.start


def correlation(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """R per candidate from ``(2, band, n)`` fine and coarse values; NaN becomes 0.5."""
    n_bands = fine.shape[1]
    if n_bands == 1:
        r = 1.0 - 0.5 * np.abs((fine[:, 0] - coarse[:, 0]) / (fine[:, 0] + coarse[:, 0])).sum(0)
    else:
        x = fine.reshape(2 * n_bands, -1).T  # (n, 2 nb): F1 bands then F2 bands
        y = coarse.reshape(2 * n_bands, -1).T
        xm = x - x.mean(axis=1, keepdims=True)
        ym = y - y.mean(axis=1, keepdims=True)
        sd = x.std(axis=1, ddof=1) * y.std(axis=1, ddof=1)
        r = 2 * n_bands * (xm * ym).mean(axis=1) / sd / (2 * n_bands - 1)
    return np.where(np.isnan(r), 0.5, r)


def conversion_coefficient(fine: np.ndarray, coarse: np.ndarray, min_change: float) -> float:
    """V of one band from ``(2, n)`` candidates' fine and coarse values (NaN when not fitted or
    rejected: the caller takes 1)."""
    if not abs(coarse[0].mean() - coarse[1].mean()) >= min_change:
        return np.nan
    x, y = coarse.ravel(), fine.ravel()
    xm, ym = x - x.mean(), y - y.mean()
    slope = (xm * ym).sum() / (xm * xm).sum()
    r2 = (xm * ym).sum() ** 2 / ((xm * xm).sum() * (ym * ym).sum())
    f_value = r2 / (1.0 - r2) * (x.size - 2)
    sig = 1.0 - special.fdtr(1.0, x.size - 2, f_value)
    return float(slope) if sig <= SIGNIFICANCE and 0 < slope <= 5 else np.nan


def _pixel(
    tile: TileArrays,
    consts: Constants,
    y: int,
    x: int,
    prediction: np.ndarray,
    code: np.ndarray,
    count: np.ndarray,
) -> None:
    row0, _, col0, _ = tile.window
    oy, ox = y - row0, x - col0
    rows_all, cols_all = similar_pixels(tile, consts, y, x)
    for d in range(tile.coarse_pred.shape[0]):
        if not tile.pred_valid[d, y, x]:
            continue
        keep = tile.pred_valid[d, rows_all, cols_all]
        rows, cols = rows_all[keep], cols_all[keep]
        count[d, oy, ox] = rows.size
        change = tile.change[d, :, :, oy, ox]  # (pair, band): mean(C0) - mean(Ck)
        centre = tile.fine[:, :, y, x]
        if rows.size <= MIN_CANDIDATES:
            shifted = change + 1e-10
            t = (1.0 / np.abs(shifted)) / (1.0 / np.abs(shifted)).sum(axis=0)
            prediction[d, :, oy, ox] = (t * (centre + shifted)).sum(axis=0)
            code[d, :, oy, ox] = FEW_CANDIDATES
            continue
        fine, coarse = tile.fine[:, :, rows, cols], tile.coarse[:, :, rows, cols]
        c0 = tile.coarse_pred[d][:, rows, cols]
        distance = 1.0 + np.hypot(rows - y, cols - x) / consts.half_window
        inverse = 1.0 / ((1.0 - correlation(fine, coarse)) * distance + 1e-7)
        weight = inverse / inverse.sum()
        for b in range(fine.shape[1]):
            v = conversion_coefficient(fine[:, b], coarse[:, b], consts.min_change)
            code[d, b, oy, ox] = UNIT_V if np.isnan(v) else FITTED_V
            v = 1.0 if np.isnan(v) else v
            distance_k = np.abs(change[:, b]) + 1e-10
            t = (1.0 / distance_k) / (1.0 / distance_k).sum()
            from_pairs = centre[:, b] + (weight * v * (c0[b] - coarse[:, b])).sum(axis=1)
            value = (t * from_pairs).sum()
            if value <= consts.dn_min or value >= consts.dn_max:
                value = (t * (weight * fine[:, b]).sum(axis=1)).sum()
                code[d, b, oy, ox] = OUT_OF_RANGE
            prediction[d, b, oy, ox] = value
