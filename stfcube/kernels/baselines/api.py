"""Baseline predictions: the nearest fine image (``nochange``) and the nearest fine image plus the
coarse change computed on the native coarse grid (``coarse_residual``).

Arrays in, arrays out, written against the array module of the inputs (NumPy on the CPU, CuPy
on the GPU: the same code is the GPU path). Conventions: data ``(n, band, y, x)`` float (NaN =
invalid), masks ``(n, y, x)`` bool; ``n`` = pairs or prediction dates. Every operation is per
pixel (``nochange``) or reads the 2 x 2 nearest coarse pixels (``coarse_residual``), so a tile
with a one-coarse-pixel halo on the native grid gives exactly the whole-image result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stfcube.kernels._backend import array_module


def nearest_valid_pair(valid: Any, order: Any) -> tuple[Any, Any]:
    """Per pixel, the first pair in ``order`` that is valid there.

    Parameters
    ----------
    valid
        ``(pairs, y, x)`` bool: where each pair can be used.
    order
        ``(pairs,)`` int: pair indices, most preferred first (e.g. nearest in time first).

    Returns
    -------
    index : array of int
        ``(y, x)`` the chosen pair (0 where none is valid).
    found : array of bool
        ``(y, x)`` whether any pair is valid.
    """
    xp = array_module(valid)
    ranked = valid[xp.asarray(order)]
    first = xp.argmax(ranked, axis=0)
    found = ranked.any(axis=0)
    return xp.asarray(order)[first], found


def _pick(values: Any, index: Any) -> Any:
    """``values[index[y, x], :, y, x]`` for ``values`` (n, band, y, x) -> (band, y, x)."""
    xp = array_module(values)
    picked = xp.take_along_axis(values, index[None, None], axis=0)
    return picked[0]


def time_order(pair_offsets: np.ndarray) -> np.ndarray:
    """Pair indices nearest first (``pair_offsets`` in days, pair - date); ties: earlier first."""
    offsets = np.asarray(pair_offsets)
    return np.lexsort((offsets, np.abs(offsets)))


def nochange(fine: Any, fine_valid: Any, pair_offsets: np.ndarray) -> tuple[Any, Any]:
    """The nearest valid fine pixel in time, for each prediction date.

    Parameters
    ----------
    fine, fine_valid
        The pairs' fine images ``(pairs, band, y, x)`` and masks ``(pairs, y, x)``.
    pair_offsets
        ``(dates, pairs)`` int: days from each prediction date to each pair (pair - date).

    Returns
    -------
    prediction : array
        ``(dates, band, y, x)`` float32, NaN where no pair is valid.
    offset_days : array
        ``(dates, y, x)`` int16: days from the date to the fine image used (-32768 = none).
    """
    xp = array_module(fine, fine_valid)
    predictions, offsets = [], []
    for date_offsets in np.asarray(pair_offsets):
        index, found = nearest_valid_pair(fine_valid, time_order(date_offsets))
        predictions.append(xp.where(found, _pick(fine, index), xp.nan).astype(xp.float32))
        days = xp.asarray(date_offsets, dtype=xp.int16)[index]
        offsets.append(xp.where(found, days, xp.int16(-32768)).astype(xp.int16))
    return xp.stack(predictions), xp.stack(offsets)


def spread_bilinear(
    values: Any, valid: Any, ratio: int, offset: tuple[int, int], shape: tuple[int, int]
) -> tuple[Any, Any]:
    """Interpolate native coarse pixels bilinearly at the centres of a block of fine pixels.

    Only valid coarse pixels contribute; the weights of the (up to) four nearest are
    renormalised over the valid ones, so a coarse pixel outside the image or masked never
    leaks in.

    Parameters
    ----------
    values
        ``(n, band, cy, cx)`` coarse values.
    valid
        ``(n, cy, cx)`` bool.
    ratio
        Fine pixels per coarse pixel.
    offset
        ``(row, col)`` in fine pixels of the coarse block's top-left corner, relative to the
        fine block's top-left corner.
    shape
        ``(y, x)`` of the fine block. The coarse block must cover one coarse pixel beyond the
        centres of the fine block's edge pixels.

    Returns
    -------
    spread : array
        ``(n, band, y, x)`` float32 (NaN where no neighbour is valid).
    spread_valid : array
        ``(n, y, x)`` bool.
    """
    xp = array_module(values, valid)
    rows, row_w = _neighbours(shape[0], offset[0], ratio, values.shape[2])
    cols, col_w = _neighbours(shape[1], offset[1], ratio, values.shape[3])
    total = xp.zeros((values.shape[0], values.shape[1], *shape), dtype=xp.float64)
    weight = xp.zeros((values.shape[0], *shape), dtype=xp.float64)
    data = xp.where(valid[:, None], values, 0).astype(xp.float64)
    mask = valid.astype(xp.float64)
    for r_index, r_weight in zip(rows, row_w, strict=True):
        for c_index, c_weight in zip(cols, col_w, strict=True):
            w = xp.asarray(r_weight[:, None] * c_weight[None, :])
            ri, ci = xp.asarray(r_index)[:, None], xp.asarray(c_index)[None, :]
            local = mask[:, ri, ci] * w
            weight += local
            total += data[:, :, ri, ci] * local[:, None]
    ok = weight > 0
    spread = xp.where(ok[:, None], total / xp.where(ok, weight, 1)[:, None], xp.nan)
    return spread.astype(xp.float32), ok


def spread_nearest(
    values: Any, valid: Any, ratio: int, offset: tuple[int, int], shape: tuple[int, int]
) -> tuple[Any, Any]:
    """Each fine pixel takes the coarse pixel that contains it (blocks of ``ratio`` pixels).

    Parameters and returns as for :func:`spread_bilinear`; the coarse block must cover the fine
    block.
    """
    xp = array_module(values, valid)
    rows = (np.arange(shape[0]) - offset[0]) // ratio
    cols = (np.arange(shape[1]) - offset[1]) // ratio
    if (
        rows.min() < 0
        or cols.min() < 0
        or rows.max() >= values.shape[2]
        or (cols.max() >= values.shape[3])
    ):
        raise ValueError("the coarse block does not cover the fine block")
    ri, ci = xp.asarray(rows)[:, None], xp.asarray(cols)[None, :]
    return values[:, :, ri, ci].astype(xp.float32), valid[:, ri, ci]


#: How a coarse change reaches the fine pixels: name -> (function, coarse halo it needs).
SPREADS = {"bilinear": (spread_bilinear, 1), "nearest": (spread_nearest, 0)}


def _neighbours(
    n_fine: int, offset: int, ratio: int, n_coarse: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For each fine pixel centre, the two nearest coarse pixel indices and bilinear weights."""
    position = (np.arange(n_fine) + 0.5 - offset) / ratio - 0.5
    low = np.floor(position).astype(np.int64)
    frac = position - low
    if low.min() < 0 or low.max() + 1 >= n_coarse:
        raise ValueError(
            f"the coarse block ({n_coarse} px) does not cover the fine block's pixel centres "
            f"plus one coarse pixel (offset {offset}, ratio {ratio}, {n_fine} fine px)"
        )
    return [low, low + 1], [1.0 - frac, frac]


