"""FSDAF's reference mode: Zhu's IDL program, block by block (``FSDAF_preclassification.pro``).

The image is cut into blocks of ``block_size * scale_factor`` fine pixels, each extended by one
coarse pixel (``scale_factor`` fine pixels) on every side, clipped to the image. The change step
runs on each extended block; its central part is mosaicked into one change image. The final
step runs on each extended block again, reading the mosaicked change (so the overlap ring comes
from the neighbouring blocks), and keeps the central part. Inputs are on the fine grid, coarse
images included, as the program reads them; its coarse pixels are ``scale_factor`` squares from
each extended block's corner (fine pixels beyond the last whole coarse pixel join coarse pixel 0,
the program's indexing quirk).

A *region* call (:func:`run_program`) computes only the blocks an output window needs from
arrays that cover part of the image, which is how the engine tiles this mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stfcube.kernels.fsdaf._change import (
    apply_clip,
    cell_means,
    class_fractions,
    clip_bounds,
    distribute_residual,
    heterogeneity,
    unmix,
)
from stfcube.kernels.fsdaf._tps import tps_exact
from stfcube.kernels.fsdaf.params import FsdafParams

#: The similar-pixel smoothing of one engine: ``(fine, change, threshold, radius, n_similar,
#: window) -> sums`` (see :mod:`stfcube.kernels.fsdaf._ref`).
Smoother = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Block:
    """One block: its central part and its extended part, ``(row0, row1, col0, col1)`` in
    image pixels (ends exclusive)."""

    core: tuple[int, int, int, int]
    ext: tuple[int, int, int, int]


def _spans(n: int, patch: int, extend: int) -> list[tuple[int, int, int, int]]:
    out = []
    for start in range(0, n, patch):
        end = min(n, start + patch)
        out.append((start, end, max(0, start - extend), min(n, end + extend)))
    return out


def block_layout(shape: tuple[int, int], params: FsdafParams) -> list[Block]:
    """The program's blocks of an image of ``shape``, in its order (columns fastest)."""
    rows = _spans(shape[0], params.patch, params.scale_factor)
    cols = _spans(shape[1], params.patch, params.scale_factor)
    return [
        Block((r0, r1, c0, c1), (er0, er1, ec0, ec1))
        for r0, r1, er0, er1 in rows
        for c0, c1, ec0, ec1 in cols
    ]


def block_classes(fine: np.ndarray, classes: np.ndarray, params: FsdafParams) -> np.ndarray:
    """Classes present in a block (non-background) recoded to ``1 .. k`` in order; 0 else."""
    background = fine[params.background_band] == params.background
    out = np.zeros(classes.shape, dtype=np.int64)
    label = 0
    for c in range(1, int(classes.max(initial=0)) + 1):
        inside = (classes == c) & ~background
        if inside.any():
            label += 1
            out[inside] = label
    return out


def program_cells(shape: tuple[int, int], ratio: int) -> tuple[np.ndarray, int]:
    """Cell label of every fine pixel of a block (row-major coarse index; pixels beyond the last
    whole coarse pixel join cell 0, as in the program) and the number of cells.

    Raises
    ------
    ValueError
        When the block is smaller than one coarse pixel.
    """
    n_rows, n_cols = shape[0] // ratio, shape[1] // ratio
    if n_rows == 0 or n_cols == 0:
        raise ValueError(f"a {shape[0]} x {shape[1]} block holds no whole {ratio}-px coarse pixel")
    rows, cols = np.arange(shape[0]) // ratio, np.arange(shape[1]) // ratio
    cell = rows[:, None] * n_cols + cols[None, :]
    outside = (rows[:, None] >= n_rows) | (cols[None, :] >= n_cols)
    return np.where(outside, 0, cell), n_rows * n_cols


@dataclass(frozen=True)
class ChangeStep:
    """The change step of one extended block: ``change = F2_2 - F1`` (clipped F1), the
    distributed residual ``r`` and the block's recoded classes (``k`` of them)."""

    change: np.ndarray
    residual: np.ndarray
    classes: np.ndarray
    n_classes: int


def change_step(
    fine: np.ndarray,
    coarse: np.ndarray,
    coarse_pred: np.ndarray,
    classes: np.ndarray,
    params: FsdafParams,
) -> ChangeStep:
    """Steps 1 to 6 of the program on one extended block (fine-grid arrays ``(band, y, x)``)."""
    recoded = block_classes(fine, classes, params)
    k = int(recoded.max(initial=0))
    if k == 0:  # a block of background only: no change
        zero = np.zeros(fine.shape)
        return ChangeStep(zero, zero, recoded, 0)
    dn_range = (params.dn_min, params.dn_max)
    bounds = np.stack(
        [clip_bounds(band.ravel(), params.clip_percentiles, dn_range) for band in fine]
    )
    f1 = apply_clip(fine, bounds, dn_range)
    cell, n_cells = program_cells(fine.shape[1:], params.scale_factor)
    everywhere = np.ones(cell.shape, dtype=bool)
    rows, cols = np.indices(cell.shape, dtype=np.float64)
    centres = cell_means(np.stack([rows, cols]), cell, n_cells, everywhere).T
    fine_c1 = cell_means(f1, cell, n_cells, everywhere)
    coarse_c1 = cell_means(coarse, cell, n_cells, everywhere)
    coarse_c2 = cell_means(coarse_pred, cell, n_cells, everywhere)
    fractions = class_fractions(recoded, np.arange(1, k + 1), cell, n_cells, everywhere)
    c_rate = unmix(fractions, coarse_c2 - coarse_c1, params.num_pure, params.nonchange_percentiles)
    class_change = np.concatenate([np.zeros((fine.shape[0], 1)), c_rate], axis=1)
    l2_1 = f1 + class_change[:, recoded]
    residual = (coarse_c2 - coarse_c1) - (cell_means(l2_1, cell, n_cells, everywhere) - fine_c1)
    low = np.maximum(np.minimum(coarse_pred.min(axis=(1, 2)), l2_1.min(axis=(1, 2))), params.dn_min)
    high = np.minimum(
        np.maximum(coarse_pred.max(axis=(1, 2)), l2_1.max(axis=(1, 2))), params.dn_max
    )
    points = np.stack([rows.ravel(), cols.ravel()], axis=1)
    l2_tps = tps_exact(coarse_c2, centres, points).reshape(fine.shape)
    spread = distribute_residual(
        l2_tps - l2_1,
        heterogeneity(recoded, params.window_radius),
        residual,
        cell,
        everywhere,
        params.weight_cap,
    )
    f2 = np.clip(l2_1 + spread, low[:, None, None], high[:, None, None])
    return ChangeStep(f2 - f1, spread, recoded, k)


