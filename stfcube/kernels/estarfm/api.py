"""ESTARFM (Zhu et al. 2010) as Zhu's IDL program (2018 revision) computes it: two pairs, any
number of prediction dates.

Per fine pixel whose four pair images are valid: the similar pixels of its (2w+1)^2 window are
those within ``2 sd / num_class`` of it in every band of both fine images (strict); a candidate
must also be valid in all five images. With more than 5 candidates the prediction is ``T1 F_1 +
T2 F_2``, ``F_k = F_k(c) + sum(W V (C0 - Ck))``, with weights from the spectral correlation and
the distance, a conversion coefficient V per band (regression of fine on coarse, F-test at 0.05,
``0 < V <= 5``, fitted only when the candidates' coarse change reaches 2 % of ``DN_max``),
temporal weights from the window-mean coarse changes, and the weighted mean of the base fine
images where the prediction leaves ``(DN_min, DN_max)``; with 5 or fewer, each centre value plus
its window-mean change. Every quirk is written out in :mod:`stfcube.kernels.estarfm._ref`.

Modes (``params.mode``):

* ``reference``: the program's non-overlapping ``block_size`` blocks from the image origin, each
  with its own thresholds (sample SD over the block, background values included) and windows
  that stop at its borders: the program's output (float inputs; the program's final cast of
  integer inputs, IDL ``FIX``, is ``np.trunc`` of the prediction, left to the caller).
* ``seamless``: thresholds from the valid pixels of the whole images (or given), windows that
  stop only at the image border: :func:`estarfm_tile` on a tile plus ``half_window`` pixels of
  context gives the whole image's numbers bit for bit.

Units: data in any unit (``data_range`` in the same); distances in fine pixels. Nodata: NaN,
validity masks, or ``background`` in band 0; invalid pixels get no prediction (NaN, code 0;
the program writes 0). Engines (``engine=``, see :mod:`stfcube.kernels._backend`): ``numba`` (CPU),
``cuda`` (numba CUDA kernel on CuPy arrays), ``reference`` (NumPy, slow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stfcube.kernels._arrays import real_array
from stfcube.kernels._backend import array_module, engine_module, resolve_backend
from stfcube.kernels.estarfm._prepare import constants, prepare_tile, valid_pixels
from stfcube.kernels.estarfm.params import EstarfmParams
from stfcube.kernels.estarfm.statistics import (
    block_thresholds,
    threshold_moments,
    thresholds_from_moments,
)


@dataclass(frozen=True)
class EstarfmResult:
    """``prediction`` ``(dates, band, y, x)`` float64 (NaN: none), ``code`` (same shape, uint8:
    :data:`stfcube.kernels.estarfm._prepare.CODES`) and ``count`` ``(dates, y, x)`` int32, the
    similar pixels used. Without a dates axis on ``coarse_pred``, none on the outputs either."""

    prediction: Any
    code: Any
    count: Any


def _stack(xp: Any, array: Any, name: str, first: int | None) -> Any:
    lead = "2 (pairs)" if first == 2 else "n (dates)"
    return real_array(xp, array, name, (lead, "band", "y", "x"), first)


def _mask(xp: Any, mask: Any, shape: tuple[int, ...], name: str) -> Any:
    if mask is None:
        return None
    mask = xp.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape not in (shape, shape[1:]):
        raise ValueError(f"{name} must be a bool array of shape {shape} or {shape[1:]}")
    return xp.broadcast_to(mask, shape)


def estarfm_tile(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    thresholds: Any,
    params: EstarfmParams | None = None,
    *,
    fine_valid: Any = None,
    coarse_valid: Any = None,
    coarse_pred_valid: Any = None,
    window: tuple[int, int, int, int] | None = None,
    engine: str = "auto",
) -> EstarfmResult:
    """ESTARFM of the ``window`` pixels of a region, with the thresholds given.

    Parameters
    ----------
    fine, coarse
        ``(2, band, y, x)``: F1, F2 and C1, C2 (coarse resampled to the fine grid).
    coarse_pred
        ``(dates, band, y, x)``: C0 of each prediction date.
    thresholds
        ``(2, band)`` similarity thresholds (from :mod:`stfcube.kernels.estarfm.statistics`).
    params
        Only ``half_window``, ``data_range`` and ``background`` are used.
    fine_valid, coarse_valid, coarse_pred_valid
        Optional bool masks ``(n, y, x)`` or ``(y, x)``; NaN and band-0 ``background`` are
        invalid too. Pixels outside the region do not exist (windows stop at its border), so a
        tile passes its halo too, with pixels outside the image invalid.
    window
        ``(row0, row1, col0, col1)``: the pixels computed (default: all).
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    EstarfmResult
        Arrays over the window, with a dates axis.
    """
    params = params or EstarfmParams()
    xp = array_module(fine, coarse, coarse_pred)
    f, c = _stack(xp, fine, "fine", 2), _stack(xp, coarse, "coarse", 2)
    c0 = _stack(xp, coarse_pred, "coarse_pred", None)
    if c.shape != f.shape or c0.shape[1:] != f.shape[1:]:
        raise ValueError(
            f"fine {f.shape}, coarse {c.shape} and coarse_pred {c0.shape} must share their "
            "band, y and x sizes"
        )
    rows, cols = f.shape[2:]
    row0, row1, col0, col1 = window or (0, rows, 0, cols)
    if not (0 <= row0 <= row1 <= rows and 0 <= col0 <= col1 <= cols):
        raise ValueError(f"window {window} lies outside the {rows} x {cols} region")
    limits = np.asarray(thresholds, dtype=np.float64)
    if limits.shape != (2, f.shape[1]):
        raise ValueError(f"thresholds must have shape (2, {f.shape[1]}), got {limits.shape}")
    background = params.background
    pair_valid = valid_pixels(
        xp, f, _mask(xp, fine_valid, (2, rows, cols), "fine_valid"), background
    )
    pair_valid = pair_valid.all(axis=0) & valid_pixels(
        xp, c, _mask(xp, coarse_valid, (2, rows, cols), "coarse_valid"), background
    ).all(axis=0)
    pred_mask = _mask(xp, coarse_pred_valid, (c0.shape[0], rows, cols), "coarse_pred_valid")
    pred_valid = valid_pixels(xp, c0, pred_mask, background)
    backend = resolve_backend(engine, xp)
    if backend == "reference" and xp is not np:
        raise ValueError("the reference engine runs on NumPy arrays; CuPy inputs use 'cuda'")
    tile = prepare_tile(
        f, c, c0, pair_valid, pred_valid, params.half_window, (row0, row1, col0, col1)
    )
    predict = engine_module("stfcube.kernels.estarfm", backend).predict
    return EstarfmResult(*predict(tile, constants(params, limits)))


def seamless_thresholds(
    fine: Any, params: EstarfmParams | None = None, *, fine_valid: Any = None
) -> np.ndarray:
    """Whole-image thresholds ``(2, band)`` from each pair's valid pixels (``seamless`` mode)."""
    params = params or EstarfmParams()
    xp = array_module(fine)
    f = _stack(xp, fine, "fine", 2)
    mask = _mask(xp, fine_valid, (2, *f.shape[2:]), "fine_valid")
    moments = threshold_moments(f, valid_pixels(xp, f, mask, params.background))
    return thresholds_from_moments(moments, params.num_class)


