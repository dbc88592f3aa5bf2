"""ESTARFM's similarity thresholds ``2 * sd / num_class`` per pair and band.

``seamless`` mode: ``sd`` of each pair's valid pixels over the whole image, from mergeable
moments (:func:`threshold_moments` per chunk, summed, then :func:`thresholds_from_moments`).
``reference`` mode: ``sd`` of each program block, background values included as the program
does (:func:`block_thresholds`). Both are sample SDs (IDL ``STDDEV``, n - 1).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from stfcube.kernels._backend import array_module, to_numpy


def threshold_moments(fine: Any, valid: Any) -> np.ndarray:
    """Count, sum and sum of squares of every pair's and band's valid pixels.

    Parameters
    ----------
    fine
        ``(pairs, band, y, x)`` fine images (NumPy or CuPy).
    valid
        ``(pairs, y, x)`` bool: the pixels that count.

    Returns
    -------
    np.ndarray
        ``(pairs, band, 3)`` float64 on the host; sums over chunks give the whole image's.
    """
    xp = array_module(fine, valid)
    values = xp.where(valid[:, None], xp.asarray(fine, dtype=xp.float64), 0.0)
    count = xp.broadcast_to(valid[:, None].sum(axis=(2, 3), dtype=xp.float64), values.shape[:2])
    moments = xp.stack([count, values.sum(axis=(2, 3)), (values * values).sum(axis=(2, 3))], -1)
    return to_numpy(moments)


def thresholds_from_moments(moments: Any, num_class: float) -> np.ndarray:
    """``2 * sd / num_class`` ``(pairs, band)`` from :func:`threshold_moments` totals.

    Sample SD from the moments in float64; fewer than two pixels give 0 (nothing is similar).
    """
    moments = np.asarray(moments, dtype=np.float64)
    count, total, total_sq = moments[..., 0], moments[..., 1], moments[..., 2]
    enough = count > 1
    safe = np.where(enough, count, 2.0)
    variance = np.maximum(total_sq - total * total / safe, 0.0) / (safe - 1.0)
    return np.where(enough, 2.0 * np.sqrt(variance) / num_class, 0.0)


def block_thresholds(fine: Any, num_class: float) -> np.ndarray:
    """The program's thresholds of one block: sample SD of every finite pixel per pair and band.

    Parameters
    ----------
    fine
        ``(pairs, band, y, x)`` the block's fine images; background values count, NaN (a pixel
        the program could not have) does not.

    Returns
    -------
    np.ndarray
        ``(pairs, band)`` float64 on the host.
    """
    xp = array_module(fine)
    values = xp.asarray(fine, dtype=xp.float64)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a block without two finite pixels
        sd = to_numpy(xp.nanstd(values, axis=(2, 3), ddof=1))
    return np.where(np.isnan(sd), 0.0, 2.0 * sd / num_class)
