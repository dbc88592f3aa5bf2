"""The metrics pass: every chunk reduced to mergeable partial sums, in one dask graph.

The pass is a two-stage graph per chunk (time, y block, x block) with all bands together.
Stage 1 reads the chunk once and reduces it: moments per band, SSIM over the pixels whose
window lies inside the chunk, spectral angles, its share of the decimated chips, and the
chunk's 2r-wide border strips. Stage 2 computes the SSIM of the r-wide ring along the chunk's
edges from its own and its eight neighbours' strips. Each chunk read feeds exactly one task
and is released after it, so memory stays at a few chunks (dask's overlap would keep whole
rows of neighbouring chunks alive), and the result equals the whole-image computation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from stfcube.kernels import metrics as km
from stfcube.pipeline.evaluate.inputs import AlignedInputs

#: Longest side, in pixels, of the decimated chips used for quicklooks and scatter plots (a
#: quicklook panel is ~350 px wide: 512 keeps full detail at a quarter of 1024's drawing cost).
MAX_CHIP = 512


@dataclass(frozen=True)
class _Block:
    """Position of a chunk: date index, origin row/column and shape in pixels."""

    time: int
    row0: int
    col0: int
    height: int
    width: int


def _ssim_parts(smap: np.ndarray) -> tuple[float, int]:
    defined = np.isfinite(smap)
    return float(smap[defined].sum()), int(defined.sum())


def _block_stats(
    fused: np.ndarray,
    truth: np.ndarray,
    truth_valid: np.ndarray,
    *,
    block: _Block,
    data_range: np.ndarray,
    stride: int,
) -> dict[str, Any]:
    """Stage 1: reduce one chunk (``(1, band, h, w)`` arrays) to partial sums and strips."""
    f, t = fused[0], truth[0]
    v = truth_valid[0][None] & np.isfinite(f) & np.isfinite(t)
    bands = range(f.shape[0])
    moments = np.stack([km.pair_moments(f[b], t[b], v[b]) for b in bands])
    ssim = np.array(
        [_ssim_parts(km.ssim_map(f[b], t[b], v[b], data_range=data_range[b])) for b in bands]
    )
    all_valid = v.all(axis=0)
    f64, t64 = (np.where(all_valid, a, 0.0).astype(np.float64) for a in (f, t))
    angles = km.spectral_angle((f64 * t64).sum(0), (f64 * f64).sum(0), (t64 * t64).sum(0))
    defined = all_valid & np.isfinite(angles)
    view = (
        slice(None),
        slice((-block.row0) % stride, None, stride),
        slice((-block.col0) % stride, None, stride),
    )
    d = 2 * km.ssim_radius()
    h, w = block.height, block.width
    strips = [
        (r0, c0, *(a[:, rows, cols].copy() for a in (f, t, v)))
        for r0, c0, rows, cols in (
            (0, 0, slice(0, d), slice(None)),
            (h - d, 0, slice(h - d, h), slice(None)),
            (0, 0, slice(None), slice(0, d)),
            (0, w - d, slice(None), slice(w - d, w)),
        )
    ]
    return {
        "block": block,
        "moments": moments,
        "ssim": ssim,
        "sam": np.array([angles[defined].sum(), defined.sum()]),
        "chip": tuple(a[view].copy() for a in (f, t, v)),  # copies: views would pin the chunk
        "strips": strips,
    }


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    """Stage-1 result without the border strips (what the caller keeps)."""
    return {k: v for k, v in stats.items() if k != "strips"}


def _paste(dst: np.ndarray, src: np.ndarray, top: int, left: int) -> None:
    """Copy ``src`` into ``dst`` with its corner at ``(top, left)``, clipped to ``dst``."""
    rows, cols = dst.shape[-2:]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + src.shape[-2], rows), min(left + src.shape[-1], cols)
    if r1 > r0 and c1 > c0:
        dst[..., r0:r1, c0:c1] = src[..., r0 - top : r1 - top, c0 - left : c1 - left]


def _ring_ssim(
    neighbourhood: Sequence[dict[str, Any] | None], *, block: _Block, data_range: np.ndarray
) -> np.ndarray:
    """Stage 2: SSIM sum and count per band over the r-wide ring along a chunk's edges."""
    r = km.ssim_radius()
    h, w = block.height, block.width
    n_bands = data_range.size
    shape = (n_bands, h + 2 * r, w + 2 * r)
    ext_f, ext_t = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    ext_v = np.zeros(shape, dtype=bool)  # outside the image stays invalid
    for stats in neighbourhood:
        if stats is None:
            continue
        other = stats["block"]
        for r0, c0, f, t, v in stats["strips"]:
            top = other.row0 - block.row0 + r + r0
            left = other.col0 - block.col0 + r + c0
            for dst, src in ((ext_f, f), (ext_t, t), (ext_v, v)):
                _paste(dst, src, top, left)
    # target pixels in extended coordinates: top rows, bottom rows, left and right columns
    targets = (
        (r, 2 * r, r, r + w),
        (h, h + r, r, r + w),
        (2 * r, h, r, 2 * r),
        (2 * r, h, w, w + r),
    )
    out = np.zeros((n_bands, 2))
    for b in range(n_bands):
        for ra, rb, ca, cb in targets:
            if rb <= ra or cb <= ca:
                continue
            window = (slice(ra - r, rb + r), slice(ca - r, cb + r))
            smap = km.ssim_map(
                ext_f[b][window], ext_t[b][window], ext_v[b][window], data_range=data_range[b]
            )
            out[b] += _ssim_parts(smap[r:-r, r:-r])
    return out


