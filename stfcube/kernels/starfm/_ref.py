"""STARFM per-pixel sums in vectorised array code: the readable reference and benchmark baseline.

The image is processed whole, one window offset at a time: for every pair ``p`` and offset
``(dy, dx)`` (in the reference program's candidate order: pair, then window row, then window
column) the shifted planes give every pixel's candidate at that offset at once. Accumulating
offset by offset keeps each pixel's float32 sums in exactly the reference order, so this code is
bit-identical to the compiled engines while sharing none of their loops.

It is written against an array namespace ``xp`` (NumPy or CuPy), so it also runs on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType

    from stfcube.kernels.starfm._prepare import KernelConstants, TileArrays


def _offset_candidates(
    tile: TileArrays, consts: KernelConstants, xp: ModuleType
) -> Iterator[tuple[Any, Any, Any]]:
    """Yield ``(valid, r_dis, term)`` per (pair, dy, dx) in candidate order, each (dates, h, w).

    ``valid`` marks the pixels whose candidate at this offset survives every test, ``r_dis`` is
    its un-normalised weight and ``term`` its prediction ``L_p(i) + M_k(i) - M_p(i)``.
    """
    n_pairs = tile.key.shape[0]
    h, w = tile.thr_lsr.shape
    halo, lo, hi = tile.halo, consts.lo, consts.hi
    span = hi - lo + 1
    factor = xp.asarray(consts.distance_factor)
    for p in range(n_pairs):
        for dy in range(lo, hi + 1):
            rows = slice(halo + dy, halo + dy + h)
            for dx in range(lo, hi + 1):
                cols = slice(halo + dx, halo + dx + w)
                similar = xp.abs(tile.key[p, rows, cols] - tile.centre_key[p]) < consts.slices[p]
                msr = tile.msr[p, :, rows, cols]
                far_lsr = tile.lsr[p, rows, cols] > tile.thr_lsr
                far_msr = xp.abs(msr) > tile.thr_msr
                dropped = (far_lsr | far_msr) if consts.and_filter else (far_lsr & far_msr)
                valid = similar & ~xp.isnan(msr) & ~dropped
                lsr1 = tile.lsr[p, rows, cols].astype(np.float64) + 1.0
                if consts.spectral_only:
                    t_dis = xp.broadcast_to(lsr1, msr.shape)
                else:
                    t_dis = (xp.abs(msr).astype(np.float64) + 1.0) * lsr1
                t_dis = t_dis.astype(np.float32)
                cell = (dy - lo) * span + (dx - lo)
                r_dis = xp.where(
                    t_dis < consts.unit_weight_below,
                    np.float32(1.0),
                    (1.0 / (t_dis.astype(np.float64) * factor[cell])).astype(np.float32),
                )
                term = tile.value[p, rows, cols] - msr
                yield valid, r_dis, term


def predict_sums(tile: TileArrays, consts: KernelConstants, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted prediction and candidate count of every interior pixel and date.

    Parameters
    ----------
    tile
        Prepared halo-extended tile (see :class:`stfcube.kernels.starfm._prepare.TileArrays`).
    consts
        Scalar set-up of the run (see :class:`stfcube.kernels.starfm._prepare.KernelConstants`).
    xp
        Array namespace of the tile's arrays (``numpy`` or ``cupy``).

    Returns
    -------
    fsr : array (dates, h, w) float32
        Normalised weighted sum, accumulated in float32 in candidate order; 0 where no candidate.
    count : array (dates, h, w) int32
        Number of valid candidates.
    """
    shape = tile.thr_msr.shape
    total = xp.zeros(shape, dtype=np.float32)
    count = xp.zeros(shape, dtype=np.int32)
    for valid, r_dis, _ in _offset_candidates(tile, consts, xp):
        total = xp.where(valid, total + r_dis, total)
        count += valid
    fsr = xp.zeros(shape, dtype=np.float32)
    safe_total = xp.where(count > 0, total, np.float32(1.0))
    for valid, r_dis, term in _offset_candidates(tile, consts, xp):
        weight = r_dis / safe_total
        fsr = xp.where(valid, fsr + weight * term, fsr)
    return fsr, count
