"""FSDAF's final similar-pixel smoothing on the CPU: a numba kernel, parallel over target rows.

Same contract as :func:`stfcube.kernels.fsdaf._ref.smooth_sums`. Per target the clipped window is
scanned once in row-major order while a sorted list of the ``n_similar`` best candidates is
kept by insertion (:func:`stfcube.kernels._select.keep_best`, ordered by key then window index):
a partial selection, no sort.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from stfcube.kernels._select import keep_best
from stfcube.kernels.fsdaf import _similar

_keep = njit(cache=True, nogil=True)(keep_best)
_candidate = njit(cache=True, nogil=True)(_similar.candidate)
_distance = njit(cache=True, nogil=True)(_similar.spatial_distance)
_key = njit(cache=True, nogil=True)(_similar.rank_key)
_weight = njit(cache=True, nogil=True)(_similar.weight)


@njit(cache=True, nogil=True, parallel=True)
def _smooth(fine, change, threshold, radius, n_similar, row0, row1, col0, col1, out):
    n_bands = change.shape[0]
    rows, cols = fine.shape[1], fine.shape[2]
    span = 2 * radius + 1
    for y in prange(row0, row1):
        best_key = np.empty(n_similar)
        best_k = np.empty(n_similar, dtype=np.int64)
        for x in range(col0, col1):
            top, bottom = max(0, y - radius), min(rows, y + radius + 1)
            left, right = max(0, x - radius), min(cols, x + radius + 1)
            truncated = (bottom - top) * (right - left) < span * span
            count = 0
            for qy in range(top, bottom):
                for qx in range(left, right):
                    s = _candidate(fine, threshold, y, x, qy, qx)
                    if s < 0:
                        continue
                    usable = True
                    for b in range(n_bands):
                        if not np.isfinite(change[b, qy, qx]):
                            usable = False
                    if not usable:
                        continue
                    key = _key(s, _distance(qy - y, qx - x, truncated), radius)
                    k = (qy - y + radius) * span + (qx - x + radius)
                    count = _keep(key, k, count, n_similar, best_key, best_k)
            for b in range(n_bands):
                out[b, y - row0, x - col0] = np.nan
            if count == 0:
                continue
            total = 0.0
            for b in range(n_bands):
                out[b, y - row0, x - col0] = 0.0
            for i in range(count):
                qy = y + best_k[i] // span - radius
                qx = x + best_k[i] % span - radius
                s = _candidate(fine, threshold, y, x, qy, qx)
                w = _weight(s, _distance(qy - y, qx - x, truncated), radius)
                total += w
                for b in range(n_bands):
                    out[b, y - row0, x - col0] += w * change[b, qy, qx]
            for b in range(n_bands):
                out[b, y - row0, x - col0] /= total


def smooth_sums(
    fine: np.ndarray,
    change: np.ndarray,
    threshold: np.ndarray,
    radius: int,
    n_similar: int,
    window: tuple[int, int, int, int],
) -> np.ndarray:
    """Weighted mean change of the ``n_similar`` best candidates of each target (see
    :mod:`stfcube.kernels.fsdaf._ref`)."""
    row0, row1, col0, col1 = window
    out = np.empty((change.shape[0], row1 - row0, col1 - col0))
    _smooth(
        np.ascontiguousarray(fine, dtype=np.float64),
        np.ascontiguousarray(change, dtype=np.float64),
        np.ascontiguousarray(threshold, dtype=np.float64),
        radius,
        n_similar,
        row0,
        row1,
        col0,
        col1,
        out,
    )
    return out
