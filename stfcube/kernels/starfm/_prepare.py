"""STARFM's engine inputs: validated arrays, float32 tile planes and scalar constants.

Every engine (``_ref``, ``_numba``, ``_cuda``) implements one function,
``predict_sums(tile, consts, xp) -> (fsr, count)`` (:data:`PredictSums`), over the same inputs
built here: :func:`check_inputs` validates a call's arrays, :func:`prepare_tile` turns them into
the float32 planes of :class:`TileArrays` (usability, similarity keys, filter thresholds) and
:func:`kernel_constants` the scalars of :class:`KernelConstants`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from stfcube.kernels._arrays import checked_mask, checked_stack, quiet_invalid
from stfcube.kernels._backend import to_numpy
from stfcube.kernels.starfm.params import StarfmParams

#: Class labels must be exactly representable as float32 similarity keys.
_CLASS_LIMIT = 2**24


@dataclass(frozen=True)
class TileArrays:
    """A halo-extended tile prepared for the engines (all float32, C-contiguous).

    ``P`` pairs, ``K`` dates, ``H x W`` tile with halo, ``h x w`` interior.
    Attributes: ``key`` (P, H, W) similarity key (fine value or class) of usable pixels, NaN
    elsewhere; ``value`` (P, H, W) fine value; ``lsr`` (P, H, W) ``|M_p - L_p|``; ``msr``
    (P, K, H, W) ``M_p - M_k``, NaN where the candidate is dropped for date k; ``centre_key``
    (P, h, w); ``thr_lsr`` (h, w) and ``thr_msr`` (K, h, w) the filter thresholds (centre minimum
    plus uncertainty); ``halo``.
    """

    key: Any
    value: Any
    lsr: Any
    msr: Any
    centre_key: Any
    thr_lsr: Any
    thr_msr: Any
    halo: int


@dataclass(frozen=True)
class KernelConstants:
    """Scalar set-up shared by the engines.

    ``slices`` (P,) float32 similarity thresholds (``inf`` without ``use_spatial``, 0.5 with a
    class map); ``lo``/``hi`` inclusive offsets; ``distance_factor`` (span², float64) the
    ``1 + d/A`` of every window cell, with d/A rounded through float32 as the program does;
    ``and_filter`` (paper) or OR-acceptance (usda); ``spectral_only`` (T without the temporal
    term); ``unit_weight_below`` (weight 1 when T is below it; ``-inf`` disables).
    """

    slices: np.ndarray
    lo: int
    hi: int
    distance_factor: np.ndarray
    and_filter: bool
    spectral_only: bool
    unit_weight_below: float


#: An engine's ``predict_sums``: normalised weighted sum (float32) and candidate count (int32)
#: per date and interior pixel, on the device of the tile's arrays.
PredictSums = Callable[[TileArrays, KernelConstants, ModuleType], tuple[Any, Any]]


def _checked_class_map(xp: ModuleType, class_map: Any, shape: tuple[int, ...]) -> Any:
    """``class_map`` as float32 keys broadcast to ``shape``."""
    classes = xp.asarray(class_map)
    if not np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_:
        raise ValueError(f"class_map must hold integer class labels, got dtype {classes.dtype}")
    if classes.shape not in (shape, shape[1:]):
        raise ValueError(f"class_map must have shape {shape} or {shape[1:]}, got {classes.shape}")
    if classes.size and int(xp.abs(classes.astype(np.int64)).max()) >= _CLASS_LIMIT:
        raise ValueError(f"class_map labels must lie within ±{_CLASS_LIMIT - 1}")
    return xp.broadcast_to(classes.astype(np.float32), shape)


@dataclass(frozen=True)
class StarfmInputs:
    """Validated inputs of one call, on one device (masks broadcast, classes as float32)."""

    fine: Any
    coarse: Any
    coarse_pred: Any
    fine_valid: Any
    coarse_valid: Any
    coarse_pred_valid: Any
    class_map: Any


def check_inputs(
    xp: ModuleType,
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    fine_valid: Any,
    coarse_valid: Any,
    coarse_pred_valid: Any,
    class_map: Any,
) -> StarfmInputs:
    """The arrays of one call checked for shape, dtype and values, on ``xp``'s device.

    Parameters
    ----------
    xp
        Array module of the inputs (from :func:`stfcube.kernels._backend.array_module`).
    fine, coarse
        (pairs, y, x) fine and coarse images of the pairs.
    coarse_pred
        (dates, y, x) coarse images at the prediction dates.
    fine_valid, coarse_valid, coarse_pred_valid
        Optional masks, (n, y, x) or (y, x); ``None`` when absent.
    class_map
        Optional integer classes, (pairs, y, x) or (y, x).

    Returns
    -------
    StarfmInputs
        The arrays of ``xp``, masks broadcast to their stacks, classes as float32 keys.

    Raises
    ------
    ValueError
        The first problem found, naming the argument.
    """
    fine = checked_stack(xp, fine, "fine", axis_name="pairs")
    coarse = checked_stack(xp, coarse, "coarse", axis_name="pairs")
    coarse_pred = checked_stack(xp, coarse_pred, "coarse_pred", axis_name="dates")
    if coarse.shape != fine.shape:
        raise ValueError(
            f"coarse must have the shape of fine (pairs, y, x) = {fine.shape}, got {coarse.shape}"
        )
    if coarse_pred.shape[1:] != fine.shape[1:]:
        raise ValueError(
            f"coarse_pred must cover the grid of fine (y, x) = {fine.shape[1:]}, "
            f"got {coarse_pred.shape[1:]}"
        )

    def mask(value: Any, shape: tuple[int, ...], name: str) -> Any:
        return None if value is None else checked_mask(xp, value, shape, name)

    return StarfmInputs(
        fine=fine,
        coarse=coarse,
        coarse_pred=coarse_pred,
        fine_valid=mask(fine_valid, fine.shape, "fine_valid"),
        coarse_valid=mask(coarse_valid, fine.shape, "coarse_valid"),
        coarse_pred_valid=mask(coarse_pred_valid, coarse_pred.shape, "coarse_pred_valid"),
        class_map=None if class_map is None else _checked_class_map(xp, class_map, fine.shape),
    )


def _usable(xp: ModuleType, values: Any, valid: Any, params: StarfmParams) -> Any:
    """Pixels whose value may enter a sum: valid, finite, in the closed range, not fill."""
    low, high = params.data_range
    with quiet_invalid():
        usable = (values >= low) & (values <= high) & (values != params.fill_value)
    usable &= ~xp.isnan(values)
    if valid is not None:
        usable &= valid
    return usable


def _centre_minimum(xp: ModuleType, differences: Any, ceiling: float) -> Any:
    """Minimum over pairs (axis 0) of ``|differences|``, NaN ignored, capped at ``ceiling``."""
    magnitude = xp.abs(differences)
    magnitude = xp.where(xp.isnan(magnitude), np.float32(ceiling), magnitude)
    return xp.minimum(magnitude.min(axis=0), np.float32(ceiling))


def prepare_tile(
    xp: ModuleType, inputs: StarfmInputs, params: StarfmParams, halo: int
) -> TileArrays:
    """The engines' float32 planes of a halo-extended tile of checked ``inputs``.

    ``halo`` context pixels on each side are read but not predicted; the centre statistics and
    thresholds cover the interior only.
    """
    fine = inputs.fine.astype(np.float32)
    coarse = inputs.coarse.astype(np.float32)
    coarse_pred = inputs.coarse_pred.astype(np.float32)
    pair_ok = _usable(xp, fine, inputs.fine_valid, params) & _usable(
        xp, coarse, inputs.coarse_valid, params
    )
    pred_ok = _usable(xp, coarse_pred, inputs.coarse_pred_valid, params)
    nan = np.float32(np.nan)

    similarity = fine if inputs.class_map is None else inputs.class_map
    key = xp.where(pair_ok, similarity, nan)
    msr = coarse[:, None] - coarse_pred[None]
    dropped = ~(pair_ok[:, None] & pred_ok[None])
    if params.mode == "usda":
        dropped |= msr == np.float32(params.fill_value)
    msr = xp.where(dropped, nan, msr)

    interior = (slice(None), slice(halo, fine.shape[1] - halo), slice(halo, fine.shape[2] - halo))
    if params.mode == "usda":
        centre_fine, centre_coarse, centre_pred = fine, coarse, coarse_pred
        centre_key = similarity
    else:
        centre_fine = xp.where(pair_ok, fine, nan)
        centre_coarse = xp.where(pair_ok, coarse, nan)
        centre_pred = xp.where(pred_ok, coarse_pred, nan)
        centre_key = key
    centre_fine, centre_coarse = centre_fine[interior], centre_coarse[interior]
    centre_pred = centre_pred[interior]
    ceiling = params.data_range[1]
    spectral, temporal, _ = params.uncertainties
    thr_lsr = _centre_minimum(xp, centre_coarse - centre_fine, ceiling) + np.float32(spectral)
    thr_msr = _centre_minimum(xp, centre_coarse[:, None] - centre_pred[None], ceiling) + np.float32(
        temporal
    )

    def contiguous(array: Any) -> Any:
        return xp.ascontiguousarray(array.astype(np.float32))

    return TileArrays(
        key=contiguous(key),
        value=contiguous(fine),
        lsr=contiguous(xp.abs(coarse - fine)),
        msr=contiguous(msr),
        centre_key=contiguous(centre_key[interior]),
        thr_lsr=contiguous(thr_lsr),
        thr_msr=contiguous(thr_msr),
        halo=halo,
    )


def _distance_factor(params: StarfmParams) -> np.ndarray:
    """``1 + d/A`` per window cell (row-major), d/A evaluated as the program does.

    The program computes ``(float)d * (float)resolution / (int)max_search_distance`` in float32
    and adds it to 1.0 in double.
    """
    lo, hi = params.offsets
    steps = np.arange(lo, hi + 1, dtype=np.float32)
    dy, dx = np.meshgrid(steps, steps, indexing="ij")
    distance = np.sqrt((dy * dy + dx * dx).astype(np.float64)).astype(np.float32)
    scaled = (distance * np.float32(params.resolution)) / np.float32(params.max_search_distance)
    return (1.0 + scaled.astype(np.float64)).reshape(-1)


def kernel_constants(
    params: StarfmParams, slices: Any, n_pairs: int, with_classes: bool
) -> KernelConstants:
    """The engines' scalar set-up for ``n_pairs`` pairs with global ``slices`` (one per pair).

    Raises ``ValueError`` when ``slices`` does not hold one finite value >= 0 per pair.
    """
    slices = np.asarray(to_numpy(slices), dtype=np.float64).reshape(-1)
    if slices.size != n_pairs:
        raise ValueError(f"slices must hold one value per pair ({n_pairs}), got {slices.size}")
    if not np.all(np.isfinite(slices)) or np.any(slices < 0):
        raise ValueError(f"slices must be finite and >= 0, got {slices.tolist()}")
    if not params.use_spatial:
        slices = np.full(n_pairs, np.inf)
    elif with_classes:
        slices = np.full(n_pairs, 0.5)
    lo, hi = params.offsets
    usda = params.mode == "usda"
    return KernelConstants(
        slices=slices.astype(np.float32),
        lo=lo,
        hi=hi,
        distance_factor=_distance_factor(params),
        and_filter=not usda,
        spectral_only=usda and n_pairs == 1,
        unit_weight_below=float(params.uncertainties[2]) if usda else -math.inf,
    )
