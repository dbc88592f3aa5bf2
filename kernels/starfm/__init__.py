"""STARFM kernel: the USDA STARFM C program v1.2.2 bit for bit (``mode="usda"``) or the paper.

Public functions live in :mod:`kernels.starfm.api`; see its docstring for the semantics and the
differences between the two modes.
"""

from kernels.starfm.api import (
    StarfmParams,
    StarfmResult,
    slice_moments,
    slice_thresholds,
    slices_from_moments,
    starfm,
    starfm_tile,
)

__all__ = [
    "StarfmParams",
    "StarfmResult",
    "slice_moments",
    "slice_thresholds",
    "slices_from_moments",
    "starfm",
    "starfm_tile",
]
