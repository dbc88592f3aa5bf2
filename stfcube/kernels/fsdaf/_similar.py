"""The final step's per-candidate arithmetic, one plain function compiled by both numba engines
(``njit`` in :mod:`stfcube.kernels.fsdaf._numba`, a CUDA device function in
:mod:`stfcube.kernels.fsdaf._cuda`)
and called as is by :mod:`stfcube.kernels.fsdaf._ref`.

The program computes in IDL single precision; the ranking key is reproduced in float32 (the
same roundings, so the same ties) and the weights from the same float32 quantities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Added to the similarity before ranking and to distances in truncated windows (the program's).
KEY_EPS = np.float32(1e-5)
#: Added to the centre value before dividing by it (the program's).
DIVISOR_EPS = np.float32(1e-8)


def candidate(fine: Any, threshold: Any, y: int, x: int, qy: int, qx: int) -> float:
    """Similarity ``S`` (float32) of candidate ``(qy, qx)`` to target ``(y, x)``; -1 when it is
    no candidate: a band differs by ``>= threshold`` or a value is NaN.

    ``S = sum_b |F1(q, b) - F1(p, b)| / (F1(p, b) + 1e-8)`` in band order, float32.
    """
    total = np.float32(0.0)
    for b in range(fine.shape[0]):
        diff = np.float32(abs(np.float32(fine[b, qy, qx]) - np.float32(fine[b, y, x])))
        if not diff < np.float32(threshold[b]):  # also False for NaN
            return -1.0
        total = np.float32(total + diff / np.float32(np.float32(fine[b, y, x]) + DIVISOR_EPS))
    return float(total)


def spatial_distance(dy: int, dx: int, truncated: bool) -> float:
    """Distance (float32) to the target; the program adds 1e-5 in a window truncated by the
    block (array) border."""
    d = np.float32(math.sqrt(dy * dy + dx * dx))
    if truncated:
        d = np.float32(d + KEY_EPS)
    return float(d)


def rank_key(similarity: float, distance: float, radius: int) -> float:
    """``(S + 1e-5) * (10 + d / w)`` in float32: the program's ranking key (ascending)."""
    scaled = np.float32(np.float32(distance) / np.float32(radius))
    return float(
        np.float32(np.float32(similarity) + KEY_EPS) * np.float32(np.float32(10.0) + scaled)
    )


def weight(similarity: float, distance: float, radius: int) -> float:
    """A kept candidate's weight before normalisation, ``1 / ((1 + d / w) (S + 1))``."""
    return 1.0 / ((1.0 + distance / radius) * (similarity + 1.0))
