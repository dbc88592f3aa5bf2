"""Fit-FC kernel: Q. Wang's MATLAB program (regression, residual compensation, spatial filter).

Public functions live in :mod:`kernels.fitfc.api` (semantics, units and edge rules in its
docstring), the parameters in :mod:`kernels.fitfc.params`.
"""

from kernels.fitfc.api import cell_weights, fitfc, rm_rc, spatial_filter
from kernels.fitfc.params import FitfcParams

__all__ = ["FitfcParams", "cell_weights", "fitfc", "rm_rc", "spatial_filter"]
