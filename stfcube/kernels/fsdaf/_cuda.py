"""FSDAF's final similar-pixel smoothing on a CUDA GPU: a numba CUDA kernel, one thread per
target pixel.

Same contract and selection rule as :func:`stfcube.kernels.fsdaf._numba.smooth_sums` (a sorted list
of the best candidates kept by insertion, ordered by key then window index), in thread-local
arrays of :data:`MAX_SIMILAR` entries. Takes CuPy arrays (NumPy arrays are copied to the
device by numba) and runs unchanged under the numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``),
which is how CI checks it without a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from stfcube.kernels._backend import array_module
from stfcube.kernels._launch import BLOCK, launch_grid
from stfcube.kernels._select import keep_best
from stfcube.kernels.fsdaf import _similar

#: Most similar pixels a GPU thread keeps (its local list has a compile-time size).
MAX_SIMILAR = 64

_keep = cuda.jit(device=True)(keep_best)
_candidate = cuda.jit(device=True)(_similar.candidate)
_distance = cuda.jit(device=True)(_similar.spatial_distance)
_key = cuda.jit(device=True)(_similar.rank_key)
_weight = cuda.jit(device=True)(_similar.weight)


@cuda.jit
def _smooth_kernel(fine, change, threshold, radius, n_similar, row0, col0, out):
    x, y = cuda.grid(2)
    if y >= out.shape[1] or x >= out.shape[2]:
        return
    py, px = y + row0, x + col0
    rows, cols = fine.shape[1], fine.shape[2]
    span = 2 * radius + 1
    top, bottom = max(0, py - radius), min(rows, py + radius + 1)
    left, right = max(0, px - radius), min(cols, px + radius + 1)
    truncated = (bottom - top) * (right - left) < span * span
    best_key = cuda.local.array(MAX_SIMILAR, np.float64)
    best_k = cuda.local.array(MAX_SIMILAR, np.int64)
    count = 0
    for qy in range(top, bottom):
        for qx in range(left, right):
            s = _candidate(fine, threshold, py, px, qy, qx)
            if s < 0:
                continue
            usable = True
            for b in range(change.shape[0]):
                if not math.isfinite(change[b, qy, qx]):
                    usable = False
            if not usable:
                continue
            key = _key(s, _distance(qy - py, qx - px, truncated), radius)
            k = (qy - py + radius) * span + (qx - px + radius)
            count = _keep(key, k, count, n_similar, best_key, best_k)
    total = 0.0
    for b in range(change.shape[0]):
        out[b, y, x] = 0.0
    for i in range(count):
        qy = py + best_k[i] // span - radius
        qx = px + best_k[i] % span - radius
        s = _candidate(fine, threshold, py, px, qy, qx)
        w = _weight(s, _distance(qy - py, qx - px, truncated), radius)
        total += w
        for b in range(change.shape[0]):
            out[b, y, x] += w * change[b, qy, qx]
    for b in range(change.shape[0]):
        out[b, y, x] = out[b, y, x] / total if count > 0 else math.nan


def smooth_sums(
    fine: Any,
    change: Any,
    threshold: Any,
    radius: int,
    n_similar: int,
    window: tuple[int, int, int, int],
) -> Any:
    """Weighted mean change of the ``n_similar`` best candidates of each target, on the GPU
    (see :mod:`stfcube.kernels.fsdaf._ref`); returns an array of the inputs' module.

    Raises
    ------
    ValueError
        When ``n_similar`` exceeds :data:`MAX_SIMILAR`.
    """
    if n_similar > MAX_SIMILAR:
        raise ValueError(f"the CUDA engine keeps at most {MAX_SIMILAR} similar pixels")
    xp = array_module(fine, change)
    row0, row1, col0, col1 = window
    out = xp.empty((change.shape[0], row1 - row0, col1 - col0), dtype=xp.float64)
    _smooth_kernel[launch_grid(row1 - row0, col1 - col0), BLOCK](
        xp.ascontiguousarray(fine, dtype=xp.float64),
        xp.ascontiguousarray(change, dtype=xp.float64),
        xp.ascontiguousarray(threshold, dtype=xp.float64),
        radius,
        n_similar,
        row0,
        col0,
        out,
    )
    return out