def finish(
    prediction: np.ndarray,
    fine: np.ndarray,
    change: np.ndarray,
    coarse_change: np.ndarray,
    params: FsdafParams,
) -> np.ndarray:
    """The program's fallbacks: without a candidate ``F1 + change``; a prediction outside
    ``[dn_min, dn_max]`` becomes ``F1 + C2 - C1`` clipped to that range; optional truncation."""
    out = np.where(np.isnan(prediction), fine + change, prediction)
    outside = (out < params.dn_min) | (out > params.dn_max)
    out = np.where(outside, np.clip(fine + coarse_change, params.dn_min, params.dn_max), out)
    return np.trunc(out) if params.truncate else out


def _cut(box: tuple[int, int, int, int], origin: tuple[int, int]) -> tuple[slice, slice]:
    return slice(box[0] - origin[0], box[1] - origin[0]), slice(
        box[2] - origin[1], box[3] - origin[1]
    )


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


@dataclass(frozen=True)
class ProgramResult:
    """Prediction, distributed residual ``(band, y, x)`` and classes ``(y, x)`` of a window
    (the class map's values; 0 where the program has no class: background, unclassified)."""

    prediction: np.ndarray
    residual: np.ndarray
    classes: np.ndarray


def run_program(
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    params: FsdafParams,
    smooth: Smoother,
    *,
    origin: tuple[int, int],
    image_shape: tuple[int, int],
    window: tuple[int, int, int, int],
    last_block_classes: int,
) -> ProgramResult:
    """The program's output on ``window`` (image pixels) from ``arrays`` = (F1, C1, C2 on the
    fine grid ``(band, y, x)``, raw class map ``(y, x)``) whose top-left pixel is ``origin``.

    ``last_block_classes``: the class count of the image's last block, which the program's
    similarity threshold divides by (the value left over from its change-step loop).

    Raises
    ------
    ValueError
        When the arrays do not hold every extended block the window needs.
    """
    fine, coarse, coarse_pred, classes = arrays
    span = (origin[0], origin[0] + fine.shape[1], origin[1], origin[1] + fine.shape[2])
    blocks = block_layout(image_shape, params)
    targets = [b for b in blocks if _overlaps(b.core, window)]
    sources = [b for b in blocks if any(_overlaps(b.core, t.ext) for t in targets)]
    for block in sources:
        if not (span[0] <= block.ext[0] and block.ext[1] <= span[1]):
            raise ValueError(f"the arrays {span} do not hold the extended block {block.ext}")
        if not (span[2] <= block.ext[2] and block.ext[3] <= span[3]):
            raise ValueError(f"the arrays {span} do not hold the extended block {block.ext}")
    change = np.full(fine.shape, np.nan)
    residual = np.full(fine.shape, np.nan)
    recoded = np.zeros(fine.shape[1:], dtype=np.int64)
    for block in sources:
        ext = _cut(block.ext, origin)
        step = change_step(
            fine[:, *ext], coarse[:, *ext], coarse_pred[:, *ext], classes[ext], params
        )
        inner = _cut(block.core, (block.ext[0], block.ext[2]))
        core = _cut(block.core, origin)
        change[:, *core] = step.change[:, *inner]
        residual[:, *core] = step.residual[:, *inner]
        recoded[core] = np.where(step.classes[inner] > 0, classes[core], 0)  # the map's class
    rows, cols = window[1] - window[0], window[3] - window[2]
    out = ProgramResult(
        np.empty((fine.shape[0], rows, cols)),
        np.empty((fine.shape[0], rows, cols)),
        np.empty((rows, cols), dtype=np.int64),
    )
    for block in targets:
        ext = _cut(block.ext, origin)
        f1 = fine[:, *ext]
        threshold = f1.reshape(f1.shape[0], -1).std(axis=1, ddof=1) * 2.0 / last_block_classes
        box = (
            max(block.core[0], window[0]),
            min(block.core[1], window[1]),
            max(block.core[2], window[2]),
            min(block.core[3], window[3]),
        )
        local = (
            box[0] - block.ext[0],
            box[1] - block.ext[0],
            box[2] - block.ext[2],
            box[3] - block.ext[2],
        )
        sums = smooth(f1, change[:, *ext], threshold, params.window_radius, params.n_similar, local)
        here = _cut(box, origin)
        predicted = finish(
            fine[:, *here] + sums,
            fine[:, *here],
            change[:, *here],
            coarse_pred[:, *here] - coarse[:, *here],
            params,
        )
        background = fine[params.background_band, *here] == params.background
        into = _cut(box, (window[0], window[2]))
        out.prediction[:, *into] = np.where(background, fine[:, *here], predicted)
        out.residual[:, *into] = residual[:, *here]
        out.classes[into] = recoded[here]
    return out
