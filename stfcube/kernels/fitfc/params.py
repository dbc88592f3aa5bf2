"""Fit-FC's scalar parameters (:class:`FitfcParams`), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

#: ``reference``: Q. Wang's MATLAB program (no nodata handling); ``seamless``: the same at the
#: image border, and invalid pixels are left out instead of spreading NaN.
MODES = ("reference", "seamless")
#: Which bands of the fine base image rank the neighbours of the spatial filter.
SIMILARITIES = ("red_nir", "all_bands")
#: Which coarse images the engine fits the regression on (the cube's native grid, or the fine grid).
COARSE_GRIDS = ("native", "fine")


@dataclass(frozen=True)
class FitfcParams:
    """Fit-FC parameters (Wang & Atkinson 2018); the defaults are the reference program's.

    Parameters
    ----------
    regression_radius
        W: half-width of the local regression window, in coarse pixels (window (2W+1)^2).
    filter_radius
        w0: half-width of the spatial-filter window, in fine pixels (window (2 w0 + 1)^2).
    n_similar
        N_S: neighbours of the spatial filter (the centre pixel is a candidate).
    distance_scale
        A, in fine pixels: neighbour weights are 1 / (1 + d / A) for a neighbour ``d`` pixels
        from the centre; 0 means (2 w0 + 1) / 2, the reference's 20.5 for w0 = 20.
    red_band, nir_band
        0-based band indices ranking the neighbours (red and near infrared of the fine base
        image) when ``similarity="red_nir"``.
    similarity
        ``"red_nir"`` (the reference) or ``"all_bands"`` (sum of squared differences over all
        bands, as the R and C++ implementations do).
    mode
        ``"reference"`` or ``"seamless"`` (see :data:`MODES`).
    coarse_grid
        Which coarse images the engine fits the regression on: ``"native"`` (the cube's native
        coarse grid, W in coarse pixels, the reference) or ``"fine"`` (the coarse images
        resampled on the fine grid, ratio 1, W in fine pixels: for cubes without a native grid).
        The kernel functions take the grid they are given.
    """

    regression_radius: int = 1
    filter_radius: int = 20
    n_similar: int = 20
    distance_scale: float = 0.0
    red_band: int = 1
    nir_band: int = 2
    similarity: str = "red_nir"
    mode: str = "reference"
    coarse_grid: str = "native"

    def __post_init__(self) -> None:
        for name in ("regression_radius", "filter_radius", "n_similar", "red_band", "nir_band"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.regression_radius < 0:
            raise ValueError(f"regression_radius must be >= 0, got {self.regression_radius}")
        if self.filter_radius < 0:
            raise ValueError(f"filter_radius must be >= 0, got {self.filter_radius}")
        if not 1 <= self.n_similar <= self.window_cells:
            raise ValueError(
                f"n_similar must lie in [1, {self.window_cells}] (the (2*filter_radius+1)^2 "
                f"window), got {self.n_similar}"
            )
        if not isinstance(self.distance_scale, int | float) or not self.distance_scale >= 0:
            raise ValueError(
                f"distance_scale must be >= 0 (0: automatic), got {self.distance_scale!r}"
            )
        if self.red_band < 0 or self.nir_band < 0:
            raise ValueError("red_band and nir_band are 0-based band indices (>= 0)")
        if self.similarity not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {', '.join(SIMILARITIES)}, got {self.similarity!r}"
            )
        if self.coarse_grid not in COARSE_GRIDS:
            raise ValueError(
                f"coarse_grid must be one of {', '.join(COARSE_GRIDS)}, got {self.coarse_grid!r}"
            )
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def window_cells(self) -> int:
        """Cells of the spatial-filter window, (2 w0 + 1)^2."""
        return (2 * self.filter_radius + 1) ** 2

    @property
    def scale(self) -> float:
        """A in fine pixels: :attr:`distance_scale`, or (2 w0 + 1) / 2 when that is 0."""
        return float(self.distance_scale) or (2 * self.filter_radius + 1) / 2
