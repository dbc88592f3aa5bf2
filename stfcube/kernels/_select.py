"""Partial selection of the best window candidates, shared by the numba engines of every kernel.

One plain function, compiled by each engine that keeps the ``n`` best candidates of a window
without sorting it: ``njit`` in the CPU engines, a CUDA device function in the GPU engines
(Fit-FC's spatial filter, FSDAF's final smoothing). Written in numba's Python subset, no array
allocation, so both compilers accept it; called as plain Python it gives the same result.
"""

from __future__ import annotations

from typing import Any


def keep_best(d: float, k: int, count: int, n_similar: int, best_d: Any, best_k: Any) -> int:
    """Insert candidate ``(d, k)`` into the sorted list of the best ``count`` candidates.

    Parameters
    ----------
    d
        The candidate's ranking key (a distance, in the caller's units; smaller is better).
        Must not be NaN (callers skip unusable candidates before ranking).
    k
        The candidate's index in its window (the caller's cell numbering); breaks ties in ``d``:
        the smaller index wins, which reproduces a stable sort in that numbering.
    count
        Entries of the list in use (``0 <= count <= n_similar``).
    n_similar
        Capacity of the list; a full list drops its last entry for a better candidate.
    best_d, best_k
        1-D arrays of at least ``n_similar`` entries (float and integer), sorted by ``(d, k)``
        in their first ``count`` entries; updated in place.

    Returns
    -------
    int
        The new ``count`` (``count + 1`` while the list is not full, else ``count``).
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
