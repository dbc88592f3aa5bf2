"""STARFM (Gao et al. 2006) on plain arrays: parameters, global statistics, tiles, whole images.

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

Tiling. :func:`starfm_tile` computes a tile from the tile plus ``halo`` pixels of context with the
global slices passed in; pixels outside the image are passed as invalid, which is exactly how the
program treats them (rows outside are fill, columns outside are skipped). :func:`starfm` is
slices of the whole image + padding by ``halo`` + :func:`starfm_tile`, so tiled == whole image.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels._backend import array_module, to_numpy

MODES = ("usda", "paper")
ENGINES = ("auto", "numba", "reference", "cuda")
#: Largest candidate count stored in the uint16 quality layer (higher counts saturate).
QUALITY_MAX = np.iinfo(np.uint16).max
#: Class labels must be exactly representable as float32 similarity keys.
_CLASS_LIMIT = 2**24


def _is_real_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclass(frozen=True)
class StarfmParams:
    """Scalar STARFM parameters (names follow the USDA program's parameter file).

    Parameters
    ----------
    resolution
        Fine pixel size, in the units of ``max_search_distance`` (metres).
    max_search_distance
        Half the search window, same units; W = ``int(2*max_search_distance/resolution)``.
    num_slice_pure_test
        Number of slices; the similarity threshold is 2·sd/``num_slice_pure_test``.
    fine_uncertainty, coarse_uncertainty
        Sensor uncertainties, in data units.
    data_range
        (low, high): usable values lie in [low, high]; predictions must lie in (low, high).
    fill_value
        Value marking missing data in the inputs (never usable).
    mode
        ``"usda"`` (the C program v1.2.2, bit for bit) or ``"paper"`` (Gao et al. 2006).
    use_spatial
        Search the window (``True``) or use only the centre pixel of each pair (``False``).
    """

    resolution: float = 30.0
    max_search_distance: float = 750.0
    num_slice_pure_test: int = 40
    fine_uncertainty: float = 50.0
    coarse_uncertainty: float = 50.0
    data_range: tuple[float, float] = (-100, 10000)
    fill_value: float = -9999
    mode: str = "usda"
    use_spatial: bool = True

    def __post_init__(self) -> None:
        for name in ("resolution", "max_search_distance"):
            value = getattr(self, name)
            if not _is_real_number(value) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.window < 1:
            raise ValueError(
                f"max_search_distance={self.max_search_distance} with resolution="
                f"{self.resolution} gives an empty window (2*distance/resolution < 1)"
            )
        count = self.num_slice_pure_test
        if not isinstance(count, int | np.integer) or isinstance(count, bool) or count < 1:
            raise ValueError(f"num_slice_pure_test must be a positive integer, got {count!r}")
        for name in ("fine_uncertainty", "coarse_uncertainty"):
            value = getattr(self, name)
            if not _is_real_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        data_range = tuple(self.data_range) if _is_sequence(self.data_range) else None
        if (
            data_range is None
            or len(data_range) != 2
            or not all(_is_real_number(v) and math.isfinite(v) for v in data_range)
            or not data_range[0] < data_range[1]
        ):
            raise ValueError(
                f"data_range must be two finite numbers (low, high) with low < high, "
                f"got {self.data_range!r}"
            )
        object.__setattr__(self, "data_range", data_range)
        if not _is_real_number(self.fill_value) or not math.isfinite(self.fill_value):
            raise ValueError(f"fill_value must be a finite number, got {self.fill_value!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not isinstance(self.use_spatial, bool | np.bool_):
            raise ValueError(f"use_spatial must be True or False, got {self.use_spatial!r}")

    @property
    def window(self) -> int:
        """Search window width W in pixels (even in ``usda`` mode for the usual 750 m / 30 m)."""
        width = int(2.0 * self.max_search_distance / self.resolution)
        if self.mode == "paper":
            return 2 * (width // 2) + 1
        return width

    @property
    def offsets(self) -> tuple[int, int]:
        """Inclusive (lowest, highest) row/column offsets searched; (0, 0) without use_spatial."""
        if not self.use_spatial:
            return 0, 0
        width = self.window
        return -(width // 2), width - width // 2 - 1

    @property
    def halo(self) -> int:
        """Context pixels needed on every side of a tile so that tiled == whole image."""
        lo, hi = self.offsets
        return max(-lo, hi)

    @property
    def distance_scale(self) -> float:
        """A = max_search_distance / resolution, in pixels (distance weight 1 + d/A)."""
        return self.max_search_distance / self.resolution

    @property
    def uncertainties(self) -> tuple[float, float, float]:
        """(spectral ``|M-L|``, temporal ``|M_p-M_k|``, combined) uncertainties.

        ``usda`` truncates each to an integer as the program does (50/50 -> 70, 70, 98).
        """
        fine, coarse = self.fine_uncertainty, self.coarse_uncertainty
        if self.mode == "usda":
            fine, coarse = int(fine), int(coarse)
            spectral = int(math.sqrt(coarse * coarse + fine * fine))
            temporal = int(math.sqrt(2 * coarse * coarse))
            return spectral, temporal, int(math.sqrt(spectral**2 + temporal**2))
        spectral = math.hypot(coarse, fine)
        temporal = math.sqrt(2.0) * coarse
        return spectral, temporal, math.hypot(spectral, temporal)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, tuple | list | np.ndarray)


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


# ----------------------------------------------------------------------------- statistics


def slice_moments(
    fine: Any, fine_valid: Any = None, *, params: StarfmParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair count, sum and sum of squares of the pixels that enter the global slice.

    A pixel counts when it is valid, finite and strictly inside ``data_range`` (as in the
    program, the fill value is excluded by the range, not by comparison). Sums of partial
    results over chunks give the whole-image moments for :func:`slices_from_moments`.

    Parameters
    ----------
    fine
        (pairs, y, x) fine images (NumPy or CuPy, any real dtype; NaN = invalid).
    fine_valid
        Optional (pairs, y, x) or (y, x) bool mask.
    params
        The run's parameters.

    Returns
    -------
    count, total, total_sq : np.ndarray
        (pairs,) float64 each, on the host.
    """
    xp = array_module(fine, fine_valid)
    values = _checked_stack(xp, fine, "fine", axis_name="pairs")
    low, high = params.data_range
    values64 = values.astype(np.float64)
    with _quiet_invalid():
        usable = xp.isfinite(values64) & (values64 > low) & (values64 < high)
    if fine_valid is not None:
        usable &= _checked_mask(xp, fine_valid, values.shape, "fine_valid")
    kept = xp.where(usable, values64, 0.0)
    count = usable.sum(axis=(1, 2), dtype=np.float64)
    total = kept.sum(axis=(1, 2))
    total_sq = (kept * kept).sum(axis=(1, 2))
    return to_numpy(count), to_numpy(total), to_numpy(total_sq)


def slices_from_moments(
    count: Any, total: Any, total_sq: Any, *, params: StarfmParams
) -> np.ndarray:
    """Similarity thresholds (slices) from whole-image moments.

    ``sd = sqrt(total_sq/count - (total/count)²)`` (population), in float64 as the program does.
    ``usda``: ``int(int(sd)*2/num_slice_pure_test + 0.5)`` (the program keeps sd in a 16-bit
    integer); ``paper``: ``2*sd/num_slice_pure_test``. A pair without usable pixels gets 0
    (no pixel is similar, the output is fill).

    Returns
    -------
    np.ndarray
        (pairs,) int64 in ``usda`` mode, float64 in ``paper`` mode.
    """
    count = np.asarray(to_numpy(count), dtype=np.float64).reshape(-1)
    total = np.asarray(to_numpy(total), dtype=np.float64).reshape(-1)
    total_sq = np.asarray(to_numpy(total_sq), dtype=np.float64).reshape(-1)
    if not count.shape == total.shape == total_sq.shape:
        raise ValueError(
            f"moments must have one value per pair each, got {count.size}, {total.size}, "
            f"{total_sq.size} values"
        )
    has_data = count > 0
    safe = np.where(has_data, count, 1.0)
    mean = total / safe
    variance = np.maximum(total_sq / safe - mean * mean, 0.0)
    sd = np.where(has_data, np.sqrt(variance), 0.0)
    if params.mode == "usda":
        sd_int = np.minimum(np.trunc(sd), np.iinfo(np.int16).max)
        return np.trunc(sd_int * 2.0 / params.num_slice_pure_test + 0.5).astype(np.int64)
    return 2.0 * sd / params.num_slice_pure_test


def slice_thresholds(fine: Any, fine_valid: Any = None, *, params: StarfmParams) -> np.ndarray:
    """Global per-pair slices of whole images: :func:`slice_moments` + :func:`slices_from_moments`.

    Parameters
    ----------
    fine
        (pairs, y, x) whole fine images.
    fine_valid
        Optional (pairs, y, x) or (y, x) bool mask.
    params
        The run's parameters.

    Returns
    -------
    np.ndarray
        (pairs,) int64 (``usda``) or float64 (``paper``).
    """
    return slices_from_moments(*slice_moments(fine, fine_valid, params=params), params=params)


# ----------------------------------------------------------------------------- validation


@contextlib.contextmanager
def _quiet_invalid() -> Iterator[None]:
    with np.errstate(invalid="ignore"):
        yield


def _checked_stack(xp: Any, array: Any, name: str, *, axis_name: str) -> Any:
    """``array`` as a 3-D real array of ``xp``, checked for shape, dtype and infinities."""
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


def _checked_mask(xp: Any, mask: Any, shape: tuple[int, ...], name: str) -> Any:
    """``mask`` as a bool array broadcast to ``shape`` (accepts (n, y, x) or (y, x))."""
    mask = xp.asarray(mask)
    if mask.dtype != np.bool_:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"{name} must be a bool (or 0/1 integer) mask, got dtype {mask.dtype}")
        mask = mask != 0
    if mask.shape not in (shape, shape[1:]):
        raise ValueError(f"{name} must have shape {shape} or {shape[1:]}, got {mask.shape}")
    return xp.broadcast_to(mask, shape)


