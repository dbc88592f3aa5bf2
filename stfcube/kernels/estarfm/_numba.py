"""ESTARFM on the CPU: a numba kernel, parallel over output rows.

Per output pixel:

1. **Search**, once for all dates: per window row, one 64-cell vector comparison per pair and
   band (:func:`stfcube.kernels._simd.within_mask64`), and-ed into a bit mask whose set bits are
   appended to the thread's candidate list (``tzcnt``). Pixels invalid in a pair image carry NaN
   keys, so the same comparison drops them. No sort: ESTARFM keeps every similar pixel.
2. **Per date**, over the candidates also valid in C0: the inverse combined distances and their
   total, the conversion coefficient of each band (two passes: means, then centred sums) and the
   weighted sums of each band, combined by the formulas of :mod:`stfcube.kernels.estarfm._formulas`
   (shared with the CUDA engine). When every candidate is valid in C0 (the usual case) the
   distances and coefficients of the first such date serve every date.

Same contract as :func:`stfcube.kernels.estarfm._ref.predict`; sums run in the candidates' row-major
order, as in the program, but the weights are applied after summing (``V sum(inv x) / sum(inv)``
rather than ``sum(inv / sum(inv) V x)``), so results agree with the reference to rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit, prange

from stfcube.kernels._simd import MASK_BITS, append_set_bits, within_mask64
from stfcube.kernels.estarfm import _formulas
from stfcube.kernels.estarfm._prepare import (
    FEW_CANDIDATES,
    FITTED_V,
    OUT_OF_RANGE,
    UNIT_V,
    blank_outputs,
)
from stfcube.kernels.estarfm.params import MIN_CANDIDATES

if TYPE_CHECKING:
    from stfcube.kernels.estarfm._prepare import Constants, TileArrays

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_correlation = njit(**_JIT)(_formulas.correlation)
_inverse_distance = njit(**_JIT)(_formulas.inverse_distance)
_conversion = njit(**_JIT)(_formulas.conversion_coefficient)
_band_prediction = njit(**_JIT)(_formulas.band_prediction)
_few = njit(**_JIT)(_formulas.few_candidates_prediction)


@njit(**_JIT)
def _search(key, plane, n_keys, centre, thresholds, y, x, rows, cols, w, cell):
    """Append the flat indices of the window pixels similar to ``(y, x)``; returns how many.

    ``key`` is the flat ``(2 * band, Y, X)`` stack of fine values (NaN where a pair image is
    invalid) with ``MASK_BITS`` spare elements; ``cell`` needs 3 spare entries at its end.
    """
    one = np.uint64(1)
    c0 = max(0, x - w)
    width = min(cols, x + w + 1) - c0
    chunks = (width + MASK_BITS - 1) // MASK_BITS
    tail = width - MASK_BITS * (chunks - 1)
    tail_mask = ~np.uint64(0) if tail == MASK_BITS else (one << np.uint64(tail)) - one
    n = 0
    for r in range(max(0, y - w), min(rows, y + w + 1)):
        for chunk in range(chunks):
            first = r * cols + c0 + MASK_BITS * chunk
            bits = ~np.uint64(0) if chunk < chunks - 1 else tail_mask
            for k in range(n_keys):
                if bits:
                    bits &= within_mask64(key, k * plane + first, centre[k], thresholds[k])
            n = append_set_bits(bits, first, cell, n)
    return n


@njit(**_JIT)
def _coefficients(fine, coarse, cell, n, y, x, cols, consts, inverse, v, fitted):
    """Inverse combined distances of candidates ``cell[:n]`` (into ``inverse``), their total
    (returned), and each band's conversion coefficient (``v``; ``fitted``: V from the
    regression, not 1). Images are ``(pair or date, band, 1, pixel)`` views."""
    w, min_change, f_crit = consts
    total = 0.0
    for q in range(n):
        i = cell[q]
        row = i // cols
        r = _correlation(fine, coarse, 0, i)
        inverse[q] = _inverse_distance(r, row - y, i - row * cols - x, w)
        total += inverse[q]
    for b in range(fine.shape[1]):
        s1 = s2 = g1 = g2 = 0.0
        for q in range(n):
            i = cell[q]
            s1 += coarse[0, b, 0, i]
            s2 += coarse[1, b, 0, i]
            g1 += fine[0, b, 0, i]
            g2 += fine[1, b, 0, i]
        v[b] = np.nan
        if abs(s1 / n - s2 / n) >= min_change:
            mean_x = (s1 + s2) / (2 * n)
            mean_y = (g1 + g2) / (2 * n)
            sxx = sxy = syy = 0.0
            for p in range(2):
                for q in range(n):
                    dx = coarse[p, b, 0, cell[q]] - mean_x
                    dy = fine[p, b, 0, cell[q]] - mean_y
                    sxx += dx * dx
                    sxy += dx * dy
                    syy += dy * dy
            v[b] = _conversion(sxx, sxy, syy, 2 * n, f_crit[2 * n - 2])
        fitted[b] = v[b] == v[b]
        if not fitted[b]:
            v[b] = 1.0
    return total


@njit(**_JIT)
def _estimate(
    fine,
    coarse,
    c0,
    d,
    cell,
    n,
    inverse,
    total,
    centre,
    change,
    oy,
    ox,
    v,
    fitted,
    limits,
    sums,
    out,
    code,
):
    """Each band's prediction at pixel ``centre`` for date ``d`` from candidates ``cell[:n]``."""
    for b in range(fine.shape[1]):
        sums[:] = 0.0
        for q in range(n):
            i = cell[q]
            weight = inverse[q]
            value = c0[d, b, 0, i]
            sums[0] += weight * (value - coarse[0, b, 0, i])
            sums[1] += weight * (value - coarse[1, b, 0, i])
            sums[2] += weight * fine[0, b, 0, i]
            sums[3] += weight * fine[1, b, 0, i]
        prediction, fallback = _band_prediction(
            fine[0, b, 0, centre], fine[1, b, 0, centre], v[b], sums, total,
            change[d, 0, b, oy, ox], change[d, 1, b, oy, ox], limits[0], limits[1],
        )  # fmt: skip
        out[d, b, oy, ox] = prediction
        code[d, b, oy, ox] = OUT_OF_RANGE if fallback else (FITTED_V if fitted[b] else UNIT_V)


