"""Array-type dispatch shared by the kernels: NumPy on the CPU, CuPy on a CUDA GPU.

A kernel's public function receives plain arrays, finds their array module once with
:func:`array_module` (which rejects a mix of host and device arrays) and writes its glue code
(masking, casts, padding) against that module. Only the hot per-pixel loop is backend specific.
CuPy is imported lazily, so the CPU path never pays for (or needs) it, and the probe for a
usable GPU runs at most once per process.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

import numpy as np


def is_cupy_array(array: Any) -> bool:
    """True when ``array`` is a CuPy ndarray (checked without importing CuPy)."""
    return type(array).__module__.split(".", 1)[0] == "cupy"


def array_module(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of ``arrays``; ``None`` entries are ignored.

    Parameters
    ----------
    *arrays
        NumPy arrays, CuPy arrays, scalars or ``None``.

    Returns
    -------
    module
        ``cupy`` when every array is a CuPy array, else ``numpy``.

    Raises
    ------
    TypeError
        When CuPy arrays are mixed with NumPy arrays (the caller must move them to one device).
    """
    kinds = {is_cupy_array(a) for a in arrays if a is not None and not np.isscalar(a)}
    if kinds == {True, False}:
        raise TypeError(
            "inputs mix NumPy (host) and CuPy (GPU) arrays; move them all to one device first "
            "(cupy.asarray(...) or cupy.asnumpy(...))"
        )
    if kinds == {True}:
        import cupy

        return cupy
    return np


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


@functools.cache
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device (probed once per process).

    ``STFCUBE_DISABLE_GPU`` (any non-empty value) forces ``False``.
    """
    if os.environ.get("STFCUBE_DISABLE_GPU"):
        return False
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # CUDA driver missing or broken: no usable GPU
        return False
