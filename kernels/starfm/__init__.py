"""STARFM kernel: the USDA STARFM C program v1.2.2 bit for bit (``mode="usda"``) or the paper.

Public functions live in :mod:`kernels.starfm.api` (see its docstring for the semantics and the
differences between the two modes), the parameters in :mod:`kernels.starfm.params` and the
global statistics in :mod:`kernels.starfm.statistics`.
"""

from kernels.starfm.api import StarfmResult, starfm, starfm_tile
from kernels.starfm.params import StarfmParams
from kernels.starfm.statistics import slice_moments, slice_thresholds, slices_from_moments

__all__ = [
    "StarfmParams",
    "StarfmResult",
    "slice_moments",
    "slice_thresholds",
    "slices_from_moments",
    "starfm",
    "starfm_tile",
]