@dataclass(frozen=True)
class Chips:
    """Decimated views read in the metrics pass: (time, band, h, w) arrays and the stride."""

    fused: np.ndarray
    truth: np.ndarray
    valid: np.ndarray
    stride: int


def _chip_stride(ny: int, nx: int, max_chip: int) -> int:
    return max(1, math.ceil(max(ny, nx) / max_chip))


@dataclass(frozen=True)
class Partials:
    """Merged partial sums of the pass, per date (and band): moments, SSIM and SAM sums."""

    moments: np.ndarray  # (time, band, K)
    ssim_sum: np.ndarray  # (time, band)
    ssim_count: np.ndarray  # (time, band)
    sam_sum: np.ndarray  # (time,)
    sam_count: np.ndarray  # (time,)


def _block_grid(inputs: AlignedInputs) -> dict[tuple[int, int, int], _Block]:
    row0 = np.cumsum((0, *inputs.fused.chunks[2]))
    col0 = np.cumsum((0, *inputs.fused.chunks[3]))
    return {
        (ti, yi, xi): _Block(ti, int(row0[yi]), int(col0[xi]), int(hh), int(ww))
        for ti in range(inputs.fused.shape[0])
        for yi, hh in enumerate(inputs.fused.chunks[2])
        for xi, ww in enumerate(inputs.fused.chunks[3])
    }


def compute_partials(
    inputs: AlignedInputs, data_range: np.ndarray, max_chip: int = MAX_CHIP
) -> tuple[Partials, Chips]:
    """Run the single pass: per-chunk partial sums of every metric plus decimated chips."""
    return compute_partials_together([(inputs, max_chip)], data_range)[0]


def compute_partials_together(
    passes: Sequence[tuple[AlignedInputs, int]], data_range: np.ndarray
) -> list[tuple[Partials, Chips]]:
    """:func:`compute_partials` of several ``(inputs, max_chip)`` in one dask computation: the
    chunks they share (the truth, say) are read once."""
    graphs = [_pass_graph(inputs, data_range, max_chip) for inputs, max_chip in passes]
    computed = dask.compute(graphs)[0]
    return [
        _merge(inputs, summaries, rings, max_chip)
        for (inputs, max_chip), (summaries, rings) in zip(passes, computed, strict=True)
    ]


def _pass_graph(
    inputs: AlignedInputs, data_range: np.ndarray, max_chip: int
) -> tuple[list[Any], list[Any]]:
    """The delayed stage-1 summaries and stage-2 ring sums of one pass, block by block."""
    ny, nx = inputs.fused.shape[2:]
    stride = _chip_stride(ny, nx, max_chip)
    blocks = _block_grid(inputs)
    f_parts, t_parts = inputs.fused.to_delayed(), inputs.truth.to_delayed()
    v_parts = inputs.truth_valid.to_delayed()
    stage1 = {
        key: dask.delayed(_block_stats)(
            f_parts[key[0], 0, key[1], key[2]],
            t_parts[key[0], 0, key[1], key[2]],
            v_parts[key],
            block=block,
            data_range=data_range,
            stride=stride,
        )
        for key, block in blocks.items()
    }
    rings = {
        key: dask.delayed(_ring_ssim)(
            [
                stage1.get((key[0], key[1] + dy, key[2] + dx))
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ],
            block=blocks[key],
            data_range=data_range,
        )
        for key in blocks
    }
    return [dask.delayed(_summary)(s) for s in stage1.values()], list(rings.values())


def _merge(
    inputs: AlignedInputs,
    summaries: Sequence[dict[str, Any]],
    ring_parts: Sequence[np.ndarray],
    max_chip: int,
) -> tuple[Partials, Chips]:
    """Merge a pass's block summaries and rings into its partial sums and chips."""
    n_time, n_band, ny, nx = inputs.fused.shape
    stride = _chip_stride(ny, nx, max_chip)
    moments = np.zeros((n_time, n_band, km.N_MOMENTS))
    ssim = np.zeros((n_time, n_band, 2))
    sam = np.zeros((n_time, 2))
    shape = (n_time, n_band, math.ceil(ny / stride), math.ceil(nx / stride))
    chips = [np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)]
    chips.append(np.zeros(shape, dtype=bool))
    for s, ring in zip(summaries, ring_parts, strict=True):
        block = s["block"]
        ti = block.time
        moments[ti] = km.merge_moments(moments[ti], s["moments"])
        ssim[ti] += s["ssim"] + ring
        sam[ti] += s["sam"]
        top, left = -(-block.row0 // stride), -(-block.col0 // stride)
        for dst, piece in zip(chips, s["chip"], strict=True):
            _paste(dst[ti], piece, top, left)
    partials = Partials(
        moments=moments,
        ssim_sum=ssim[..., 0],
        ssim_count=ssim[..., 1],
        sam_sum=sam[:, 0],
        sam_count=sam[:, 1],
    )
    return partials, Chips(fused=chips[0], truth=chips[1], valid=chips[2], stride=stride)
