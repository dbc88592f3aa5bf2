"""Array steps the builtin methods share: chunk-by-chunk sums for global statistics, and the cuts
of a halo-extended tile to the part inside the image.

Tiles are cut before a kernel runs so that the kernel's edge rules apply at the image border,
never at a tile border. Arrays keep their module (NumPy, CuPy or torch): the functions slice
and mask, they never copy to another device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from stfcube.kernels._backend import array_module
from stfcube.pipeline.engine.methods.base import TileInputs


def chunk_sums(
    fine: da.Array,
    valid: da.Array,
    statistics: Callable[[np.ndarray, np.ndarray], np.ndarray],
    width: int,
) -> da.Array:
    """Per-pair, per-band statistics of lazy images, computed chunk by chunk and summed.

    Parameters
    ----------
    fine
        ``(pairs, band, y, x)`` lazy images; rechunked to whole pairs and bands.
    valid
        ``(pairs, y, x)`` lazy bool validity, rechunked to ``fine``'s spatial chunks.
    statistics
        ``statistics(fine_chunk, valid_chunk)`` -> ``(pairs, band, width)`` float64 sums of one
        spatial chunk (e.g. count, sum and sum of squares), additive over chunks.
    width
        Length of the last axis of ``statistics``' result.

    Returns
    -------
    dask.array.Array
        ``(pairs, band, width)`` float64: the chunks' results summed, in chunk order.
    """
    fine = fine.rechunk({0: -1, 1: -1})
    valid = valid.rechunk((-1, fine.chunks[2], fine.chunks[3]))
    shape = (fine.shape[0], fine.shape[1], width)
    partial = [
        da.from_delayed(dask.delayed(statistics)(f, v), shape=shape, dtype=np.float64)
        for f, v in zip(fine.to_delayed().ravel(), valid.to_delayed().ravel(), strict=True)
    ]
    return da.stack(partial).sum(axis=0)


def inside_image(inputs: TileInputs) -> tuple[slice, slice]:
    """Rows and columns of the halo-extended tile that lie inside the image.

    Raises
    ------
    ValueError
        When the tile comes without its image's shape (``inputs.image_shape``).
    """
    if inputs.image_shape is None:
        raise ValueError("the tile's image shape is needed beside the tile (image_shape)")
    row0, col0 = inputs.tile.row0 - inputs.halo, inputs.tile.col0 - inputs.halo
    rows, cols = inputs.fine.shape[-2:]
    return (
        slice(max(0, -row0), min(rows, inputs.image_shape[0] - row0)),
        slice(max(0, -col0), min(cols, inputs.image_shape[1] - col0)),
    )


def tile_window(inputs: TileInputs, rows: slice, cols: slice) -> tuple[int, int, int, int]:
    """The tile's own pixels ``(row0, row1, col0, col1)`` in the block cut to ``rows, cols``
    (from :func:`inside_image`)."""
    t = inputs.tile
    top, left = inputs.halo - rows.start, inputs.halo - cols.start
    return (top, top + t.row1 - t.row0, left, left + t.col1 - t.col0)


def first_fine(inputs: TileInputs, rows: slice, cols: slice) -> Any:
    """F1 ``(band, y, x)``, NaN where invalid, cut to ``rows, cols``."""
    xp = array_module(inputs.fine)
    return xp.where(inputs.fine_valid[0, None], inputs.fine[0], xp.nan)[:, rows, cols]


def masked_coarse(
    coarse: Any, coarse_valid: Any, preds: Any, preds_valid: Any, block: tuple[slice, ...]
) -> tuple[Any, list[Any]]:
    """C1 (the first pair's coarse image) and each date's C2, NaN where invalid, cut to ``block``.

    ``coarse`` ``(pairs, band, y, x)`` and ``preds`` ``(dates, band, y, x)`` with their
    ``(n, y, x)`` validity; ``block`` indexes ``(band, y, x)``.
    """
    xp = array_module(coarse)
    first = xp.where(coarse_valid[0, None], coarse[0], xp.nan)[block]
    dates = [
        xp.where(valid[None], pred, xp.nan)[block]
        for pred, valid in zip(preds, preds_valid, strict=True)
    ]
    return first, dates


def native_coarse(
    inputs: TileInputs, rows: slice, cols: slice
) -> tuple[Any, list[Any], int, tuple[int, int]]:
    """C1 and each date's C2 on the cube's native coarse grid, cut to the image.

    Parameters
    ----------
    inputs
        A tile with its native coarse blocks (``native``, ``native_inside``, ``ratio``).
    rows, cols
        The fine block's part inside the image (:func:`inside_image`).

    Returns
    -------
    coarse
        ``(band, cy, cx)`` C1, NaN where invalid.
    preds
        One ``(band, cy, cx)`` C2 per prediction date, NaN where invalid.
    ratio
        Fine pixels per coarse pixel.
    offset
        Fine pixels from the corner of the cut fine block to the corner of the coarse blocks
        (``<= 0`` when the coarse block starts before it).

    Raises
    ------
    ValueError
        When the tile has no native coarse grid.
    """
    if inputs.ratio is None or inputs.native_inside is None:
        raise ValueError("the method needs the cube's native coarse grid beside the tile")
    n0, n1, m0, m1 = inputs.native_inside
    native, ratio = inputs.native, inputs.ratio
    coarse, preds = masked_coarse(
        native["coarse"],
        native["coarse_valid"],
        native["coarse_pred"],
        native["coarse_pred_valid"],
        (slice(None), slice(n0, n1), slice(m0, m1)),
    )
    offset = (
        inputs.native_offset[0] + n0 * ratio - rows.start,
        inputs.native_offset[1] + m0 * ratio - cols.start,
    )
    return coarse, preds, ratio, offset
