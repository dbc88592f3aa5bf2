"""ESTARFM's scalar parameters (:class:`EstarfmParams`), validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: ``reference``: Zhu's IDL program (500-pixel blocks, per-block statistics); ``seamless``: one
#: set of whole-image statistics and windows that cross block (tile) borders.
MODES = ("reference", "seamless")
#: More similar pixels than this are needed for the full prediction (the program's ``gt 5``).
MIN_CANDIDATES = 5
#: The conversion coefficient is fitted only when the candidates' mean coarse change between
#: the pairs reaches this share of ``data_range[1]`` (the program's ``DN_max*0.02``).
MIN_COARSE_CHANGE = 0.02
#: Significance level of the regression's F-test (``1 - F_PDF(F, 1, 2n - 2) <= 0.05``).
SIGNIFICANCE = 0.05
#: A fitted conversion coefficient is kept when ``0 < V <= MAX_SLOPE`` (else V = 1).
MAX_SLOPE = 5.0
#: Added to the combined distance (the program's ``0.0000001``).
DISTANCE_EPS = 1e-7
#: Added to the window-mean coarse changes of the temporal weights (the program's ``0.01^5``).
CHANGE_EPS = 1e-10


@dataclass(frozen=True)
class EstarfmParams:
    """ESTARFM parameters (Zhu et al. 2010, IDL revision of 2018); defaults are the program's.

    Parameters
    ----------
    half_window
        w: half-width of the search window in fine pixels (window (2w+1)^2); also the distance
        scale of the spatial weights ``1 + d / w``.
    num_class
        Estimated number of land-cover classes: a window pixel is similar to the centre when, in
        every band of both fine images, ``|F(x) - F(c)| < 2 * sd / num_class`` (strict).
    data_range
        ``(DN_min, DN_max)``: a prediction ``<= DN_min`` or ``>= DN_max`` falls back to the
        weighted mean of the base fine images; ``0.02 * DN_max`` is the smallest mean coarse
        change between the pairs for which the conversion coefficient is fitted.
    background
        Value marking background/missing pixels in band 0 of any of the five images (besides
        NaN and validity masks). In ``reference`` mode it still enters the block statistics,
        as in the program.
    block_size
        ``reference`` mode: side of the program's non-overlapping blocks (``patch_long``), in
        fine pixels; windows and statistics stop at block borders.
    mode
        ``"seamless"`` (the engine's default: whole-image statistics of valid pixels, windows
        cross tile borders, tiled == whole image) or ``"reference"`` (the program's blocks).
    """

    half_window: int = 25
    num_class: float = 4.0
    data_range: tuple[float, float] = (0.0, 10000.0)
    background: float = -9999.0
    block_size: int = 500
    mode: str = "seamless"

    def __post_init__(self) -> None:
        for name in ("half_window", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.num_class, int | float) or not self.num_class > 0:
            raise ValueError(f"num_class must be > 0, got {self.num_class!r}")
        low_high = tuple(self.data_range) if isinstance(self.data_range, tuple | list) else ()
        if len(low_high) != 2 or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in low_high
        ):
            raise ValueError(f"data_range must be two finite numbers, got {self.data_range!r}")
        if not low_high[0] < low_high[1]:
            raise ValueError(f"data_range must have DN_min < DN_max, got {self.data_range!r}")
        if not isinstance(self.background, int | float) or math.isnan(self.background):
            raise ValueError(f"background must be a number, got {self.background!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def span(self) -> int:
        """Window width 2w + 1, in fine pixels."""
        return 2 * self.half_window + 1

    @property
    def min_change(self) -> float:
        """Smallest candidates' mean coarse change that gets a fitted conversion coefficient."""
        return MIN_COARSE_CHANGE * float(self.data_range[1])