@njit(parallel=True, **_JIT)
def _predict_rows(
    key,
    fine,
    coarse,
    c0,
    pair_valid,
    pred_valid,
    change,
    thresholds,
    consts,
    limits,
    window,
    out,
    code,
    count,
):
    n_dates, n_bands, rows, cols = c0.shape
    plane = rows * cols
    n_keys = 2 * n_bands
    w = consts[0]
    span = 2 * w + 1
    row0, row1, col0, col1 = window
    pred_flat = pred_valid.reshape(-1)
    for y in prange(row0, row1):
        cell = np.empty(span * span + 4, dtype=np.int64)
        subset = np.empty(span * span, dtype=np.int64)
        inverse_all = np.empty(span * span)
        inverse_subset = np.empty(span * span)
        v_all = np.empty(n_bands)
        v_subset = np.empty(n_bands)
        fitted_all = np.empty(n_bands, dtype=np.bool_)
        fitted_subset = np.empty(n_bands, dtype=np.bool_)
        centre = np.empty(n_keys)
        sums = np.empty(4)
        for x in range(col0, col1):
            oy, ox = y - row0, x - col0
            if not pair_valid[y, x]:
                continue
            centre_index = y * cols + x
            for k in range(n_keys):
                centre[k] = key[k * plane + centre_index]
            n = _search(key, plane, n_keys, centre, thresholds, y, x, rows, cols, w, cell)
            total_all = -1.0  # not computed yet
            for d in range(n_dates):
                if not pred_valid[d, y, x]:
                    continue
                m = 0
                for q in range(n):
                    if pred_flat[d * plane + cell[q]]:
                        subset[m] = cell[q]
                        m += 1
                count[d, oy, ox] = m
                if m <= MIN_CANDIDATES:
                    for b in range(n_bands):
                        out[d, b, oy, ox] = _few(
                            fine[0, b, 0, centre_index], fine[1, b, 0, centre_index],
                            change[d, 0, b, oy, ox], change[d, 1, b, oy, ox],
                        )  # fmt: skip
                        code[d, b, oy, ox] = FEW_CANDIDATES
                else:
                    if m == n:  # every similar pixel valid in C0: coefficients shared by dates
                        used, inverse, v, fitted = cell, inverse_all, v_all, fitted_all
                        if total_all < 0.0:
                            total_all = _coefficients(
                                fine, coarse, cell, n, y, x, cols, consts, inverse, v, fitted
                            )
                        total = total_all
                    else:
                        used, inverse, v, fitted = subset, inverse_subset, v_subset, fitted_subset
                        total = _coefficients(
                            fine, coarse, subset, m, y, x, cols, consts, inverse, v, fitted
                        )
                    _estimate(
                        fine, coarse, c0, d, used, m, inverse, total, centre_index, change,
                        oy, ox, v, fitted, limits, sums, out, code,
                    )  # fmt: skip


def predict(tile: TileArrays, consts: Constants) -> tuple[Any, Any, Any]:
    """Prediction, code and candidate count of every output pixel (NumPy in and out; see
    :mod:`stfcube.kernels.estarfm._prepare`)."""
    out, code, count = blank_outputs(np, tile)
    key = np.where(tile.pair_valid[None, None], tile.fine, np.nan).reshape(-1)
    _predict_rows(
        np.concatenate([key, np.full(MASK_BITS, np.nan)]),
        tile.fine,
        tile.coarse,
        tile.coarse_pred,
        tile.pair_valid,
        tile.pred_valid,
        tile.change,
        consts.thresholds.reshape(-1),
        (consts.half_window, consts.min_change, consts.f_crit),
        (consts.dn_min, consts.dn_max),
        tile.window,
        out,
        code,
        count,
    )
    return out, code, count
