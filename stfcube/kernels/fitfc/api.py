"""Fit-FC (Wang & Atkinson 2018) as Q. Wang's MATLAB program computes it, one pair, one date.

Three stages, per band unless said otherwise:

1. **RM**, on the coarse grid: local linear regression ``C2 ~ a * C1 + b`` in (2W+1)^2 windows
   truncated at the image border (statistics divide by the pixels counted), ``a = cov / (var +
   eps)`` with MATLAB's ``eps`` (:func:`stfcube.kernels.fitfc._regression.regression`);
2. **RC**: the residual ``C2 - (a * C1 + b)`` is upsampled bicubically as MATLAB's
   ``imresize(..., 'bicubic')`` does (Keys a = -0.5, taps folded symmetrically at the border,
   normalised weights), ``a`` and ``b`` by nearest neighbour (each fine pixel takes its coarse
   pixel); ``Z2 = a * F1 + b + residual`` (:func:`rm_rc`);
3. **SF**: each fine pixel takes the ``n_similar`` pixels of its (2 w0 + 1)^2 window (centre
   included) closest to it in the red and NIR bands of F1 (sum of squared differences), the
   image padded by edge replication, so border pixels can be chosen more than once; ties go to
   the lowest column-major window index (smallest column offset, then row offset). Weights
   ``1 / (1 + d / A)`` with ``d`` the neighbour's distance from the centre in fine pixels,
   normalised; the output is the weighted mean of ``Z2`` (:func:`spatial_filter`).

Units: data in any unit (the output is in the inputs'); W in coarse pixels, w0 and A in fine
pixels. Edge rules: array borders are image borders. Nodata is NaN: ``mode="reference"`` spreads
it as the program's arithmetic does (a NaN in a regression window makes that window's ``a``/``b``
NaN; NaN distances are skipped, as MATLAB's ``min`` does); ``mode="seamless"`` leaves invalid
coarse pixels out of the regression windows (their residual counts as 0) and neighbours whose
``Z2`` is NaN out of the filter.
Without nodata both modes give the same numbers.

Engines (``engine=``, see :mod:`stfcube.kernels._backend`): ``numba`` (CPU), ``cuda`` (numba CUDA
kernel on CuPy arrays), ``reference`` (NumPy, slow); RM + RC are array code run on the inputs'
device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stfcube.kernels._arrays import real_array
from stfcube.kernels._backend import array_module, engine_module, resolve_backend
from stfcube.kernels.fitfc._regression import regression, upsample_bicubic, upsample_nearest
from stfcube.kernels.fitfc.params import FitfcParams

#: Axes of the images the public functions take.
_BAND_YX = ("band", "y", "x")


def rm_rc(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    ratio: int,
    params: FitfcParams | None = None,
    *,
    offset: tuple[int, int] = (0, 0),
) -> Any:
    """The RM + RC image ``Z2`` (Fit-FC before its spatial filter).

    Parameters
    ----------
    fine
        F1, the pair's fine image ``(band, y, x)``.
    coarse, coarse_pred
        C1 and C2, the coarse images of the pair date and of the prediction date ``(band, cy,
        cx)`` on the coarse grid, whose borders are the image borders.
    ratio
        Fine pixels per coarse pixel.
    params
        Only ``regression_radius`` and ``mode`` are used (default :class:`FitfcParams`).
    offset
        ``(row, col)`` in fine pixels of the coarse grid's top-left corner relative to the fine
        image's (<= 0; ``(0, 0)`` when the grids share their corner).

    Returns
    -------
    array
        ``(band, y, x)`` float64.
    """
    params = params or FitfcParams()
    xp = array_module(fine, coarse, coarse_pred)
    f1 = real_array(xp, fine, "fine", _BAND_YX)
    c1 = real_array(xp, coarse, "coarse", _BAND_YX)
    c2 = real_array(xp, coarse_pred, "coarse_pred", _BAND_YX)
    if c1.shape != c2.shape or c1.shape[0] != f1.shape[0]:
        raise ValueError(
            f"coarse {c1.shape} and coarse_pred {c2.shape} must match each other and the "
            f"bands of fine {f1.shape}"
        )
    if not isinstance(ratio, int | np.integer) or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}")
    a, b, residual = regression(
        c1, c2, params.regression_radius, skip_invalid=params.mode == "seamless"
    )
    shape = (f1.shape[1], f1.shape[2])
    slope = upsample_nearest(a, int(ratio), offset, shape)
    intercept = upsample_nearest(b, int(ratio), offset, shape)
    return slope * f1 + intercept + upsample_bicubic(residual, int(ratio), offset, shape)


def cell_weights(radius: int, scale: float) -> np.ndarray:
    """``1 / (1 + d / scale)`` for every cell of the (2 radius + 1)^2 window, column-major."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    # cell index dc * span + dr: the column offset varies slowest
    distance = np.hypot(offsets[:, None], offsets[None, :]).ravel()
    return 1.0 / (1.0 + distance / scale)


