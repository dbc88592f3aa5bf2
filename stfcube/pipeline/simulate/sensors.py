"""The two sensors of a site: a fine sensor with clouds, shadows and swath-edge nodata, and a
coarse sensor (area average, PSF blur and shift on the coarse grid, noise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stfcube.pipeline.simulate.constants import NODATA, SCALE, STORED_MAX, STORED_MIN, FloatArray
from stfcube.pipeline.simulate.noise import (
    Salt,
    global_quantile,
    hash_normal,
    pixel_centres,
    value_noise,
)

_SHADOW_FACTOR = 0.35
_CLOUD_EDGE = 0.06
_CLOUD = (0.550, 0.560, 0.580, 0.620, 0.450, 0.300)
_CLOUD_SPECTRUM = np.array(_CLOUD, dtype=np.float32)


@dataclass(frozen=True)
class CloudField:
    """Clouds of one fine date: a thresholded multi-scale noise field and its shadow offset."""

    seed: int
    salt: int
    threshold: float
    shadow_rows: float
    shadow_cols: float
    size: int

    def density(self, rows: np.ndarray, cols: np.ndarray) -> FloatArray:
        """Cloud density field on the grid ``rows × cols`` (cloud where above ``threshold``)."""
        total = np.zeros((rows.size, cols.size), dtype=np.float32)
        for octave, (spacing, weight) in enumerate(((64.0, 1.0), (24.0, 0.5), (8.0, 0.25))):
            noise = value_noise(
                rows, cols, seed=self.seed, salt=self.salt + octave, spacing=spacing
            )
            total += np.float32(weight) * noise
        return total / np.float32(1.75)


def make_cloud_field(seed: int, size: int, date_index: int) -> CloudField:
    """Draw the cloud field of the fine date number ``date_index`` (10-25 % cloud cover)."""
    rng = np.random.default_rng([seed, date_index])
    cover = rng.uniform(0.10, 0.25)
    salt = Salt.CLOUD + 4 * date_index
    probe = CloudField(seed, salt, 0.0, 0.0, 0.0, size)
    threshold = global_quantile(probe.density, size, 1.0 - cover)
    return CloudField(
        seed=seed,
        salt=salt,
        threshold=threshold,
        shadow_rows=float(rng.uniform(6, 14)),
        shadow_cols=float(rng.uniform(8, 16)),
        size=size,
    )


def swath_nodata(rows: np.ndarray, cols: np.ndarray, size: int) -> npt.NDArray[np.bool_]:
    """The wedge beyond a slanted swath edge (upper-right corner) that a cloudy date misses."""
    return (cols[None, :] - 0.3 * rows[:, None]) > 0.85 * size


def observe_fine(
    truth: npt.NDArray[np.int16],
    row0: int,
    clouds: CloudField | None,
    band_indices: Sequence[int],
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint8]]:
    """What the fine sensor records over rows ``row0:`` of the truth, and its mask.

    Clear pixels are the truth itself; cloud pixels blend towards a bright cloud spectrum
    (semi-transparent edges), shadow pixels are darkened and the swath-edge wedge is nodata. The
    mask is 1 for clear pixels and 0 for cloud, shadow and nodata.

    Parameters
    ----------
    truth : numpy.ndarray
        int16 stored truth, shape ``(bands, rows, cols)``.
    row0 : int
        Global row of ``truth[:, 0]``.
    clouds : CloudField or None
        The date's clouds, or None for a clear date.
    band_indices : sequence of int
        Indices into :data:`BAND_NAMES` of the bands in ``truth``.

    Returns
    -------
    data : numpy.ndarray
        int16 observation, :data:`NODATA` outside the swath.
    mask : numpy.ndarray
        uint8 mask, shape ``(rows, cols)``.
    """
    height, width = truth.shape[1:]
    if clouds is None:
        return truth, np.ones((height, width), dtype=np.uint8)
    rows = pixel_centres(row0, row0 + height)
    cols = pixel_centres(0, width)
    density = clouds.density(rows, cols)
    threshold = np.float32(clouds.threshold)
    alpha = np.clip((density - threshold) / np.float32(_CLOUD_EDGE), 0, 1)
    cloudy = density > threshold
    shadow = (
        clouds.density(rows + clouds.shadow_rows, cols + clouds.shadow_cols) > threshold
    ) & ~cloudy
    missing = swath_nodata(rows, cols, clouds.size)
    thickness = np.float32(0.8) + np.float32(0.4) * np.clip(
        (density - threshold) / np.float32(0.2), 0, 1
    )
    observed = truth.astype(np.float32) * np.where(shadow, np.float32(_SHADOW_FACTOR), 1)
    cloud = _CLOUD_SPECTRUM[list(band_indices), None, None] / np.float32(SCALE) * thickness
    observed = (1 - alpha) * observed + alpha * cloud
    stored = np.clip(np.rint(observed), STORED_MIN, STORED_MAX).astype(np.int16)
    clear = ~(cloudy | shadow | missing)
    data = np.where(clear, truth, stored)
    data[:, missing] = NODATA
    return data, clear.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Coarse sensor: area average, PSF blur and shift on the coarse grid, noise.


@dataclass(frozen=True)
class CoarseSensor:
    """How the coarse sensor sees the fine truth.

    Attributes
    ----------
    ratio : int
        Coarse pixel size / fine pixel size.
    psf_sigma : float
        Standard deviation of the Gaussian point-spread function, in coarse pixels (0: none).
    shift_rows, shift_cols : float
        Misregistration in coarse pixels: coarse pixel ``(i, j)`` sees the ground at
        ``(i + shift_rows, j + shift_cols)`` of its nominal grid (rows grow southwards, columns
        eastwards).
    noise : float
        Standard deviation of additive Gaussian noise, in reflectance units.
    """

    ratio: int = 16
    psf_sigma: float = 0.5
    shift_rows: float = 0.2
    shift_cols: float = 0.3
    noise: float = 0.01

    def kernels(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Separable correlation kernels along rows and columns (see :func:`psf_kernel`)."""
        sigma = self.psf_sigma
        return psf_kernel(sigma, self.shift_rows), psf_kernel(sigma, self.shift_cols)

    def halo(self) -> int:
        """Coarse pixels of context needed above and below a block of rows."""
        return (len(self.kernels()[0]) - 1) // 2


