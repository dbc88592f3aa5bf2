"""Fit-FC's spatial filter on the CPU: a numba kernel, parallel over output rows.

Same contract as :func:`stfcube.kernels.fitfc._ref.filter_sums`. Per pixel the window is scanned
once (row by row, for contiguous reads) while a sorted list of the ``n_similar`` best candidates is
kept by insertion: a partial selection, no sort. The order compares (distance, column-major cell
index), so the kept set is the reference's whatever the scan order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from stfcube.kernels._select import keep_best

#: :func:`stfcube.kernels._select.keep_best`, compiled for the CPU.
_keep = njit(cache=True, nogil=True)(keep_best)


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _filter(centre_key, key, values, weights, span, n_similar, row0, row1, col0, col1, out):
    n_key = key.shape[0]
    n_bands = values.shape[0]
    radius = span // 2
    for y in prange(row0, row1):
        best_d = np.empty(n_similar)
        best_k = np.empty(n_similar, dtype=np.int64)
        centre = np.empty(n_key)
        distance = np.empty(span)
        for x in range(col0, col1):
            for b in range(n_key):
                centre[b] = centre_key[b, y + radius, x + radius]
            count = 0
            for dr in range(span):
                distance[:] = 0.0
                for b in range(n_key):
                    row = key[b, y + dr, x : x + span]
                    c = centre[b]
                    for dc in range(span):
                        diff = row[dc] - c
                        distance[dc] += diff * diff
                for dc in range(span):
                    d = distance[dc]
                    # NaN never ranks before anything: skipped, as MATLAB's min skips it
                    if count < n_similar or d <= best_d[count - 1]:
                        if d == d:
                            count = _keep(d, dc * span + dr, count, n_similar, best_d, best_k)
            for band in range(n_bands):
                total = 0.0
                weighted = 0.0
                for i in range(count):
                    k = best_k[i]
                    w = weights[k]
                    total += w
                    weighted += w * values[band, y + k % span, x + k // span]
                out[band, y - row0, x - col0] = weighted / total if count > 0 else np.nan


def filter_sums(
    key: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    n_similar: int,
    skip_invalid_values: bool,
    window: tuple[int, int, int, int],
) -> np.ndarray:
    """Weighted mean of the ``n_similar`` most similar cells of every window (see module doc)."""
    row0, row1, col0, col1 = window
    centre_key = np.ascontiguousarray(key, dtype=np.float64)
    candidate_key = centre_key
    if skip_invalid_values:  # a candidate without a value gets a NaN distance
        candidate_key = np.where(np.isfinite(values).all(axis=0), centre_key, np.nan)
    out = np.empty((values.shape[0], row1 - row0, col1 - col0))
    _filter(
        centre_key,
        candidate_key,
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        math.isqrt(weights.size),
        n_similar,
        row0,
        row1,
        col0,
        col1,
        out,
    )
    return out
