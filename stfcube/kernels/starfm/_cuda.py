"""STARFM per-pixel sums on a CUDA GPU: a numba CUDA kernel, one thread per output pixel.

The kernel reads CuPy arrays through ``__cuda_array_interface__``. It runs unchanged under the
numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set before numba is imported), which is how CI
checks it without a GPU.

A GPU thread has no room for a candidate list, so each date makes two passes over the window:
the first sums the weights, the second recomputes the same weights (bit for bit: the arithmetic is
deterministic) and accumulates the normalised sum. Both sums are float32 in the reference order
(pair, window row, window column). The product ``weight * term`` goes through ``fmul_rn`` so the
compiler cannot fuse it with the following addition into an FMA, whose single rounding would
differ from the reference program.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import cuda
from numba.core import config

from stfcube.kernels._launch import BLOCK, launch_grid

if TYPE_CHECKING:
    from types import ModuleType

    from stfcube.kernels.starfm._prepare import KernelConstants, TileArrays

_DROPPED = np.float32(-1.0)

if config.ENABLE_CUDASIM:

    @cuda.jit(device=True)
    def _product(a, b):
        """float32 product (the simulator runs NumPy float32 arithmetic)."""
        return np.float32(a * b)

else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def _product(a, b):
        """float32 product rounded on its own, never contracted into an FMA."""
        return libdevice.fmul_rn(a, b)


@cuda.jit(device=True)
def _candidate_weight(
    key, centre, threshold, a_lsr, m, thr_lsr, thr_msr, factor, flags, unit_weight_below
):
    """Un-normalised weight of one window cell for one date, or ``_DROPPED``.

    ``flags``: bit 0 = AND filter (paper), bit 1 = spectral-only T (usda, one pair).
    """
    if not abs(key - centre) < threshold or m != m:
        return _DROPPED
    a_msr = abs(m)
    far_lsr = a_lsr > thr_lsr
    far_msr = a_msr > thr_msr
    if flags & 1:
        dropped = far_lsr or far_msr
    else:
        dropped = far_lsr and far_msr
    if dropped:
        return _DROPPED
    if flags & 2:
        t_dis = np.float32(np.float64(a_lsr) + 1.0)
    else:
        t_dis = np.float32((np.float64(a_msr) + 1.0) * (np.float64(a_lsr) + 1.0))
    if t_dis < unit_weight_below:
        return np.float32(1.0)
    return np.float32(1.0 / (np.float64(t_dis) * factor))


@cuda.jit
def _predict_kernel(
    key,
    value,
    lsr,
    msr,
    centre_key,
    thr_lsr,
    thr_msr,
    slices,
    factor,
    lo,
    span,
    halo,
    flags,
    unit_weight_below,
    fsr_out,
    count_out,
):
    x, y = cuda.grid(2)
    h, w = thr_lsr.shape
    if y >= h or x >= w:
        return
    n_pairs = key.shape[0]
    n_dates = msr.shape[1]
    top = y + halo + lo
    left = x + halo + lo
    for k in range(n_dates):
        limit_lsr = thr_lsr[y, x]
        limit_msr = thr_msr[k, y, x]
        total = np.float32(0.0)
        count = 0
        for p in range(n_pairs):
            centre = centre_key[p, y, x]
            for r in range(span):
                for j in range(span):
                    r_dis = _candidate_weight(
                        key[p, top + r, left + j],
                        centre,
                        slices[p],
                        lsr[p, top + r, left + j],
                        msr[p, k, top + r, left + j],
                        limit_lsr,
                        limit_msr,
                        factor[r * span + j],
                        flags,
                        unit_weight_below,
                    )
                    if r_dis != _DROPPED:
                        total = np.float32(total + r_dis)
                        count += 1
        fsr = np.float32(0.0)
        if count > 0:
            for p in range(n_pairs):
                centre = centre_key[p, y, x]
                for r in range(span):
                    for j in range(span):
                        m = msr[p, k, top + r, left + j]
                        r_dis = _candidate_weight(
                            key[p, top + r, left + j],
                            centre,
                            slices[p],
                            lsr[p, top + r, left + j],
                            m,
                            limit_lsr,
                            limit_msr,
                            factor[r * span + j],
                            flags,
                            unit_weight_below,
                        )
                        if r_dis != _DROPPED:
                            weight = np.float32(r_dis / total)
                            term = np.float32(value[p, top + r, left + j] - m)
                            fsr = np.float32(fsr + _product(weight, term))
        fsr_out[k, y, x] = fsr
        count_out[k, y, x] = count


def predict_sums(tile: TileArrays, consts: KernelConstants, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted prediction and candidate count of every interior pixel and date, on the GPU.

    Same contract as :func:`stfcube.kernels.starfm._ref.predict_sums`. ``xp`` is CuPy on a GPU;
    NumPy arrays are accepted too (the simulator works on them directly; on a GPU numba copies
    them).
    """
    n_dates, h, w = tile.thr_msr.shape
    fsr = xp.empty((n_dates, h, w), dtype=np.float32)
    count = xp.empty((n_dates, h, w), dtype=np.int32)
    flags = int(consts.and_filter) | (int(consts.spectral_only) << 1)
    _predict_kernel[launch_grid(h, w), BLOCK](
        tile.key,
        tile.value,
        tile.lsr,
        tile.msr,
        tile.centre_key,
        tile.thr_lsr,
        tile.thr_msr,
        xp.asarray(consts.slices, dtype=np.float32),
        xp.asarray(consts.distance_factor, dtype=np.float64),
        consts.lo,
        consts.hi - consts.lo + 1,
        tile.halo,
        flags,
        np.float32(consts.unit_weight_below),
        fsr,
        count,
    )
    return fsr, count
