"""Tiles, halos and halo-extended reads.

A fusion kernel needs context around the pixels it predicts: the *halo*, declared by the
method (STARFM: half its search window). The engine cuts the image into tiles that coincide
with the output chunks, reads each tile plus its halo, and lets the kernel return the tile's
interior. Outside the image the halo is filled with an *invalid* value (NaN / ``False``), which
every kernel treats as "no candidate", so a tile at the image edge sees exactly what a
whole-image call sees there: tiled output equals whole-image output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, order=True)
class Tile:
    """One output tile: rows ``row0:row1`` and columns ``col0:col1`` of the fine grid.

    ``ty`` and ``tx`` are the tile's position in the tile grid (row-major).
    """

    ty: int
    tx: int
    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def key(self) -> str:
        """Stable text key, e.g. ``"3_7"``."""
        return f"{self.ty}_{self.tx}"


def tile_counts(shape: tuple[int, int], tile: int) -> tuple[int, int]:
    """Number of tiles along y and x for an image of ``shape`` cut into ``tile``-pixel tiles."""
    if tile < 1:
        raise ValueError(f"tile size must be a positive number of pixels, got {tile}")
    rows, cols = shape
    return -(-rows // tile), -(-cols // tile)


def tile_grid(
    shape: tuple[int, int], tile: int, region: tuple[int, int, int, int] | None = None
) -> list[Tile]:
    """Cut an image of ``shape`` (rows, columns) into square tiles of ``tile`` pixels.

    Tiles at the right and bottom edges are smaller when ``tile`` does not divide the image.

    Parameters
    ----------
    shape
        Image size (rows, columns).
    tile
        Tile edge in pixels; equal to the output chunk size so that each tile writes whole chunks.
    region
        Optional ``(row0, row1, col0, col1)`` limiting the grid to the tiles that intersect it;
        its bounds must fall on tile boundaries (or the image edge) so every tile stays whole.

    Returns
    -------
    list of Tile
        In row-major order.
    """
    n_ty, n_tx = tile_counts(shape, tile)
    rows, cols = shape
    ty_range, tx_range = range(n_ty), range(n_tx)
    if region is not None:
        r0, r1, c0, c1 = region
        for value, limit in ((r0, rows), (r1, rows), (c0, cols), (c1, cols)):
            if value % tile and value != limit:
                raise ValueError(
                    f"region {region} must fall on multiples of the tile size {tile} "
                    f"or on the image edge ({rows} x {cols})"
                )
        if not (0 <= r0 < r1 <= rows and 0 <= c0 < c1 <= cols):
            raise ValueError(f"region {region} is empty or outside the image ({rows} x {cols})")
        ty_range = range(r0 // tile, -(-r1 // tile))
        tx_range = range(c0 // tile, -(-c1 // tile))
    return [
        Tile(ty, tx, ty * tile, min((ty + 1) * tile, rows), tx * tile, min((tx + 1) * tile, cols))
        for ty in ty_range
        for tx in tx_range
    ]


def halo_window(tile: Tile, halo: int, shape: tuple[int, int]) -> tuple[slice, slice, tuple]:
    """Where a halo-extended tile lies in the image, and how much of it falls outside.

    Returns
    -------
    rows, cols : slice
        The part of the extended window inside the image.
    pad : tuple
        ``((top, bottom), (left, right))`` pixels of the window outside the image.
    """
    return clip_window(
        (tile.row0 - halo, tile.row1 + halo, tile.col0 - halo, tile.col1 + halo), shape
    )


def clip_window(
    window: tuple[int, int, int, int], shape: tuple[int, int]
) -> tuple[slice, slice, tuple]:
    """The part of ``window`` = ``(row0, row1, col0, col1)`` (any integers) inside an image of
    ``shape``, and the padding that restores the whole window (as :func:`halo_window`).

    A window entirely outside the image gives empty slices and padding of its full size.
    """
    rows, cols = shape
    r0, r1, c0, c1 = window
    top, left = min(max(-r0, 0), r1 - r0), min(max(-c0, 0), c1 - c0)
    inside_rows = slice(min(max(r0, 0), rows), max(min(r1, rows), min(max(r0, 0), rows)))
    inside_cols = slice(min(max(c0, 0), cols), max(min(c1, cols), min(max(c0, 0), cols)))
    bottom = (r1 - r0) - top - (inside_rows.stop - inside_rows.start)
    right = (c1 - c0) - left - (inside_cols.stop - inside_cols.start)
    return inside_rows, inside_cols, ((top, bottom), (left, right))


def pad_spatial(block: np.ndarray, pad: tuple, fill: float | bool) -> np.ndarray:
    """Pad the last two axes of ``block`` by ``pad`` (as from :func:`halo_window`) with ``fill``."""
    if not any(p for pair in pad for p in pair):
        return block
    widths = [(0, 0)] * (block.ndim - 2) + [pad[0], pad[1]]
    return np.pad(block, widths, mode="constant", constant_values=fill)