def _checked_class_map(xp: Any, class_map: Any, shape: tuple[int, ...]) -> Any:
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
class _Inputs:
    """Validated inputs of one call, on one device (masks broadcast, classes as float32)."""

    fine: Any
    coarse: Any
    coarse_pred: Any
    fine_valid: Any
    coarse_valid: Any
    coarse_pred_valid: Any
    class_map: Any


def _check_inputs(
    xp: Any,
    fine: Any,
    coarse: Any,
    coarse_pred: Any,
    fine_valid: Any,
    coarse_valid: Any,
    coarse_pred_valid: Any,
    class_map: Any,
) -> _Inputs:
    fine = _checked_stack(xp, fine, "fine", axis_name="pairs")
    coarse = _checked_stack(xp, coarse, "coarse", axis_name="pairs")
    coarse_pred = _checked_stack(xp, coarse_pred, "coarse_pred", axis_name="dates")
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
        return None if value is None else _checked_mask(xp, value, shape, name)

    return _Inputs(
        fine=fine,
        coarse=coarse,
        coarse_pred=coarse_pred,
        fine_valid=mask(fine_valid, fine.shape, "fine_valid"),
        coarse_valid=mask(coarse_valid, fine.shape, "coarse_valid"),
        coarse_pred_valid=mask(coarse_pred_valid, coarse_pred.shape, "coarse_pred_valid"),
        class_map=None if class_map is None else _checked_class_map(xp, class_map, fine.shape),
    )


