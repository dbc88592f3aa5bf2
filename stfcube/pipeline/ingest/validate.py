"""Validation of a scene stack before anything is written: the plan of the cube to write.

:func:`plan_ingest` checks every input against the others and against the existing cube
(each file's metadata and completeness, band counts and names, duplicate dates, masks, grids,
CRSs, pixel shapes and sizes), then that every scene overlaps the fine grid and has pixels with
data there, in the cube's units (:mod:`stfcube.pipeline.ingest.sanity`), and decides the native
coarse grid. Any problem is an :class:`~stfcube.pipeline.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import xarray as xr

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.geometry.grid import (
    Grid,
    coarse_alignment,
    covering_window,
    native_grid,
    pixel_ratio,
)
from stfcube.pipeline.ingest.readers import (
    ROLES,
    RasterInfo,
    Scene,
    SceneStack,
    probe_raster,
    sample_values,
)
from stfcube.pipeline.ingest.sanity import (
    ValueRange,
    check_band_identity,
    check_fine_size,
    check_square_pixels,
    check_units,
)
from stfcube.pipeline.store.cube import cube_grid, native_cube_grid
from stfcube.pipeline.store.metadata import stated_units

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


@dataclass(frozen=True)
class IngestPlan:
    """Validated inputs and the layout of the cube to write.

    Attributes
    ----------
    scenes
        The scenes to write (truth relabelled as fine), every band resolved.
    infos
        :func:`~stfcube.pipeline.ingest.readers.probe_raster` of every scene and mask file, by path.
    grid
        The fine grid (the cube's, or the first fine scene's for a new cube).
    native
        The native coarse grid to keep as ``coarse_native``, if any.
    band_names
        Names of the cube's ``band`` axis.
    coarse_ratio
        Integer coarse/fine pixel ratio, when known.
    warnings
        Non-fatal problems (no CRS, native grid not kept, ...).
    """

    scenes: tuple[Scene, ...]
    infos: dict[str, RasterInfo]
    grid: Grid
    native: Grid | None
    band_names: tuple[str, ...]
    coarse_ratio: int | None
    warnings: tuple[str, ...]

    def grid_of(self, stem: str) -> Grid:
        """The grid of a cube variable stem: the native coarse grid for ``coarse_native``."""
        if stem != "coarse_native":
            return self.grid
        if self.native is None:
            raise ValueError("this plan keeps no native coarse grid")
        return self.native

    def native_ratio(self) -> int:
        """Integer ratio of the native coarse grid's pixels to the fine grid's."""
        return round(self.grid_of("coarse_native").transform.a / self.grid.transform.a)


def check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """The distinct roles to ingest, checked.

    Raises
    ------
    ConfigError
        For an unknown role, none, or ``truth`` together with another role.
    """
    roles = tuple(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ConfigError(f"unknown role(s) {unknown}: choose from {ROLES}")
    if "truth" in roles and len(roles) > 1:
        raise ConfigError("role 'truth' is ingested alone, into its own cube (as 'fine')")
    return roles


def _select(stack: SceneStack, roles: tuple[str, ...]) -> tuple[list[Scene], int]:
    """Scenes of the requested roles, truth relabelled as fine; and the number ignored."""
    chosen = [s for s in stack.scenes if s.role in roles]
    if not chosen:
        raise InputError(stack.source, f"no scene with role(s) {', '.join(roles)}")
    relabelled = [replace(s, role="fine") if s.role == "truth" else s for s in chosen]
    return relabelled, len(stack.scenes) - len(chosen)


def _in_threads(function: Callable[[_Item], _Result], items: Iterable[_Item]) -> Iterator[_Result]:
    """``function`` of each item, in order, computed by one thread per core (GDAL reads release
    the GIL); the first item that raises, in order, raises its error as a loop would."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield from pool.map(function, items)


def _probe_all(scenes: Sequence[Scene]) -> dict[str, RasterInfo]:
    paths = dict.fromkeys(
        path for scene in scenes for path in (scene.path, scene.mask_path) if path is not None
    )
    return dict(zip(paths, _in_threads(probe_raster, paths), strict=True))


def _resolve_bands(
    scenes: Sequence[Scene], infos: dict[str, RasterInfo], band_names: tuple[str, ...]
) -> tuple[list[Scene], tuple[str, ...]]:
    """Fill in "all bands" scenes, name the bands and check every scene's band count."""
    resolved = [
        s if s.bands else replace(s, bands=tuple(range(1, infos[s.path].count + 1))) for s in scenes
    ]
    names = band_names or tuple(f"b{i}" for i in range(1, len(resolved[0].bands) + 1))
    for scene in resolved:
        info = infos[scene.path]
        if len(scene.bands) != len(names):
            raise InputError(
                scene.path,
                f"{len(scene.bands)} band(s) to read where the cube has {len(names)} "
                f"({', '.join(names)})",
            )
        if max(scene.bands) > info.count:
            raise InputError(
                scene.path, f"band {max(scene.bands)} requested, the file has {info.count}"
            )
    return resolved, names


