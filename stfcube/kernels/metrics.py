"""Accuracy metrics for spatiotemporal fusion, on plain NumPy arrays.

Every metric compares a *fused* (predicted) image ``x`` with a *truth* (observed fine) image ``y``
over the pixels that are valid in both. Two forms are offered:

* plain-array functions (:func:`rmse`, :func:`ssim`, :func:`sam`, ...) for whole images;
* mergeable partial forms for tiled, out-of-core reduction: :func:`pair_moments` (one tile) and
  :func:`merge_moments` (two tiles), :func:`ssim_map` (one tile with a halo of
  :func:`ssim_radius` pixels) and :func:`spectral_angle` (per-pixel angles, summed by the caller).

The moment vector of a tile holds, over its valid pixels, the count ``n``, the means of ``x`` and
``y``, the centred sums of squares ``M2x = Σ(x−x̄)²``, ``M2y = Σ(y−ȳ)²``, the centred co-moment
``Cxy = Σ(x−x̄)(y−ȳ)``, and the raw sums ``Σ|x−y|``, ``Σ(x−y)²``. Centred sums are merged with the
pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise algorithm for
computing sample variances"), which avoids the cancellation of ``Σx² − n·x̄²`` on large images of
reflectance with small variance; the error sums are accumulated directly for the same reason.

No xarray, no dask, no I/O: the pipeline (``stfcube.pipeline.evaluate.reduce``) maps these functions
over chunks. The per-pixel passes (:func:`pair_moments`, :func:`ssim_map`) are numba loops that read
the images once in their own dtype (no float64 copies, no temporaries), ~10x the NumPy/SciPy
formulation they replaced and equal to it within float64 rounding.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

#: Names of the entries of a moment vector (last axis of :func:`pair_moments`' result).
MOMENT_FIELDS: tuple[str, ...] = (
    "count",
    "mean_x",
    "mean_y",
    "m2_x",
    "m2_y",
    "c_xy",
    "sum_abs_diff",
    "sum_sq_diff",
)
N_MOMENTS = len(MOMENT_FIELDS)
_N, _MX, _MY, _M2X, _M2Y, _CXY, _SAD, _SSD = range(N_MOMENTS)

#: scikit-image defaults for SSIM: 7x7 uniform window, K1, K2, sample covariance.
SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03

FloatArray = NDArray[np.float64]


def _valid_mask(x: NDArray, y: NDArray, valid: ArrayLike | None) -> NDArray[np.bool_]:
    """Pixels usable in both images: finite in ``x`` and ``y`` and true in ``valid`` (if given)."""
    mask = np.isfinite(x) & np.isfinite(y)
    if valid is not None:
        mask &= np.broadcast_to(np.asarray(valid, dtype=bool), mask.shape)
    return mask


def _as_pair(fused: ArrayLike, truth: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """:func:`_as_arrays` in float64."""
    x, y = _as_arrays(fused, truth)
    return x.astype(np.float64, copy=False), y.astype(np.float64, copy=False)


def _as_arrays(fused: ArrayLike, truth: ArrayLike) -> tuple[NDArray, NDArray]:
    """Contiguous float arrays of the same shape, in their own float dtype (ints as float64)."""
    x, y = np.asarray(fused), np.asarray(truth)
    x = np.ascontiguousarray(x if x.dtype.kind == "f" else x.astype(np.float64))
    y = np.ascontiguousarray(y if y.dtype.kind == "f" else y.astype(np.float64))
    if x.shape != y.shape:
        raise ValueError(f"fused shape {x.shape} differs from truth shape {y.shape}")
    return x, y


def pair_moments(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> FloatArray:
    """Mergeable moments of a fused/truth pair over their common valid pixels.

    Parameters
    ----------
    fused, truth : array_like
        Images of the same shape (any number of dimensions). Non-finite values are invalid.
    valid : array_like of bool, optional
        Extra validity mask, broadcastable to the images' shape.

    Returns
    -------
    numpy.ndarray
        Float64 vector of length :data:`N_MOMENTS`, fields as in :data:`MOMENT_FIELDS`
        (all zero when no pixel is valid).
    """
    x, y = _as_arrays(fused, truth)
    mask = _valid_mask(x, y, valid)
    return _moments_kernel(x.ravel(), y.ravel(), mask.ravel())


@njit(cache=True, nogil=True, error_model="numpy")
def _moments_kernel(x: NDArray, y: NDArray, mask: NDArray[np.bool_]) -> FloatArray:
    """Two passes in float64: sums for the means, then centred sums and the error sums."""
    out = np.zeros(N_MOMENTS)
    n, sx, sy = 0, 0.0, 0.0
    for i in range(x.size):
        if mask[i]:
            n += 1
            sx += x[i]
            sy += y[i]
    if n == 0:
        return out
    mx, my = sx / n, sy / n
    m2x = m2y = cxy = sad = ssd = 0.0
    for i in range(x.size):
        if mask[i]:
            dx, dy = x[i] - mx, y[i] - my
            diff = np.float64(x[i]) - y[i]
            m2x += dx * dx
            m2y += dy * dy
            cxy += dx * dy
            sad += abs(diff)
            ssd += diff * diff
    out[0], out[1], out[2], out[3] = n, mx, my, m2x
    out[4], out[5], out[6], out[7] = m2y, cxy, sad, ssd
    return out


def merge_moments(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Merge two moment vectors (or stacks of them, fields on the last axis).

    Uses the pairwise update of Chan, Golub & LeVeque (1979): with ``δx = x̄_b − x̄_a``,
    ``M2x = M2x_a + M2x_b + δx²·n_a·n_b/n`` and ``Cxy = Cxy_a + Cxy_b + δx·δy·n_a·n_b/n``.

    Parameters
    ----------
    a, b : array_like
        Moment vectors from :func:`pair_moments` (broadcastable stacks allowed).

    Returns
    -------
    numpy.ndarray
        The moments of the union of both pixel sets.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = a[..., _N], b[..., _N]
    n = na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        wa = np.where(n > 0, na / n, 0.0)
        wb = np.where(n > 0, nb / n, 0.0)
    dx = b[..., _MX] - a[..., _MX]
    dy = b[..., _MY] - a[..., _MY]
    cross = na * wb  # n_a·n_b/n
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., _N] = n
    out[..., _MX] = wa * a[..., _MX] + wb * b[..., _MX]
    out[..., _MY] = wa * a[..., _MY] + wb * b[..., _MY]
    out[..., _M2X] = a[..., _M2X] + b[..., _M2X] + dx * dx * cross
    out[..., _M2Y] = a[..., _M2Y] + b[..., _M2Y] + dy * dy * cross
    out[..., _CXY] = a[..., _CXY] + b[..., _CXY] + dx * dy * cross
    out[..., _SAD] = a[..., _SAD] + b[..., _SAD]
    out[..., _SSD] = a[..., _SSD] + b[..., _SSD]
    return out


def reduce_moments(moments: ArrayLike, axis: int | tuple[int, ...]) -> FloatArray:
    """Merge a stack of moment vectors along one or more axes (never the last, fields, axis).

    Parameters
    ----------
    moments : array_like
        Stack of moment vectors, fields on the last axis.
    axis : int or tuple of int
        Axes to merge away.

    Returns
    -------
    numpy.ndarray
        The merged moments, with ``axis`` removed.
    """
    stack = np.asarray(moments, dtype=np.float64)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(sorted(ax % stack.ndim for ax in axes))
    if stack.ndim - 1 in axes:
        raise ValueError("cannot reduce over the moment-field (last) axis")
    kept_shape = [stack.shape[ax] for ax in range(stack.ndim) if ax not in axes]
    flat = np.moveaxis(stack, axes, range(len(axes))).reshape(-1, *kept_shape)
    while flat.shape[0] > 1:  # pairwise tree: halves the stack until one vector is left
        half = flat.shape[0] // 2
        merged = merge_moments(flat[:half], flat[half : 2 * half])
        flat = np.concatenate([merged, flat[2 * half :]]) if flat.shape[0] % 2 else merged
    if flat.shape[0] == 0:
        return np.zeros(kept_shape)
    return flat[0]


def _ratio(num: ArrayLike, den: ArrayLike) -> FloatArray:
    """``num / den`` with NaN where ``den`` is zero (an undefined metric, never a warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def count_from_moments(m: ArrayLike) -> FloatArray:
    """Number of valid pixels of a moment vector (stack)."""
    return np.asarray(m, dtype=np.float64)[..., _N]


def mean_truth_from_moments(m: ArrayLike) -> FloatArray:
    """Mean of the truth over the valid pixels (NaN when there are none)."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m[..., _N] > 0, m[..., _MY], np.nan)


def mean_fused_from_moments(m: ArrayLike) -> FloatArray:
    """Mean of the fused image over the valid pixels (NaN when there are none)."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m[..., _N] > 0, m[..., _MX], np.nan)


def rmse_from_moments(m: ArrayLike) -> FloatArray:
    """Root-mean-square error ``sqrt(Σ(x−y)²/n)``."""
    m = np.asarray(m, dtype=np.float64)
    return np.sqrt(_ratio(m[..., _SSD], m[..., _N]))


def mae_from_moments(m: ArrayLike) -> FloatArray:
    """Mean absolute error ``Σ|x−y|/n``."""
    m = np.asarray(m, dtype=np.float64)
    return _ratio(m[..., _SAD], m[..., _N])


def bias_from_moments(m: ArrayLike) -> FloatArray:
    """Bias ``mean(x − y) = x̄ − ȳ`` (positive: the fused image is too bright)."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m[..., _N] > 0, m[..., _MX] - m[..., _MY], np.nan)


def pearson_r_from_moments(m: ArrayLike) -> FloatArray:
    """Pearson correlation ``r = Cxy / sqrt(M2x·M2y)`` (NaN for a constant image)."""
    m = np.asarray(m, dtype=np.float64)
    return np.clip(_ratio(m[..., _CXY], np.sqrt(m[..., _M2X] * m[..., _M2Y])), -1.0, 1.0)


def r2_from_moments(m: ArrayLike) -> FloatArray:
    """Coefficient of determination of the fused image as a predictor of the truth.

    ``R² = 1 − SS_res/SS_tot`` with ``SS_res = Σ(x−y)²`` and ``SS_tot = Σ(y−ȳ)²`` (as
    ``sklearn.metrics.r2_score(truth, fused)``). It is not ``r²``: it penalises bias and gain errors
    and is negative when the prediction is worse than the truth's mean. NaN for a constant truth.
    """
    m = np.asarray(m, dtype=np.float64)
    return 1.0 - _ratio(m[..., _SSD], m[..., _M2Y])


def psnr_from_moments(m: ArrayLike, data_range: float | ArrayLike) -> FloatArray:
    """Peak signal-to-noise ratio ``10·log10(L² / MSE)`` in dB with data range ``L``.

    Same definition as ``skimage.metrics.peak_signal_noise_ratio``; ``inf`` for a perfect match.
    """
    m = np.asarray(m, dtype=np.float64)
    mse = _ratio(m[..., _SSD], m[..., _N])
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.square(np.asarray(data_range, dtype=np.float64)) / mse)


def uiqi_from_moments(m: ArrayLike) -> FloatArray:
    """Universal image quality index Q of Wang & Bovik (2002), global form.

    ``Q = 4·σxy·x̄·ȳ / ((σx² + σy²)(x̄² + ȳ²))`` over all valid pixels at once (one window covering
    the image, not the 8x8 sliding-window average of the paper), so it merges exactly over tiles.
    Reference: Z. Wang, A. C. Bovik, "A universal image quality index", IEEE SPL 9(3), 2002.
    """
    m = np.asarray(m, dtype=np.float64)
    mx, my = m[..., _MX], m[..., _MY]
    num = 4.0 * m[..., _CXY] * mx * my
    den = (m[..., _M2X] + m[..., _M2Y]) * (mx * mx + my * my)
    return np.where(m[..., _N] > 1, _ratio(num, den), np.nan)


def rmse(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Root-mean-square error over common valid pixels: ``sqrt(mean((x − y)²))``."""
    return float(rmse_from_moments(pair_moments(fused, truth, valid)))


def mae(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Mean absolute error over common valid pixels: ``mean(|x − y|)``."""
    return float(mae_from_moments(pair_moments(fused, truth, valid)))


def bias(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Mean error ``mean(x − y)`` over common valid pixels (fused minus truth)."""
    return float(bias_from_moments(pair_moments(fused, truth, valid)))


def pearson_r(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Pearson correlation coefficient over common valid pixels (as ``scipy.stats.pearsonr``)."""
    return float(pearson_r_from_moments(pair_moments(fused, truth, valid)))


def r2(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Coefficient of determination ``1 − Σ(x−y)²/Σ(y−ȳ)²``; see :func:`r2_from_moments`."""
    return float(r2_from_moments(pair_moments(fused, truth, valid)))


def psnr(
    fused: ArrayLike, truth: ArrayLike, data_range: float, valid: ArrayLike | None = None
) -> float:
    """Peak signal-to-noise ratio in dB; see :func:`psnr_from_moments`."""
    return float(psnr_from_moments(pair_moments(fused, truth, valid), data_range))


def uiqi(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Global universal image quality index Q; see :func:`uiqi_from_moments`."""
    return float(uiqi_from_moments(pair_moments(fused, truth, valid)))


def ssim_radius(win_size: int = SSIM_WIN_SIZE) -> int:
    """Halo in pixels that a tile needs so that its SSIM map equals the whole-image map."""
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"SSIM window size must be odd and >= 3, got {win_size}")
    return (win_size - 1) // 2


def ssim_map(
    fused: ArrayLike,
    truth: ArrayLike,
    valid: ArrayLike | None = None,
    *,
    data_range: float,
    win_size: int = SSIM_WIN_SIZE,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> FloatArray:
    """Local SSIM map of two 2-D images, NaN where the window is not entirely valid.

    Follows ``skimage.metrics.structural_similarity`` with its defaults: a ``win_size`` x
    ``win_size`` uniform window, sample covariances (factor ``N/(N−1)``),
    ``C1 = (K1·L)²``, ``C2 = (K2·L)²`` and

    ``SSIM = (2·μx·μy + C1)(2·σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))``

    (Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to
    structural similarity", IEEE TIP 13(4), 2004). A pixel gets a value only when every pixel of its
    window is valid in both images and inside the array, so pixels closer than
    :func:`ssim_radius` to the array edge are NaN, as scikit-image crops them. Hence a tile
    extended by that halo on each side gives exactly the whole-image values on its interior, and
    the mean of the non-NaN values of an unmasked image equals scikit-image's mean SSIM.

    Parameters
    ----------
    fused, truth : array_like
        2-D images of the same shape.
    valid : array_like of bool, optional
        Validity mask; non-finite values are always invalid.
    data_range : float
        Dynamic range ``L`` of the data (e.g. 1.0 for reflectance, 10000 for scaled DN).
    win_size : int
        Odd window side length (default 7).
    k1, k2 : float
        Stabilising constants (defaults 0.01 and 0.03).

    Returns
    -------
    numpy.ndarray
        Float64 SSIM map of the images' shape.
    """
    x, y = _as_arrays(fused, truth)
    if x.ndim != 2:
        raise ValueError(f"SSIM needs 2-D images, got shape {x.shape}")
    if not data_range > 0:
        raise ValueError(f"SSIM data_range must be positive, got {data_range}")
    radius = ssim_radius(win_size)
    mask = np.ascontiguousarray(_valid_mask(x, y, valid))
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    return _ssim_kernel(x, y, mask, radius, c1, c2)


@njit(cache=True, nogil=True, error_model="numpy")
def _ssim_kernel(
    x: NDArray, y: NDArray, mask: NDArray[np.bool_], radius: int, c1: float, c2: float
) -> FloatArray:
    """SSIM map from separable window sums (rows, then columns), float64, NaN where the window
    leaves the array or holds an invalid pixel."""
    rows, cols = x.shape
    out = np.full((rows, cols), np.nan)
    if rows <= 2 * radius or cols <= 2 * radius:
        return out
    inner = cols - 2 * radius
    # sums along each row's windows of the five moments and the valid count
    row_sums = np.zeros((6, rows, inner))
    for i in range(rows):
        for j in range(inner):
            s0 = s1 = s2 = s3 = s4 = 0.0
            count = 0
            for k in range(j, j + 2 * radius + 1):
                if mask[i, k]:
                    a, b = np.float64(x[i, k]), np.float64(y[i, k])
                    s0 += a
                    s1 += b
                    s2 += a * a
                    s3 += b * b
                    s4 += a * b
                    count += 1
            row_sums[0, i, j], row_sums[1, i, j], row_sums[2, i, j] = s0, s1, s2
            row_sums[3, i, j], row_sums[4, i, j], row_sums[5, i, j] = s3, s4, count
    size = 2 * radius + 1
    n_window = size * size
    cov_norm = n_window / (n_window - 1.0)
    for i in range(radius, rows - radius):
        for j in range(inner):
            window_count = 0.0
            for k in range(i - radius, i + radius + 1):
                window_count += row_sums[5, k, j]
            if window_count < n_window:
                continue
            s0 = s1 = s2 = s3 = s4 = 0.0
            for k in range(i - radius, i + radius + 1):
                s0 += row_sums[0, k, j]
                s1 += row_sums[1, k, j]
                s2 += row_sums[2, k, j]
                s3 += row_sums[3, k, j]
                s4 += row_sums[4, k, j]
            ux, uy = s0 / n_window, s1 / n_window
            vx = cov_norm * (s2 / n_window - ux * ux)
            vy = cov_norm * (s3 / n_window - uy * uy)
            vxy = cov_norm * (s4 / n_window - ux * uy)
            num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2)
            den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
            out[i, j + radius] = num / den
    return out


def ssim(
    fused: ArrayLike,
    truth: ArrayLike,
    valid: ArrayLike | None = None,
    *,
    data_range: float,
    win_size: int = SSIM_WIN_SIZE,
) -> float:
    """Mean SSIM over the pixels whose whole window is valid; see :func:`ssim_map`.

    Returns NaN when no window is complete.
    """
    smap = ssim_map(fused, truth, valid, data_range=data_range, win_size=win_size)
    defined = np.isfinite(smap)
    return float(smap[defined].mean()) if defined.any() else float("nan")


def spectral_angle(dot: ArrayLike, norm2_x: ArrayLike, norm2_y: ArrayLike) -> FloatArray:
    """Per-pixel spectral angle in degrees from ``Σ_b x_b·y_b``, ``Σ_b x_b²`` and ``Σ_b y_b²``.

    ``θ = arccos(⟨x, y⟩ / (‖x‖·‖y‖))``; NaN where either spectrum is the zero vector.
    """
    cos = _ratio(dot, np.sqrt(np.asarray(norm2_x, np.float64) * np.asarray(norm2_y, np.float64)))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def sam(fused: ArrayLike, truth: ArrayLike, valid: ArrayLike | None = None) -> float:
    """Spectral angle mapper: mean spectral angle in degrees over pixels valid in every band.

    ``SAM = mean_p arccos(⟨x_p, y_p⟩ / (‖x_p‖·‖y_p‖))`` (Yuhas, Goetz & Boardman 1992), where
    ``x_p``, ``y_p`` are the band vectors of pixel ``p``; pixels with a zero spectrum are skipped.

    Parameters
    ----------
    fused, truth : array_like
        Images shaped ``(band, ...)``.
    valid : array_like of bool, optional
        Mask broadcastable to the images (per band) or to ``images.shape[1:]`` (per pixel).

    Returns
    -------
    float
        Mean angle in degrees (NaN when no pixel qualifies).
    """
    x, y = _as_pair(fused, truth)
    mask = _valid_mask(x, y, None if valid is None else _per_band_mask(valid, x.shape)).all(axis=0)
    angles = spectral_angle(
        np.where(mask, (x * y).sum(axis=0), 0.0),
        np.where(mask, (x * x).sum(axis=0), 0.0),
        np.where(mask, (y * y).sum(axis=0), 0.0),
    )[mask]
    angles = angles[np.isfinite(angles)]
    return float(angles.mean()) if angles.size else float("nan")


def _per_band_mask(valid: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    mask = np.asarray(valid, dtype=bool)
    return mask if mask.ndim == len(shape) else np.broadcast_to(mask, shape)


def ergas_from_band_stats(
    rmse_per_band: ArrayLike, mean_truth_per_band: ArrayLike, resolution_ratio: float
) -> float:
    """ERGAS from per-band RMSE and truth means.

    ``ERGAS = 100 · (h/l) · sqrt(mean_b (RMSE_b / μ_b)²)`` with ``h/l`` the ratio of the fine to the
    coarse pixel size (e.g. 30/480) and ``μ_b`` the truth mean of band ``b`` (Wald, "Quality of
    high resolution synthesised images: is there a simple criterion?", 2000). Bands with an
    undefined RMSE or zero mean are skipped; NaN when none is left.
    """
    if not resolution_ratio > 0:
        raise ValueError(f"ERGAS resolution ratio h/l must be positive, got {resolution_ratio}")
    rel = _ratio(np.asarray(rmse_per_band, np.float64), np.asarray(mean_truth_per_band, np.float64))
    rel = rel[np.isfinite(rel)]
    if rel.size == 0:
        return float("nan")
    return float(100.0 * resolution_ratio * np.sqrt(np.mean(rel * rel)))


def ergas(
    fused: ArrayLike,
    truth: ArrayLike,
    resolution_ratio: float,
    valid: ArrayLike | None = None,
) -> float:
    """ERGAS of ``(band, ...)`` images; see :func:`ergas_from_band_stats`.

    Each band's RMSE and mean use the pixels valid in that band.
    """
    x, y = _as_pair(fused, truth)
    mask = None if valid is None else _per_band_mask(valid, x.shape)
    moments = np.stack(
        [pair_moments(x[b], y[b], None if mask is None else mask[b]) for b in range(x.shape[0])]
    )
    return ergas_from_band_stats(
        rmse_from_moments(moments), mean_truth_from_moments(moments), resolution_ratio
    )