# ----------------------------------------------------------------------------- preparation


def _usable(xp: Any, values: Any, valid: Any, params: StarfmParams) -> Any:
    """Pixels whose value may enter a sum: valid, finite, in the closed range, not fill."""
    low, high = params.data_range
    with _quiet_invalid():
        usable = (values >= low) & (values <= high) & (values != params.fill_value)
    usable &= ~xp.isnan(values)
    if valid is not None:
        usable &= valid
    return usable


def _centre_minimum(xp: Any, differences: Any, ceiling: float) -> Any:
    """Minimum over pairs (axis 0) of ``|differences|``, NaN ignored, capped at ``ceiling``."""
    magnitude = xp.abs(differences)
    magnitude = xp.where(xp.isnan(magnitude), np.float32(ceiling), magnitude)
    return xp.minimum(magnitude.min(axis=0), np.float32(ceiling))


def _prepare_tile(xp: Any, inputs: _Inputs, params: StarfmParams, halo: int) -> TileArrays:
    """The engines' float32 planes of a halo-extended tile."""
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


def _kernel_constants(
    params: StarfmParams, slices: Any, n_pairs: int, with_classes: bool
) -> KernelConstants:
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


def _finish(xp: Any, fsr: Any, count: Any, params: StarfmParams) -> StarfmResult:
    """Range test, rounding and quality layer from the engines' sums."""
    low, high = params.data_range
    kept = (count > 0) & (fsr > np.float32(low)) & (fsr < np.float32(high))
    if params.mode == "usda":
        fsr = xp.trunc(fsr.astype(np.float64) + 0.5).astype(np.float32)
    prediction = xp.where(kept, fsr, np.float32(np.nan)).astype(np.float32)
    quality = xp.where(kept, xp.minimum(count, QUALITY_MAX), 0).astype(np.uint16)
    return StarfmResult(prediction=prediction, quality=quality)


