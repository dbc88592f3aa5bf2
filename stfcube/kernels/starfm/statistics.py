"""STARFM's global statistics: the per-pair similarity thresholds ("slices") of whole images.

A slice is ``2*sd/num_slice_pure_test`` of the whole fine image (rounded as the program does in
``usda`` mode). For images larger than memory, :func:`slice_moments` reduces each chunk to three
mergeable sums and :func:`slices_from_moments` turns their totals into slices;
:func:`slice_thresholds` does both for an image in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stfcube.kernels._arrays import checked_mask, checked_stack, quiet_invalid
from stfcube.kernels._backend import array_module, to_numpy
from stfcube.kernels.starfm.params import StarfmParams


def slice_moments(
    fine: Any, fine_valid: Any = None, *, params: StarfmParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair count, sum and sum of squares of the pixels that enter the global slice.

    A pixel counts when it is valid, finite and strictly inside ``data_range`` (as in the
    program, the fill value is excluded by the range, not by comparison). Sums of partial
    results over chunks give the whole-image moments for :func:`slices_from_moments`.

    Parameters
    ----------
    fine
        (pairs, y, x) fine images (NumPy or CuPy, any real dtype; NaN = invalid).
    fine_valid
        Optional (pairs, y, x) or (y, x) bool mask.
    params
        The run's parameters.

    Returns
    -------
    count, total, total_sq : np.ndarray
        (pairs,) float64 each, on the host.
    """
    xp = array_module(fine, fine_valid)
    values = checked_stack(xp, fine, "fine", axis_name="pairs")
    low, high = params.data_range
    values64 = values.astype(np.float64)
    with quiet_invalid():
        usable = xp.isfinite(values64) & (values64 > low) & (values64 < high)
    if fine_valid is not None:
        usable &= checked_mask(xp, fine_valid, values.shape, "fine_valid")
    kept = xp.where(usable, values64, 0.0)
    count = usable.sum(axis=(1, 2), dtype=np.float64)
    total = kept.sum(axis=(1, 2))
    total_sq = (kept * kept).sum(axis=(1, 2))
    return to_numpy(count), to_numpy(total), to_numpy(total_sq)


def slices_from_moments(
    count: Any, total: Any, total_sq: Any, *, params: StarfmParams
) -> np.ndarray:
    """Similarity thresholds (slices) from whole-image moments.

    ``sd = sqrt(total_sq/count - (total/count)²)`` (population), in float64 as the program does.
    ``usda``: ``int(int(sd)*2/num_slice_pure_test + 0.5)`` (the program keeps sd in a 16-bit
    integer); ``paper``: ``2*sd/num_slice_pure_test``. A pair without usable pixels gets 0
    (no pixel is similar, the output is fill).

    Returns
    -------
    np.ndarray
        (pairs,) int64 in ``usda`` mode, float64 in ``paper`` mode.
    """
    count = np.asarray(to_numpy(count), dtype=np.float64).reshape(-1)
    total = np.asarray(to_numpy(total), dtype=np.float64).reshape(-1)
    total_sq = np.asarray(to_numpy(total_sq), dtype=np.float64).reshape(-1)
    if not count.shape == total.shape == total_sq.shape:
        raise ValueError(
            f"moments must have one value per pair each, got {count.size}, {total.size}, "
            f"{total_sq.size} values"
        )
    has_data = count > 0
    safe = np.where(has_data, count, 1.0)
    mean = total / safe
    variance = np.maximum(total_sq / safe - mean * mean, 0.0)
    sd = np.where(has_data, np.sqrt(variance), 0.0)
    if params.mode == "usda":
        sd_int = np.minimum(np.trunc(sd), np.iinfo(np.int16).max)
        return np.trunc(sd_int * 2.0 / params.num_slice_pure_test + 0.5).astype(np.int64)
    return 2.0 * sd / params.num_slice_pure_test


def slice_thresholds(fine: Any, fine_valid: Any = None, *, params: StarfmParams) -> np.ndarray:
    """Global per-pair slices of whole images: :func:`slice_moments` + :func:`slices_from_moments`.

    Parameters
    ----------
    fine
        (pairs, y, x) whole fine images.
    fine_valid
        Optional (pairs, y, x) or (y, x) bool mask.
    params
        The run's parameters.

    Returns
    -------
    np.ndarray
        (pairs,) int64 (``usda``) or float64 (``paper``).
    """
    return slices_from_moments(*slice_moments(fine, fine_valid, params=params), params=params)
