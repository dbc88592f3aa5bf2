"""STARFM per-pixel sums on the CPU: a numba kernel, parallel over output rows.

Per output pixel the work is split in phases, all over the pixel's candidate list:

1. **Search** (``pairs x W x W`` cells): per window row, one vector comparison
   (:func:`stfcube.kernels._simd.within_mask64`) marks the cells whose similarity key is within the
   slice of the centre's as the bits of a 64-bit mask, and the set bits are appended to a per-thread
   candidate list (``tzcnt``; the first four without a data-dependent branch, as most rows hold
   few candidates). Unusable cells carry NaN keys, so the single comparison also does the
   fill/range/mask tests of the reference program.
2. **Gather**, once for all dates: each candidate's date-independent inputs (plane index,
   ``|M_p - L_p|``, fine value, distance factor) are copied into contiguous per-thread arrays.
3. **Weighting**, per prediction date: the candidate's ``M_p - M_k`` is gathered (a scalar loop:
   LLVM emits no vector gathers for most x86 CPUs), then validity, weight and term of every
   candidate are computed in one loop without data-dependent branches (dropped candidates get
   weight 0, as in the program), which LLVM vectorises: the float64 division of the weight runs
   4-8 candidates at a time.
4. **Sums**: the weights' total and then the normalised prediction sum are float32 sums in
   candidate order, an inherently sequential chain per date; :func:`_ordered_sums` runs the
   chains of ``GROUP`` dates side by side, so one date's add latency overlaps the others'.

The candidate list keeps the reference order (pair, row, column) and each date's sums add in that
order, so the result is bit-identical to the reference program. Profile (one thread, 512 px, two
pairs, ~600 candidates per pixel): the search costs about as much as one date's weighting did
with a scalar weighting loop; the phases above cut the cost of each extra date about 2.5x.

Indexing note: the gather reads through views that start at the window's first pixel with
unsigned offsets; numba then omits its negative-index wraparound, which otherwise costs a few
instructions per read and blocks vectorisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit, prange

from stfcube.kernels._simd import MASK_BITS, append_set_bits, within_mask64

if TYPE_CHECKING:
    from types import ModuleType

    from stfcube.kernels.starfm._prepare import KernelConstants, TileArrays


@njit(cache=True, nogil=True, error_model="numpy")
def _search(key, centre, threshold, base, row_stride, span, tail_mask, cell, n):
    """Append the window cells of one pair whose key is within ``threshold`` of ``centre``.

    ``key[base + r*row_stride + j]`` is window cell ``r*span + j`` (``key`` is flat and padded
    so that 64 elements can be read from any window cell). Rows are compared 64 cells at a time;
    ``tail_mask`` keeps the cells of the last chunk that lie inside the window. Returns the new
    length ``n`` of the candidate list ``cell``, which needs 3 spare entries at its end.
    """
    chunks = (span + MASK_BITS - 1) // MASK_BITS
    for r in range(span):
        row_start = base + r * row_stride
        for chunk in range(chunks):
            bits = within_mask64(key, row_start + MASK_BITS * chunk, centre, threshold)
            if chunk == chunks - 1:
                bits &= tail_mask
            first = r * span + MASK_BITS * chunk
            n = append_set_bits(bits, first, cell, n)
    return n


#: Dates whose sequential float32 sums run side by side in :func:`_ordered_sums`.
GROUP = 4


@njit(cache=True, nogil=True, error_model="numpy")
def _gather(
    lsr, value, factor, offset, cell, base, first, last, plane_index, lsr_q, value_q, factor_q
):
    """Copy the date-independent inputs of candidates ``first:last`` (one pair) to ``*_q``.

    Candidate ``q`` is the pixel ``base + offset[cell[q]]`` of the pair's flat planes (``cell``
    and ``offset`` unsigned); ``plane_index[q]`` gets that offset from the pair's first window
    pixel, ``lsr_q``/``value_q`` its ``|M_p - L_p|`` and fine value and ``factor_q`` its
    distance factor.
    """
    lsr_window = lsr[base:]
    value_window = value[base:]
    for q in range(first, last):
        c = cell[q]
        i = offset[c]
        plane_index[q] = i
        lsr_q[q] = lsr_window[i]
        value_q[q] = value_window[i]
        factor_q[q] = factor[c]


@njit(cache=True, nogil=True, error_model="numpy")
def _gather_msr(msr, base, first, last, plane_index, out):
    """``out[q] = msr[base + plane_index[q]]``, candidates ``first:last`` (one pair, one date)."""
    msr_window = msr[base:]
    for q in range(first, last):
        out[q] = msr_window[plane_index[q]]


@njit(cache=True, nogil=True, error_model="numpy")
def _weigh(
    n,
    lsr_q,
    value_q,
    factor_q,
    thr_lsr,
    thr_msr,
    and_filter,
    spectral_only,
    unit_weight_below,
    r_dis,
    term,
):
    """Weights and terms of candidates ``0:n`` for one date; returns how many are kept.

    On entry ``term[q]`` holds the candidate's ``M_p - M_k`` (NaN when dropped for the date); on
    return ``r_dis[q]`` holds its un-normalised weight and ``term[q]`` its prediction
    ``L + M_k - M_p``, both 0 when the candidate is dropped: adding 0 leaves a float32 sum
    unchanged, exactly as the program's zero weights do, so the loop needs no data-dependent
    branch (and vectorises).
    """
    count = 0
    for q in range(n):
        m = term[q]
        a_lsr = lsr_q[q]
        a_msr = abs(m)
        far_lsr = a_lsr > thr_lsr
        far_msr = a_msr > thr_msr
        dropped = (far_lsr | far_msr) if and_filter else (far_lsr & far_msr)
        keep = (m == m) & (not dropped)
        if spectral_only:
            t_dis = np.float32(np.float64(a_lsr) + 1.0)
        else:
            t_dis = np.float32((np.float64(a_msr) + 1.0) * (np.float64(a_lsr) + 1.0))
        r = np.float32(1.0 / (np.float64(t_dis) * factor_q[q]))
        r = np.float32(1.0) if t_dis < unit_weight_below else r
        r_dis[q] = r if keep else np.float32(0.0)
        term[q] = np.float32(value_q[q] - m) if keep else np.float32(0.0)
        count += keep
    return count


@njit(cache=True, nogil=True, error_model="numpy")
def _normalise(r_dis, term, total, n):
    """``term[q] = (r_dis[q] / total) * term[q]`` in float32, for candidates ``0:n``."""
    for q in range(n):
        term[q] = np.float32(np.float32(r_dis[q] / total) * term[q])


@njit(cache=True, nogil=True, error_model="numpy")
def _ordered_sums(rows, n, out):
    """``out[k]`` = float32 sum of ``rows[k, :n]`` in index order, ``GROUP`` rows side by side.

    ``rows`` has a multiple of ``GROUP`` rows; each row's sum is its own sequential chain (the
    program's order), the ``GROUP`` chains are independent, so their add latencies overlap.
    """
    for g in range(0, rows.shape[0], GROUP):
        row0, row1, row2, row3 = rows[g], rows[g + 1], rows[g + 2], rows[g + 3]
        sum0 = sum1 = sum2 = sum3 = np.float32(0.0)
        for q in range(n):
            sum0 = np.float32(sum0 + row0[q])
            sum1 = np.float32(sum1 + row1[q])
            sum2 = np.float32(sum2 + row2[q])
            sum3 = np.float32(sum3 + row3[q])
        out[g], out[g + 1], out[g + 2], out[g + 3] = sum0, sum1, sum2, sum3


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
    n_rows = -(-n_dates // GROUP) * GROUP
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
    n_max = n_pairs * span * span
    for y in prange(h):
        # The search writes up to 3 entries past the last candidate.
        cell = np.empty(n_max + 4, dtype=np.uint32)
        plane_index = np.empty(n_max, dtype=np.uint64)
        lsr_q = np.empty(n_max, dtype=np.float32)
        value_q = np.empty(n_max, dtype=np.float32)
        factor_q = np.empty(n_max, dtype=np.float64)
        # Rows past n_dates stay 0: their sums are computed and ignored.
        r_dis = np.zeros((n_rows, n_max), dtype=np.float32)
        term = np.zeros((n_rows, n_max), dtype=np.float32)
        total = np.empty(n_rows, dtype=np.float32)
        fsr = np.empty(n_rows, dtype=np.float32)
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
                _gather(
                    lsr_flat,
                    value_flat,
                    factor,
                    offset,
                    cell,
                    bases[p],
                    bounds[p],
                    n,
                    plane_index,
                    lsr_q,
                    value_q,
                    factor_q,
                )
            for k in range(n_dates):
                for p in range(n_pairs):
                    msr_base = bases[p] + (p * (n_dates - 1) + k) * plane
                    _gather_msr(msr_flat, msr_base, bounds[p], bounds[p + 1], plane_index, term[k])
                count_out[k, y, x] = _weigh(
                    n,
                    lsr_q,
                    value_q,
                    factor_q,
                    thr_lsr[y, x],
                    thr_msr[k, y, x],
                    and_filter,
                    spectral_only,
                    unit_weight_below,
                    r_dis[k],
                    term[k],
                )
            _ordered_sums(r_dis, n, total)
            for k in range(n_dates):
                _normalise(r_dis[k], term[k], total[k], n)
            _ordered_sums(term, n, fsr)
            for k in range(n_dates):
                fsr_out[k, y, x] = fsr[k] if count_out[k, y, x] > 0 else np.float32(0.0)


def predict_sums(tile: TileArrays, consts: KernelConstants, xp: ModuleType) -> tuple[Any, Any]:
    """Weighted prediction and candidate count of every interior pixel and date (NumPy in/out).

    Same contract as :func:`stfcube.kernels.starfm._ref.predict_sums`; ``xp`` must be NumPy.
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
