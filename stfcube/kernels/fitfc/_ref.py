"""Fit-FC's spatial filter, NumPy reference: every window ranked by a stable full sort.

Clear rather than fast (one output row at a time, ``(x, cells)`` arrays); the numba and CUDA
engines must match it. Contract of :func:`filter_sums` (shared by all three engines):

* ``key`` ``(k, y + 2r, x + 2r)`` and ``values`` ``(band, y + 2r, x + 2r)``: float64, padded by
  ``r`` by edge replication; a candidate's distance is the sum over ``k`` of squared key
  differences to the centre pixel's;
* ``weights`` ``((2r + 1)^2,)``: the weight of each window cell, cells in column-major order
  (cell ``dc * (2r + 1) + dr`` for row offset ``dr`` and column offset ``dc``, both from 0);
* the ``n_similar`` candidates of smallest distance are kept, ties going to the lowest cell
  index; candidates whose distance is NaN are skipped (as MATLAB's ``min`` does), and so are
  those with a NaN value in any band when ``skip_invalid_values``;
* the output, for the pixels ``window = (row0, row1, col0, col1)`` of the unpadded grid, is the
  weighted mean of the kept candidates' values (NaN when none is kept).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def filter_sums(
    key: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    n_similar: int,
    skip_invalid_values: bool,
    window: tuple[int, int, int, int],
) -> np.ndarray:
    """Weighted mean of the ``n_similar`` most similar cells of every window (see module doc)."""
    span = math.isqrt(weights.size)
    radius = span // 2
    row0, row1, col0, col1 = window
    out = np.full((values.shape[0], row1 - row0, col1 - col0), np.nan)
    unusable = ~np.isfinite(values).all(axis=0) if skip_invalid_values else None
    for y in range(row0, row1):
        # (k, dr, x, dc) -> cells (x, dc * span + dr): column-major within the window
        cells = sliding_window_view(key[:, y : y + span, col0 : col1 + 2 * radius], span, axis=2)
        centre = key[:, y + radius, col0 + radius : col1 + radius]
        distance = ((cells - centre[:, None, :, None]) ** 2).sum(axis=0)
        distance = distance.transpose(1, 2, 0).reshape(col1 - col0, span * span)
        if unusable is not None:
            blocked = sliding_window_view(unusable[y : y + span, col0 : col1 + 2 * radius], span, 1)
            distance[blocked.transpose(1, 2, 0).reshape(distance.shape)] = np.nan
        distance = np.where(np.isnan(distance), np.inf, distance)
        chosen = np.argsort(distance, axis=1, kind="stable")[:, :n_similar]
        kept = np.isfinite(np.take_along_axis(distance, chosen, axis=1))
        weight = np.where(kept, weights[chosen], 0.0)
        rows = y + chosen % span
        cols = np.arange(col0, col1)[:, None] + chosen // span
        total = weight.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            for band in range(values.shape[0]):
                picked = np.where(kept, values[band, rows, cols], 0.0)
                out[band, y - row0] = (weight * picked).sum(axis=1) / total
        out[:, y - row0, total == 0] = np.nan
    return out
