"""Thin-plate-spline prediction of the coarse image on the fine grid (step 5 of the program).

Two forms:

* :func:`tps_exact`: the interpolating thin-plate spline (kernel ``r^2 log r`` plus an affine
  part) through all coarse centres of a block, evaluated at every fine pixel, as IDL's
  ``MIN_CURVE_SURF(/TPS)`` (the same function as SciPy's ``RBFInterpolator(kernel=
  "thin_plate_spline")``, evaluated by a parallel numba loop). Its cost is (nodes x fine
  pixels) per block, so the reference mode's blocks keep it linear in the image.
* :func:`tps_local`: seamless mode. Each coarse pixel's fine pixels take the spline through the
  (2k+1)^2 coarse centres around it (the window shifted inside the grid at its borders). On a
  regular grid the spline is linear in the node values with weights that depend only on the
  geometry, so each (window shape, position) has one fixed ``(ratio^2, nodes)`` weight matrix,
  computed once: the spline costs (2k+1)^2 multiply-adds per fine pixel and band. Windows with
  an invalid (NaN) node solve their own spline through the valid nodes.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange


def tps_exact(values: np.ndarray, centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(band, n_points)``: the spline through ``values`` ``(band, n)`` at ``centres`` ``(n, 2)``
    evaluated at ``points`` ``(n_points, 2)`` (NaN nodes are left out; with fewer than 3 nodes or
    nodes on a line, where the spline is not unique, the least-squares solution).

    The ``(n + 3)`` system is solved once; the sum over the nodes at every point runs in a
    parallel numba loop (:func:`_evaluate`): about the CPU time of ``RBFInterpolator.__call__``
    (3.2 s vs 4.0 s for 900 nodes x 480^2 points) but on every thread, and equal to it within
    1e-9 of the data range (``tests/kernels/test_fsdaf.py``).
    """
    usable = np.isfinite(values).all(axis=0)
    nodes = centres[usable]
    shift = nodes.mean(axis=0) if len(nodes) else np.zeros(2)
    scale = max(float(np.ptp(nodes, axis=0).max()) if len(nodes) else 0.0, 1.0)
    nodes = (nodes - shift) / scale  # the interpolant does not depend on shift and scale
    n = len(nodes)
    rhs = np.zeros((n + 3, values.shape[0]))
    rhs[:n] = values[:, usable].T
    coefficients = np.linalg.lstsq(_system(nodes), rhs, rcond=None)[0]
    out = np.empty((values.shape[0], len(points)))
    _evaluate(np.ascontiguousarray((points - shift) / scale), nodes, coefficients, out)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _evaluate(points, nodes, coefficients, out):
    n = nodes.shape[0]
    for j in prange(points.shape[0]):
        py, px = points[j, 0], points[j, 1]
        for b in range(out.shape[0]):
            out[b, j] = coefficients[n, b] + coefficients[n + 1, b] * py
            out[b, j] += coefficients[n + 2, b] * px
        for i in range(n):
            r2 = (py - nodes[i, 0]) ** 2 + (px - nodes[i, 1]) ** 2
            if r2 > 0.0:
                phi = 0.5 * r2 * np.log(r2)
                for b in range(out.shape[0]):
                    out[b, j] += coefficients[i, b] * phi


def _system(nodes: np.ndarray) -> np.ndarray:
    """The interpolation system ``[[phi, P], [P^T, 0]]`` of a thin-plate spline at ``nodes``."""
    n = len(nodes)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _phi(((nodes[:, None] - nodes[None]) ** 2).sum(-1))
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1 :] = nodes
    system[n + 1 :, :n] = nodes.T
    return system


def _phi(r2: np.ndarray) -> np.ndarray:
    """Thin-plate kernel ``r^2 log r`` from squared distances (0 at 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0, 0.5 * r2 * np.log(r2), 0.0)


def spline_weights(nodes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(n_points, n_nodes)`` cardinal weights: the spline's value at ``points`` is
    ``weights @ node_values``."""
    n = len(nodes)
    system = _system(nodes)
    evaluate = np.concatenate(
        [_phi(((points[:, None] - nodes[None]) ** 2).sum(-1)), np.ones((len(points), 1)), points],
        axis=1,
    )
    return evaluate @ np.linalg.pinv(system)[:, :n]


