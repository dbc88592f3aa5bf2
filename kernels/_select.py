"""The spatial filter's partial selection, one plain function compiled by both numba engines
(``njit`` in :mod:`kernels.fitfc._numba`, a CUDA device function in :mod:`kernels.fitfc._cuda`)."""

from __future__ import annotations

from typing import Any


def keep_best(d: float, k: int, count: int, n_similar: int, best_d: Any, best_k: Any) -> int:
    """Insert candidate ``(d, k)`` into the list of the best ``count`` candidates.

    The list ``best_d``/``best_k`` is sorted by distance ``d`` then cell index ``k`` (the
    reference's tie rule) and holds at most ``n_similar`` entries; a full list drops its last.
    ``d`` must not be NaN. Returns the new ``count``.
    """
    if count == n_similar:
        last = count - 1
        if not (d < best_d[last] or (d == best_d[last] and k < best_k[last])):
            return count
        pos = last
    else:
        pos = count
        count += 1
    while pos > 0 and (d < best_d[pos - 1] or (d == best_d[pos - 1] and k < best_k[pos - 1])):
        best_d[pos] = best_d[pos - 1]
        best_k[pos] = best_k[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_k[pos] = k
    return count
