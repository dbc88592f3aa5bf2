"""Fit-FC's spatial filter on a CUDA GPU: a numba CUDA kernel, one thread per output pixel.

Same contract and selection rule as :func:`stfcube.kernels.fitfc._numba.filter_sums` (a sorted list
of the best candidates kept by insertion, ordered by distance then column-major cell index), in
thread-local arrays of :data:`MAX_SIMILAR` entries. The kernel reads CuPy arrays through
``__cuda_array_interface__`` and runs unchanged under the numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which is how CI checks it without a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from stfcube.kernels._backend import array_module
from stfcube.kernels._launch import BLOCK, launch_grid
from stfcube.kernels._select import keep_best

#: Most neighbours a GPU thread keeps (its local list has a compile-time size).
MAX_SIMILAR = 64


#: :func:`stfcube.kernels._select.keep_best` as a device function.
_keep = cuda.jit(device=True)(keep_best)


@cuda.jit
def _filter_kernel(key, values, usable, weights, n_similar, span, row0, col0, out):
    x, y = cuda.grid(2)
    if y >= out.shape[1] or x >= out.shape[2]:
        return
    py, px = y + row0, x + col0
    radius = span // 2
    best_d = cuda.local.array(MAX_SIMILAR, np.float64)
    best_k = cuda.local.array(MAX_SIMILAR, np.int64)
    count = 0
    for dr in range(span):
        for dc in range(span):
            if not usable[py + dr, px + dc]:
                continue
            d = 0.0
            for b in range(key.shape[0]):
                diff = key[b, py + dr, px + dc] - key[b, py + radius, px + radius]
                d += diff * diff
            if d != d:
                continue
            count = _keep(d, dc * span + dr, count, n_similar, best_d, best_k)
    for band in range(values.shape[0]):
        total = 0.0
        weighted = 0.0
        for i in range(count):
            k = best_k[i]
            total += weights[k]
            weighted += weights[k] * values[band, py + k % span, px + k // span]
        out[band, y, x] = weighted / total if count > 0 else math.nan


def filter_sums(
    key: Any,
    values: Any,
    weights: Any,
    n_similar: int,
    skip_invalid_values: bool,
    window: tuple[int, int, int, int],
) -> Any:
    """Weighted mean of the ``n_similar`` most similar cells of every window, on the GPU (CuPy
    arrays; NumPy arrays under the simulator). See :mod:`stfcube.kernels.fitfc._ref`.

    Raises
    ------
    ValueError
        When ``n_similar`` exceeds :data:`MAX_SIMILAR`.
    """
    if n_similar > MAX_SIMILAR:
        raise ValueError(f"the CUDA engine keeps at most {MAX_SIMILAR} neighbours (n_similar)")
    xp = array_module(key, values)
    row0, row1, col0, col1 = window
    if skip_invalid_values:
        usable = xp.isfinite(values).all(axis=0)
    else:
        usable = xp.ones(values.shape[1:], dtype=xp.bool_)
    out = xp.empty((values.shape[0], row1 - row0, col1 - col0), dtype=xp.float64)
    span = math.isqrt(weights.size)
    _filter_kernel[launch_grid(row1 - row0, col1 - col0), BLOCK](
        xp.ascontiguousarray(key, dtype=xp.float64),
        xp.ascontiguousarray(values, dtype=xp.float64),
        usable,
        xp.asarray(weights, dtype=xp.float64),
        n_similar,
        span,
        row0,
        col0,
        out,
    )
    return out