# ----------------------------------------------------------------------------- engines


def _engine(name: str, xp: Any) -> Callable[[TileArrays, KernelConstants, Any], tuple[Any, Any]]:
    """The ``predict_sums`` function of engine ``name`` for arrays of ``xp``."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {name!r}")
    on_gpu = xp is not np
    if name == "auto":
        name = "cuda" if on_gpu else "numba"
    if name == "numba" and on_gpu:
        raise ValueError("engine 'numba' runs on NumPy arrays; CuPy inputs use 'cuda' or 'auto'")
    if name == "numba":
        from kernels.starfm import _numba

        return _numba.predict_sums
    if name == "cuda":
        from kernels.starfm import _cuda

        return _cuda.predict_sums
    from kernels.starfm import _ref

    return _ref.predict_sums


# ----------------------------------------------------------------------------- public API


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
    predict = _engine(engine, xp)
    if not isinstance(halo, int | np.integer) or halo < params.halo:
        raise ValueError(f"halo must be an integer >= params.halo = {params.halo}, got {halo!r}")
    halo = int(halo)
    inputs = _check_inputs(
        xp, fine, coarse, coarse_pred, fine_valid, coarse_valid, coarse_pred_valid, class_map
    )
    rows, cols = inputs.fine.shape[1:]
    if rows <= 2 * halo or cols <= 2 * halo:
        raise ValueError(
            f"a tile with halo {halo} needs more than {2 * halo} rows and columns, "
            f"got {rows}x{cols}"
        )
    consts = _kernel_constants(params, slices, inputs.fine.shape[0], inputs.class_map is not None)
    tile = _prepare_tile(xp, inputs, params, halo)
    fsr, count = predict(tile, consts, xp)
    return _finish(xp, fsr, count, params)


def _pad(xp: Any, array: Any, halo: int, fill: Any) -> Any:
    if array is None or halo == 0:
        return array
    width = [(0, 0)] * (array.ndim - 2) + [(halo, halo), (halo, halo)]
    return xp.pad(array, width, mode="constant", constant_values=fill)


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
    inputs = _check_inputs(
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
        _pad(xp, inputs.fine.astype(np.float32), halo, nan),
        _pad(xp, inputs.coarse.astype(np.float32), halo, nan),
        _pad(xp, inputs.coarse_pred.astype(np.float32), halo, nan),
        slices=slices,
        params=params,
        fine_valid=_pad(xp, inputs.fine_valid, halo, False),
        coarse_valid=_pad(xp, inputs.coarse_valid, halo, False),
        coarse_pred_valid=_pad(xp, inputs.coarse_pred_valid, halo, False),
        class_map=None if class_map is None else _pad(xp, xp.asarray(class_map), halo, 0),
        halo=halo,
        engine=engine,
    )
