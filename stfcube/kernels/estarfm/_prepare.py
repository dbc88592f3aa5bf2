"""What every ESTARFM engine receives: the tile's arrays and the run's constants, prepared once
as array code on the inputs' device (NumPy or CuPy).

Engine contract (``predict(tile, consts)`` in ``_ref``, ``_numba`` and ``_cuda``): for every
output pixel of ``tile.window`` whose pair images are valid, the similar pixels are the window
pixels (window clipped to the arrays) valid in F1, F2, C1 and C2 whose fine values lie strictly
within ``consts.thresholds`` of the centre's in every band of both pairs; per prediction date,
those also valid in C0 are the candidates. Returns ``prediction`` ``(dates, band, h, w)``
float64 (NaN: no prediction), ``code`` ``(dates, band, h, w)`` uint8 (:data:`CODES`) and
``count`` ``(dates, h, w)`` int32 (candidates of the date).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from stfcube.kernels._arrays import box_sum
from stfcube.kernels._backend import array_module
from stfcube.kernels.estarfm.params import SIGNIFICANCE, EstarfmParams

#: ``code`` layer: how each pixel and band was predicted.
NO_PREDICTION, FITTED_V, UNIT_V, OUT_OF_RANGE, FEW_CANDIDATES = 0, 1, 2, 3, 4
#: Meaning of each ``code`` value (CF ``flag_meanings`` order).
CODES = {
    NO_PREDICTION: "no_prediction",
    FITTED_V: "conversion_coefficient_fitted",
    UNIT_V: "conversion_coefficient_one",
    OUT_OF_RANGE: "out_of_range_weighted_mean",
    FEW_CANDIDATES: "few_similar_pixels",
}


@dataclass(frozen=True)
class TileArrays:
    """One region's arrays (float64 / bool, C-contiguous, on one device).

    ``fine``, ``coarse`` ``(2, band, Y, X)``; ``coarse_pred`` ``(dates, band, Y, X)``;
    ``pair_valid`` ``(Y, X)`` (valid in F1, F2, C1 and C2); ``pred_valid`` ``(dates, Y, X)``
    (valid in C0); ``change`` ``(dates, 2, band, h, w)``: per output pixel, ``mean(C0) -
    mean(Ck)`` over the window pixels valid in all five images; ``window`` ``(row0, row1, col0,
    col1)``: the output pixels.
    """

    fine: Any
    coarse: Any
    coarse_pred: Any
    pair_valid: Any
    pred_valid: Any
    change: Any
    window: tuple[int, int, int, int]


@dataclass(frozen=True)
class Constants:
    """``thresholds`` ``(2, band)`` (host float64), the window half-width, the data range, the
    smallest coarse change that gets a fitted V and ``f_crit[m]``, the F(1, m) critical value."""

    thresholds: np.ndarray
    half_window: int
    dn_min: float
    dn_max: float
    min_change: float
    f_crit: np.ndarray


@functools.cache
def f_critical(span: int) -> np.ndarray:
    """``F(1, m)`` critical values at the significance level, ``m = 0 .. 2 span^2 - 2``.

    ``sig = 1 - F_cdf(F; 1, m) <= 0.05`` (the program's F-test) exactly when ``F >= f_crit[m]``;
    ``m = 0`` (never used) is infinite.
    """
    dfd = np.arange(2 * span * span - 1, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        table = special.fdtri(1.0, dfd, 1.0 - SIGNIFICANCE)
    table[0] = np.inf
    table.setflags(write=False)
    return table


def constants(params: EstarfmParams, thresholds: Any) -> Constants:
    """The engines' constants for ``params`` and the similarity thresholds ``(2, band)``."""
    return Constants(
        np.ascontiguousarray(thresholds, dtype=np.float64),
        params.half_window,
        float(params.data_range[0]),
        float(params.data_range[1]),
        params.min_change,
        f_critical(params.span),
    )


def valid_pixels(xp: Any, images: Any, mask: Any, background: float) -> Any:
    """``(n, Y, X)``: finite in every band, band 0 not ``background``, and ``mask`` (or None)."""
    valid = xp.isfinite(images).all(axis=1) & (images[:, 0] != background)
    return valid if mask is None else valid & mask


def prepare_tile(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    pair_valid: Any,
    pred_valid: Any,
    half_window: int,
    window: tuple[int, int, int, int],
) -> TileArrays:
    """The engines' arrays: float64 copies and the window-mean coarse changes.

    The window means are box sums of ``C0 - Ck`` over the pixels valid in all five images,
    summed in the same order whatever the region's origin (tiled == whole image).
    """
    xp = array_module(fine, coarse, coarse_pred)
    row0, row1, col0, col1 = window
    changes = []
    for d in range(coarse_pred.shape[0]):
        used = pair_valid & pred_valid[d]
        count = box_sum(used.astype(xp.float64)[None], half_window)[0, row0:row1, col0:col1]
        per_pair = []
        for k in range(2):
            difference = xp.where(used[None], coarse_pred[d] - coarse[k], 0.0)
            total = box_sum(difference, half_window)[:, row0:row1, col0:col1]
            with np.errstate(invalid="ignore", divide="ignore"):
                per_pair.append(total / count)
        changes.append(xp.stack(per_pair))
    band_shape = (0, 2, fine.shape[1], row1 - row0, col1 - col0)
    change = xp.stack(changes) if changes else xp.empty(band_shape)
    return TileArrays(
        xp.ascontiguousarray(fine, dtype=xp.float64),
        xp.ascontiguousarray(coarse, dtype=xp.float64),
        xp.ascontiguousarray(coarse_pred, dtype=xp.float64),
        xp.ascontiguousarray(pair_valid),
        xp.ascontiguousarray(pred_valid),
        xp.ascontiguousarray(change, dtype=xp.float64),
        window,
    )


def blank_outputs(xp: Any, tile: TileArrays) -> tuple[Any, Any, Any]:
    """The engines' outputs before any pixel is computed: NaN predictions, code
    :data:`NO_PREDICTION`, no candidates."""
    row0, row1, col0, col1 = tile.window
    n_dates, n_bands = tile.coarse_pred.shape[:2]
    prediction = xp.full((n_dates, n_bands, row1 - row0, col1 - col0), xp.nan)
    code = xp.zeros(prediction.shape, dtype=xp.uint8)
    return prediction, code, xp.zeros((n_dates, row1 - row0, col1 - col0), dtype=xp.int32)
