"""Hash-based noise: every random value is a function of (seed, salt, integer coordinates).

Nothing here keeps state, so any block of a large image is drawn exactly as in the whole image.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from stfcube.pipeline.simulate.constants import FloatArray

#: Sample points per axis of the fixed grid that global thresholds are estimated on.
_SAMPLE_POINTS_PER_AXIS = 256


class Salt(IntEnum):
    """Independent hash streams: one per random quantity of the scene."""

    JITTER_Y = 1
    JITTER_X = 2
    ZONE = 3
    CLASS = 4
    BRIGHTNESS = 5
    HARVEST = 6
    LAKE_LARGE = 7
    LAKE_SMALL = 8
    TEXTURE_MID = 9
    TEXTURE_FINE = 10
    FLOOD_EDGE = 11
    COARSE_NOISE_U1 = 12
    COARSE_NOISE_U2 = 13
    PHENOLOGY = 32
    CLOUD = 64


_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser, element-wise (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, salt: int, *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Uniform numbers in [0, 1) that depend only on the seed, a salt and integer keys.

    Parameters
    ----------
    seed : int
        Site seed (>= 0).
    salt : int
        Stream id, so that different quantities drawn at the same keys are independent.
    *keys : array_like of int
        Integer coordinates (broadcast together), e.g. a row and a column index.

    Returns
    -------
    numpy.ndarray
        float64 array of the broadcast shape of the keys (shape ``(1,)`` without keys).
    """
    start = (seed * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) & _MASK64
    h = _mix64(np.array([start], dtype=np.uint64))
    for key in keys:
        k = np.asarray(key, dtype=np.int64).view(np.uint64)
        h = _mix64(h ^ (k + _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def hash_normal(seed: int, salts: tuple[int, int], *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Standard normal numbers from two hash streams (Box–Muller), deterministic per key."""
    u1 = hash_uniform(seed, salts[0], *keys)
    u2 = hash_uniform(seed, salts[1], *keys)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def _lattice(coords: npt.NDArray[np.float64], spacing: float) -> tuple[np.ndarray, FloatArray]:
    """Lattice cell index and smoothstep weight of each coordinate."""
    scaled = coords / spacing
    cell = np.floor(scaled).astype(np.int64)
    frac = (scaled - cell).astype(np.float32)
    return cell, frac * frac * (np.float32(3.0) - np.float32(2.0) * frac)


def value_noise(
    rows: npt.NDArray[np.float64],
    cols: npt.NDArray[np.float64],
    *,
    seed: int,
    salt: int,
    spacing: float,
) -> FloatArray:
    """Smooth value noise in [0, 1) on the grid ``rows × cols``.

    Hashed lattice values every ``spacing`` pixels, interpolated with smoothstep weights. The
    value at a point depends only on its coordinates, so any block of a large image is computed
    exactly as in the whole image.

    Parameters
    ----------
    rows, cols : numpy.ndarray
        1-D pixel coordinates (global, e.g. pixel centres ``index + 0.5``).
    seed, salt : int
        Hash seed and stream.
    spacing : float
        Lattice spacing in pixels (feature size).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(len(rows), len(cols))``.
    """
    cell_y, weight_y = _lattice(np.asarray(rows, dtype=np.float64), spacing)
    cell_x, weight_x = _lattice(np.asarray(cols, dtype=np.float64), spacing)
    y0, x0 = int(cell_y.min()), int(cell_x.min())
    lattice_rows = np.arange(y0, int(cell_y.max()) + 2)
    lattice_cols = np.arange(x0, int(cell_x.max()) + 2)
    lattice = hash_uniform(seed, salt, lattice_rows[:, None], lattice_cols[None, :])
    lattice = lattice.astype(np.float32)
    jx = cell_x - x0
    along_x = lattice[:, jx] * (1 - weight_x) + lattice[:, jx + 1] * weight_x
    jy = cell_y - y0
    return along_x[jy] * (1 - weight_y)[:, None] + along_x[jy + 1] * weight_y[:, None]


def pixel_centres(start: int, stop: int) -> npt.NDArray[np.float64]:
    """Global coordinates ``index + 0.5`` of the pixels ``start:stop`` along one axis.

    Parameters
    ----------
    start, stop : int
        Pixel index range.

    Returns
    -------
    numpy.ndarray
        float64 array of length ``stop - start``.
    """
    return np.arange(start, stop, dtype=np.float64) + 0.5


def global_quantile(
    field_fn: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], FloatArray],
    size: int,
    q: float,
) -> float:
    """Quantile of a noise field over the whole image, from a fixed regular sample of it.

    Thresholds computed this way (cloud cover, lake area) are global statistics: every block
    uses the same value.

    Parameters
    ----------
    field_fn : callable
        ``field_fn(rows, cols)`` evaluates the field on the grid ``rows × cols`` of pixel
        coordinates.
    size : int
        Image size in pixels (square).
    q : float
        Quantile in [0, 1].

    Returns
    -------
    float
        The quantile of the field over a regular sample of at most
        ``_SAMPLE_POINTS_PER_AXIS²`` (plus one row and column) pixel centres.
    """
    step = max(1, size // _SAMPLE_POINTS_PER_AXIS)
    sample = pixel_centres(0, size)[::step]
    return float(np.quantile(field_fn(sample, sample), q))
