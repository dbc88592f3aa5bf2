"""ESTARFM kernel: Zhu's IDL program (two pairs), in its ``reference`` blocks or ``seamless``.

Public functions live in :mod:`stfcube.kernels.estarfm.api` (semantics, units and edge rules in its
docstring), the parameters in :mod:`stfcube.kernels.estarfm.params`, the thresholds in
:mod:`stfcube.kernels.estarfm.statistics`.
"""

from stfcube.kernels.estarfm.api import EstarfmResult, estarfm, estarfm_tile, seamless_thresholds
from stfcube.kernels.estarfm.params import EstarfmParams

__all__ = ["EstarfmParams", "EstarfmResult", "estarfm", "estarfm_tile", "seamless_thresholds"]