def _fine_offsets(ratio: int) -> np.ndarray:
    """``(ratio^2, 2)`` centres of a coarse pixel's fine pixels, in coarse units from its centre."""
    step = (np.arange(ratio) + 0.5) / ratio - 0.5
    return np.stack(np.meshgrid(step, step, indexing="ij"), -1).reshape(-1, 2)


@functools.lru_cache(maxsize=256)
def window_weights(shape: tuple[int, int], at: tuple[int, int], ratio: int) -> np.ndarray:
    """Weights of :func:`spline_weights` for a window of ``shape`` coarse centres (row-major)
    and the fine pixels of its coarse pixel ``at`` (row-major within that pixel)."""
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    nodes = np.stack([rows.ravel(), cols.ravel()], -1).astype(np.float64)
    weights = spline_weights(nodes, _fine_offsets(ratio) + np.asarray(at, dtype=np.float64))
    weights.setflags(write=False)
    return weights


def tps_local(values: np.ndarray, ratio: int, radius: int) -> np.ndarray:
    """``(band, cy, cx, ratio, ratio)``: each coarse pixel's fine pixels by the spline through
    the (2 radius + 1)^2 coarse centres around it (see the module doc)."""
    bands, n_rows, n_cols = values.shape
    out = np.full((bands, n_rows, n_cols, ratio * ratio), np.nan)
    shape = (min(2 * radius + 1, n_rows), min(2 * radius + 1, n_cols))
    r0 = np.clip(np.arange(n_rows) - radius, 0, n_rows - shape[0])
    c0 = np.clip(np.arange(n_cols) - radius, 0, n_cols - shape[1])
    finite = np.isfinite(values).all(axis=0)
    for at_r in np.unique(np.arange(n_rows) - r0):
        rows = np.flatnonzero(np.arange(n_rows) - r0 == at_r)
        node_r = (r0[rows][:, None] + np.arange(shape[0]))[:, None, :, None]
        for at_c in np.unique(np.arange(n_cols) - c0):
            cols = np.flatnonzero(np.arange(n_cols) - c0 == at_c)
            node_c = (c0[cols][:, None] + np.arange(shape[1]))[None, :, None, :]
            window = values[:, node_r, node_c].reshape(bands, len(rows), len(cols), -1)
            weights = window_weights(shape, (int(at_r), int(at_c)), ratio)
            out[:, rows[:, None], cols[None, :]] = np.einsum("brcn,pn->brcp", window, weights)
    for r, c in zip(*np.nonzero(~finite), strict=True):
        _fill_around_gap(values, out, (r, c), r0, c0, shape, ratio)
    return out.reshape(bands, n_rows, n_cols, ratio, ratio)


def _fill_around_gap(
    values: np.ndarray,
    out: np.ndarray,
    gap: tuple[int, int],
    r0: np.ndarray,
    c0: np.ndarray,
    shape: tuple[int, int],
    ratio: int,
) -> None:
    """Recompute the coarse pixels whose window holds the invalid node ``gap``, through their
    valid nodes only (NaN with fewer than 3 valid nodes)."""
    rows = np.flatnonzero((r0 <= gap[0]) & (gap[0] < r0 + shape[0]))
    cols = np.flatnonzero((c0 <= gap[1]) & (gap[1] < c0 + shape[1]))
    for r in rows:
        for c in cols:
            block = values[:, r0[r] : r0[r] + shape[0], c0[c] : c0[c] + shape[1]]
            usable = np.isfinite(block).all(axis=0)
            if usable.sum() < 3:
                out[:, r, c] = np.nan
                continue
            nodes = np.argwhere(usable).astype(np.float64)
            at = np.array([r - r0[r], c - c0[c]], dtype=np.float64)
            weights = spline_weights(nodes, _fine_offsets(ratio) + at)
            out[:, r, c] = block[:, usable] @ weights.T
