"""Backend dispatch shared by every kernel: array module, device checks, engine lookup.

A kernel lives in ``kernels/<method>/`` with the same shape for every method:

* ``api.py``: the public functions; glue code (masking, casts, padding) written against the
  array module ``xp`` of the inputs;
* ``_ref.py``, ``_numba.py``, ``_cuda.py``: the hot loop, once per engine, each exposing the same
  functions (STARFM: ``predict_sums``).

A public function dispatches in three calls, and no kernel repeats this logic::

    xp = array_module(fine, coarse, mask)              # numpy or cupy; rejects a host/GPU mix
    backend = resolve_backend(engine, xp)              # "auto" -> "numba" (host) / "cuda" (GPU)
    predict = engine_module("kernels.<method>", backend).predict_sums

CuPy and the engine modules are imported lazily: the CPU path never pays for (or needs) CuPy or
the CUDA kernels, and the probe for a usable GPU runs at most once per process.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Any, Literal

import numpy as np

#: An engine that runs a kernel's hot loop.
Backend = Literal["numba", "cuda", "reference"]
#: What a caller may request (``engine=``): a backend, or ``"auto"`` to follow the arrays.
ENGINES = ("auto", "numba", "reference", "cuda")
#: Module of each backend inside a kernel package (``kernels/<method>/<module>.py``).
ENGINE_MODULES: dict[Backend, str] = {"numba": "_numba", "cuda": "_cuda", "reference": "_ref"}


def is_cupy_array(array: Any) -> bool:
    """True when ``array`` is a CuPy ndarray (checked without importing CuPy)."""
    return type(array).__module__.split(".", 1)[0] == "cupy"


def array_module(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of ``arrays``; ``None`` entries are ignored.

    This is also the device check: every array of one call must live on the same device.

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


def resolve_backend(requested: str, xp: ModuleType) -> Backend:
    """The backend that runs a call asking for engine ``requested`` on arrays of ``xp``.

    Parameters
    ----------
    requested
        One of :data:`ENGINES`: ``"auto"`` (numba for NumPy arrays, CUDA for CuPy arrays),
        ``"numba"`` (CPU only), ``"cuda"`` or ``"reference"`` (vectorised array code, either
        device).
    xp
        Array module of the call's arrays, from :func:`array_module`.

    Returns
    -------
    Backend
        ``"numba"``, ``"cuda"`` or ``"reference"``.

    Raises
    ------
    ValueError
        An unknown engine name, or ``"numba"`` asked for GPU arrays.
    """
    on_gpu = xp is not np
    if requested == "auto":
        return "cuda" if on_gpu else "numba"
    if requested == "numba" and on_gpu:
        raise ValueError("engine 'numba' runs on NumPy arrays; CuPy inputs use 'cuda' or 'auto'")
    for backend in ENGINE_MODULES:
        if requested == backend:
            return backend
    raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {requested!r}")


def engine_module(package: str, backend: Backend) -> ModuleType:
    """The engine module of ``backend`` in kernel package ``package``, imported on first use.

    Parameters
    ----------
    package
        The kernel's package, e.g. ``"stfcube.kernels.starfm"``.
    backend
        From :func:`resolve_backend`; the module is ``ENGINE_MODULES[backend]`` in ``package``.

    Returns
    -------
    module
        E.g. ``stfcube.kernels.starfm._numba``; the caller takes its engine functions from it.
    """
    return importlib.import_module(f"{package}.{ENGINE_MODULES[backend]}")


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
