"""Inputs that read without error but would be wrong: caught before anything is written.

:func:`plan_ingest <stfcube.pipeline.ingest.validate.plan_ingest>` calls these checks; each raises
one :class:`~stfcube.pipeline.errors.InputError` naming the file, the problem and the fix.

- **Band identity** (:func:`check_band_identity`): when a file names its bands (GeoTIFF band
  descriptions, STAC ``eo:bands`` ``name``/``common_name``) with the cube's band names but in
  another order, a band would be read as another (red as blue). Names the cube does not use
  (``B4``, ``sur_refl_b01``) say nothing and are not checked.
- **Units** (:func:`check_units`): for cube units naming reflectance or a normalised index
  (``reflectance x 10000``, ``NDVI x 10000``, ``reflectance``), the 99th percentile of a
  scene's decoded absolute values, divided by the units' factor, must lie in
  [:data:`SMALLEST_P99`, :data:`LARGEST_P99`]: physical reflectances and indices stay within
  about +-1.6, and no real scene has 99 % of its pixels below 0.0002. A 0..1 reflectance file
  with no ``scale`` into a ``x 10000`` cube (99th percentile <= 1.6) or a 0..10000 file with
  ``scale: 10000`` (about 10^8) is refused with the ``scale`` that fixes it. Reflectance whose
  1st percentile is below :data:`LOWEST_REFLECTANCE` holds an undeclared fill value (-9999):
  refused with the ``nodata`` to set. The percentiles come from the sample
  :func:`~stfcube.pipeline.ingest.readers.sample_values` reads near the scene's centre.
- **Pixel shape** (:func:`check_square_pixels`): the methods measure distances in pixels of one
  size and use one coarse/fine ratio, so pixels whose sides differ by more than
  :data:`SQUARE_TOLERANCE` (30 x 20 m) are refused on the fine grid, and on coarse scenes in
  its CRS (scenes in another CRS are warped by GDAL).
- **Image size** (:func:`check_fine_size`): a fine grid smaller than :data:`MIN_SIDE` pixels
  or than one coarse pixel has nothing to fuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stfcube.pipeline.errors import InputError
from stfcube.pipeline.geometry.grid import Grid
from stfcube.pipeline.ingest.readers import RasterInfo, Scene

#: Physical quantities whose range is known: reflectance and normalised indices (|v| <~ 1.6).
_BOUNDED_QUANTITIES = frozenset({"reflectance", "ndvi", "evi", "evi2", "ndwi", "nbr", "savi"})
#: ``reflectance x 10000``, ``NDVI*10000``, ``reflectance``: the quantity and its factor.
_UNITS = re.compile(r"\s*([A-Za-z0-9]+)(?:\s*[x×*]\s*([0-9][0-9_,.]*))?\s*")
#: Bounds of the 99th percentile of |value| / factor of a scene in stated units.
SMALLEST_P99 = 2e-4
LARGEST_P99 = 5.0
#: Reflectance below this (1st percentile) is an undeclared fill value (surface reflectance
#: dips slightly below 0 at most, from atmospheric over-correction).
LOWEST_REFLECTANCE = -0.5
#: The usual factor between reflectance and its integer form: the fix suggested for a misfit.
DN_FACTOR = 10_000
#: Smallest fine grid side, in pixels.
MIN_SIDE = 2
#: Relative tolerance of "square": pixel sides differing by 1 % or less (real grids such as
#: 29.9 x 30 m) change distances by as much, far below a pixel over a search window.
SQUARE_TOLERANCE = 0.01


def _norm(label: str) -> str:
    return label.strip().lower()


def _reference(scenes: Sequence[Scene], band_names: tuple[str, ...]) -> list[set[str]]:
    """Per cube band, the names that identify it: its own and the fine scenes' STAC labels."""
    reference = [{_norm(name)} for name in band_names]
    for scene in scenes:
        if scene.role == "fine" and len(scene.band_labels) == len(band_names):
            for names, labels in zip(reference, scene.band_labels, strict=True):
                names.update(_norm(label) for label in labels if label.strip())
    return reference


def _file_labels(scene: Scene, info: RasterInfo) -> tuple[list[set[str]], str]:
    """Per band read, the names the file or catalog gives it; and where they come from."""
    if any(scene.band_labels):
        labels = [{_norm(x) for x in names if x.strip()} for names in scene.band_labels]
        return labels, "STAC eo:bands"
    described = [
        info.descriptions[b - 1] if b - 1 < len(info.descriptions) else "" for b in scene.bands
    ]
    return [{_norm(d)} if d.strip() else set() for d in described], "GeoTIFF band descriptions"


def _reorder_hint(info: RasterInfo, reference: list[set[str]], source: str) -> str:
    """``bands: [3, 2, 1]`` when every cube band is described by exactly one file band."""
    if not source.startswith("GeoTIFF"):
        return "fix the catalog's band order or names"
    described = [_norm(d) for d in info.descriptions]
    matches = [[i + 1 for i, d in enumerate(described) if d in names] for names in reference]
    if all(len(m) == 1 for m in matches):
        return f"give this scene `bands: {[m[0] for m in matches]}` or fix the band names"
    return "list this scene's `bands` in the cube's order or fix the band names"