def estarfm(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    params: EstarfmParams | None = None,
    *,
    fine_valid: Any = None,
    coarse_valid: Any = None,
    coarse_pred_valid: Any = None,
    thresholds: Any = None,
    engine: str = "auto",
) -> EstarfmResult:
    """ESTARFM of whole images in ``params.mode`` (see the module doc).

    Parameters
    ----------
    fine, coarse
        ``(2, band, y, x)``: F1, F2 and C1, C2 (coarse resampled to the fine grid).
    coarse_pred
        ``(band, y, x)`` C0, or ``(dates, band, y, x)`` for several prediction dates.
    params
        :class:`EstarfmParams` (default: the program's parameters, ``seamless`` mode).
    fine_valid, coarse_valid, coarse_pred_valid
        Optional bool masks (see :func:`estarfm_tile`).
    thresholds
        ``seamless`` only: ``(2, band)`` thresholds to use instead of the images' own.
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    EstarfmResult
    """
    params = params or EstarfmParams()
    xp = array_module(fine, coarse, coarse_pred)
    c0 = xp.asarray(coarse_pred)
    single = c0.ndim == 3
    if single:
        c0 = c0[None]
        if coarse_pred_valid is not None:
            coarse_pred_valid = xp.asarray(coarse_pred_valid)[None]
    masks = {"fine_valid": fine_valid, "coarse_valid": coarse_valid}
    if params.mode == "seamless":
        limits = thresholds
        if limits is None:
            limits = seamless_thresholds(fine, params, fine_valid=fine_valid)
        result = estarfm_tile(
            fine,
            coarse,
            c0,
            limits,
            params,
            **masks,
            coarse_pred_valid=coarse_pred_valid,
            engine=engine,
        )
    else:
        if thresholds is not None:
            raise ValueError("reference mode computes its thresholds per block")
        result = _reference_blocks(fine, coarse, c0, params, masks, coarse_pred_valid, engine)
    if single:
        return EstarfmResult(result.prediction[0], result.code[0], result.count[0])
    return result


def _reference_blocks(
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    params: EstarfmParams,
    masks: dict[str, Any],
    coarse_pred_valid: Any,
    engine: str,
) -> EstarfmResult:
    """The program's blocks, each computed alone with its own thresholds, mosaicked."""
    xp = array_module(fine, coarse, coarse_pred)
    f = _stack(xp, fine, "fine", 2)
    c0 = _stack(xp, coarse_pred, "coarse_pred", None)
    n_dates, n_bands, rows, cols = c0.shape
    prediction = xp.full((n_dates, n_bands, rows, cols), xp.nan)
    code = xp.zeros(prediction.shape, dtype=xp.uint8)
    count = xp.zeros((n_dates, rows, cols), dtype=xp.int32)
    size = params.block_size
    mask = _mask(xp, masks["fine_valid"], (2, rows, cols), "fine_valid")
    counted = f if mask is None else xp.where(mask[:, None], f, xp.nan)
    for r in range(0, rows, size):
        for c in range(0, cols, size):
            block = (slice(r, r + size), slice(c, c + size))

            def cut(array: Any, block: tuple[slice, slice] = block) -> Any:
                return None if array is None else xp.asarray(array)[(..., *block)]

            limits = block_thresholds(counted[(..., *block)], params.num_class)
            part = estarfm_tile(
                cut(f),
                cut(coarse),
                cut(c0),
                limits,
                params,
                fine_valid=cut(masks["fine_valid"]),
                coarse_valid=cut(masks["coarse_valid"]),
                coarse_pred_valid=cut(coarse_pred_valid),
                engine=engine,
            )
            prediction[(..., *block)] = part.prediction
            code[(..., *block)] = part.code
            count[(..., *block)] = part.count
    return EstarfmResult(prediction, code, count)