def similarity_bands(params: FitfcParams, n_bands: int) -> list[int]:
    """The fine bands that rank the neighbours (red and NIR, or all)."""
    if params.similarity == "all_bands":
        return list(range(n_bands))
    for name in ("red_band", "nir_band"):
        if getattr(params, name) >= n_bands:
            raise ValueError(
                f"{name}={getattr(params, name)} is not a band of a {n_bands}-band image "
                "(0-based; or use similarity='all_bands')"
            )
    return [params.red_band, params.nir_band]


def spatial_filter(
    fine: Any,
    z2: Any,
    params: FitfcParams | None = None,
    *,
    window: tuple[int, int, int, int] | None = None,
    engine: str = "auto",
) -> Any:
    """Fit-FC's spatial filter: the weighted mean of ``z2`` over the most similar neighbours.

    Parameters
    ----------
    fine
        F1 ``(band, y, x)``; its red and NIR bands (or all bands) rank the neighbours.
    z2
        The image filtered ``(band, y, x)``, e.g. from :func:`rm_rc`.
    params
        ``filter_radius``, ``n_similar``, ``scale``, ``similarity``, band indices and ``mode``.
    window
        ``(row0, row1, col0, col1)``: compute only these output pixels (default: all); the
        whole array still serves as their neighbourhood.
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    array
        ``(band, row1 - row0, col1 - col0)`` float64 (NaN where no neighbour is usable).
    """
    params = params or FitfcParams()
    xp = array_module(fine, z2)
    f1, values = real_array(xp, fine, "fine", _BAND_YX), real_array(xp, z2, "z2", _BAND_YX)
    if f1.shape[1:] != values.shape[1:]:
        raise ValueError(f"fine {f1.shape} and z2 {values.shape} must cover the same pixels")
    rows, cols = f1.shape[1:]
    row0, row1, col0, col1 = window or (0, rows, 0, cols)
    if not (0 <= row0 <= row1 <= rows and 0 <= col0 <= col1 <= cols):
        raise ValueError(f"window {window} lies outside the {rows} x {cols} image")
    radius = params.filter_radius
    edge = ((0, 0), (radius, radius), (radius, radius))
    key = xp.pad(f1[similarity_bands(params, f1.shape[0])], edge, mode="edge")
    padded = xp.pad(values, edge, mode="edge")
    weights = xp.asarray(cell_weights(radius, params.scale))
    if row1 == row0 or col1 == col0:
        return xp.empty((values.shape[0], row1 - row0, col1 - col0))
    backend = resolve_backend(engine, xp)
    if backend == "reference" and xp is not np:
        raise ValueError("the reference engine runs on NumPy arrays; CuPy inputs use 'cuda'")
    filter_sums = engine_module("stfcube.kernels.fitfc", backend).filter_sums
    skip = params.mode == "seamless"
    return filter_sums(key, padded, weights, params.n_similar, skip, (row0, row1, col0, col1))


def fitfc(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    ratio: int,
    params: FitfcParams | None = None,
    *,
    offset: tuple[int, int] = (0, 0),
    window: tuple[int, int, int, int] | None = None,
    engine: str = "auto",
) -> Any:
    """Fit-FC prediction of the prediction date from one pair: :func:`rm_rc` then
    :func:`spatial_filter` (parameters as there).

    Returns
    -------
    array
        ``(band, y, x)`` float64 (or the ``window``'s pixels only).
    """
    params = params or FitfcParams()
    z2 = rm_rc(fine, coarse, coarse_pred, ratio, params, offset=offset)
    return spatial_filter(fine, z2, params, window=window, engine=engine)
