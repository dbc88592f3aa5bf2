"""Input checks and padding shared by the kernels' public functions (NumPy or CuPy via ``xp``).

Every kernel takes stacks of images ``(n, y, x)`` and optional validity masks, and pads whole
images by a halo before it computes them as one tile; these helpers do that once, with the same
error messages for every kernel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np


@contextlib.contextmanager
def quiet_invalid() -> Iterator[None]:
    """Silence NumPy's "invalid value" warnings (comparisons with NaN) inside the block."""
    with np.errstate(invalid="ignore"):
        yield


def checked_stack(xp: ModuleType, array: Any, name: str, *, axis_name: str) -> Any:
    """``array`` as a 3-D real array of ``xp``, checked for shape, dtype and infinities.

    Parameters
    ----------
    xp
        Array module (``numpy`` or ``cupy``).
    array
        The input, ``(axis_name, y, x)``.
    name
        Argument name used in the error messages.
    axis_name
        Name of the first axis in the error messages (``"pairs"``, ``"dates"``).

    Returns
    -------
    array
        ``xp.asarray(array)``.

    Raises
    ------
    ValueError
        Not 3-D, an empty first axis, a non-real dtype, or infinite values.
    """
    array = xp.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3-D array ({axis_name}, y, x), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no {axis_name} (shape {array.shape}); at least one is needed")
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold real numbers (integer or float), not {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and bool(xp.isinf(array).any()):
        raise ValueError(
            f"{name} contains infinite values; mark missing data with NaN or a validity mask"
        )
    return array


def checked_mask(xp: ModuleType, mask: Any, shape: tuple[int, ...], name: str) -> Any:
    """``mask`` as a bool array broadcast to ``shape`` (accepts (n, y, x) or (y, x)).

    Integer masks are accepted as ``mask != 0``; any other dtype or shape raises ``ValueError``.
    """
    mask = xp.asarray(mask)
    if mask.dtype != np.bool_:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"{name} must be a bool (or 0/1 integer) mask, got dtype {mask.dtype}")
        mask = mask != 0
    if mask.shape not in (shape, shape[1:]):
        raise ValueError(f"{name} must have shape {shape} or {shape[1:]}, got {mask.shape}")
    return xp.broadcast_to(mask, shape)


def pad_yx(xp: ModuleType, array: Any, halo: int, fill: Any) -> Any:
    """``array`` padded by ``halo`` pixels of ``fill`` on both sides of its last two axes.

    ``None`` (an absent optional input) and ``halo == 0`` return ``array`` unchanged.
    """
    if array is None or halo == 0:
        return array
    width = [(0, 0)] * (array.ndim - 2) + [(halo, halo), (halo, halo)]
    return xp.pad(array, width, mode="constant", constant_values=fill)
