"""Fit-FC kernel: Q. Wang's MATLAB program (regression, residual compensation, spatial filter).

Public functions live in :mod:`stfcube.kernels.fitfc.api` (semantics, units and edge rules in its
docstring), the parameters in :mod:`stfcube.kernels.fitfc.params`.
"""

from stfcube.kernels.fitfc.api import cell_weights, fitfc, rm_rc, spatial_filter
from stfcube.kernels.fitfc.params import FitfcParams

__all__ = ["FitfcParams", "cell_weights", "fitfc", "rm_rc", "spatial_filter"]
