"""STARFM per-pixel sums on the CPU: a numba kernel, parallel over output rows.

Per output pixel the work is split in two phases:

1. **Search** (the hot loop, ``pairs x W x W`` cells): per window row, one vector comparison
   (:func:`kernels._simd.within_mask64`) marks the cells whose similarity key is within the slice
   of the centre's as the bits of a 64-bit mask, and the set bits are appended to a per-thread
   candidate list (``tzcnt``; the first four without a data-dependent branch, as most rows hold
   few candidates). Unusable cells carry NaN keys, so the single comparison also does the
   fill/range/mask tests of the reference program.
2. **Weighting**, per prediction date, over the (few) candidates only: validity filter and weight
   without data-dependent branches (dropped candidates get weight 0, as in the program), summed
   as they are computed, then the weighted prediction sum. The candidate list keeps the
   reference order (pair, row, column), so the result is bit-identical to the reference program.

Indexing note: the weighting reads through views that start at the window's first pixel with
unsigned offsets; numba then omits its negative-index wraparound, which otherwise costs a few
instructions per read and blocks vectorisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit, prange

from kernels._simd import MASK_BITS, trailing_zeros, within_mask64

if TYPE_CHECKING:
    from types import ModuleType

    from kernels.starfm._prepare import KernelConstants, TileArrays


@njit(cache=True, nogil=True, error_model="numpy")
def _search(key, centre, threshold, base, row_stride, span, tail_mask, cell, n):
    """Append the window cells of one pair whose key is within ``threshold`` of ``centre``.

    ``key[base + r*row_stride + j]`` is window cell ``r*span + j`` (``key`` is flat and padded
    so that 64 elements can be read from any window cell). Rows are compared 64 cells at a time;
    ``tail_mask`` keeps the cells of the last chunk that lie inside the window. Returns the new
    length ``n`` of the candidate list ``cell``, which needs 3 spare entries at its end.
    """
    one = np.uint64(1)
    chunks = (span + MASK_BITS - 1) // MASK_BITS
    for r in range(span):
        row_start = base + r * row_stride
        for chunk in range(chunks):
            bits = within_mask64(key, row_start + MASK_BITS * chunk, centre, threshold)
            if chunk == chunks - 1:
                bits &= tail_mask
            first = r * span + MASK_BITS * chunk
            for _ in range(4):
                cell[n] = first + trailing_zeros(bits)
                n += bits != 0
                bits &= bits - one
            while bits:
                cell[n] = first + trailing_zeros(bits)
                n += 1
                bits &= bits - one
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def _weigh(
    lsr,
    msr,
    value,
    base,
    msr_shift,
    first,
    last,
    cell,
    offset,
    thr_lsr,
    thr_msr,
    factor,
    and_filter,
    spectral_only,
    unit_weight_below,
    r_dis,
    term,
    total,
):
    """Weights and terms of candidates ``first:last`` (one pair, one date).

    Candidate ``q`` is the pixel ``base + offset[cell[q]]`` of the pair's planes (``cell`` and
    ``offset`` unsigned). ``r_dis[q]`` gets its un-normalised weight and ``term[q]`` its
    prediction ``L + M_k - M_p``, both 0 when the candidate is dropped: adding 0 leaves a float32
    sum unchanged, exactly as the program's zero weights do, so the loop needs no data-dependent
    branch. The weights are added to the running float32 ``total`` in candidate order (the
    program's order). Returns the number of candidates kept and the new total.
    """
    lsr_window = lsr[base:]
    msr_window = msr[base + msr_shift :]
    value_window = value[base:]
    count = 0
    for q in range(first, last):
        c = cell[q]
        i = offset[c]
        m = msr_window[i]
        a_lsr = lsr_window[i]
        a_msr = abs(m)
        far_lsr = a_lsr > thr_lsr
        far_msr = a_msr > thr_msr
        dropped = (far_lsr | far_msr) if and_filter else (far_lsr & far_msr)
        keep = (m == m) & (not dropped)
        if spectral_only:
            t_dis = np.float32(np.float64(a_lsr) + 1.0)
        else:
            t_dis = np.float32((np.float64(a_msr) + 1.0) * (np.float64(a_lsr) + 1.0))
        r = np.float32(1.0 / (np.float64(t_dis) * factor[c]))
        r = np.float32(1.0) if t_dis < unit_weight_below else r
        r = r if keep else np.float32(0.0)
        r_dis[q] = r
        total = np.float32(total + r)
        term[q] = np.float32(value_window[i] - m) if keep else np.float32(0.0)
        count += keep
    return count, total


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _predict_rows(
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
    hi,
    halo,
    and_filter,
    spectral_only,
    unit_weight_below,
    fsr_out,
    count_out,
):
    n_pairs, height, width = value.shape
    n_dates = msr.shape[1]
    plane = height * width
    span = hi - lo + 1
    h, w = thr_lsr.shape
    value_flat = value.reshape(-1)
    lsr_flat = lsr.reshape(-1)
    msr_flat = msr.reshape(-1)
    tail = span % MASK_BITS
    tail_mask = ~np.uint64(0) if tail == 0 else (np.uint64(1) << np.uint64(tail)) - np.uint64(1)
    offset = np.empty(span * span, dtype=np.uint64)
    for r in range(span):
        for j in range(span):
            offset[r * span + j] = r * width + j
    for y in prange(h):
        # The search writes up to 3 entries past the last candidate.
        cell = np.empty(n_pairs * span * span + 4, dtype=np.uint32)
        r_dis = np.empty(n_pairs * span * span, dtype=np.float32)
        term = np.empty(n_pairs * span * span, dtype=np.float32)
        bounds = np.zeros(n_pairs + 1, dtype=np.int64)
        bases = np.empty(n_pairs, dtype=np.int64)
        for x in range(w):
            n = 0
            for p in range(n_pairs):
                bases[p] = p * plane + (y + halo + lo) * width + (x + halo + lo)
                centre = centre_key[p, y, x]
                if centre == centre:
                    n = _search(key, centre, slices[p], bases[p], width, span, tail_mask, cell, n)
                bounds[p + 1] = n
            for k in range(n_dates):
                count = 0
                total = np.float32(0.0)
                for p in range(n_pairs):
                    kept, total = _weigh(
                        lsr_flat,
                        msr_flat,
                        value_flat,
                        bases[p],
                        (p * (n_dates - 1) + k) * plane,
                        bounds[p],
                        bounds[p + 1],
                        cell,
                        offset,
                        thr_lsr[y, x],
                        thr_msr[k, y, x],
                        factor,
                        and_filter,
                        spectral_only,
                        unit_weight_below,
                        r_dis,
                        term,
                        total,
                    )
                    count += kept
                fsr = np.float32(0.0)
                if count > 0:
                    for q in range(n):
                        weight = np.float32(r_dis[q] / total)
                        fsr = np.float32(fsr + np.float32(weight * term[q]))
                fsr_out[k, y, x] = fsr
                count_out[k, y, x] = count


def predict_sums(tile: TileArrays, consts: KernelConstants, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted prediction and candidate count of every interior pixel and date (NumPy in/out).

    Same contract as :func:`kernels.starfm._ref.predict_sums`; ``xp`` must be NumPy.
    """
    n_dates, h, w = tile.thr_msr.shape
    fsr = np.empty((n_dates, h, w), dtype=np.float32)
    count = np.empty((n_dates, h, w), dtype=np.int32)
    _predict_rows(
        # Flat, with MASK_BITS spare elements: the search reads 64 keys from any window cell.
        np.concatenate([tile.key.reshape(-1), np.full(MASK_BITS, np.nan, np.float32)]),
        np.ascontiguousarray(tile.value),
        np.ascontiguousarray(tile.lsr),
        np.ascontiguousarray(tile.msr),
        np.ascontiguousarray(tile.centre_key),
        np.ascontiguousarray(tile.thr_lsr),
        np.ascontiguousarray(tile.thr_msr),
        np.asarray(consts.slices, dtype=np.float32),
        np.asarray(consts.distance_factor, dtype=np.float64),
        consts.lo,
        consts.hi,
        tile.halo,
        consts.and_filter,
        consts.spectral_only,
        np.float32(consts.unit_weight_below),
        fsr,
        count,
    )
    return fsr, count
