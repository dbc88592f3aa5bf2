"""The numba intrinsics of ``stfcube.kernels._simd`` against plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from stfcube.kernels._simd import MASK_BITS, trailing_zeros, within_mask64


@njit(cache=False)
def _mask(values, start, centre, threshold):
    return within_mask64(values, start, centre, threshold)


@njit(cache=False)
def _tzcnt(bits):
    return trailing_zeros(bits)


def _expected(values: np.ndarray, start: int, centre: float, threshold: float) -> int:
    window = values[start : start + MASK_BITS]
    with np.errstate(invalid="ignore"):
        hits = np.abs(window - values.dtype.type(centre)) < values.dtype.type(threshold)
    return sum(1 << int(j) for j in np.flatnonzero(hits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_within_mask64_matches_numpy(dtype: type) -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(-40, 40, size=200).astype(dtype)
    values[rng.random(200) < 0.1] = np.nan
    values[5] = np.inf
    values[6] = -0.0
    for start in (0, 1, 17, 136):
        for centre, threshold in (
            (0.0, 19.0),
            (-0.0, 0.5),
            (3.0, 0.0),
            (7.5, 12.25),
            (1.0, np.inf),
        ):
            got = _mask(values, start, dtype(centre), dtype(threshold))
            assert int(got) == _expected(values, start, centre, threshold), (start, centre)


def test_within_mask64_boundaries_and_nan_centre() -> None:
    values = np.arange(-32, 32, dtype=np.float32)
    # |v - 0| < 3: v in -2..2, i.e. elements 30..34; the boundary value 3 is excluded.
    assert int(_mask(values, 0, np.float32(0), np.float32(3))) == 0b11111 << 30
    assert int(_mask(values, 0, np.float32(np.nan), np.float32(3))) == 0
    assert int(_mask(values, 0, np.float32(0), np.float32(np.nan))) == 0


def test_trailing_zeros() -> None:
    assert int(_tzcnt(np.uint64(0))) == 64
    for bit in (0, 1, 31, 32, 63):
        value = np.uint64(1) << np.uint64(bit)
        assert int(_tzcnt(value)) == bit
        assert int(_tzcnt(value | (value << np.uint64(1)))) == bit


def test_within_mask64_rejects_integer_arrays() -> None:
    from numba.core.errors import TypingError

    with pytest.raises(TypingError):
        _mask(np.zeros(64, dtype=np.int16), 0, np.int16(0), np.int16(1))