def psf_kernel(sigma: float, shift: float, truncate: float = 3.0) -> npt.NDArray[np.float64]:
    """1-D correlation weights of a Gaussian blur followed by a sub-pixel shift.

    ``out[i] = Σ_k w[k] · a[i + k]`` for ``k = -R..R`` with ``R = (len(w) - 1) // 2``. The blur is
    a sampled, normalised Gaussian truncated at ``truncate · sigma``; the shift is a linear
    interpolation at ``i + shift``, so the kernel's centroid is exactly ``shift``.

    Parameters
    ----------
    sigma : float
        Gaussian standard deviation in pixels (0: no blur).
    shift : float
        Sub-pixel (or larger) shift in pixels.
    truncate : float
        Kernel radius in standard deviations.

    Returns
    -------
    numpy.ndarray
        float64 weights of odd length, summing to 1.
    """
    radius = math.ceil(truncate * sigma) if sigma > 0 else 0
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    gauss = np.exp(-0.5 * (offsets / sigma) ** 2) if sigma > 0 else np.ones(1)
    gauss /= gauss.sum()
    whole = math.floor(shift)
    frac = shift - whole
    interp = np.array([1.0 - frac, frac]) if frac > 0 else np.ones(1)
    combined = np.convolve(gauss, interp)
    first = -radius + whole
    last = first + combined.size - 1
    half = max(abs(first), abs(last))
    weights = np.zeros(2 * half + 1)
    weights[first + half : last + half + 1] = combined
    return weights