def _check_duplicates(scenes: Sequence[Scene]) -> None:
    seen: dict[tuple[str, np.datetime64], Scene] = {}
    for scene in scenes:
        key = (scene.role, scene.date)
        if key in seen:
            raise InputError(
                scene.path,
                f"duplicate {scene.role} date {scene.date} (also in {seen[key].path})",
            )
        seen[key] = scene


def _lacks_crs(own: Grid, grid: Grid) -> bool:
    """Whether a grid lacks a CRS that ``grid`` has."""
    return own.crs is None and grid.crs is not None


def _check_masks(scenes: Sequence[Scene], infos: dict[str, RasterInfo]) -> None:
    """Every mask is on its image's grid; an image lacking the CRS its mask has is named."""
    for scene in scenes:
        if scene.mask_path is None:
            continue
        mask, image = infos[scene.mask_path].grid, infos[scene.path].grid
        if _lacks_crs(image, mask):
            raise InputError(scene.path, f"has no CRS while its mask {scene.mask_path} has one")
        if not mask.matches(image):
            raise InputError(
                scene.mask_path,
                f"mask grid {mask.describe()} differs from its image's {image.describe()}",
            )


def _check_fine(
    scenes: Sequence[Scene], infos: dict[str, RasterInfo], grid: Grid, grid_source: str | None
) -> None:
    """Every fine scene is on the fine grid, with square pixels.

    ``grid_source`` is the fine scene the grid came from (``None``: the cube's): when the grid
    lacks a CRS that a scene has, the message names that file.
    """
    for scene in scenes:
        if scene.role != "fine":
            continue
        own = infos[scene.path].grid
        check_square_pixels(scene, own, grid)
        if own.matches(grid):
            continue
        if grid_source is not None and _lacks_crs(grid, own):
            raise InputError(
                grid_source,
                f"has no CRS while the fine scene {scene.path} has one "
                f"({own.describe()}): fine scenes must share one grid",
            )
        raise InputError(
            scene.path,
            f"grid {own.describe()} differs from the fine grid {grid.describe()}: fine scenes "
            "must share one grid",
        )


def _check_coarse_crs(
    coarse: Sequence[Scene], infos: dict[str, RasterInfo], grid: Grid, grid_source: str | None
) -> None:
    """Coarse scenes have a CRS exactly when the fine grid has one; square pixels in its CRS.

    When the fine grid (taken from ``grid_source``, a fine scene) lacks the CRS that a coarse
    scene has, the message names the fine scene: it is the one to fix.
    """
    for scene in coarse:
        own = infos[scene.path].grid
        if grid_source is not None and _lacks_crs(grid, own):
            raise InputError(
                grid_source,
                f"has no CRS while the coarse scene {scene.path} has one: the fine scenes need "
                "a CRS to put the coarse scenes on their grid",
            )
        if (own.crs is None) != (grid.crs is None):
            has, lacks = ("has no CRS", "has one") if own.crs is None else ("has a CRS", "has none")
            raise InputError(
                scene.path,
                f"{has} while the fine grid {lacks}: it cannot be put on the fine grid",
            )
        check_square_pixels(scene, own, grid)


def _emptiness(scene: Scene, info: RasterInfo, grid: Grid, units: str) -> str | None:
    """Why a scene has nothing for the fine grid (no overlap, no valid pixel there), or ``None``.

    A scene with data must also have values that can be in the cube's ``units``, judged on a
    sample read near the overlap's centre.

    Raises
    ------
    InputError
        When its values cannot be in ``units``
        (:func:`~stfcube.pipeline.ingest.sanity.check_units`).
    """
    area = covering_window(info.grid, grid)
    if area is None:
        return (
            f"does not overlap the fine grid: the scene is {info.grid.describe()}, the fine "
            f"grid {grid.describe()}"
        )
    sample = sample_values(scene, info, area)
    if sample.size == 0:
        where = "" if info.grid.matches(grid) else " where it covers the fine grid"
        nodata = scene.nodata if scene.nodata is not None else info.nodata
        return (
            f"has no valid pixel{where}: bands {list(scene.bands)} hold only nodata ({nodata}) "
            "or NaN"
        )
    check_units(scene, ValueRange.of(sample), units)
    return None


def _check_coverage(
    scenes: Sequence[Scene],
    infos: dict[str, RasterInfo],
    grid: Grid,
    units: str,
    skip_empty: bool,
) -> tuple[list[Scene], list[str]]:
    """The scenes with data on the fine grid, and a note per empty scene skipped.

    An empty scene (:func:`_emptiness`) is an error, or with ``skip_empty`` a stated skip.
    """
    kept: list[Scene] = []
    skipped: list[str] = []
    problems = _in_threads(lambda scene: _emptiness(scene, infos[scene.path], grid, units), scenes)
    for scene, problem in zip(scenes, problems, strict=True):
        if problem is None:
            kept.append(scene)
        elif skip_empty:
            skipped.append(
                f"skipped (--skip-empty): {scene.path}: {scene.role} {scene.date} {problem}"
            )
        else:
            raise InputError(scene.path, problem)
    return kept, skipped


