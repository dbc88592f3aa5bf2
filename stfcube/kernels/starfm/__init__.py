"""STARFM kernel: the USDA STARFM C program v1.2.2 bit for bit (``mode="usda"``) or the paper.

Public functions live in :mod:`stfcube.kernels.starfm.api` (see its docstring for the semantics and
the differences between the two modes), the parameters in :mod:`stfcube.kernels.starfm.params` and
the global statistics in :mod:`stfcube.kernels.starfm.statistics`.
"""

from stfcube.kernels.starfm.api import StarfmResult, starfm, starfm_tile
from stfcube.kernels.starfm.params import StarfmParams
from stfcube.kernels.starfm.statistics import slice_moments, slice_thresholds, slices_from_moments

__all__ = [
    "StarfmParams",
    "StarfmResult",
    "slice_moments",
    "slice_thresholds",
    "slices_from_moments",
    "starfm",
    "starfm_tile",
]
