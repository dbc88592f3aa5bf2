"""Fit-FC's regression model fitting (RM) and residual compensation (RC), as array code.

Written against the array module ``xp`` of the inputs (NumPy or CuPy): the same code runs on
either device. Conventions: images ``(band, y, x)``; the coarse grid is ``ratio`` times coarser
and its block's top-left corner lies ``offset`` fine pixels from the fine block's (<= 0). The
array borders are the image borders (windows truncated there, bicubic taps folded back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stfcube.kernels._arrays import box_sum, quiet_invalid
from stfcube.kernels._backend import array_module

#: MATLAB's ``eps``, added to the local variance as the reference's guided filter does.
EPS = float(np.finfo(np.float64).eps)
#: Keys' cubic convolution parameter used by MATLAB's ``imresize(..., 'bicubic')``.
KEYS_A = -0.5


def regression(coarse: Any, coarse_pred: Any, radius: int, skip_invalid: bool) -> tuple[Any, ...]:
    """Local linear regression ``coarse_pred ~ a * coarse + b`` per band and coarse pixel.

    Window (2 radius + 1)^2, truncated at the border (statistics divide by the pixels counted):
    ``a = cov / (var + eps)``, ``b = mean(coarse_pred) - a * mean(coarse)``.

    Parameters
    ----------
    coarse, coarse_pred
        ``(band, cy, cx)`` the coarse images of the pair date and of the prediction date.
    radius
        W, in coarse pixels.
    skip_invalid
        Leave pixels where either image is NaN out of the windows, and take their residual as 0
        (``False``: NaN spreads, as in the reference program).

    Returns
    -------
    a, b, residual : arrays
        ``(band, cy, cx)`` float64; ``residual = coarse_pred - (a * coarse + b)``; ``a`` and
        ``b`` are NaN where a window holds no usable pixel.
    """
    xp = array_module(coarse, coarse_pred)
    c1 = xp.asarray(coarse, dtype=xp.float64)
    c2 = xp.asarray(coarse_pred, dtype=xp.float64)
    if skip_invalid:
        used = xp.isfinite(c1) & xp.isfinite(c2)
        c1, c2 = xp.where(used, c1, 0.0), xp.where(used, c2, 0.0)
        count = box_sum(used.astype(xp.float64), radius)
    else:
        count = box_sum(xp.ones_like(c1), radius)
    with quiet_invalid(), np.errstate(divide="ignore"):
        mean_1 = box_sum(c1, radius) / count
        mean_2 = box_sum(c2, radius) / count
        cov = box_sum(c1 * c2, radius) / count - mean_1 * mean_2
        var = box_sum(c1 * c1, radius) / count - mean_1 * mean_1
        a = cov / (var + EPS)
        b = mean_2 - a * mean_1
    residual = xp.asarray(coarse_pred, dtype=xp.float64) - (a * xp.asarray(coarse) + b)
    if skip_invalid:
        residual = xp.where(xp.isnan(residual), 0.0, residual)
    return a, b, residual


def keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    t = np.abs(x)
    near = (KEYS_A + 2) * t**3 - (KEYS_A + 3) * t**2 + 1
    far = KEYS_A * t**3 - 5 * KEYS_A * t**2 + 8 * KEYS_A * t - 4 * KEYS_A
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def fold_symmetric(index: np.ndarray, n: int) -> np.ndarray:
    """Indices folded into ``[0, n)`` by symmetric reflection (edge pixel repeated)."""
    period = np.mod(index, 2 * n)
    return np.where(period < n, period, 2 * n - 1 - period)


def bicubic_taps(n_fine: int, offset: int, ratio: int, n_coarse: int) -> tuple[Any, Any]:
    """The 4 coarse taps and normalised weights of each fine pixel (MATLAB imresize bicubic).

    Fine pixel ``i`` has its centre at coarse coordinate ``(i + 0.5 - offset) / ratio - 0.5``;
    taps outside ``[0, n_coarse)`` are folded back symmetrically.

    Returns
    -------
    index : ndarray
        ``(n_fine, 4)`` int64 coarse indices.
    weight : ndarray
        ``(n_fine, 4)`` float64, each row summing to 1.
    """
    position = (np.arange(n_fine) + 0.5 - offset) / ratio - 0.5
    taps = np.floor(position)[:, None] + np.arange(-1, 3)[None, :]
    weight = keys_cubic(position[:, None] - taps)
    weight /= weight.sum(axis=1, keepdims=True)
    return fold_symmetric(taps.astype(np.int64), n_coarse), weight


def upsample_bicubic(
    values: Any, ratio: int, offset: tuple[int, int], shape: tuple[int, int]
) -> Any:
    """``values`` ``(band, cy, cx)`` resampled bicubically at the fine pixel centres of a block
    of ``shape``, rows first (float64)."""
    xp = array_module(values)
    out = xp.asarray(values, dtype=xp.float64)
    for axis, n_fine, off in ((-2, shape[0], offset[0]), (-1, shape[1], offset[1])):
        index, weight = bicubic_taps(n_fine, off, ratio, out.shape[axis])
        moved = xp.moveaxis(out, axis, -1)
        picked = moved[..., xp.asarray(index)]
        out = xp.moveaxis((picked * xp.asarray(weight)).sum(axis=-1), -1, axis)
    return out


def upsample_nearest(
    values: Any, ratio: int, offset: tuple[int, int], shape: tuple[int, int]
) -> Any:
    """Each fine pixel of a block of ``shape`` takes the coarse pixel that contains it."""
    xp = array_module(values)
    rows = (np.arange(shape[0]) - offset[0]) // ratio
    cols = (np.arange(shape[1]) - offset[1]) // ratio
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= values.shape[-2]:
        raise ValueError("the coarse block does not cover the fine block")
    if cols.max() >= values.shape[-1]:
        raise ValueError("the coarse block does not cover the fine block")
    return values[..., xp.asarray(rows)[:, None], xp.asarray(cols)[None, :]]