def _decide_native(
    coarse: Sequence[Scene],
    infos: dict[str, RasterInfo],
    grid: Grid,
    existing: Grid | None,
    cube_exists: bool,
    native: bool | None,
) -> tuple[Grid | None, int | None, list[str]]:
    """The native coarse grid to keep (if any), its ratio, and warnings."""
    off_grid = [s for s in coarse if not infos[s.path].grid.matches(grid)]
    if cube_exists:
        if existing is None:
            if native and off_grid:
                raise InputError(off_grid[0].path, "native grid requested but the cube has none")
            return None, None, []
        for scene in off_grid:
            ratio, reason = coarse_alignment(infos[scene.path].grid, grid)
            if ratio is None or native_grid(infos[scene.path].grid, grid, ratio) != existing:
                raise InputError(
                    scene.path,
                    f"does not nest in the cube's coarse_native grid ({reason or 'ratio differs'})",
                )
        return existing, None, []
    if not off_grid or native is False:
        return None, None, []
    targets = set()
    for scene in off_grid:
        ratio, reason = coarse_alignment(infos[scene.path].grid, grid)
        if ratio is None:
            if native:
                raise InputError(scene.path, f"native coarse grid requested, but {reason}")
            return None, None, [f"coarse_native not kept: {scene.path}: {reason}"]
        targets.add((native_grid(infos[scene.path].grid, grid, ratio), ratio))
    if len(targets) > 1:
        problem = "coarse scenes nest the fine grid with different ratios"
        if native:
            raise InputError(off_grid[0].path, problem)
        return None, None, [f"coarse_native not kept: {problem}"]
    target, ratio = targets.pop()
    return target, ratio, []


def plan_ingest(
    stack: SceneStack,
    roles: tuple[str, ...],
    cube: xr.Dataset | None,
    native: bool | None,
    skip_empty: bool = False,
) -> tuple[IngestPlan, int]:
    """Validate every input against each other and the existing cube; nothing is written.

    Parameters
    ----------
    stack
        The scenes of a front-end.
    roles
        Roles to ingest (:func:`check_roles`).
    cube
        The existing cube, or ``None`` for a new one.
    native
        Keep the native coarse grid: ``None`` when the grids nest, ``True`` required, ``False``
        never.
    skip_empty
        Leave out scenes outside the fine grid or without a valid pixel on it, each stated in
        the plan's warnings, instead of refusing them.

    Returns
    -------
    (IngestPlan, int)
        The plan and the number of scenes of other roles (ignored).

    Raises
    ------
    InputError
        Naming the file (or the source) of the first problem found.
    """
    scenes, ignored = _select(stack, roles)
    _check_duplicates(scenes)
    infos = _probe_all(scenes)
    scenes, band_names = _resolve_bands(scenes, infos, stack.band_names)
    notes: list[str] = []
    fine = [s for s in scenes if s.role == "fine"]
    coarse = [s for s in scenes if s.role == "coarse"]
    grid_source: str | None = None
    if cube is not None:
        grid = cube_grid(cube)
        cube_bands = tuple(str(b) for b in cube["band"].values)
        if cube_bands != band_names:
            raise InputError(
                stack.source, f"bands {list(band_names)} differ from the cube's {list(cube_bands)}"
            )
        stated = (stated_units(cube[v].attrs) for v in ("fine", "coarse") if v in cube)
        cube_units = str(next((u for u in stated if u), stack.units))
        if cube_units != stack.units:
            raise InputError(
                stack.source, f"units {stack.units!r} differ from the cube's {cube_units!r}"
            )
    elif fine:
        grid = infos[fine[0].path].grid
        grid_source = fine[0].path
    else:
        raise InputError(
            stack.source, "no fine scene: a new cube takes its grid from the fine scenes"
        )
    if grid.crs is None:
        notes.append("the fine grid has no CRS: the cube is a pixel grid only")
    _check_fine(scenes, infos, grid, grid_source)
    _check_coarse_crs(coarse, infos, grid, grid_source)
    _check_masks(scenes, infos)
    check_band_identity(scenes, infos, band_names)
    scenes, skipped = _check_coverage(scenes, infos, grid, stack.units, skip_empty)
    notes.extend(skipped)
    coarse = [s for s in scenes if s.role == "coarse"]
    if cube is None and not any(s.role == "fine" for s in scenes):
        raise InputError(
            stack.source,
            f"no fine scene left with data on the fine grid ({len(skipped)} skipped as empty, "
            f"the first {skipped[0]})",
        )
    if not scenes:
        raise InputError(stack.source, f"every scene was skipped as empty ({len(skipped)})")
    existing_native = native_cube_grid(cube) if cube is not None else None
    target, ratio, more = _decide_native(
        coarse, infos, grid, existing_native, cube is not None, native
    )
    notes.extend(more)
    if ratio is None and coarse:
        ratio = stack.coarse_ratio or pixel_ratio(infos[coarse[0].path].grid, grid)
    if grid_source is not None:
        check_fine_size(grid, grid_source, ratio)
    plan = IngestPlan(tuple(scenes), infos, grid, target, band_names, ratio, tuple(notes))
    return plan, ignored
