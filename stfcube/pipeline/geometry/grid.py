"""North-up pixel grids and how two of them relate: nesting ratio, native grid, overlap.

A :class:`Grid` is the geometry every stage shares: the ingest readers deliver scenes on one,
the cube stores its fine (and native coarse) grid as one, the engine tiles one. The functions
here are pure metadata arithmetic; no pixel is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import Transformer
from pyproj.exceptions import ProjError
from rasterio.crs import CRS

#: Tolerance, in pixels, below which two grid edges count as the same edge.
EDGE_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up pixel grid: CRS (``None`` for ungeoreferenced data), affine transform, shape.

    Attributes
    ----------
    crs
        The coordinate reference system, or ``None`` when the data carry none (pixel grid only).
    transform
        Affine transform from (col, row) of the pixel's upper-left corner to CRS coordinates.
    height, width
        Number of rows and columns.
    """

    crs: CRS | None
    transform: Affine
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) as signed transform coefficients (a, e)."""
        return (self.transform.a, self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Outer edges (left, bottom, right, top) in CRS units."""
        t = self.transform
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return (min(xs), min(ys), max(xs), max(ys))

    def same_crs(self, other: Grid) -> bool:
        """True when both grids have no CRS, or both have equal CRSs."""
        if self.crs is None or other.crs is None:
            return self.crs is None and other.crs is None
        return bool(self.crs == other.crs)

    def matches(self, other: Grid, tolerance: float = EDGE_TOLERANCE) -> bool:
        """True when the grids have the same CRS and shape and transforms equal within
        ``tolerance`` pixels."""
        if not self.same_crs(other) or self.shape != other.shape:
            return False
        pixel = min(abs(self.transform.a), abs(self.transform.e))
        return all(
            math.isclose(a, b, rel_tol=0.0, abs_tol=tolerance * pixel)
            for a, b in zip(self.transform[:6], other.transform[:6], strict=True)
        )

    def x_coords(self) -> np.ndarray:
        """Pixel-centre x coordinates (float64)."""
        return self.transform.c + self.transform.a * (np.arange(self.width) + 0.5)

    def y_coords(self) -> np.ndarray:
        """Pixel-centre y coordinates (float64)."""
        return self.transform.f + self.transform.e * (np.arange(self.height) + 0.5)

    def describe(self) -> str:
        """Short human-readable description for error messages."""
        crs = "no CRS" if self.crs is None else (self.crs.to_string() or "custom CRS")[:60]
        t = self.transform
        return (
            f"{self.height}x{self.width} pixels of {t.a:g} x {t.e:g} at ({t.c:g}, {t.f:g}), {crs}"
        )


@dataclass(frozen=True, slots=True)
class PixelWindow:
    """Rows ``row0:row1`` and columns ``col0:col1`` of a grid (half-open, never empty)."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.row1 - self.row0, self.col1 - self.col0)


def coarse_alignment(coarse: Grid, fine: Grid) -> tuple[int | None, str]:
    """Integer pixel ratio of a coarse grid to a fine grid, if they nest exactly.

    Parameters
    ----------
    coarse, fine
        The two grids.

    Returns
    -------
    (ratio, reason)
        ``ratio`` is the integer coarse/fine pixel ratio when both grids share a CRS, their pixel
        sizes have an integer ratio (same in x and y, same axis directions) and the fine grid's
        origin lies on a coarse pixel edge; otherwise ``None`` and ``reason`` says why.
    """
    if not coarse.same_crs(fine):
        return None, "its CRS differs from the fine grid's"
    (cx, cy), (fx, fy) = coarse.res, fine.res
    rx, ry = cx / fx, cy / fy
    ratio = round(rx)
    if ratio < 1 or not (
        math.isclose(rx, ratio, rel_tol=1e-6) and math.isclose(ry, ratio, rel_tol=1e-6)
    ):
        return None, f"pixel ratio to the fine grid is {rx:g} x {ry:g}, not one integer"
    ox = (fine.transform.c - coarse.transform.c) / cx
    oy = (fine.transform.f - coarse.transform.f) / cy
    if not (
        math.isclose(ox, round(ox), abs_tol=EDGE_TOLERANCE)
        and math.isclose(oy, round(oy), abs_tol=EDGE_TOLERANCE)
    ):
        return None, f"the fine grid's origin is {ox:g}, {oy:g} coarse pixels off its pixel edges"
    return ratio, ""


def pixel_ratio(coarse: Grid, fine: Grid) -> int | None:
    """Integer coarse/fine pixel-size ratio in x when both grids share a CRS, else ``None``.

    Unlike :func:`coarse_alignment`, the grids need not nest (their origins may differ).
    """
    if not coarse.same_crs(fine):
        return None
    ratio = abs(coarse.res[0] / fine.res[0])
    return round(ratio) if abs(ratio - round(ratio)) < EDGE_TOLERANCE else None


def same_centres(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two axes of pixel-centre coordinates are the same axis (same length, every
    centre within :data:`EDGE_TOLERANCE` pixels of ``a``'s spacing)."""
    step = abs(float(a[1] - a[0])) if a.size > 1 else 1.0
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.0, atol=EDGE_TOLERANCE * step))


def native_grid(coarse: Grid, fine: Grid, ratio: int) -> Grid:
    """The coarse grid restricted to the coarse pixels covering the fine grid's extent."""
    t = coarse.transform
    return Grid(
        crs=fine.crs,
        transform=Affine(t.a, 0.0, fine.transform.c, 0.0, t.e, fine.transform.f),
        height=-(-fine.height // ratio),
        width=-(-fine.width // ratio),
    )


def covering_window(source: Grid, target: Grid) -> PixelWindow | None:
    """The pixels of ``source`` that cover ``target``'s extent, or ``None`` when they are disjoint.

    Parameters
    ----------
    source
        The grid whose pixels are wanted (a scene's own grid).
    target
        The grid they should cover (the cube's fine grid), in the same or another CRS.

    Returns
    -------
    PixelWindow or None
        Rows and columns of ``source`` inside the bounding box of ``target``'s extent (in another
        CRS: of its outline, densified, transformed to ``source``'s CRS). When that outline
        cannot be transformed (outside a projection's domain), the whole of ``source``: overlap
        is then not ruled out.
    """
    whole = PixelWindow(0, source.height, 0, source.width)
    left, bottom, right, top = target.bounds
    if not source.same_crs(target):
        if source.crs is None or target.crs is None:
            return whole
        try:
            transformer = Transformer.from_crs(target.crs, source.crs, always_xy=True)
            left, bottom, right, top = transformer.transform_bounds(
                left, bottom, right, top, densify_pts=21
            )
        except ProjError:
            return whole
        if not all(math.isfinite(v) for v in (left, bottom, right, top)):
            return whole
    inverse = ~source.transform
    corners = [inverse * (x, y) for x in (left, right) for y in (bottom, top)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    col0 = max(0, math.floor(min(cols) + EDGE_TOLERANCE))
    col1 = min(source.width, math.ceil(max(cols) - EDGE_TOLERANCE))
    row0 = max(0, math.floor(min(rows) + EDGE_TOLERANCE))
    row1 = min(source.height, math.ceil(max(rows) - EDGE_TOLERANCE))
    if col0 >= col1 or row0 >= row1:
        return None
    return PixelWindow(row0, row1, col0, col1)
