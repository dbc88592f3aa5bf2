"""STARFM (Gao et al. 2006) on plain arrays: one tile plus halo, or whole images.

``mode="usda"`` (the default) reproduces the official USDA STARFM C program v1.2.2 bit for bit
on integer-valued inputs; ``mode="paper"`` follows the paper. Side by side:

=======================  =========================================  ===============================
item                     ``usda`` (C program v1.2.2)                ``paper`` (Gao et al. 2006)
=======================  =========================================  ===============================
window width W           ``int(2*max_search_distance/resolution)``  ``2*(W_usda//2) + 1`` (odd)
window offsets           ``-W//2 .. W-W//2-1`` (even W: -25..24)     ``-W//2 .. W//2`` (symmetric)
slice (similarity)       ``int(int(sd)*2/n_slice + 0.5)``, sd of     ``2*sd/n_slice`` (no rounding)
                         the whole fine image, truncated to int
uncertainties            integers: ``int(sqrt(u_c²+u_c²))`` = 70,   floats: sqrt(2)·u_c,
                         ``int(sqrt(u_c²+u_f²))`` = 70, combined 98  sqrt(u_c²+u_f²), combined
candidate filter         dropped only when BOTH the spectral and    dropped when EITHER test fails
                         the temporal difference exceed the          (kept when both pass)
                         centre's minimum + uncertainty (OR-accept)
weight (1 pair)          T = |M_p-L_p| + 1                           T = (|M_p-M_k|+1)(|M_p-L_p|+1)
weight (>= 2 pairs)      T = (|M_p-M_k|+1)(|M_p-L_p|+1)              same
weight                   1 if T < combined uncertainty (no           1/(T·(1+d/A)) always
                         distance factor), else 1/(T·(1+d/A))
centre statistics        raw centre values (even if masked/fill)     valid centre values only
output                   ``trunc(fsr + 0.5)`` if inside the open     fsr (float) if inside the open
                         data range, else fill (NaN)                 data range, else NaN
=======================  =========================================  ===============================

Common to both: A = max_search_distance/resolution (pixels), d = Euclidean distance in pixels,
candidates of all pairs pooled into one weighted sum, centre minima over pairs (starting at
``data_range[1]``), weights and sums in float32 in candidate order (pair, window row, window
column), NaN (fill) where no candidate survives.

Candidates. A window pixel of pair ``p`` is a candidate when its fine and coarse values are both
*usable* (valid mask, finite, inside the closed ``data_range``, not ``fill_value``) and it is
similar to the centre (``|L_p(i) - L_p(c)| < slice``, or the same class with ``class_map``). For a
date ``k`` it is dropped when ``M_k(i)`` is not usable, and by the filter above. In ``usda`` mode
it is also dropped when ``M_p(i) - M_k(i)`` happens to equal ``fill_value``, as in the program.
With ``use_spatial=False`` the candidates are the centre pixels of the pairs alone (no slice test;
the program also skips their range tests, here they are kept, so fill never enters a sum).

Layout. This module holds the public functions and the engine dispatch (through
:mod:`stfcube.kernels._backend`); the parameters are in :mod:`stfcube.kernels.starfm.params`, the
global statistics in :mod:`stfcube.kernels.starfm.statistics`, the engines' inputs in
:mod:`stfcube.kernels.starfm._prepare` and the engines in ``_ref``, ``_numba`` and ``_cuda``.

Tiling. :func:`starfm_tile` computes a tile from the tile plus ``halo`` pixels of context with the
global slices passed in; pixels outside the image are passed as invalid, which is exactly how the
program treats them (rows outside are fill, columns outside are skipped). :func:`starfm` is
slices of the whole image + padding by ``halo`` + :func:`starfm_tile`, so tiled == whole image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from stfcube.kernels._arrays import pad_yx
from stfcube.kernels._backend import array_module, engine_module, resolve_backend
from stfcube.kernels.starfm._prepare import (
    PredictSums,
    check_inputs,
    kernel_constants,
    prepare_tile,
)
from stfcube.kernels.starfm.params import StarfmParams
from stfcube.kernels.starfm.statistics import slice_thresholds

#: Largest candidate count stored in the uint16 quality layer (higher counts saturate).
QUALITY_MAX = np.iinfo(np.uint16).max


@dataclass(frozen=True)
class StarfmResult:
    """STARFM output: ``prediction`` (dates, y, x) float32 with NaN where filled, and
    ``quality`` (dates, y, x) uint16, the number of candidates used (0 where filled).

    Unpacks as a tuple: ``prediction, quality = starfm(...)``.
    """

    prediction: Any
    quality: Any

    def __iter__(self) -> Iterator[Any]:
        yield self.prediction
        yield self.quality


def _finish(xp: ModuleType, fsr: Any, count: Any, params: StarfmParams) -> StarfmResult:
    """Range test, rounding and quality layer from the engines' sums."""
    low, high = params.data_range
    kept = (count > 0) & (fsr > np.float32(low)) & (fsr < np.float32(high))
    if params.mode == "usda":
        fsr = xp.trunc(fsr.astype(np.float64) + 0.5).astype(np.float32)
    prediction = xp.where(kept, fsr, np.float32(np.nan)).astype(np.float32)
    quality = xp.where(kept, xp.minimum(count, QUALITY_MAX), 0).astype(np.uint16)
    return StarfmResult(prediction=prediction, quality=quality)


