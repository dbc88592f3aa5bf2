"""ESTARFM kernel: Zhu's IDL program (two pairs), in its ``reference`` blocks or ``seamless``.

Public functions live in :mod:`kernels.estarfm.api` (semantics, units and edge rules in its
docstring), the parameters in :mod:`kernels.estarfm.params`, the thresholds in
:mod:`kernels.estarfm.statistics`.
"""

from kernels.estarfm.api import EstarfmResult, estarfm, estarfm_tile, seamless_thresholds
from kernels.estarfm.params import EstarfmParams

__all__ = ["EstarfmParams", "EstarfmResult", "estarfm", "estarfm_tile", "seamless_thresholds"]
