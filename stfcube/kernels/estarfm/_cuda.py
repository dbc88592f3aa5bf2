"""ESTARFM on a CUDA GPU: a numba CUDA kernel, one thread per output pixel.

Same contract as :func:`stfcube.kernels.estarfm._numba.predict` and the same sums in the same
(row-major candidate) order, combined by the same formulas (:mod:`stfcube.kernels.estarfm._formulas`
compiled as device functions). A thread keeps no candidate list: it scans its window again for
each pass (similarity tests are cheap next to a list in local memory), and per band it holds
accumulators for at most :data:`MAX_BANDS` bands. The kernel reads CuPy arrays through
``__cuda_array_interface__`` and runs unchanged under the numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``), which is how CI checks it without a GPU.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import cuda

from stfcube.kernels._backend import array_module
from stfcube.kernels._launch import BLOCK, launch_grid
from stfcube.kernels.estarfm import _formulas
from stfcube.kernels.estarfm._prepare import (
    FEW_CANDIDATES,
    FITTED_V,
    OUT_OF_RANGE,
    UNIT_V,
    blank_outputs,
)
from stfcube.kernels.estarfm.params import MIN_CANDIDATES

if TYPE_CHECKING:
    from stfcube.kernels.estarfm._prepare import Constants, TileArrays

#: Most bands a GPU thread keeps accumulators for (compile-time size of its local arrays).
MAX_BANDS = 16

_correlation = cuda.jit(device=True)(_formulas.correlation)
_inverse_distance = cuda.jit(device=True)(_formulas.inverse_distance)
_conversion = cuda.jit(device=True)(_formulas.conversion_coefficient)
_band_prediction = cuda.jit(device=True)(_formulas.band_prediction)
_few = cuda.jit(device=True)(_formulas.few_candidates_prediction)


@cuda.jit(device=True)
def _similar(fine, pair_valid, thresholds, py, px, r, c):
    """Whether window pixel ``(r, c)`` is similar to the centre ``(py, px)``."""
    if not pair_valid[r, c]:
        return False
    for k in range(2):
        for b in range(fine.shape[1]):
            if not abs(fine[k, b, r, c] - fine[k, b, py, px]) < thresholds[k, b]:
                return False
    return True


@cuda.jit
def _kernel(
    fine, coarse, c0, pair_valid, pred_valid, change, thresholds, f_crit, w, limits, row0, col0,
    out, code, count,
):  # fmt: skip
    x, y = cuda.grid(2)
    if y >= out.shape[2] or x >= out.shape[3]:
        return
    py, px = y + row0, x + col0
    if not pair_valid[py, px]:
        return
    n_bands = fine.shape[1]
    r_lo, r_hi = max(0, py - w), min(fine.shape[2], py + w + 1)
    c_lo, c_hi = max(0, px - w), min(fine.shape[3], px + w + 1)
    acc = cuda.local.array((MAX_BANDS, 8), np.float64)
    sums = cuda.local.array(4, np.float64)
    for d in range(c0.shape[0]):
        if not pred_valid[d, py, px]:
            continue
        for b in range(n_bands):
            for j in range(8):
                acc[b, j] = 0.0
        n = 0
        total = 0.0
        # pass 1: inverse distances, their total, per band the plain and weighted sums
        for r in range(r_lo, r_hi):
            for c in range(c_lo, c_hi):
                if not (
                    pred_valid[d, r, c] and _similar(fine, pair_valid, thresholds, py, px, r, c)
                ):
                    continue
                n += 1
                inv = _inverse_distance(_correlation(fine, coarse, r, c), r - py, c - px, w)
                total += inv
                for b in range(n_bands):
                    acc[b, 0] += coarse[0, b, r, c]
                    acc[b, 1] += coarse[1, b, r, c]
                    acc[b, 2] += fine[0, b, r, c]
                    acc[b, 3] += fine[1, b, r, c]
                    acc[b, 4] += inv * (c0[d, b, r, c] - coarse[0, b, r, c])
                    acc[b, 5] += inv * (c0[d, b, r, c] - coarse[1, b, r, c])
                    acc[b, 6] += inv * fine[0, b, r, c]
                    acc[b, 7] += inv * fine[1, b, r, c]
        count[d, y, x] = n
        if n <= MIN_CANDIDATES:
            for b in range(n_bands):
                out[d, b, y, x] = _few(
                    fine[0, b, py, px], fine[1, b, py, px], change[d, 0, b, y, x],
                    change[d, 1, b, y, x],
                )  # fmt: skip
                code[d, b, y, x] = FEW_CANDIDATES
            continue
        for b in range(n_bands):
            v = math.nan
            if abs(acc[b, 0] / n - acc[b, 1] / n) >= limits[2]:
                mean_x = (acc[b, 0] + acc[b, 1]) / (2 * n)
                mean_y = (acc[b, 2] + acc[b, 3]) / (2 * n)
                sxx = 0.0
                sxy = 0.0
                syy = 0.0
                for k in range(2):  # pass 2, per band: centred sums, pair by pair
                    for r in range(r_lo, r_hi):
                        for c in range(c_lo, c_hi):
                            if pred_valid[d, r, c] and _similar(
                                fine, pair_valid, thresholds, py, px, r, c
                            ):
                                dx = coarse[k, b, r, c] - mean_x
                                dy = fine[k, b, r, c] - mean_y
                                sxx += dx * dx
                                sxy += dx * dy
                                syy += dy * dy
                v = _conversion(sxx, sxy, syy, 2 * n, f_crit[2 * n - 2])
            fitted = v == v
            for j in range(4):
                sums[j] = acc[b, 4 + j]
            prediction, fallback = _band_prediction(
                fine[0, b, py, px], fine[1, b, py, px], v if fitted else 1.0, sums, total,
                change[d, 0, b, y, x], change[d, 1, b, y, x], limits[0], limits[1],
            )  # fmt: skip
            out[d, b, y, x] = prediction
            code[d, b, y, x] = OUT_OF_RANGE if fallback else (FITTED_V if fitted else UNIT_V)


def predict(tile: TileArrays, consts: Constants) -> tuple[Any, Any, Any]:
    """Prediction, code and candidate count of every output pixel, on the GPU (CuPy arrays;
    NumPy arrays under the simulator). See :mod:`stfcube.kernels.estarfm._prepare`.

    Raises
    ------
    ValueError
        With more than :data:`MAX_BANDS` bands.
    """
    n_bands = tile.coarse_pred.shape[1]
    if n_bands > MAX_BANDS:
        raise ValueError(f"the CUDA engine handles at most {MAX_BANDS} bands, got {n_bands}")
    xp = array_module(tile.fine)
    row0, row1, col0, col1 = tile.window
    out, code, count = blank_outputs(xp, tile)
    if out.size == 0:
        return out, code, count
    limits = xp.asarray([consts.dn_min, consts.dn_max, consts.min_change], dtype=xp.float64)
    _kernel[launch_grid(row1 - row0, col1 - col0), BLOCK](
        tile.fine,
        tile.coarse,
        tile.coarse_pred,
        tile.pair_valid,
        tile.pred_valid,
        tile.change,
        xp.asarray(consts.thresholds),
        xp.array(consts.f_crit),  # a copy: the cached table is read-only
        consts.half_window,
        limits,
        row0,
        col0,
        out,
        code,
        count,
    )
    return out, code, count