def _predict_sums(engine: str, xp: ModuleType) -> PredictSums:
    """The ``predict_sums`` of the engine that runs a call asking for ``engine`` on ``xp``."""
    return engine_module("stfcube.kernels.starfm", resolve_backend(engine, xp)).predict_sums


def starfm_tile(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    *,
    slices: Any,
    params: StarfmParams,
    fine_valid: Any = None,
    coarse_valid: Any = None,
    coarse_pred_valid: Any = None,
    class_map: Any = None,
    halo: int,
    engine: str = "auto",
) -> StarfmResult:
    """STARFM prediction of one tile from the tile plus ``halo`` pixels of context.

    Parameters
    ----------
    fine, coarse
        (pairs, ty + 2*halo, tx + 2*halo) fine and coarse (on the fine grid) images of the pairs.
        Pixels outside the image must be invalid (NaN or ``False`` in the masks).
    coarse_pred
        (dates, ty + 2*halo, tx + 2*halo) coarse images at the prediction dates.
    slices
        (pairs,) global similarity thresholds from :func:`slice_thresholds` (whole image).
    params
        The run's parameters.
    fine_valid, coarse_valid, coarse_pred_valid
        Optional bool masks, (n, y, x) or (y, x); ``False`` = not usable.
    class_map
        Optional integer classes, (pairs, y, x) or (y, x): similarity = same class as the centre.
    halo
        Context pixels on each side; at least ``params.halo``.
    engine
        ``"auto"`` (numba for NumPy, CUDA for CuPy), ``"numba"``, ``"cuda"`` or ``"reference"``
        (the vectorised array code).

    Returns
    -------
    StarfmResult
        Prediction (dates, ty, tx) float32 and quality (dates, ty, tx) uint16, on the inputs'
        device.
    """
    xp = array_module(
        fine, coarse, coarse_pred, fine_valid, coarse_valid, coarse_pred_valid, class_map
    )
    predict = _predict_sums(engine, xp)
    if not isinstance(halo, int | np.integer) or halo < params.halo:
        raise ValueError(f"halo must be an integer >= params.halo = {params.halo}, got {halo!r}")
    halo = int(halo)
    inputs = check_inputs(
        xp, fine, coarse, coarse_pred, fine_valid, coarse_valid, coarse_pred_valid, class_map
    )
    rows, cols = inputs.fine.shape[1:]
    if rows <= 2 * halo or cols <= 2 * halo:
        raise ValueError(
            f"a tile with halo {halo} needs more than {2 * halo} rows and columns, "
            f"got {rows}x{cols}"
        )
    consts = kernel_constants(params, slices, inputs.fine.shape[0], inputs.class_map is not None)
    tile = prepare_tile(xp, inputs, params, halo)
    fsr, count = predict(tile, consts, xp)
    return _finish(xp, fsr, count, params)