def block_mean(fine: npt.NDArray[np.int16], ratio: int) -> npt.NDArray[np.float64]:
    """Area average of ``(bands, rows, cols)`` over ``ratio × ratio`` blocks (exact in float64)."""
    bands, height, width = fine.shape
    blocks = fine.reshape(bands, height // ratio, ratio, width // ratio, ratio)
    return blocks.sum(axis=(2, 4), dtype=np.float64) / (ratio * ratio)


def correlate_valid(
    values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], axis: int
) -> npt.NDArray[np.float64]:
    """Correlate along ``axis`` keeping only outputs with full support (shrinks by ``len - 1``)."""
    n_out = values.shape[axis] - (weights.size - 1)
    out = np.zeros((*values.shape[:axis], n_out, *values.shape[axis + 1 :]))
    for k, weight in enumerate(weights):
        if weight != 0.0:
            out += weight * np.take(values, np.arange(k, k + n_out), axis=axis)
    return out


def coarse_noise(
    seed: int, day: int, band_indices: Sequence[int], rows: np.ndarray, cols: np.ndarray
) -> npt.NDArray[np.float64]:
    """Standard normal noise per (day, band, coarse row, coarse column), hashed from the seed."""
    bands = np.asarray(band_indices)[:, None, None]
    salts = (Salt.COARSE_NOISE_U1, Salt.COARSE_NOISE_U2)
    return hash_normal(seed, salts, day, bands, rows[None, :, None], cols[None, None, :])


def observe_coarse(
    truth: npt.NDArray[np.int16],
    truth_row0: int,
    rows: tuple[int, int],
    sensor: CoarseSensor,
    *,
    seed: int,
    day: int,
    size: int,
    band_indices: Sequence[int],
) -> npt.NDArray[np.int16]:
    """Coarse-sensor image of coarse rows ``rows[0]:rows[1]`` from the fine truth around them.

    Parameters
    ----------
    truth : numpy.ndarray
        int16 fine truth ``(bands, fine rows, size)`` starting at global fine row ``truth_row0``
        (a multiple of the ratio) and covering the requested rows plus up to
        ``sensor.halo()`` coarse rows of context on each side (less at the image edges, which
        are extended by replication).
    truth_row0 : int
        Global fine row of ``truth[:, 0]``.
    rows : tuple of int
        Coarse row range to produce.
    sensor : CoarseSensor
        PSF, shift and noise.
    seed, day : int
        Site seed and day index (for the noise).
    size : int
        Fine image size (for the edge handling).
    band_indices : sequence of int
        Indices into :data:`BAND_NAMES` of the bands in ``truth``.

    Returns
    -------
    numpy.ndarray
        int16 coarse image, shape ``(bands, rows[1] - rows[0], size // ratio)``.
    """
    ratio = sensor.ratio
    kernel_rows, kernel_cols = sensor.kernels()
    halo_rows = (kernel_rows.size - 1) // 2
    halo_cols = (kernel_cols.size - 1) // 2
    means = block_mean(truth, ratio)
    have0 = truth_row0 // ratio
    have1 = have0 + means.shape[1]
    above = rows[0] - halo_rows - have0
    below = have1 - (rows[1] + halo_rows)
    if (above < 0 and have0 > 0) or (below < 0 and have1 < size // ratio):
        raise ValueError(f"truth rows lack the {halo_rows}-pixel halo around coarse rows {rows}")
    means = means[:, max(above, 0) : means.shape[1] - max(below, 0)]
    pad = ((0, 0), (max(-above, 0), max(-below, 0)), (halo_cols, halo_cols))
    means = np.pad(means, pad, mode="edge")
    blurred = correlate_valid(correlate_valid(means, kernel_rows, 1), kernel_cols, 2)
    if sensor.noise > 0:
        coarse_rows = np.arange(rows[0], rows[1])
        coarse_cols = np.arange(size // ratio)
        noise = coarse_noise(seed, day, band_indices, coarse_rows, coarse_cols)
        blurred = blurred + noise * (sensor.noise / SCALE)
    return np.clip(np.rint(blurred), STORED_MIN, STORED_MAX).astype(np.int16)