def coarse_residual(
    fine: Any,
    fine_valid: Any,
    coarse: Any,
    coarse_valid: Any,
    coarse_pred: Any,
    coarse_pred_valid: Any,
    pair_offsets: np.ndarray,
    ratio: int,
    offset: tuple[int, int],
    spread: str = "bilinear",
) -> tuple[Any, Any]:
    """The nearest valid fine pixel plus the coarse change since its date.

    The change ``coarse_pred - coarse`` is computed per native coarse pixel (both valid), then
    spread to the fine pixels (:data:`SPREADS`: :func:`spread_bilinear` at their centres, or
    :func:`spread_nearest`); each fine pixel uses the nearest pair (in time) where both its fine
    value and the spread change are valid.

    Parameters
    ----------
    fine, fine_valid
        The pairs' fine images ``(pairs, band, y, x)`` and masks, on the fine grid.
    coarse, coarse_valid
        The pairs' coarse images ``(pairs, band, cy, cx)`` and masks, on the native grid.
    coarse_pred, coarse_pred_valid
        The prediction dates' coarse images ``(dates, band, cy, cx)`` and masks, native grid.
    pair_offsets
        ``(dates, pairs)`` days from each date to each pair (pair - date).
    ratio, offset
        As for :func:`spread_bilinear`.
    spread
        ``"bilinear"`` or ``"nearest"``.

    Returns
    -------
    prediction : array
        ``(dates, band, y, x)`` float32, NaN where no pair is usable.
    offset_days : array
        ``(dates, y, x)`` int16: days from the date to the fine image used (-32768 = none).
    """
    xp = array_module(fine, coarse, coarse_pred)
    shape = (fine.shape[2], fine.shape[3])
    spread_change = SPREADS[spread][0]
    predictions, used = [], []
    for d, date_offsets in enumerate(np.asarray(pair_offsets)):
        change = coarse_pred[d][None] - coarse
        change_valid = coarse_valid & coarse_pred_valid[d][None]
        spread_values, spread_valid = spread_change(change, change_valid, ratio, offset, shape)
        index, found = nearest_valid_pair(fine_valid & spread_valid, time_order(date_offsets))
        value = _pick(fine, index) + _pick(spread_values, index)
        predictions.append(xp.where(found, value, xp.nan).astype(xp.float32))
        days = xp.asarray(date_offsets, dtype=xp.int16)[index]
        used.append(xp.where(found, days, xp.int16(-32768)).astype(xp.int16))
    return xp.stack(predictions), xp.stack(used)
