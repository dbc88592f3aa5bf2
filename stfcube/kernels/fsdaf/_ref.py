"""FSDAF's final similar-pixel smoothing, NumPy reference: every window ranked by a stable sort.

Clear rather than fast (one target pixel at a time); the numba and CUDA engines must match it.
Contract of :func:`smooth_sums` (shared by all three engines):

* ``fine`` ``(band, y, x)``: F1 as the program reads it (not clipped), NaN where unusable;
  ``change`` ``(band, y, x)``: the change-step result ``F2_2 - F1`` (NaN: unusable candidate);
  ``threshold`` ``(band,)``: the per-band similarity thresholds;
* each target's window is its (2w+1)^2 neighbourhood clipped to the array (the program's block);
* candidates: ``|F1(q, b) - F1(p, b)| < threshold[b]`` in every band, ``change`` finite; ranked
  by :func:`stfcube.kernels.fsdaf._similar.rank_key`, ties to the earlier window pixel in row-major
  order; the first ``n_similar`` are kept;
* the output, for the targets ``window = (row0, row1, col0, col1)``, is
  ``sum(weight * change) / sum(weight)`` over the kept candidates (NaN when none or when the
  target's F1 is NaN).
"""

from __future__ import annotations

import numpy as np

from stfcube.kernels.fsdaf._similar import candidate, rank_key, spatial_distance, weight


def smooth_sums(
    fine: np.ndarray,
    change: np.ndarray,
    threshold: np.ndarray,
    radius: int,
    n_similar: int,
    window: tuple[int, int, int, int],
) -> np.ndarray:
    """Weighted mean change of the ``n_similar`` best candidates of each target (module doc)."""
    row0, row1, col0, col1 = window
    rows, cols = fine.shape[1:]
    usable = np.isfinite(change).all(axis=0)
    out = np.full((change.shape[0], row1 - row0, col1 - col0), np.nan)
    for y in range(row0, row1):
        for x in range(col0, col1):
            top, bottom = max(0, y - radius), min(rows, y + radius + 1)
            left, right = max(0, x - radius), min(cols, x + radius + 1)
            truncated = (bottom - top) * (right - left) < (2 * radius + 1) ** 2
            keys, picks = [], []
            for qy in range(top, bottom):
                for qx in range(left, right):
                    s = candidate(fine, threshold, y, x, qy, qx)
                    if s < 0 or not usable[qy, qx]:
                        continue
                    d = spatial_distance(qy - y, qx - x, truncated)
                    keys.append(rank_key(s, d, radius))
                    picks.append((qy, qx, weight(s, d, radius)))
            if not picks:
                continue
            chosen = np.argsort(np.asarray(keys), kind="stable")[:n_similar]
            w = np.array([picks[i][2] for i in chosen])
            values = np.array([change[:, picks[i][0], picks[i][1]] for i in chosen])
            out[:, y - row0, x - col0] = (w[:, None] * values).sum(axis=0) / w.sum()
    return out
