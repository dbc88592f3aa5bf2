"""ESTARFM's per-candidate and per-band formulas as plain scalar functions, compiled by both
numba engines (``njit`` in :mod:`stfcube.kernels.estarfm._numba`, CUDA device functions in
:mod:`stfcube.kernels.estarfm._cuda`). Divisions by zero are decided explicitly, so the functions
give the IEEE results of the program's arithmetic under the CUDA simulator too (where Python floats
would raise). Each function is a leaf (calls no other), as both compilers need.
"""

from __future__ import annotations

import math
from typing import Any


def correlation(fine: Any, coarse: Any, row: int, col: int) -> float:
    """Spectral correlation R of one candidate (fine vs coarse over both pairs and all bands).

    ``fine`` and ``coarse`` are ``(2, band, y, x)``. Several bands: Pearson's r of the ``2 nb``
    values, as the program writes it with sample SDs; one band: ``1 - (|(F1-C1)/(F1+C1)| +
    |(F2-C2)/(F2+C2)|) / 2``. A NaN correlation (a constant vector) becomes 0.5.
    """
    n_bands = fine.shape[1]
    if n_bands == 1:
        total = 0.0
        for p in range(2):
            f = fine[p, 0, row, col]
            c = coarse[p, 0, row, col]
            if f + c == 0.0:
                if f - c == 0.0:
                    return 0.5
                return -math.inf
            total += abs((f - c) / (f + c))
        return 1.0 - 0.5 * total
    m = 2 * n_bands
    mean_x = 0.0
    mean_y = 0.0
    for p in range(2):
        for b in range(n_bands):
            mean_x += fine[p, b, row, col]
            mean_y += coarse[p, b, row, col]
    mean_x /= m
    mean_y /= m
    sxx = 0.0
    syy = 0.0
    sxy = 0.0
    for p in range(2):
        for b in range(n_bands):
            dx = fine[p, b, row, col] - mean_x
            dy = coarse[p, b, row, col] - mean_y
            sxx += dx * dx
            syy += dy * dy
            sxy += dx * dy
    if sxx == 0.0 or syy == 0.0:
        return 0.5
    sd_x = math.sqrt(sxx / (m - 1))
    sd_y = math.sqrt(syy / (m - 1))
    return m * (sxy / m) / (sd_x * sd_y) / (m - 1)


def inverse_distance(r: float, row_offset: int, col_offset: int, half_window: int) -> float:
    """``1 / C_D`` with ``C_D = (1 - R) * (1 + d / w) + 1e-7`` (0 when ``C_D`` is infinite)."""
    spatial = (
        1.0 + math.sqrt(float(row_offset * row_offset + col_offset * col_offset)) / half_window
    )
    combined = (1.0 - r) * spatial + 1e-7
    if combined == math.inf:
        return 0.0
    return 1.0 / combined


def conversion_coefficient(
    sxx: float, sxy: float, syy: float, n_samples: int, f_crit: float
) -> float:
    """V from the regression of fine on coarse over ``n_samples`` (2n) centred sums.

    The slope ``sxy / sxx`` when the regression is significant (``F = R^2 / (1 - R^2)
    (n_samples - 2) >= f_crit``, the F-test at 0.05) and ``0 < slope <= 5``; otherwise NaN
    (the caller takes V = 1).
    """
    if sxx == 0.0 or syy == 0.0:
        return math.nan
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy)
    significant = r2 >= 1.0 or r2 / (1.0 - r2) * (n_samples - 2) >= f_crit
    if significant and 0.0 < slope <= 5.0:
        return slope
    return math.nan


def band_prediction(
    centre_1: float,
    centre_2: float,
    v: float,
    sums: Any,
    total: float,
    change_1: float,
    change_2: float,
    dn_min: float,
    dn_max: float,
) -> tuple[float, bool]:
    """One band's ESTARFM prediction (temporal weights ``T_k = (1/d_k) / (1/d_1 + 1/d_2)``,
    ``d_k = |change_k| + 1e-10``) from the candidates' weighted sums.

    ``sums`` holds ``sum(inv * (C0 - C1))``, ``sum(inv * (C0 - C2))``, ``sum(inv * F1)``,
    ``sum(inv * F2)`` over the candidates, ``total = sum(inv)`` (the weights are ``inv /
    total``); ``change_k`` is the window-mean coarse change ``mean(C0) - mean(Ck)``. Returns the
    prediction and whether it fell outside ``(dn_min, dn_max)`` and was replaced by the weighted
    mean of the base fine images.
    """
    inverse_1 = 1.0 / (abs(change_1) + 1e-10)
    inverse_2 = 1.0 / (abs(change_2) + 1e-10)
    t1 = inverse_1 / (inverse_1 + inverse_2)
    t2 = inverse_2 / (inverse_1 + inverse_2)
    from_1 = centre_1 + v * (sums[0] / total)
    from_2 = centre_2 + v * (sums[1] / total)
    prediction = t1 * from_1 + t2 * from_2
    if prediction <= dn_min or prediction >= dn_max:
        return t1 * (sums[2] / total) + t2 * (sums[3] / total), True
    return prediction, False


def few_candidates_prediction(
    centre_1: float, centre_2: float, change_1: float, change_2: float
) -> float:
    """The prediction with too few similar pixels: each base value plus its window-mean coarse
    change (``d_k = change_k + 1e-10``), weighted by ``|d_k|``."""
    d1 = change_1 + 1e-10
    d2 = change_2 + 1e-10
    inverse_1 = 1.0 / abs(d1)
    inverse_2 = 1.0 / abs(d2)
    t1 = inverse_1 / (inverse_1 + inverse_2)
    t2 = inverse_2 / (inverse_1 + inverse_2)
    return t1 * (centre_1 + d1) + t2 * (centre_2 + d2)