def starfm(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    *,
    fine_valid: Any = None,
    coarse_valid: Any = None,
    coarse_pred_valid: Any = None,
    resolution: float = 30.0,
    max_search_distance: float = 750.0,
    num_slice_pure_test: int = 40,
    fine_uncertainty: float = 50.0,
    coarse_uncertainty: float = 50.0,
    data_range: tuple[float, float] = (-100, 10000),
    fill_value: float = -9999,
    mode: str = "usda",
    class_map: Any = None,
    use_spatial: bool = True,
    engine: str = "auto",
) -> StarfmResult:
    """STARFM prediction of whole images (one band).

    Parameters
    ----------
    fine, coarse
        (pairs, y, x) fine and coarse images of the input pairs; coarse already on the fine
        grid. Integer or float; NaN marks invalid float pixels, infinities are rejected.
    coarse_pred
        (dates, y, x) coarse images at the prediction dates.
    fine_valid, coarse_valid, coarse_pred_valid
        Optional bool masks, (n, y, x) or (y, x); ``False`` = not usable.
    resolution, max_search_distance, num_slice_pure_test, fine_uncertainty, coarse_uncertainty,
    data_range, fill_value, mode, use_spatial
        See :class:`StarfmParams`.
    class_map
        Optional integer classes, (pairs, y, x) or (y, x): similarity = same class as the centre.
    engine
        See :func:`starfm_tile`.

    Returns
    -------
    StarfmResult
        ``prediction`` (dates, y, x) float32, NaN where the reference writes fill, rounded like
        the reference in ``usda`` mode; ``quality`` (dates, y, x) uint16 candidate counts.

    Raises
    ------
    ValueError
        Bad parameters, shapes, dtypes, infinite values, or a window larger than the image.
    TypeError
        NumPy and CuPy arrays mixed.
    """
    params = StarfmParams(
        resolution=resolution,
        max_search_distance=max_search_distance,
        num_slice_pure_test=num_slice_pure_test,
        fine_uncertainty=fine_uncertainty,
        coarse_uncertainty=coarse_uncertainty,
        data_range=data_range,
        fill_value=fill_value,
        mode=mode,
        use_spatial=use_spatial,
    )
    xp = array_module(
        fine, coarse, coarse_pred, fine_valid, coarse_valid, coarse_pred_valid, class_map
    )
    inputs = check_inputs(
        xp, fine, coarse, coarse_pred, fine_valid, coarse_valid, coarse_pred_valid, class_map
    )
    rows, cols = inputs.fine.shape[1:]
    if params.use_spatial and params.window > min(rows, cols):
        raise ValueError(
            f"the search window ({params.window} pixels: 2*max_search_distance/resolution = "
            f"2*{max_search_distance}/{resolution}) is larger than the image ({rows}x{cols})"
        )
    slices = slice_thresholds(inputs.fine, inputs.fine_valid, params=params)
    halo = params.halo
    nan = np.float32(np.nan)
    return starfm_tile(
        pad_yx(xp, inputs.fine.astype(np.float32), halo, nan),
        pad_yx(xp, inputs.coarse.astype(np.float32), halo, nan),
        pad_yx(xp, inputs.coarse_pred.astype(np.float32), halo, nan),
        slices=slices,
        params=params,
        fine_valid=pad_yx(xp, inputs.fine_valid, halo, False),
        coarse_valid=pad_yx(xp, inputs.coarse_valid, halo, False),
        coarse_pred_valid=pad_yx(xp, inputs.coarse_pred_valid, halo, False),
        class_map=None if class_map is None else pad_yx(xp, xp.asarray(class_map), halo, 0),
        halo=halo,
        engine=engine,
    )
