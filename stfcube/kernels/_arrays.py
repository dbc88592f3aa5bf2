"""Input checks, padding and window sums shared by the kernels (NumPy or CuPy via ``xp``).

Every kernel takes stacks of images ``(n, y, x)`` and optional validity masks, and pads whole
images by a halo before it computes them as one tile; these helpers do that once, with the same
error messages for every kernel. :func:`box_sum` is the square-window sum that Fit-FC's
regression and ESTARFM's mean coarse change both compute, in one summation order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from stfcube.kernels._backend import array_module


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


def real_array(
    xp: ModuleType, array: Any, name: str, axes: tuple[str, ...], first: int | None = None
) -> Any:
    """``array`` as a float64 array of ``xp``, checked for its number of axes and its dtype.

    Parameters
    ----------
    xp
        Array module (``numpy`` or ``cupy``).
    array
        The input, with one axis per entry of ``axes``.
    name
        Argument name used in the error messages.
    axes
        Names of the axes in the error messages, e.g. ``("band", "y", "x")``.
    first
        Required length of the first axis (``None``: any).

    Returns
    -------
    array
        ``xp.asarray(array, dtype=float64)``.

    Raises
    ------
    ValueError
        Another number of axes or first-axis length, or a non-numeric or bool dtype.
    """
    array = xp.asarray(array)
    if array.ndim != len(axes) or (first is not None and array.shape[0] != first):
        raise ValueError(f"{name} must be a ({', '.join(axes)}) array, got shape {array.shape}")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must hold real numbers, not {array.dtype}")
    return xp.asarray(array, dtype=xp.float64)


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


def box_sum(values: Any, radius: int) -> Any:
    """Sums over the ``(2 radius + 1)^2`` windows of the last two axes, truncated at the border.

    Parameters
    ----------
    values
        NumPy or CuPy array ``(..., y, x)``, any real dtype (the sums keep it; pass float64 for
        exact counts of large windows). NaN spreads to every window that holds it.
    radius
        Window half-width in pixels of ``values`` (``>= 0``; 0 returns a copy).

    Returns
    -------
    array
        Same shape, dtype and module as ``values``: element ``(..., i, j)`` is the sum of
        ``values[..., i - radius : i + radius + 1, j - radius : j + radius + 1]`` over the part
        inside the array (outside pixels count as 0).

    Notes
    -----
    Summed slice by slice (offsets ``-radius .. radius``, rows then columns), so a pixel's sum
    does not depend on where the array starts: a tile gives the whole image's numbers bit for
    bit.
    """
    xp = array_module(values)
    out = values
    for axis in (-2, -1):
        n = out.shape[axis]
        width = [(0, 0)] * out.ndim
        width[axis] = (radius, radius)
        padded = xp.pad(out, width)
        moved = xp.moveaxis(padded, axis, 0)
        total = xp.zeros_like(moved[:n])
        for shift in range(2 * radius + 1):
            total = total + moved[shift : shift + n]
        out = xp.moveaxis(total, 0, axis)
    return out
