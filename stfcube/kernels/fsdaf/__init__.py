"""FSDAF kernel: Zhu's IDL program (classification, unmixing, thin-plate spline, residual
distribution, similar-pixel smoothing), reference and seamless modes.

Public functions live in :mod:`stfcube.kernels.fsdaf.api` (steps, units and edge rules in its
docstring), the parameters in :mod:`stfcube.kernels.fsdaf.params`.
"""

from stfcube.kernels.fsdaf.api import fsdaf, fsdaf_program, isodata_classes
from stfcube.kernels.fsdaf.params import FsdafParams

__all__ = ["FsdafParams", "fsdaf", "fsdaf_program", "isodata_classes"]
