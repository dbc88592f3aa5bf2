"""The baselines every STF comparison needs: no change, and the coarse change added to the
nearest fine image (see :mod:`stfcube.kernels.baselines.api`)."""

from stfcube.kernels.baselines.api import (
    SPREADS,
    coarse_residual,
    nearest_valid_pair,
    nochange,
    spread_bilinear,
    spread_nearest,
    time_order,
)

__all__ = [
    "SPREADS",
    "coarse_residual",
    "nearest_valid_pair",
    "nochange",
    "spread_bilinear",
    "spread_nearest",
    "time_order",
]