def check_band_identity(
    scenes: Sequence[Scene], infos: dict[str, RasterInfo], band_names: tuple[str, ...]
) -> None:
    """Refuse a scene whose own band names put the cube's bands in another order.

    Parameters
    ----------
    scenes
        The scenes to ingest, bands resolved.
    infos
        :func:`~stfcube.pipeline.ingest.readers.probe_raster` of each scene, by path.
    band_names
        The cube's band names, in order.

    Raises
    ------
    InputError
        Naming the file, the names it gives the bands read and the cube's names.
    """
    reference = _reference(scenes, band_names)
    for scene in scenes:
        labels, source = _file_labels(scene, infos[scene.path])
        misplaced = [
            i
            for i, found in enumerate(labels)
            if found
            and not found & reference[i]
            and any(found & names for j, names in enumerate(reference) if j != i)
        ]
        if misplaced:
            known = set().union(*reference)
            shown = [min(found & known or found, default="?") for found in labels]
            raise InputError(
                scene.path,
                f"band order contradicts the cube's: its bands {list(scene.bands)} are named "
                f"{shown} ({source}) where the cube's bands are {list(band_names)}; refusing to "
                f"read one band as another: " + _reorder_hint(infos[scene.path], reference, source),
            )


@dataclass(frozen=True)
class ValueRange:
    """Percentiles of a scene's decoded values (from a sample), for the units check."""

    low: float
    high: float
    magnitude: float
    minimum: float

    @classmethod
    def of(cls, values: np.ndarray) -> ValueRange:
        """1st and 99th percentiles of ``values``, 99th of ``|values|``, and the minimum."""
        low, high = np.percentile(values, [1, 99])
        magnitude = np.percentile(np.abs(values), 99)
        return cls(float(low), float(high), float(magnitude), float(values.min()))


def parse_units(units: str) -> tuple[str, float] | None:
    """Quantity and factor of units naming reflectance or an index.

    ``reflectance x 10000`` -> ``("reflectance", 10000.0)``, ``NDVI`` -> ``("ndvi", 1.0)``.

    Returns
    -------
    (str, float) or None
        ``None`` for other units (nothing is known of their range): no check.
    """
    match = _UNITS.fullmatch(units)
    if match is None or match.group(1).lower() not in _BOUNDED_QUANTITIES:
        return None
    factor = match.group(2)
    return match.group(1).lower(), float(
        factor.replace(",", "").replace("_", "")
    ) if factor else 1.0


def _fits(magnitude: float, factor: float) -> bool:
    return SMALLEST_P99 <= magnitude / factor <= LARGEST_P99


def _check_fill(scene: Scene, observed: ValueRange, units: str, factor: float) -> None:
    """Refuse reflectance whose 1st percentile is far below zero: an undeclared fill value."""
    if observed.low / factor >= LOWEST_REFLECTANCE:
        return
    raw = (observed.minimum - scene.offset) / scene.scale
    raise InputError(
        scene.path,
        f"values down to {observed.minimum:.6g} (1st percentile {observed.low:.6g}) cannot be "
        f"{units}, which stays above {LOWEST_REFLECTANCE * factor:g}: an undeclared fill value? "
        f"set `nodata: {raw:g}` for it",
    )


def check_units(scene: Scene, observed: ValueRange, units: str) -> None:
    """Refuse a scene whose decoded values cannot be in the cube's units.

    Parameters
    ----------
    scene
        The scene (its ``scale`` is named in the fix).
    observed
        Percentiles of its decoded values.
    units
        The cube's units (see :func:`parse_units`; other units are not checked).

    Raises
    ------
    InputError
        Naming the file, the observed range, the units and the ``scale`` (or ``nodata``) that
        fits them.
    """
    parsed = parse_units(units)
    if parsed is None:
        return
    quantity, factor = parsed
    if quantity == "reflectance":
        _check_fill(scene, observed, units, factor)
    if _fits(observed.magnitude, factor):
        return
    fix = DN_FACTOR if observed.magnitude / factor < SMALLEST_P99 else 1 / DN_FACTOR
    if _fits(observed.magnitude * fix, factor):
        advice = f"set `scale: {scene.scale * fix:g}` for it (now {scene.scale:g})"
    else:
        advice = "check its scale, offset and nodata"
    raise InputError(
        scene.path,
        f"values {observed.low:.4g} .. {observed.high:.4g} (1st..99th percentile, after scale "
        f"{scene.scale:g}, offset {scene.offset:g}) cannot be {units}: {advice}",
    )


def check_square_pixels(scene: Scene, grid: Grid, fine: Grid) -> None:
    """Refuse non-square pixels on the fine grid or on a coarse scene in the fine grid's CRS.

    Raises
    ------
    InputError
        Naming the file and its pixel size.
    """
    width, height = (abs(r) for r in grid.res)
    if math.isclose(width, height, rel_tol=SQUARE_TOLERANCE):
        return
    if scene.role == "fine" or grid.same_crs(fine):
        side = f"{min(width, height):g}"
        raise InputError(
            scene.path,
            f"pixels are {width:g} x {height:g}, not square: stfcube's methods measure "
            "distances in pixels of one size and use one coarse/fine ratio; resample it to "
            f"square pixels first (e.g. gdalwarp -tr {side} {side})",
        )


def check_fine_size(grid: Grid, where: str, ratio: int | None) -> None:
    """Refuse a fine grid too small to fuse: under :data:`MIN_SIDE` or one coarse pixel.

    Raises
    ------
    InputError
        Naming the file, its size and the smallest size.
    """
    side = max(MIN_SIDE, ratio or 1)
    if min(grid.shape) < side:
        what = f"one coarse pixel ({side}x{side} fine pixels)" if ratio else f"{side}x{side}"
        raise InputError(
            where,
            f"the fine grid is {grid.height}x{grid.width} pixels, smaller than {what}: "
            "there is nothing to fuse",
        )
