"""STARFM's scalar parameters (:class:`StarfmParams`): validation and derived quantities.

The window, offsets, halo, distance scale and uncertainties of a run follow from the parameters
and the mode; see :mod:`stfcube.kernels.starfm.api` for how ``usda`` and ``paper`` differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The two STARFM variants: the USDA C program v1.2.2 bit for bit, or Gao et al. (2006).
MODES = ("usda", "paper")


def _is_real_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_sequence(value: Any) -> bool:
    return isinstance(value, tuple | list | np.ndarray)


@dataclass(frozen=True)
class StarfmParams:
    """Scalar STARFM parameters (names follow the USDA program's parameter file).

    Parameters
    ----------
    resolution
        Fine pixel size, in the units of ``max_search_distance`` (metres).
    max_search_distance
        Half the search window, same units; W = ``int(2*max_search_distance/resolution)``.
    num_slice_pure_test
        Number of slices; the similarity threshold is 2·sd/``num_slice_pure_test``.
    fine_uncertainty, coarse_uncertainty
        Sensor uncertainties, in data units.
    data_range
        (low, high): usable values lie in [low, high]; predictions must lie in (low, high).
    fill_value
        Value marking missing data in the inputs (never usable).
    mode
        ``"usda"`` (the C program v1.2.2, bit for bit) or ``"paper"`` (Gao et al. 2006).
    use_spatial
        Search the window (``True``) or use only the centre pixel of each pair (``False``).
    """

    resolution: float = 30.0
    max_search_distance: float = 750.0
    num_slice_pure_test: int = 40
    fine_uncertainty: float = 50.0
    coarse_uncertainty: float = 50.0
    data_range: tuple[float, float] = (-100, 10000)
    fill_value: float = -9999
    mode: str = "usda"
    use_spatial: bool = True

    def __post_init__(self) -> None:
        for name in ("resolution", "max_search_distance"):
            value = getattr(self, name)
            if not _is_real_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.window < 1:
            raise ValueError(
                f"max_search_distance={self.max_search_distance} with resolution="
                f"{self.resolution} gives an empty window (2*distance/resolution < 1)"
            )
        count = self.num_slice_pure_test
        if not isinstance(count, int | np.integer) or isinstance(count, bool) or count < 1:
            raise ValueError(f"num_slice_pure_test must be a positive integer, got {count!r}")
        for name in ("fine_uncertainty", "coarse_uncertainty"):
            value = getattr(self, name)
            if not _is_real_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        data_range = tuple(self.data_range) if _is_sequence(self.data_range) else None
        if (
            data_range is None
            or len(data_range) != 2
            or not all(_is_real_number(v) and math.isfinite(v) for v in data_range)
            or not data_range[0] < data_range[1]
        ):
            raise ValueError(
                f"data_range must be two finite numbers (low, high) with low < high, "
                f"got {self.data_range!r}"
            )
        object.__setattr__(self, "data_range", data_range)
        if not _is_real_number(self.fill_value) or not math.isfinite(self.fill_value):
            raise ValueError(f"fill_value must be a finite number, got {self.fill_value!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not isinstance(self.use_spatial, bool | np.bool_):
            raise ValueError(f"use_spatial must be True or False, got {self.use_spatial!r}")

    @property
    def window(self) -> int:
        """Search window width W in pixels (even in ``usda`` mode for the usual 750 m / 30 m)."""
        width = int(2.0 * self.max_search_distance / self.resolution)
        if self.mode == "paper":
            return 2 * (width // 2) + 1
        return width

    @property
    def offsets(self) -> tuple[int, int]:
        """Inclusive (lowest, highest) row/column offsets searched; (0, 0) without use_spatial."""
        if not self.use_spatial:
            return 0, 0
        width = self.window
        return -(width // 2), width - width // 2 - 1

    @property
    def halo(self) -> int:
        """Context pixels needed on every side of a tile so that tiled == whole image."""
        lo, hi = self.offsets
        return max(-lo, hi)

    @property
    def distance_scale(self) -> float:
        """A = max_search_distance / resolution, in pixels (distance weight 1 + d/A)."""
        return self.max_search_distance / self.resolution

    @property
    def uncertainties(self) -> tuple[float, float, float]:
        """(spectral ``|M-L|``, temporal ``|M_p-M_k|``, combined) uncertainties.

        ``usda`` truncates each to an integer as the program does (50/50 -> 70, 70, 98).
        """
        fine, coarse = self.fine_uncertainty, self.coarse_uncertainty
        if self.mode == "usda":
            fine, coarse = int(fine), int(coarse)
            spectral: float = int(math.sqrt(coarse * coarse + fine * fine))
            temporal: float = int(math.sqrt(2 * coarse * coarse))
            return spectral, temporal, int(math.sqrt(spectral**2 + temporal**2))
        spectral = math.hypot(coarse, fine)
        temporal = math.sqrt(2.0) * coarse
        return spectral, temporal, math.hypot(spectral, temporal)
