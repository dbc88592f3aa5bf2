"""Scene model: compact global description, then per-block layers and per-day reflectance.

Land-cover patches (a jittered Voronoi lattice) with per-class double-logistic phenology, lakes,
a meandering river, straight roads, a flood zone and harvested fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from stfcube.pipeline.simulate.constants import SCALE, STORED_MAX, STORED_MIN, FloatArray
from stfcube.pipeline.simulate.noise import (
    Salt,
    global_quantile,
    hash_uniform,
    pixel_centres,
    value_noise,
)

#: Fine pixel size of one Voronoi lattice cell (fields of roughly 700 m).
_PATCH_CELL = 24
_ZONE_CELLS = 10
_LAKE_FRACTION = 0.04
_HARVEST_FRACTION = 0.25
_STUBBLE_FRACTION = 0.06
#: Green-up (days before the first day) and minimum green season of fields cut on harvest day.
_CUT_FIELD_GREEN_UP = (20.0, 60.0)
_CUT_FIELD_SEASON = 60.0


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

_BACKGROUND = np.array(
    [_SOIL, _DARK_SOIL, _LITTER, _URBAN, _WATER, _ASPHALT, _TURBID_WATER], dtype=np.float32
)
_CANOPY = np.array(
    [_CROP_CANOPY, _GRASS_CANOPY, _FOREST_CANOPY, _GRASS_CANOPY, _WATER, _ASPHALT, _TURBID_WATER],
    dtype=np.float32,
)


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
        edge = value_noise(rows, cols, seed=seed, salt=Salt.FLOOD_EDGE, spacing=self.edge_spacing)
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
    large = value_noise(rows, cols, seed=seed, salt=Salt.LAKE_LARGE, spacing=160.0)
    small = value_noise(rows, cols, seed=seed, salt=Salt.LAKE_SMALL, spacing=40.0)
    mixed = large + np.float32(0.5) * small
    mixed /= np.float32(1.5)
    return mixed


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
    lake_threshold = global_quantile(lambda r, c: _lake_noise(r, c, seed), size, _LAKE_FRACTION)
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
    seed_rows = (ly + 0.1 + 0.8 * hash_uniform(seed, Salt.JITTER_Y, ly, lx)) * _PATCH_CELL
    seed_cols = (lx + 0.1 + 0.8 * hash_uniform(seed, Salt.JITTER_X, ly, lx)) * _PATCH_CELL
    zone = value_noise(
        (lattice_rows + 0.5) * _PATCH_CELL,
        (lattice_cols + 0.5) * _PATCH_CELL,
        seed=seed,
        salt=Salt.ZONE,
        spacing=_ZONE_CELLS * _PATCH_CELL,
    )
    cover = _classify_patches(zone, hash_uniform(seed, Salt.CLASS, ly, lx)).ravel()
    names = ("f_min", "f_max", "t_up", "rate_up", "t_down", "rate_down")
    params = {name: np.zeros(cover.shape, dtype=np.float32) for name in names}
    draws = [hash_uniform(seed, Salt.PHENOLOGY + i, ly, lx).ravel() for i in range(6)]
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
        hash_uniform(seed, Salt.HARVEST, ly, lx).ravel() < _HARVEST_FRACTION
    )
    # Fields cut for silage or hay are already green on the first day and stay green until cut.
    params["t_up"][harvested] = -_uniform_in(draws[2][harvested], _CUT_FIELD_GREEN_UP)
    params["t_down"][harvested] = params["t_up"][harvested] + _CUT_FIELD_SEASON + scene.days
    brightness = _uniform_in(hash_uniform(seed, Salt.BRIGHTNESS, ly, lx).ravel(), (0.85, 1.15))
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
    rows = pixel_centres(row0, row1)
    cols = pixel_centres(0, size)
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
    mid = value_noise(rows, cols, seed=seed, salt=Salt.TEXTURE_MID, spacing=16.0)
    fine = value_noise(rows, cols, seed=seed, salt=Salt.TEXTURE_FINE, spacing=3.0)
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
    np.clip(stored, STORED_MIN, STORED_MAX, out=stored)
    return stored.astype(np.int16)
