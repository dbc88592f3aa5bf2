"""Synthetic spatiotemporal-fusion test sites: ``stfcube simulate``.

A site is a deterministic (seeded) scene of land-cover patches with per-band phenology, seen by

- a fine sensor (30 m, every ``fine_every`` days, first and last day included) with clouds,
  cloud shadows and a swath-edge nodata wedge on some dates, plus a per-date mask;
- a coarse sensor (``30 m × coarse_ratio``, every day) made physically from the fine truth: area
  average over each coarse pixel, Gaussian point-spread blur, a sub-pixel misregistration and
  noise, on its native coarse grid;
- the cloud-free fine truth for every day, for evaluation.

Everything is written as cloud-optimised GeoTIFFs (int16 reflectance × 10000, nodata -9999; uint8
masks) described by a self-contained STAC catalog (collections ``sim-fine``, ``sim-coarse``,
``sim-truth``) plus ``site.json``.

The generator streams: it renders the scene by blocks of rows (a multiple of the coarse ratio),
with a halo for the coarse blur and shift, and every random quantity is a hash of the seed and
the global pixel or lattice coordinates, so the files do not depend on the block size and a
10000 × 10000 site needs well under 2 GiB of memory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import numpy.typing as npt
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.windows import Window

from pipeline.defaults import SIMULATED_BANDS
from pipeline.errors import ConfigError, OutputError
from pipeline.simulate.stac import (
    VALID_VALUES_KEY,
    AssetSpec,
    BandSpec,
    RasterGrid,
    build_collection,
    build_item,
    write_catalog,
)

FloatArray = npt.NDArray[np.float32]

#: The six reflective bands a site can carry, in file order.
BAND_NAMES = SIMULATED_BANDS
_COMMON_NAMES = {
    "blue": "blue",
    "green": "green",
    "red": "red",
    "nir": "nir",
    "swir1": "swir16",
    "swir2": "swir22",
}
_CENTER_WAVELENGTH_UM = {
    "blue": 0.48,
    "green": 0.56,
    "red": 0.655,
    "nir": 0.865,
    "swir1": 1.61,
    "swir2": 2.2,
}

#: Fine pixel size (metres), projected CRS and grid origin (upper-left corner) of every site.
FINE_PIXEL_SIZE = 30.0
EPSG = 32633
ORIGIN_X = 400_000.0
ORIGIN_Y = 5_400_000.0

#: Stored reflectance = round(reflectance / SCALE), int16, with NODATA for missing pixels.
SCALE = 1e-4
NODATA = -9999
_STORED_MIN = -100
_STORED_MAX = 16_000
#: Acquisition time of day (UTC) of every image.
_OVERPASS = time(10, 30, tzinfo=UTC)

FINE_COLLECTION = "sim-fine"
COARSE_COLLECTION = "sim-coarse"
TRUTH_COLLECTION = "sim-truth"

#: Fine pixel size of one Voronoi lattice cell (fields of roughly 700 m).
_PATCH_CELL = 24
_ZONE_CELLS = 10
_LAKE_FRACTION = 0.04
_HARVEST_FRACTION = 0.25
_STUBBLE_FRACTION = 0.06
#: Green-up (days before the first day) and minimum green season of fields cut on harvest day.
_CUT_FIELD_GREEN_UP = (20.0, 60.0)
_CUT_FIELD_SEASON = 60.0
_SHADOW_FACTOR = 0.35
_CLOUD_EDGE = 0.06
_SAMPLE_POINTS_PER_AXIS = 256
_BLOCK_PIXELS = 1 << 22
_GDAL_CACHE_MB = 256
_COG_BLOCK = 512
#: Fast deflate: level 1 writes 2.6× faster than the default 6 for ~8 % larger files.
_DEFLATE_LEVEL = 1


class LandCover(IntEnum):
    """Land-cover classes of the scene model (values stored in the per-pixel cover layer)."""

    CROP = 0
    GRASS = 1
    FOREST = 2
    URBAN = 3
    WATER = 4
    ROAD = 5
    FLOOD = 6


# Endmember reflectances (blue, green, red, nir, swir1, swir2) per land-cover class: the
# background seen through gaps in the canopy, and the canopy itself. Classes without vegetation
# use the same spectrum for both, so their vegetation fraction has no effect.
_SOIL = (0.080, 0.110, 0.150, 0.230, 0.310, 0.260)
_DARK_SOIL = (0.060, 0.085, 0.110, 0.190, 0.260, 0.210)
_LITTER = (0.040, 0.060, 0.070, 0.150, 0.200, 0.150)
_URBAN = (0.110, 0.125, 0.140, 0.200, 0.230, 0.210)
_WATER = (0.050, 0.060, 0.040, 0.020, 0.010, 0.006)
_ASPHALT = (0.070, 0.080, 0.090, 0.120, 0.140, 0.130)
_TURBID_WATER = (0.080, 0.110, 0.120, 0.080, 0.035, 0.020)
_CROP_CANOPY = (0.030, 0.080, 0.040, 0.480, 0.220, 0.100)
_GRASS_CANOPY = (0.040, 0.085, 0.055, 0.380, 0.250, 0.130)
_FOREST_CANOPY = (0.020, 0.045, 0.025, 0.300, 0.140, 0.060)
_CLOUD = (0.550, 0.560, 0.580, 0.620, 0.450, 0.300)

_BACKGROUND = np.array(
    [_SOIL, _DARK_SOIL, _LITTER, _URBAN, _WATER, _ASPHALT, _TURBID_WATER], dtype=np.float32
)
_CANOPY = np.array(
    [_CROP_CANOPY, _GRASS_CANOPY, _FOREST_CANOPY, _GRASS_CANOPY, _WATER, _ASPHALT, _TURBID_WATER],
    dtype=np.float32,
)
_CLOUD_SPECTRUM = np.array(_CLOUD, dtype=np.float32)


class _Salt(IntEnum):
    """Independent hash streams: one per random quantity of the scene."""

    JITTER_Y = 1
    JITTER_X = 2
    ZONE = 3
    CLASS = 4
    BRIGHTNESS = 5
    HARVEST = 6
    LAKE_LARGE = 7
    LAKE_SMALL = 8
    TEXTURE_MID = 9
    TEXTURE_FINE = 10
    FLOOD_EDGE = 11
    COARSE_NOISE_U1 = 12
    COARSE_NOISE_U2 = 13
    PHENOLOGY = 32
    CLOUD = 64


# --------------------------------------------------------------------------------------------
# Hashing and noise: every random value is a function of (seed, salt, integer coordinates).

_MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64 finaliser, element-wise (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def hash_uniform(seed: int, salt: int, *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Uniform numbers in [0, 1) that depend only on the seed, a salt and integer keys.

    Parameters
    ----------
    seed : int
        Site seed (>= 0).
    salt : int
        Stream id, so that different quantities drawn at the same keys are independent.
    *keys : array_like of int
        Integer coordinates (broadcast together), e.g. a row and a column index.

    Returns
    -------
    numpy.ndarray
        float64 array of the broadcast shape of the keys (shape ``(1,)`` without keys).
    """
    start = (seed * 0x9E3779B97F4A7C15 + salt * 0xD1B54A32D192ED03) & _MASK64
    h = _mix64(np.array([start], dtype=np.uint64))
    for key in keys:
        k = np.asarray(key, dtype=np.int64).view(np.uint64)
        h = _mix64(h ^ (k + _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def hash_normal(seed: int, salts: tuple[int, int], *keys: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Standard normal numbers from two hash streams (Box–Muller), deterministic per key."""
    u1 = hash_uniform(seed, salts[0], *keys)
    u2 = hash_uniform(seed, salts[1], *keys)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def _lattice(coords: npt.NDArray[np.float64], spacing: float) -> tuple[np.ndarray, FloatArray]:
    """Lattice cell index and smoothstep weight of each coordinate."""
    scaled = coords / spacing
    cell = np.floor(scaled).astype(np.int64)
    frac = (scaled - cell).astype(np.float32)
    return cell, frac * frac * (np.float32(3.0) - np.float32(2.0) * frac)


def value_noise(
    rows: npt.NDArray[np.float64],
    cols: npt.NDArray[np.float64],
    *,
    seed: int,
    salt: int,
    spacing: float,
) -> FloatArray:
    """Smooth value noise in [0, 1) on the grid ``rows × cols``.

    Hashed lattice values every ``spacing`` pixels, interpolated with smoothstep weights. The
    value at a point depends only on its coordinates, so any block of a large image is computed
    exactly as in the whole image.

    Parameters
    ----------
    rows, cols : numpy.ndarray
        1-D pixel coordinates (global, e.g. pixel centres ``index + 0.5``).
    seed, salt : int
        Hash seed and stream.
    spacing : float
        Lattice spacing in pixels (feature size).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(len(rows), len(cols))``.
    """
    cell_y, weight_y = _lattice(np.asarray(rows, dtype=np.float64), spacing)
    cell_x, weight_x = _lattice(np.asarray(cols, dtype=np.float64), spacing)
    y0, x0 = int(cell_y.min()), int(cell_x.min())
    lattice_rows = np.arange(y0, int(cell_y.max()) + 2)
    lattice_cols = np.arange(x0, int(cell_x.max()) + 2)
    lattice = hash_uniform(seed, salt, lattice_rows[:, None], lattice_cols[None, :])
    lattice = lattice.astype(np.float32)
    jx = cell_x - x0
    along_x = lattice[:, jx] * (1 - weight_x) + lattice[:, jx + 1] * weight_x
    jy = cell_y - y0
    return along_x[jy] * (1 - weight_y)[:, None] + along_x[jy + 1] * weight_y[:, None]


def _pixel_centres(start: int, stop: int) -> npt.NDArray[np.float64]:
    return np.arange(start, stop, dtype=np.float64) + 0.5


def _global_quantile(
    field_fn: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], FloatArray],
    size: int,
    q: float,
) -> float:
    """Quantile of a noise field over the whole image, from a fixed regular sample of it.

    Thresholds computed this way (cloud cover, lake area) are global statistics: every block
    uses the same value.
    """
    step = max(1, size // _SAMPLE_POINTS_PER_AXIS)
    sample = _pixel_centres(0, size)[::step]
    return float(np.quantile(field_fn(sample, sample), q))


# --------------------------------------------------------------------------------------------
# Scene model: compact global description, then per-block layers and per-day reflectance.


@dataclass(frozen=True)
class Phenology:
    """Ranges of the double-logistic vegetation-fraction curve of one land-cover class.

    f(t) = f_min + (f_max - f_min) · σ(rate_up · (t - t_up)) · σ(-rate_down · (t - t_down)),
    with t in days since the first day, t_up = green_up × period and
    t_down = t_up + season_length.
    """

    f_min: tuple[float, float]
    f_max: tuple[float, float]
    green_up: tuple[float, float]
    rate_up: tuple[float, float]
    season_length: tuple[float, float]
    rate_down: tuple[float, float]


_PHENOLOGY = {
    LandCover.CROP: Phenology(
        f_min=(0.03, 0.12),
        f_max=(0.70, 0.95),
        green_up=(0.05, 0.85),
        rate_up=(0.12, 0.30),
        season_length=(50, 100),
        rate_down=(0.08, 0.20),
    ),
    LandCover.GRASS: Phenology(
        f_min=(0.30, 0.45),
        f_max=(0.60, 0.80),
        green_up=(-0.8, 0.3),
        rate_up=(0.05, 0.15),
        season_length=(60, 120),
        rate_down=(0.05, 0.10),
    ),
    LandCover.FOREST: Phenology(
        f_min=(0.55, 0.70),
        f_max=(0.80, 0.92),
        green_up=(-1.5, 0.2),
        rate_up=(0.05, 0.10),
        season_length=(120, 160),
        rate_down=(0.05, 0.08),
    ),
    LandCover.URBAN: Phenology(
        f_min=(0.05, 0.10),
        f_max=(0.15, 0.25),
        green_up=(-1.0, 0.0),
        rate_up=(0.05, 0.10),
        season_length=(150, 200),
        rate_down=(0.05, 0.08),
    ),
}


@dataclass(frozen=True)
class Road:
    """A straight road: pixels whose distance to the line is below ``half_width``."""

    normal_row: float
    normal_col: float
    through_row: float
    through_col: float
    half_width: float

    def distance(self, rows: np.ndarray, cols: np.ndarray) -> FloatArray:
        """Signed distance (pixels) of the grid ``rows × cols`` to the road's centre line."""
        along_rows = ((rows - self.through_row) * self.normal_row).astype(np.float32)
        along_cols = ((cols - self.through_col) * self.normal_col).astype(np.float32)
        return along_rows[:, None] + along_cols[None, :]

    def may_cross(self, row0: int, row1: int, size: int) -> bool:
        """True if the road can touch rows ``row0:row1`` of a ``size``-wide image."""
        corners = self.distance(np.array([row0, row1], float), np.array([0.0, float(size)]))
        return bool(corners.min() < self.half_width and corners.max() > -self.half_width)


@dataclass(frozen=True)
class River:
    """A meandering river: centre row = base + Σ amplitude · sin(2π col / wavelength + phase)."""

    base_row: float
    amplitudes: tuple[float, float]
    wavelengths: tuple[float, float]
    phases: tuple[float, float]
    half_width: float

    def centre_row(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centre-line row and its slope d(row)/d(col) at the given columns."""
        centre = np.full(cols.shape, self.base_row)
        slope = np.zeros(cols.shape)
        for amp, wavelength, phase in zip(
            self.amplitudes, self.wavelengths, self.phases, strict=True
        ):
            angle = 2 * np.pi * cols / wavelength + phase
            centre = centre + amp * np.sin(angle)
            slope = slope + amp * 2 * np.pi / wavelength * np.cos(angle)
        return centre, slope

    def mask(self, rows: np.ndarray, cols: np.ndarray) -> npt.NDArray[np.bool_]:
        """Pixels of the grid ``rows × cols`` within ``half_width`` of the centre line."""
        centre, slope = self.centre_row(cols)
        if rows.min() > centre.max() + 4 * self.half_width + 1:
            return np.zeros((rows.size, cols.size), dtype=bool)
        if rows.max() < centre.min() - 4 * self.half_width - 1:
            return np.zeros((rows.size, cols.size), dtype=bool)
        cos_angle = (1.0 / np.sqrt(1.0 + slope**2)).astype(np.float32)
        offset = np.abs(rows.astype(np.float32)[:, None] - centre.astype(np.float32)[None, :])
        return offset * cos_angle[None, :] < self.half_width


@dataclass(frozen=True)
class FloodZone:
    """An irregular ellipse around a point of the river that turns to water on ``day``."""

    centre_row: float
    centre_col: float
    semi_rows: float
    semi_cols: float
    edge_spacing: float
    day: int

    def mask(self, rows: np.ndarray, cols: np.ndarray, seed: int) -> npt.NDArray[np.bool_]:
        """Flooded pixels of the grid ``rows × cols``."""
        reach = 1.5 * self.semi_rows  # the noisy edge stays within 1.5 semi-axes
        if rows.max() < self.centre_row - reach or rows.min() > self.centre_row + reach:
            return np.zeros((rows.size, cols.size), dtype=bool)
        dy = (((rows - self.centre_row) / self.semi_rows) ** 2).astype(np.float32)
        dx = (((cols - self.centre_col) / self.semi_cols) ** 2).astype(np.float32)
        edge = value_noise(rows, cols, seed=seed, salt=_Salt.FLOOD_EDGE, spacing=self.edge_spacing)
        return dy[:, None] + dx[None, :] + np.float32(0.8) * (edge - np.float32(0.5)) < 1.0


@dataclass(frozen=True)
class SceneModel:
    """The global, compact description of a site's landscape (no per-pixel arrays).

    Build it with :func:`make_scene_model`; per-pixel layers come from :func:`scene_layers`.
    """

    size: int
    days: int
    seed: int
    river: River
    roads: tuple[Road, ...]
    flood: FloodZone
    harvest_day: int
    lake_threshold: float


def _uniform_in(u: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _lake_noise(rows: np.ndarray, cols: np.ndarray, seed: int) -> FloatArray:
    large = value_noise(rows, cols, seed=seed, salt=_Salt.LAKE_LARGE, spacing=160.0)
    small = value_noise(rows, cols, seed=seed, salt=_Salt.LAKE_SMALL, spacing=40.0)
    return (large + np.float32(0.5) * small) / np.float32(1.5)


def make_scene_model(
    size: int, days: int, seed: int, *, flood_day: int, harvest_day: int
) -> SceneModel:
    """Draw the global features of a site: river, roads, flood zone, thresholds.

    Parameters
    ----------
    size : int
        Image size in fine pixels (square).
    days : int
        Number of days of the period.
    seed : int
        Site seed.
    flood_day, harvest_day : int
        Day indices of the change events.

    Returns
    -------
    SceneModel
        Everything except the per-pixel layers.
    """
    rng = np.random.default_rng(seed)
    river = River(
        base_row=float(rng.uniform(0.3, 0.7) * size),
        amplitudes=(float(rng.uniform(0.04, 0.08) * size), float(rng.uniform(0.01, 0.02) * size)),
        wavelengths=(float(rng.uniform(0.5, 0.9) * size), float(rng.uniform(0.12, 0.2) * size)),
        phases=(float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi))),
        half_width=1.5,
    )
    roads = []
    for _ in range(2 + min(size // 400, 14)):
        angle = rng.uniform(0, np.pi)
        roads.append(
            Road(
                normal_row=float(np.cos(angle)),
                normal_col=float(np.sin(angle)),
                through_row=float(rng.uniform(0, size)),
                through_col=float(rng.uniform(0, size)),
                half_width=float(rng.choice([0.5, 1.0])),
            )
        )
    flood_col = float(rng.uniform(0.3, 0.7) * size)
    flood_row = float(river.centre_row(np.array([flood_col]))[0][0])
    flood = FloodZone(
        centre_row=flood_row,
        centre_col=flood_col,
        semi_rows=0.08 * size,
        semi_cols=0.2 * size,
        edge_spacing=max(8.0, size / 16),
        day=flood_day,
    )
    lake_threshold = _global_quantile(lambda r, c: _lake_noise(r, c, seed), size, _LAKE_FRACTION)
    return SceneModel(size, days, seed, river, tuple(roads), flood, harvest_day, lake_threshold)


@dataclass(frozen=True)
class PatchTable:
    """Per-patch parameters of the Voronoi cells that touch one block, flattened.

    Pixels refer to a patch by its index in these 1-D arrays.

    Attributes
    ----------
    cover : numpy.ndarray
        uint8 :class:`LandCover` of the patch.
    brightness : numpy.ndarray
        Multiplicative background brightness.
    f_min, f_max, t_up, rate_up, t_down, rate_down : numpy.ndarray
        Double-logistic vegetation-fraction parameters (see :class:`Phenology`), days since
        the first day.
    harvested : numpy.ndarray
        Crop patches cut on the harvest day.
    """

    cover: npt.NDArray[np.uint8]
    brightness: FloatArray
    f_min: FloatArray
    f_max: FloatArray
    t_up: FloatArray
    rate_up: FloatArray
    t_down: FloatArray
    rate_down: FloatArray
    harvested: npt.NDArray[np.bool_]

    def vegetation_fraction(self, day: int, harvest_day: int) -> FloatArray:
        """Vegetation fraction of every patch on ``day`` (harvested crops drop to stubble)."""
        t = np.float32(day)
        rise = 1 / (1 + np.exp(-self.rate_up * (t - self.t_up)))
        fall = 1 / (1 + np.exp(self.rate_down * (t - self.t_down)))
        fraction = self.f_min + (self.f_max - self.f_min) * rise * fall
        if day >= harvest_day:
            fraction = np.where(self.harvested, np.float32(_STUBBLE_FRACTION), fraction)
        return fraction.astype(np.float32)


def _classify_patches(zone: np.ndarray, u: np.ndarray) -> npt.NDArray[np.uint8]:
    """Land cover of patches from a smooth zone value (landscape type) and a uniform draw."""
    cover = np.full(zone.shape, LandCover.CROP, dtype=np.uint8)
    cover[u < 0.20] = LandCover.GRASS
    cover[(u >= 0.20) & (u < 0.26)] = LandCover.FOREST
    cover[(u >= 0.26) & (u < 0.29)] = LandCover.URBAN
    cover[(zone > 0.68) & (u < 0.8)] = LandCover.FOREST
    cover[(zone > 0.68) & (u >= 0.8)] = LandCover.GRASS
    cover[(zone < 0.25) & (u < 0.35)] = LandCover.URBAN
    return cover


def _patch_table(
    scene: SceneModel, lattice_rows: np.ndarray, lattice_cols: np.ndarray
) -> tuple[PatchTable, FloatArray, FloatArray]:
    """Parameters and seed-point positions of the lattice cells ``lattice_rows × lattice_cols``.

    Returns the flattened table and the seed-point row and column arrays (2-D, lattice shaped).
    """
    seed = scene.seed
    ly, lx = lattice_rows[:, None], lattice_cols[None, :]
    seed_rows = (ly + 0.1 + 0.8 * hash_uniform(seed, _Salt.JITTER_Y, ly, lx)) * _PATCH_CELL
    seed_cols = (lx + 0.1 + 0.8 * hash_uniform(seed, _Salt.JITTER_X, ly, lx)) * _PATCH_CELL
    zone = value_noise(
        (lattice_rows + 0.5) * _PATCH_CELL,
        (lattice_cols + 0.5) * _PATCH_CELL,
        seed=seed,
        salt=_Salt.ZONE,
        spacing=_ZONE_CELLS * _PATCH_CELL,
    )
    cover = _classify_patches(zone, hash_uniform(seed, _Salt.CLASS, ly, lx)).ravel()
    names = ("f_min", "f_max", "t_up", "rate_up", "t_down", "rate_down")
    params = {name: np.zeros(cover.shape, dtype=np.float32) for name in names}
    draws = [hash_uniform(seed, _Salt.PHENOLOGY + i, ly, lx).ravel() for i in range(6)]
    for land_cover, curve in _PHENOLOGY.items():
        sel = cover == land_cover
        params["f_min"][sel] = _uniform_in(draws[0][sel], curve.f_min)
        params["f_max"][sel] = _uniform_in(draws[1][sel], curve.f_max)
        params["t_up"][sel] = _uniform_in(draws[2][sel], curve.green_up) * scene.days
        params["rate_up"][sel] = _uniform_in(draws[3][sel], curve.rate_up)
        params["t_down"][sel] = params["t_up"][sel] + _uniform_in(
            draws[4][sel], curve.season_length
        )
        params["rate_down"][sel] = _uniform_in(draws[5][sel], curve.rate_down)
    harvested = (cover == LandCover.CROP) & (
        hash_uniform(seed, _Salt.HARVEST, ly, lx).ravel() < _HARVEST_FRACTION
    )
    # Fields cut for silage or hay are already green on the first day and stay green until cut.
    params["t_up"][harvested] = -_uniform_in(draws[2][harvested], _CUT_FIELD_GREEN_UP)
    params["t_down"][harvested] = params["t_up"][harvested] + _CUT_FIELD_SEASON + scene.days
    brightness = _uniform_in(hash_uniform(seed, _Salt.BRIGHTNESS, ly, lx).ravel(), (0.85, 1.15))
    table = PatchTable(
        cover=cover,
        brightness=brightness.astype(np.float32),
        harvested=harvested,
        **params,
    )
    return table, seed_rows.astype(np.float32), seed_cols.astype(np.float32)


def _nearest_seed(
    rows: np.ndarray,
    cols: np.ndarray,
    lattice_origin: tuple[int, int],
    seed_rows: FloatArray,
    seed_cols: FloatArray,
) -> npt.NDArray[np.int32]:
    """Flat index (into the lattice arrays) of the nearest seed point of every pixel (Worley)."""
    cell_y = np.floor(rows / _PATCH_CELL).astype(np.int64) - lattice_origin[0]
    cell_x = np.floor(cols / _PATCH_CELL).astype(np.int64) - lattice_origin[1]
    row32 = rows.astype(np.float32)[:, None]
    col32 = cols.astype(np.float32)[None, :]
    best = np.full((rows.size, cols.size), np.inf, dtype=np.float32)
    best_index = np.zeros((rows.size, cols.size), dtype=np.int32)
    width = seed_rows.shape[1]
    for dy in (-1, 0, 1):
        iy = (cell_y + dy)[:, None]
        for dx in (-1, 0, 1):
            ix = (cell_x + dx)[None, :]
            dist2 = (seed_rows[iy, ix] - row32) ** 2 + (seed_cols[iy, ix] - col32) ** 2
            closer = dist2 < best
            best = np.where(closer, dist2, best)
            best_index = np.where(closer, (iy * width + ix).astype(np.int32), best_index)
    return best_index


@dataclass(frozen=True)
class SceneLayers:
    """Static per-pixel layers of rows ``row0 : row0 + height`` of a site.

    Attributes
    ----------
    cover : numpy.ndarray
        uint8 :class:`LandCover` before the flood.
    cover_flooded : numpy.ndarray
        uint8 land cover from the flood day on.
    patch : numpy.ndarray
        int32 index of each pixel's patch in ``patches``.
    brightness : numpy.ndarray
        float32 multiplicative brightness (patch soil brightness × fine texture).
    vegetation_texture : numpy.ndarray
        float32 multiplicative within-patch variation of the vegetation fraction.
    patches : PatchTable
        Per-patch parameters.
    """

    cover: npt.NDArray[np.uint8]
    cover_flooded: npt.NDArray[np.uint8]
    patch: npt.NDArray[np.int32]
    brightness: FloatArray
    vegetation_texture: FloatArray
    patches: PatchTable


def scene_layers(scene: SceneModel, row0: int, row1: int) -> SceneLayers:
    """Compute the static layers of global rows ``row0:row1`` (the full image width).

    Parameters
    ----------
    scene : SceneModel
        The site's global description.
    row0, row1 : int
        Row range, ``0 <= row0 < row1 <= scene.size``.

    Returns
    -------
    SceneLayers
        Layers of shape ``(row1 - row0, scene.size)``, identical to the same rows of a
        whole-image computation.
    """
    seed, size = scene.seed, scene.size
    rows = _pixel_centres(row0, row1)
    cols = _pixel_centres(0, size)
    lattice_rows = np.arange(row0 // _PATCH_CELL - 1, (row1 - 1) // _PATCH_CELL + 2)
    lattice_cols = np.arange(-1, (size - 1) // _PATCH_CELL + 2)
    patches, seed_rows, seed_cols = _patch_table(scene, lattice_rows, lattice_cols)
    patch = _nearest_seed(
        rows, cols, (int(lattice_rows[0]), int(lattice_cols[0])), seed_rows, seed_cols
    )
    cover = patches.cover[patch]
    water = (_lake_noise(rows, cols, seed) < scene.lake_threshold) | scene.river.mask(rows, cols)
    on_road = np.zeros(cover.shape, dtype=bool)
    for road in scene.roads:
        if road.may_cross(row0, row1, size):
            on_road |= np.abs(road.distance(rows, cols)) < road.half_width
    cover = np.where(on_road & ~water, np.uint8(LandCover.ROAD), cover)
    cover = np.where(water, np.uint8(LandCover.WATER), cover).astype(np.uint8)
    flooded = scene.flood.mask(rows, cols, seed)
    cover_flooded = np.where(flooded, np.uint8(LandCover.FLOOD), cover).astype(np.uint8)
    mid = value_noise(rows, cols, seed=seed, salt=_Salt.TEXTURE_MID, spacing=16.0)
    fine = value_noise(rows, cols, seed=seed, salt=_Salt.TEXTURE_FINE, spacing=3.0)
    half = np.float32(0.5)
    texture = 1 + np.float32(0.35) * (mid - half) + np.float32(0.12) * (fine - half)
    brightness = patches.brightness[patch] * (1 + np.float32(0.08) * (fine - half))
    return SceneLayers(cover, cover_flooded, patch, brightness, texture, patches)


def render_reflectance(
    scene: SceneModel, layers: SceneLayers, day: int, band_indices: Sequence[int]
) -> FloatArray:
    """Cloud-free surface reflectance of the layers' rows on ``day`` (linear mixture model).

    Each pixel mixes its class's background and canopy spectra with the patch's vegetation
    fraction of the day, times the pixel brightness. The flood and the harvest apply from their
    days on.

    Parameters
    ----------
    scene : SceneModel
        The site's global description (event days).
    layers : SceneLayers
        Static layers of the rows to render.
    day : int
        Day index (0 = first day).
    band_indices : sequence of int
        Indices into :data:`BAND_NAMES` of the bands to render.

    Returns
    -------
    numpy.ndarray
        float32 reflectance (0-1), shape ``(len(band_indices), rows, cols)``.
    """
    fraction = layers.patches.vegetation_fraction(day, scene.harvest_day)[layers.patch]
    fraction = np.clip(fraction * layers.vegetation_texture, 0, 1)
    cover = layers.cover_flooded if day >= scene.flood.day else layers.cover
    out = np.empty((len(band_indices), *cover.shape), dtype=np.float32)
    for i, band in enumerate(band_indices):
        background = _BACKGROUND[:, band][cover]
        canopy = _CANOPY[:, band][cover]
        out[i] = layers.brightness * (background + fraction * (canopy - background))
    return out


def quantize(reflectance: FloatArray) -> npt.NDArray[np.int16]:
    """Reflectance (0-1) to stored int16 (× 10000, rounded, clipped to the valid range)."""
    stored = reflectance * np.float32(1 / SCALE)
    np.rint(stored, out=stored)
    np.clip(stored, _STORED_MIN, _STORED_MAX, out=stored)
    return stored.astype(np.int16)


# --------------------------------------------------------------------------------------------
# Fine sensor: clouds, shadows, swath-edge nodata.


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
    salt = _Salt.CLOUD + 4 * date_index
    probe = CloudField(seed, salt, 0.0, 0.0, 0.0, size)
    threshold = _global_quantile(probe.density, size, 1.0 - cover)
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
    rows = _pixel_centres(row0, row0 + height)
    cols = _pixel_centres(0, width)
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
    stored = np.clip(np.rint(observed), _STORED_MIN, _STORED_MAX).astype(np.int16)
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
    salts = (_Salt.COARSE_NOISE_U1, _Salt.COARSE_NOISE_U2)
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
    return np.clip(np.rint(blurred), _STORED_MIN, _STORED_MAX).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Site configuration.


@dataclass(frozen=True)
class SiteConfig:
    """Validated parameters of a site (see :func:`simulate_site` for their meaning)."""

    size: int
    days: int
    seed: int
    start: date
    fine_every: int
    bands: tuple[str, ...]
    cloud_days: tuple[int, ...]
    block_rows: int
    flood_day: int
    harvest_day: int
    sensor: CoarseSensor

    @property
    def band_indices(self) -> tuple[int, ...]:
        """Indices of the site's bands in :data:`BAND_NAMES`."""
        return tuple(BAND_NAMES.index(b) for b in self.bands)

    @property
    def dates(self) -> tuple[date, ...]:
        """Every day of the period."""
        return tuple(self.start + timedelta(days=d) for d in range(self.days))

    @property
    def fine_days(self) -> tuple[int, ...]:
        """Day indices of the fine acquisitions (first and last day included)."""
        return fine_days(self.days, self.fine_every)

    @property
    def fine_grid(self) -> RasterGrid:
        """Native grid of the fine sensor and of the truth."""
        transform = Affine(FINE_PIXEL_SIZE, 0, ORIGIN_X, 0, -FINE_PIXEL_SIZE, ORIGIN_Y)
        return RasterGrid(EPSG, (self.size, self.size), transform)

    @property
    def coarse_grid(self) -> RasterGrid:
        """Native grid of the coarse sensor (same origin, pixel ``ratio`` times larger)."""
        pixel = FINE_PIXEL_SIZE * self.sensor.ratio
        n = self.size // self.sensor.ratio
        return RasterGrid(EPSG, (n, n), Affine(pixel, 0, ORIGIN_X, 0, -pixel, ORIGIN_Y))


def fine_days(days: int, every: int) -> tuple[int, ...]:
    """Day indices ``0, every, 2·every, ...`` plus the last day."""
    chosen = list(range(0, days, every))
    if chosen[-1] != days - 1:
        chosen.append(days - 1)
    return tuple(chosen)


def default_block_rows(size: int, ratio: int) -> int:
    """Rows per block: about 4 Mpixel, a multiple of ``ratio``, at most the image."""
    rows = max(ratio, (_BLOCK_PIXELS // size) // ratio * ratio)
    return min(rows, size)


def _parse_date(value: date | str, what: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not a date YYYY-MM-DD") from None


def _check_event_day(value: int | None, default: int, days: int, what: str) -> int:
    if value is None:
        return default
    if not 1 <= value <= days - 1:
        raise ConfigError(f"{what} must be a day index in 1..{days - 1} (got {value})")
    return value


def make_config(
    *,
    size: int,
    days: int,
    seed: int,
    coarse_ratio: int,
    fine_every: int,
    bands: Sequence[str],
    cloud_dates: Sequence[date | str] | None,
    start_date: date | str,
    block_rows: int | None,
    psf_sigma: float,
    misregistration: tuple[float, float],
    coarse_noise: float,
    flood_day: int | None,
    harvest_day: int | None,
) -> SiteConfig:
    """Validate the parameters of :func:`simulate_site` into a :class:`SiteConfig`.

    Raises
    ------
    pipeline.errors.ConfigError
        On any invalid parameter, with a message naming it.
    """
    if coarse_ratio < 1:
        raise ConfigError(f"--coarse-ratio must be >= 1 (got {coarse_ratio})")
    if size < coarse_ratio or size % coarse_ratio:
        raise ConfigError(
            f"--size {size} must be a positive multiple of --coarse-ratio {coarse_ratio} "
            f"(e.g. {max(1, round(size / coarse_ratio)) * coarse_ratio})"
        )
    if days < 2:
        raise ConfigError(f"--days must be >= 2 (got {days})")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0 (got {seed})")
    if fine_every < 1:
        raise ConfigError(f"--fine-every must be >= 1 (got {fine_every})")
    unknown = [b for b in bands if b not in BAND_NAMES]
    if not bands or unknown or len(set(bands)) != len(bands):
        raise ConfigError(
            f"--bands must be distinct names among {', '.join(BAND_NAMES)} (got {list(bands)})"
        )
    if block_rows is None:
        block_rows = default_block_rows(size, coarse_ratio)
    if block_rows < 1 or block_rows % coarse_ratio:
        raise ConfigError(
            f"--block-rows {block_rows} must be a positive multiple of --coarse-ratio "
            f"{coarse_ratio}"
        )
    if psf_sigma < 0 or coarse_noise < 0:
        raise ConfigError("--psf-sigma and --noise must be >= 0")
    if max(abs(s) for s in misregistration) > 2:
        raise ConfigError(f"misregistration {misregistration} must be within ±2 coarse pixels")
    start = _parse_date(start_date, "--start-date")
    fine = fine_days(days, fine_every)
    if cloud_dates is None:
        cloud_days = tuple(d for i, d in enumerate(fine[:-1]) if i % 2 == 1)
    else:
        offsets = sorted({(_parse_date(v, "--cloud-dates") - start).days for v in cloud_dates})
        not_fine = [start + timedelta(days=d) for d in offsets if d not in fine]
        if not_fine:
            fine_iso = ", ".join((start + timedelta(days=d)).isoformat() for d in fine)
            raise ConfigError(
                f"cloud dates {', '.join(d.isoformat() for d in not_fine)} are not fine-sensor "
                f"dates ({fine_iso})"
            )
        cloud_days = tuple(offsets)
    return SiteConfig(
        size=size,
        days=days,
        seed=seed,
        start=start,
        fine_every=fine_every,
        bands=tuple(bands),
        cloud_days=cloud_days,
        block_rows=block_rows,
        flood_day=_check_event_day(flood_day, max(1, round(0.6 * (days - 1))), days, "flood_day"),
        harvest_day=_check_event_day(
            harvest_day, max(1, round(0.35 * (days - 1))), days, "harvest_day"
        ),
        sensor=CoarseSensor(coarse_ratio, psf_sigma, *misregistration, coarse_noise),
    )


# --------------------------------------------------------------------------------------------
# Streaming raster writers.


def overview_shapes(shape: tuple[int, int], block: int = _COG_BLOCK) -> list[tuple[int, int]]:
    """Shapes of the 2× overview levels of a raster, halving (rounding up) until ≤ ``block``."""
    shapes = []
    height, width = shape
    while max(height, width) > block:
        height, width = -(-height // 2), -(-width // 2)
        shapes.append((height, width))
    return shapes


class _WorkRaster:
    """A work GeoTIFF filled by consecutive row windows, from the top.

    Striped (``rows_per_strip`` rows) and lightly compressed, so that windows aligned on strips
    are written once without read-back, and band-interleaved so that band-by-band reads do not
    decompress every band.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        transform: Affine,
        *,
        crs: str,
        bands: Sequence[BandSpec],
        rows_per_strip: int,
    ) -> None:
        self.path = path
        self.dtype = np.dtype(bands[0].data_type)
        self.next_row = 0
        self._ds = rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=shape[1],
            height=shape[0],
            count=len(bands),
            dtype=bands[0].data_type,
            nodata=bands[0].nodata,
            crs=crs,
            transform=transform,
            blockysize=rows_per_strip,
            compress="ZSTD",
            zstd_level=1,
            interleave="band",
        )
        for i, band in enumerate(bands, start=1):
            self._ds.set_band_description(i, band.name)
            if band.unit is not None:
                self._ds.set_band_unit(i, band.unit)
        self._ds.scales = [b.scale for b in bands]
        self._ds.offsets = [b.offset for b in bands]

    def append(self, block: np.ndarray) -> None:
        """Write ``(bands, rows, cols)`` below the rows written so far."""
        rows = block.shape[1]
        self._ds.write(block, window=Window(0, self.next_row, block.shape[2], rows))
        self.next_row += rows

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._ds.close()


def _sum_2x2(values: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """Sum of each 2 × 2 block of ``(bands, even rows, even cols)``, in ``dtype``."""
    return (
        values[:, 0::2, 0::2].astype(dtype)
        + values[:, 1::2, 0::2]
        + values[:, 0::2, 1::2]
        + values[:, 1::2, 1::2]
    )


class _OverviewPyramid:
    """2× average overviews of a raster that arrives by row blocks, written as it streams.

    Level k holds, per band, the mean of the valid (not nodata) full-resolution values of each
    ``2^k × 2^k`` block, rounded half up; nodata where none is valid. Levels are cascaded
    through exact integer sums and counts, so the result does not depend on how the rows are
    blocked. An odd last row or column is averaged alone, as GDAL does.
    """

    def __init__(self, levels: Sequence[_WorkRaster], nodata: float | None) -> None:
        self._levels = list(levels)
        self._nodata = nodata
        self._pending: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(levels)

    def push(self, block: np.ndarray) -> None:
        """Feed the next rows ``(bands, rows, cols)`` of the full-resolution raster."""
        if not self._levels:
            return
        if self._nodata is None:
            self._reduce(0, block, np.ones(block.shape, dtype=np.uint8), final=False)
        else:
            valid = block != self._nodata
            self._reduce(0, np.where(valid, block, 0), valid.view(np.uint8), final=False)

    def close(self) -> None:
        """Write the rows still pending (odd last rows) of every level."""
        for level in range(len(self._levels)):
            pending = self._pending[level]
            if pending is not None:
                self._pending[level] = None
                self._reduce(level, *pending, final=True)

    def _reduce(self, level: int, sums: np.ndarray, counts: np.ndarray, final: bool) -> None:
        """Add rows of level ``level - 1`` sums and counts; write the complete level rows."""
        pending = self._pending[level]
        if pending is not None:
            sums = np.concatenate([pending[0], sums], axis=1)
            counts = np.concatenate([pending[1], counts], axis=1)
            self._pending[level] = None
        rows = sums.shape[1] if final else sums.shape[1] // 2 * 2
        if rows < sums.shape[1]:
            self._pending[level] = (sums[:, rows:], counts[:, rows:])
        if rows == 0:
            return
        sums, counts = sums[:, :rows], counts[:, :rows]
        if rows % 2 or sums.shape[2] % 2:
            pad = ((0, 0), (0, rows % 2), (0, sums.shape[2] % 2))
            sums, counts = np.pad(sums, pad), np.pad(counts, pad)
        # int32 holds the sum of 4^7 int16 values: enough for the first 7 levels.
        sums = _sum_2x2(sums, np.int32 if level < 7 else np.int64)
        counts = _sum_2x2(counts, np.int32)
        # Mean rounded half up, in exact integer arithmetic (a shift when no pixel is missing).
        bits = 2 * (level + 1)
        if counts.min() == 1 << bits:
            mean = (sums + (1 << (bits - 1))) >> bits
        else:
            mean = (2 * sums + counts) // np.maximum(2 * counts, 1)
        if self._nodata is not None:
            mean[counts == 0] = self._nodata
        target = self._levels[level]
        target.append(mean.astype(target.dtype))
        if level + 1 < len(self._levels):
            self._reduce(level + 1, sums, counts, final=final)


class _CogSink:
    """One raster written by row blocks into work GeoTIFFs (base and overviews), then a COG.

    GDAL computes COG overviews band by band over the whole image, which thrashes its cache once
    the image outgrows it (minutes per 10000² file); the overviews are therefore built while
    streaming (:class:`_OverviewPyramid`) and handed to the COG driver through a VRT.
    """

    def __init__(
        self,
        final: Path,
        work_dir: Path,
        *,
        grid: RasterGrid,
        bands: Sequence[BandSpec],
        rows_per_strip: int,
    ) -> None:
        self.final = final
        self._vrt = work_dir / f"{final.stem}.vrt"
        opened: list[_WorkRaster] = []
        try:
            opened.append(
                _WorkRaster(
                    work_dir / final.name,
                    grid.shape,
                    grid.transform,
                    crs=grid.crs_code,
                    bands=bands,
                    rows_per_strip=rows_per_strip,
                )
            )
            for level, shape in enumerate(overview_shapes(grid.shape), start=1):
                opened.append(
                    _WorkRaster(
                        work_dir / f"{final.stem}.ovr{level}.tif",
                        shape,
                        grid.transform * Affine.scale(2**level),
                        crs=grid.crs_code,
                        bands=bands,
                        rows_per_strip=1,
                    )
                )
        except BaseException:
            for raster in opened:
                raster.close()
            raise
        self._base, *overviews = opened
        self._overviews = overviews
        self._pyramid = _OverviewPyramid(overviews, bands[0].nodata)

    def write(self, data: np.ndarray, row0: int) -> None:
        """Write ``(bands, rows, cols)`` (or ``(rows, cols)``) at ``row0``, the next row due."""
        if row0 != self._base.next_row:
            raise ValueError(f"{self.final.name}: rows must arrive in order ({row0=})")
        block = data if data.ndim == 3 else data[None]
        self._base.append(block)
        self._pyramid.push(block)

    def finish(self) -> None:
        """Complete the overviews, copy everything into the final COG, remove the work files."""
        self._pyramid.close()
        self.abort()
        source = self._base.path
        if self._overviews:
            _write_vrt_with_overviews(source, [o.path for o in self._overviews], self._vrt)
            source = self._vrt
        rasterio.shutil.copy(
            source,
            self.final,
            driver="COG",
            compress="DEFLATE",
            predictor="YES",
            level=_DEFLATE_LEVEL,
            blocksize=_COG_BLOCK,
            overviews="FORCE_USE_EXISTING" if self._overviews else "NONE",
            num_threads="ALL_CPUS",
        )
        for path in (self._base.path, *(o.path for o in self._overviews), self._vrt):
            path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Close the work files without making the COG."""
        for raster in (self._base, *self._overviews):
            raster.close()


def _write_vrt_with_overviews(base: Path, overviews: Sequence[Path], vrt: Path) -> None:
    """Write a VRT of ``base`` whose bands list ``overviews`` (same bands) as their overviews."""
    rasterio.shutil.copy(base, vrt, driver="VRT")
    tree = ElementTree.parse(vrt)
    for band in tree.getroot().iter("VRTRasterBand"):
        for path in overviews:
            overview = ElementTree.SubElement(band, "Overview")
            source = ElementTree.SubElement(overview, "SourceFilename", relativeToVRT="0")
            source.text = str(path)
            ElementTree.SubElement(overview, "SourceBand").text = band.get("band")
    tree.write(vrt)


def _reflectance_bands(config: SiteConfig, pixel_size: float) -> tuple[BandSpec, ...]:
    return tuple(
        BandSpec(
            name=name,
            data_type="int16",
            nodata=NODATA,
            scale=SCALE,
            offset=0.0,
            unit="1",
            common_name=_COMMON_NAMES[name],
            center_wavelength=_CENTER_WAVELENGTH_UM[name],
            spatial_resolution=pixel_size,
        )
        for name in config.bands
    )


_MASK_BAND = BandSpec(name="mask", data_type="uint8", spatial_resolution=FINE_PIXEL_SIZE)


def _item_id(collection: str, day: date) -> str:
    return f"{collection}-{day:%Y%m%d}"


def _asset_path(root: Path, collection: str, day: date, suffix: str = "") -> Path:
    item_id = _item_id(collection, day)
    return root / collection / item_id / f"{item_id}{suffix}.tif"


@dataclass(frozen=True)
class _SitePaths:
    """Final raster paths of a site, relative to its root."""

    truth: tuple[Path, ...]
    coarse: tuple[Path, ...]
    fine: tuple[Path, ...]
    mask: tuple[Path, ...]


def _site_paths(config: SiteConfig) -> _SitePaths:
    root = Path()
    dates = config.dates
    fine_dates = [dates[d] for d in config.fine_days]
    return _SitePaths(
        truth=tuple(_asset_path(root, TRUTH_COLLECTION, d) for d in dates),
        coarse=tuple(_asset_path(root, COARSE_COLLECTION, d) for d in dates),
        fine=tuple(_asset_path(root, FINE_COLLECTION, d) for d in fine_dates),
        mask=tuple(_asset_path(root, FINE_COLLECTION, d, "_mask") for d in fine_dates),
    )


@dataclass
class _Sinks:
    """The open sinks of a site, indexed like :class:`_SitePaths`."""

    truth: list[_CogSink] = field(default_factory=list)
    coarse: list[_CogSink] = field(default_factory=list)
    fine: list[_CogSink] = field(default_factory=list)
    mask: list[_CogSink] = field(default_factory=list)

    def all(self) -> Iterator[_CogSink]:
        yield from (*self.truth, *self.coarse, *self.fine, *self.mask)


def _open_sinks(config: SiteConfig, root: Path, work: Path, paths: _SitePaths) -> _Sinks:
    ratio = config.sensor.ratio
    fine_bands = _reflectance_bands(config, FINE_PIXEL_SIZE)
    coarse_bands = _reflectance_bands(config, FINE_PIXEL_SIZE * ratio)
    sinks = _Sinks()

    def sink(rel: Path, grid: RasterGrid, bands: Sequence[BandSpec], strip: int) -> _CogSink:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        return _CogSink(root / rel, work, grid=grid, bands=bands, rows_per_strip=strip)

    try:
        for rel in paths.truth:
            sinks.truth.append(sink(rel, config.fine_grid, fine_bands, ratio))
        for rel in paths.coarse:
            sinks.coarse.append(sink(rel, config.coarse_grid, coarse_bands, 1))
        for rel in paths.fine:
            sinks.fine.append(sink(rel, config.fine_grid, fine_bands, ratio))
        for rel in paths.mask:
            sinks.mask.append(sink(rel, config.fine_grid, (_MASK_BAND,), ratio))
    except BaseException:
        for opened in sinks.all():
            opened.abort()
        raise
    return sinks


# --------------------------------------------------------------------------------------------
# Generation.


@dataclass(frozen=True)
class ChangeEvent:
    """An abrupt land-cover change of the site.

    Attributes
    ----------
    kind : str
        ``"flood"`` (the zone turns to turbid water) or ``"harvest"`` (crop fields drop to
        stubble).
    day : int
        Day index from which the change is visible.
    date : datetime.date
        The same day as a date.
    pixels : int
        Fine pixels that change.
    description : str
        One sentence for humans.
    """

    kind: str
    day: int
    date: date
    pixels: int
    description: str


@dataclass(frozen=True)
class SiteSummary:
    """What :func:`simulate_site` wrote.

    Attributes
    ----------
    out_dir : pathlib.Path
        The site directory.
    catalog : pathlib.Path
        Its ``catalog.json``.
    site_json : pathlib.Path
        Its ``site.json`` (this summary as JSON).
    config : SiteConfig
        The validated parameters.
    events : tuple of ChangeEvent
        The change events, with their sizes.
    cloud_fraction : dict
        Fine date → fraction of pixels masked (cloud, shadow or nodata).
    truth_paths, coarse_paths : tuple of pathlib.Path
        One file per day.
    fine_paths, mask_paths : tuple of pathlib.Path
        One file per fine date.
    """

    out_dir: Path
    catalog: Path
    site_json: Path
    config: SiteConfig
    events: tuple[ChangeEvent, ...]
    cloud_fraction: dict[date, float]
    truth_paths: tuple[Path, ...]
    coarse_paths: tuple[Path, ...]
    fine_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]

    @property
    def dates(self) -> tuple[date, ...]:
        """Every day of the period (truth and coarse dates)."""
        return self.config.dates

    @property
    def fine_dates(self) -> tuple[date, ...]:
        """Dates of the fine acquisitions."""
        return tuple(self.config.dates[d] for d in self.config.fine_days)

    @property
    def cloud_dates(self) -> tuple[date, ...]:
        """Fine dates with clouds, shadows and a nodata wedge."""
        return tuple(self.config.dates[d] for d in self.config.cloud_days)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the site (paths relative to ``out_dir``)."""
        cfg = self.config
        sensor = cfg.sensor

        def rel(paths: Sequence[Path]) -> list[str]:
            return [p.relative_to(self.out_dir).as_posix() for p in paths]

        return {
            "stfcube_site": 1,
            "generator": "stfcube simulate",
            "seed": cfg.seed,
            "size": cfg.size,
            "days": cfg.days,
            "dates": [d.isoformat() for d in self.dates],
            "fine_dates": [d.isoformat() for d in self.fine_dates],
            "cloud_dates": [d.isoformat() for d in self.cloud_dates],
            "cloud_fraction": {d.isoformat(): round(f, 6) for d, f in self.cloud_fraction.items()},
            "bands": list(cfg.bands),
            "crs": cfg.fine_grid.crs_code,
            "fine_pixel_size": FINE_PIXEL_SIZE,
            "fine_transform": list(cfg.fine_grid.transform)[:6],
            "coarse_ratio": sensor.ratio,
            "coarse_transform": list(cfg.coarse_grid.transform)[:6],
            "coarse_sensor": {
                "psf_sigma": sensor.psf_sigma,
                "shift_rows": sensor.shift_rows,
                "shift_cols": sensor.shift_cols,
                "noise": sensor.noise,
            },
            "scale": SCALE,
            "nodata": NODATA,
            "events": [
                {
                    "kind": e.kind,
                    "day": e.day,
                    "date": e.date.isoformat(),
                    "pixels": e.pixels,
                    "description": e.description,
                }
                for e in self.events
            ],
            "catalog": "catalog.json",
            "files": {
                "truth": rel(self.truth_paths),
                "coarse": rel(self.coarse_paths),
                "fine": rel(self.fine_paths),
                "mask": rel(self.mask_paths),
            },
        }


@dataclass
class _Tally:
    """Pixel counts gathered while streaming (for ``site.json``)."""

    flooded: int = 0
    harvested: int = 0
    masked: dict[int, int] = field(default_factory=dict)


def _row_blocks(config: SiteConfig) -> Iterator[tuple[int, int]]:
    for row0 in range(0, config.size, config.block_rows):
        yield row0, min(row0 + config.block_rows, config.size)


def _generate_block(
    config: SiteConfig,
    scene: SceneModel,
    clouds: dict[int, CloudField],
    sinks: _Sinks,
    rows: tuple[int, int],
    tally: _Tally,
) -> None:
    """Render, observe and write fine rows ``rows`` for every day."""
    ratio = config.sensor.ratio
    halo = config.sensor.halo()
    coarse_rows = (rows[0] // ratio, rows[1] // ratio)
    ext0 = max(0, coarse_rows[0] - halo) * ratio
    ext1 = min(config.size // ratio, coarse_rows[1] + halo) * ratio
    layers = scene_layers(scene, ext0, ext1)
    own = slice(rows[0] - ext0, rows[1] - ext0)
    tally.flooded += int((layers.cover_flooded[own] == LandCover.FLOOD).sum())
    harvested = layers.patches.harvested[layers.patch[own]] & (layers.cover[own] == LandCover.CROP)
    tally.harvested += int(harvested.sum())
    band_indices = config.band_indices
    fine_index = {day: i for i, day in enumerate(config.fine_days)}
    for day in range(config.days):
        truth = quantize(render_reflectance(scene, layers, day, band_indices))
        sinks.truth[day].write(truth[:, own], rows[0])
        if day in fine_index:
            data, mask = observe_fine(truth[:, own], rows[0], clouds.get(day), band_indices)
            sinks.fine[fine_index[day]].write(data, rows[0])
            sinks.mask[fine_index[day]].write(mask, rows[0])
            tally.masked[day] = tally.masked.get(day, 0) + int(mask.size - mask.sum())
        coarse = observe_coarse(
            truth,
            ext0,
            coarse_rows,
            config.sensor,
            seed=config.seed,
            day=day,
            size=config.size,
            band_indices=band_indices,
        )
        sinks.coarse[day].write(coarse, coarse_rows[0])


def _events(config: SiteConfig, tally: _Tally) -> tuple[ChangeEvent, ...]:
    dates = config.dates
    return (
        ChangeEvent(
            "harvest",
            config.harvest_day,
            dates[config.harvest_day],
            tally.harvested,
            "Green crop fields are cut (silage, hay): their vegetation fraction drops to stubble.",
        ),
        ChangeEvent(
            "flood",
            config.flood_day,
            dates[config.flood_day],
            tally.flooded,
            "A zone around the river turns to turbid flood water.",
        ),
    )


def _when(day: date) -> datetime:
    return datetime.combine(day, _OVERPASS)


def _catalog_collections(
    config: SiteConfig, root: Path, paths: _SitePaths
) -> list[pystac.Collection]:
    """Build the three STAC collections of a site whose files lie under ``root``."""
    ratio = config.sensor.ratio
    fine_bands = _reflectance_bands(config, FINE_PIXEL_SIZE)
    coarse_bands = _reflectance_bands(config, FINE_PIXEL_SIZE * ratio)
    dates = config.dates
    fine_dates = [dates[d] for d in config.fine_days]

    def data_asset(rel: Path, bands: tuple[BandSpec, ...], title: str) -> AssetSpec:
        return AssetSpec("data", root / rel, ("data",), bands, title=title)

    truth_items = [
        build_item(
            _item_id(TRUTH_COLLECTION, d),
            _when(d),
            config.fine_grid,
            [data_asset(rel, fine_bands, "Cloud-free fine truth")],
            role="truth",
            properties={"gsd": FINE_PIXEL_SIZE},
        )
        for d, rel in zip(dates, paths.truth, strict=True)
    ]
    coarse_items = [
        build_item(
            _item_id(COARSE_COLLECTION, d),
            _when(d),
            config.coarse_grid,
            [data_asset(rel, coarse_bands, "Coarse surface reflectance")],
            role="coarse",
            properties={"gsd": FINE_PIXEL_SIZE * ratio},
        )
        for d, rel in zip(dates, paths.coarse, strict=True)
    ]
    fine_items = [
        build_item(
            _item_id(FINE_COLLECTION, d),
            _when(d),
            config.fine_grid,
            [
                data_asset(rel, fine_bands, "Fine surface reflectance"),
                AssetSpec(
                    "mask",
                    root / mask_rel,
                    ("cloud",),
                    (_MASK_BAND,),
                    title="Clear-pixel mask (1 clear, 0 cloud/shadow/nodata)",
                    extra_fields={VALID_VALUES_KEY: [1]},
                ),
            ],
            role="fine",
            properties={"gsd": FINE_PIXEL_SIZE},
        )
        for d, rel, mask_rel in zip(fine_dates, paths.fine, paths.mask, strict=True)
    ]
    return [
        build_collection(
            FINE_COLLECTION,
            "Simulated fine sensor (30 m) with clouds, shadows and nodata; see the mask asset.",
            fine_items,
            role="fine",
            title="Simulated fine sensor",
        ),
        build_collection(
            COARSE_COLLECTION,
            f"Simulated coarse sensor ({FINE_PIXEL_SIZE * ratio:g} m, daily): area average, "
            "PSF blur, misregistration and noise of the fine truth.",
            coarse_items,
            role="coarse",
            title="Simulated coarse sensor",
        ),
        build_collection(
            TRUTH_COLLECTION,
            "Cloud-free fine truth for every day, for evaluation.",
            truth_items,
            role="truth",
            title="Simulated fine truth",
        ),
    ]


def _looks_like_site(path: Path) -> bool:
    try:
        return "stfcube_site" in json.loads((path / "site.json").read_text())
    except (OSError, ValueError):
        return False


def _check_output(out_dir: Path, overwrite: bool) -> None:
    """Refuse an output that exists as a file or as a non-empty directory (unless a site)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise OutputError(
            f"{out_dir}: directory is not empty; choose another one or pass --overwrite"
        )
    if not _looks_like_site(out_dir):
        raise OutputError(
            f"{out_dir}: directory is not empty and holds no stfcube site (no site.json); "
            "refusing to replace it even with --overwrite"
        )


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the finished site from ``staging`` to ``out_dir``, replacing what is there."""
    if out_dir.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        retired.rmdir()
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired)
    else:
        staging.rename(out_dir)


def simulate_site(
    out_dir: str | os.PathLike[str],
    *,
    size: int = 1024,
    days: int = 32,
    seed: int = 0,
    coarse_ratio: int = 16,
    fine_every: int = 8,
    bands: Sequence[str] = BAND_NAMES,
    cloud_dates: Sequence[date | str] | None = None,
    start_date: date | str = "2024-05-01",
    block_rows: int | None = None,
    psf_sigma: float = 0.5,
    misregistration: tuple[float, float] = (0.2, 0.3),
    coarse_noise: float = 0.01,
    flood_day: int | None = None,
    harvest_day: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SiteSummary:
    """Write a deterministic synthetic STF test site (COGs + STAC catalog + ``site.json``).

    Parameters
    ----------
    out_dir : path
        Site directory; must be absent or empty unless ``overwrite`` (and then it must hold a
        previous site). The site is written beside it and moved in place when complete.
    size : int
        Image size in fine (30 m) pixels; a multiple of ``coarse_ratio``.
    days : int
        Number of days (one truth and one coarse image per day), at least 2.
    seed : int
        Seed; the same parameters and seed give byte-identical files.
    coarse_ratio : int
        Coarse pixel size / fine pixel size.
    fine_every : int
        Days between fine acquisitions (the last day is always one).
    bands : sequence of str
        Bands to write, among :data:`BAND_NAMES`.
    cloud_dates : sequence of date or str, optional
        Fine dates with clouds, shadows and a swath-edge nodata wedge. Default: every second
        fine date, never the first or the last. Pass ``()`` for a clear site.
    start_date : date or str
        First day.
    block_rows : int, optional
        Fine rows per streamed block (a multiple of ``coarse_ratio``); the default keeps blocks
        near 4 Mpixel. The output does not depend on it.
    psf_sigma : float
        Coarse Gaussian point-spread sigma, in coarse pixels.
    misregistration : tuple of float
        Coarse ``(rows, cols)`` shift in coarse pixels (see :class:`CoarseSensor`).
    coarse_noise : float
        Coarse noise standard deviation, in reflectance.
    flood_day, harvest_day : int, optional
        Day indices of the change events (default 60 % and 35 % through the period).
    overwrite : bool
        Replace an existing site in ``out_dir``.
    progress : callable, optional
        Called as ``progress(rows_done, size)`` after each block.

    Returns
    -------
    SiteSummary
        Paths, dates and events of the written site.

    Raises
    ------
    pipeline.errors.ConfigError
        On invalid parameters (e.g. ``size`` not a multiple of ``coarse_ratio``).
    pipeline.errors.OutputError
        If ``out_dir`` is a file, or a non-empty directory without ``overwrite``.
    """
    config = make_config(
        size=size,
        days=days,
        seed=seed,
        coarse_ratio=coarse_ratio,
        fine_every=fine_every,
        bands=bands,
        cloud_dates=cloud_dates,
        start_date=start_date,
        block_rows=block_rows,
        psf_sigma=psf_sigma,
        misregistration=misregistration,
        coarse_noise=coarse_noise,
        flood_day=flood_day,
        harvest_day=harvest_day,
    )
    out = Path(out_dir).absolute()
    _check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        summary = _write_site(config, staging, out, progress)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _write_site(
    config: SiteConfig,
    staging: Path,
    out: Path,
    progress: Callable[[int, int], None] | None,
) -> SiteSummary:
    """Generate every file of a site into ``staging``; the summary names the final paths."""
    scene = make_scene_model(
        config.size,
        config.days,
        config.seed,
        flood_day=config.flood_day,
        harvest_day=config.harvest_day,
    )
    clouds = {
        day: make_cloud_field(config.seed, config.size, config.fine_days.index(day))
        for day in config.cloud_days
    }
    paths = _site_paths(config)
    work = staging / "_work"
    work.mkdir()
    tally = _Tally()
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB, GDAL_PAM_ENABLED="NO"):
        sinks = _open_sinks(config, staging, work, paths)
        try:
            for rows in _row_blocks(config):
                _generate_block(config, scene, clouds, sinks, rows, tally)
                if progress is not None:
                    progress(rows[1], config.size)
        except BaseException:
            for sink in sinks.all():
                sink.abort()
            raise
        for sink in sinks.all():
            sink.finish()
    work.rmdir()
    write_catalog(
        staging,
        f"stfcube-sim-{config.seed}",
        f"Synthetic STF site (seed {config.seed}, {config.size}² fine pixels, "
        f"{config.days} days) written by stfcube simulate.",
        _catalog_collections(config, staging, paths),
        title="stfcube synthetic site",
    )
    fine_dates = [config.dates[d] for d in config.fine_days]
    pixels = config.size * config.size
    summary = SiteSummary(
        out_dir=out,
        catalog=out / "catalog.json",
        site_json=out / "site.json",
        config=config,
        events=_events(config, tally),
        cloud_fraction={
            d: tally.masked.get(day, 0) / pixels
            for d, day in zip(fine_dates, config.fine_days, strict=True)
        },
        truth_paths=tuple(out / p for p in paths.truth),
        coarse_paths=tuple(out / p for p in paths.coarse),
        fine_paths=tuple(out / p for p in paths.fine),
        mask_paths=tuple(out / p for p in paths.mask),
    )
    (staging / "site.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary
