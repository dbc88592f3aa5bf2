"""The shared kernel dispatch (``stfcube.kernels._backend``) and array checks
(``stfcube.kernels._arrays``)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest

from stfcube.kernels._arrays import checked_mask, checked_stack, pad_yx
from stfcube.kernels._backend import ENGINES, engine_module, resolve_backend

#: Stands in for ``cupy``: dispatch only asks whether the array module is NumPy.
FAKE_CUPY = ModuleType("cupy")


@pytest.mark.parametrize(
    ("requested", "xp", "expected"),
    [
        ("auto", np, "numba"),
        ("auto", FAKE_CUPY, "cuda"),
        ("numba", np, "numba"),
        ("cuda", np, "cuda"),
        ("cuda", FAKE_CUPY, "cuda"),
        ("reference", np, "reference"),
        ("reference", FAKE_CUPY, "reference"),
    ],
)
def test_resolve_backend(requested: str, xp: ModuleType, expected: str) -> None:
    assert resolve_backend(requested, xp) == expected


def test_resolve_backend_rejects_unknown_engines_and_numba_on_gpu() -> None:
    with pytest.raises(ValueError, match=r"engine must be one of auto, numba, reference, cuda"):
        resolve_backend("opencl", np)
    with pytest.raises(ValueError, match=r"engine 'numba' runs on NumPy arrays"):
        resolve_backend("numba", FAKE_CUPY)
    assert ENGINES[0] == "auto"


def test_engine_module_follows_the_kernel_layout() -> None:
    module = engine_module("stfcube.kernels.starfm", "reference")
    assert module.__name__ == "stfcube.kernels.starfm._ref"
    assert callable(module.predict_sums)


def test_checked_stack_and_mask() -> None:
    stack = checked_stack(np, np.zeros((2, 3, 4), np.int16), "fine", axis_name="pairs")
    assert stack.shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"fine has no pairs"):
        checked_stack(np, np.zeros((0, 3, 4)), "fine", axis_name="pairs")
    mask = checked_mask(np, np.ones((3, 4), np.uint8), (2, 3, 4), "fine_valid")
    assert mask.dtype == np.bool_ and mask.shape == (2, 3, 4) and mask.all()
    with pytest.raises(ValueError, match=r"fine_valid must be a bool"):
        checked_mask(np, np.ones((3, 4), np.float32), (2, 3, 4), "fine_valid")


def test_pad_yx_pads_the_last_two_axes_only() -> None:
    padded = pad_yx(np, np.ones((2, 3, 4), np.float32), 2, np.float32(np.nan))
    assert padded.shape == (2, 7, 8)
    assert np.isnan(padded[:, :2]).all() and np.isnan(padded[:, :, -2:]).all()
    assert (padded[:, 2:5, 2:6] == 1).all()
    assert pad_yx(np, None, 2, 0) is None
