"""``stfcube ingest``: scene stacks (STAC catalog or manifest) into one analysis-ready cube.

Two front-ends produce the same :class:`~stfcube.pipeline.ingest.readers.SceneStack`
(:func:`load_source` picks one):

- :func:`~stfcube.pipeline.ingest.manifest.load_manifest` for a directory of files plus a YAML/CSV
  manifest;
- :func:`~stfcube.pipeline.ingest.static_stac.load_stac` for a STAC catalog or collection (local
  path or
  URL) following the stfcube convention.

:func:`ingest` then validates everything (:mod:`stfcube.pipeline.ingest.validate`: each file's
metadata and completeness, grids, CRSs, band counts, duplicate dates, every scene overlapping the
fine grid with valid pixels there) *before* writing anything, and writes lazily with dask:

- fine scenes must all lie on one grid, the cube's fine grid;
- coarse scenes on another grid are warped onto the fine grid with ``resampling`` (default
  ``"average"``: for a coarse grid that nests the fine grid with an integer ratio, each fine pixel
  then takes the value of the coarse pixel containing it, exactly like ``nearest``; across
  misaligned or reprojected grids it is the area-weighted mean), and are kept on their native grid
  as ``coarse_native`` when that grid nests the fine grid (same CRS, integer ratio, aligned);
- a coarse scene with a CRS cannot go onto a fine grid without one (or the reverse);
- inputs that would read but be wrong are refused (:mod:`stfcube.pipeline.ingest.sanity`): bands
  that
  the file names in another order than the cube, values outside the cube's units (a missing
  ``scale``), non-square pixels, a fine grid smaller than one coarse pixel.

The report gives every written image's share of valid pixels on the grid and warns of a scene
with none (fully masked); ``skip_empty`` leaves out scenes with no data on the grid, naming
each, where they are otherwise refused.

Appending to an existing cube adds new dates along ``time`` and region-writes images into dates
the cube already has for the other sensor; a date already present for that sensor is skipped
(reported) unless ``overwrite=True``, which rewrites it in place.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery

from stfcube.pipeline.errors import ConfigError, InputError, OutputError
from stfcube.pipeline.ingest.manifest import load_manifest
from stfcube.pipeline.ingest.readers import (
    RESAMPLING_METHODS,
    Scene,
    SceneStack,
    local_file_problem,
    read_scene,
    repeat_to_grid,
)
from stfcube.pipeline.ingest.static_stac import load_stac
from stfcube.pipeline.ingest.validate import IngestPlan, check_roles, plan_ingest
from stfcube.pipeline.store.cube import (
    COMMON_UNIT_FACTOR,
    DEFAULT_CHUNK,
    SCHEMA,
    append_dates,
    build_dataset,
    empty_layer,
    merge_source_attrs,
    open_store,
    summarise,
    validate_cube,
    write_date,
    write_new_cube,
)
from stfcube.pipeline.store.metadata import consolidate, open_group

#: Lazy (values, valid) arrays of one image: (band, y, x) float32 and (y, x) bool.
Layer = tuple[da.Array, da.Array]
#: One image of the cube: (sensor, day).
ImageKey = tuple[str, np.datetime64]

#: Manifest file names looked up when SOURCE is a directory.
MANIFEST_NAMES = ("manifest.yaml", "manifest.yml", "manifest.csv", "stfcube.yaml")


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` did.

    Attributes
    ----------
    cube_path
        The cube written or appended to.
    created
        True for a brand-new cube.
    written, skipped, overwritten
        ``"role YYYY-MM-DD"`` entries: newly written, already present (no-op) and rewritten.
    ignored
        Number of source scenes whose role was not ingested (e.g. ``truth`` by default).
    n_times
        Length of the cube's time axis afterwards.
    bands
        The band names.
    shape
        Fine grid (height, width).
    coarse_native
        Whether the cube holds ``coarse_native``.
    resampling
        Method used to put coarse images on the fine grid.
    warnings
        Non-fatal problems (no CRS, native grid not kept, a scene with no valid pixel, ...).
    seconds
        Wall time.
    valid_shares
        ``("role YYYY-MM-DD", share)`` of every image written or overwritten: its share of
        valid pixels on the fine grid (after nodata, footprint and mask), 0..1.
    """

    cube_path: str
    created: bool
    written: tuple[str, ...]
    skipped: tuple[str, ...]
    overwritten: tuple[str, ...]
    ignored: int
    n_times: int
    bands: tuple[str, ...]
    shape: tuple[int, int]
    coarse_native: bool
    resampling: str
    warnings: tuple[str, ...] = field(default=())
    seconds: float = 0.0
    valid_shares: tuple[tuple[str, float], ...] = field(default=())

    def summary(self) -> str:
        """One line for logs and the CLI (with the range of the written images' valid shares)."""
        verb = "created" if self.created else "updated"
        line = (
            f"{self.cube_path}: {verb}; {len(self.written)} image(s) written, "
            f"{len(self.overwritten)} overwritten, {len(self.skipped)} already present, "
            f"{self.ignored} ignored; {self.n_times} dates x {len(self.bands)} bands x "
            f"{self.shape[0]}x{self.shape[1]} in {self.seconds:.1f} s"
        )
        if not self.valid_shares:
            return line
        lowest = min(self.valid_shares, key=lambda entry: entry[1])
        highest = max(share for _, share in self.valid_shares)
        return f"{line}; valid pixels {lowest[1]:.1%} ({lowest[0]}) to {highest:.1%} of the grid"


# ----------------------------------------------------------------------------- front-ends


def load_source(
    source: str | Path, *, root: str | Path | None = None, unit_factor: float = COMMON_UNIT_FACTOR
) -> SceneStack:
    """Read a STAC catalog/collection or a manifest (or a directory holding either).

    Parameters
    ----------
    source
        ``catalog.json``/``collection.json`` path or URL, a ``.yaml``/``.yml``/``.csv`` manifest,
        or a directory containing ``catalog.json`` or one of :data:`MANIFEST_NAMES`.
    root
        Overrides a manifest's ``root``.
    unit_factor
        STAC only: factor from the physical values that ``raster:bands`` scales to, to the
        cube's common units.

    Returns
    -------
    SceneStack
    """
    text = str(source)
    if "://" in text:
        return load_stac(text, unit_factor=unit_factor)
    path = Path(source)
    if path.is_dir():
        candidates = [path / "catalog.json", *(path / name for name in MANIFEST_NAMES)]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(path, "holds neither catalog.json nor a manifest.(yaml|csv)")
        path = found
    problem = local_file_problem(path)
    if problem is not None:
        raise InputError(path, f"source: {problem}")
    if path.suffix.lower() == ".json":
        return load_stac(str(path), unit_factor=unit_factor)
    if path.suffix.lower() in {".yaml", ".yml", ".csv"}:
        return load_manifest(path, root=root)
    raise InputError(path, "unknown source type: expected a STAC .json, a .yaml/.csv manifest")


# ----------------------------------------------------------------------------- writing


def _stems(native: bool) -> dict[str, tuple[str, ...]]:
    """Variable stems written for each sensor."""
    return {"fine": ("fine",), "coarse": ("coarse", "coarse_native") if native else ("coarse",)}


def _scene_layer(
    scene: Scene,
    stem: str,
    plan: IngestPlan,
    chunk: int,
    resampling: str,
    native_layer: Layer | None,
) -> Layer:
    """Lazy (values, valid) of one scene for one variable stem.

    Coarse images that nest the fine grid are put on it by repeating their native layer (one
    read of the file) when the method is ``average`` or ``nearest``, which are then identical.
    """
    nested = resampling in {"average", "nearest"}
    if stem == "coarse" and nested and native_layer is not None:
        return repeat_to_grid(*native_layer, plan.native_ratio(), plan.grid.shape, chunk)
    mask_info = plan.infos.get(scene.mask_path) if scene.mask_path else None
    return read_scene(
        scene,
        plan.infos[scene.path],
        plan.grid_of(stem),
        chunk=chunk,
        resampling=resampling if stem == "coarse" else "nearest",
        mask_info=mask_info,
    )


def _layers_for(
    dates: Sequence[np.datetime64],
    by_key: dict[ImageKey, Scene],
    sensors: Sequence[str],
    plan: IngestPlan,
    chunk: int,
    resampling: str,
) -> dict[str, Sequence[Layer]]:
    """Per stem, one lazy (values, valid) pair per date: the scene's, or an empty layer."""
    nbands = len(plan.band_names)
    layers: dict[str, Sequence[Layer]] = {}
    for sensor in sensors:
        stems = _stems(plan.native is not None)[sensor]
        columns: dict[str, list[Layer]] = {stem: [] for stem in stems}
        for day in dates:
            scene = by_key.get((sensor, day))
            native_layer = None
            for stem in sorted(stems, reverse=True):  # coarse_native before coarse
                on_fine_grid = scene is not None and plan.infos[scene.path].grid.matches(plan.grid)
                if scene is None or (stem == "coarse_native" and on_fine_grid):
                    columns[stem].append(empty_layer(nbands, plan.grid_of(stem).shape, chunk))
                    continue
                layer = _scene_layer(scene, stem, plan, chunk, resampling, native_layer)
                native_layer = layer if stem == "coarse_native" else native_layer
                columns[stem].append(layer)
        layers.update(columns)
    return layers


def _var_attrs(plan: IngestPlan, units: str) -> dict[str, dict]:
    attrs: dict[str, dict] = {}
    for sensor in ("fine", "coarse"):
        scenes = [s for s in plan.scenes if s.role == sensor]
        entry: dict = {"units": units}
        if scenes:
            entry.update(
                source_scale=summarise(s.scale for s in scenes),
                source_offset=summarise(s.offset for s in scenes),
                source_nodata=summarise(
                    s.nodata if s.nodata is not None else plan.infos[s.path].nodata for s in scenes
                ),
            )
        for stem in _stems(plan.native is not None)[sensor]:
            attrs[stem] = dict(entry)
    return attrs


def _dataset(
    dates: Sequence[np.datetime64],
    by_key: dict[ImageKey, Scene],
    sensors: Sequence[str],
    plan: IngestPlan,
    chunk: int,
    resampling: str,
    attrs: dict | None = None,
    var_attrs: dict | None = None,
) -> xr.Dataset:
    observed: dict[str, Sequence[bool]] = {
        s: [(s, d) in by_key for d in dates] for s in ("fine", "coarse")
    }
    return build_dataset(
        dates,
        _layers_for(dates, by_key, sensors, plan, chunk, resampling),
        observed,
        plan.grid,
        plan.band_names,
        chunk=chunk,
        native=plan.native,
        attrs=attrs,
        var_attrs=var_attrs,
    )


def _key_label(key: ImageKey) -> str:
    return f"{key[0]} {key[1]}"


def ingest(
    source: str | Path,
    cube_path: str | Path,
    *,
    chunk: int = DEFAULT_CHUNK,
    overwrite: bool = False,
    resampling: str = "average",
    roles: Sequence[str] = ("fine", "coarse"),
    native: bool | None = None,
    root: str | Path | None = None,
    unit_factor: float = COMMON_UNIT_FACTOR,
    catalog: CatalogQuery | None = None,
    skip_empty: bool = False,
) -> IngestReport:
    """Ingest a STAC catalog or a manifest's scenes into a Zarr cube (new or existing).

    Parameters
    ----------
    source
        STAC catalog/collection (path or URL), YAML/CSV manifest, or a directory holding one.
    cube_path
        The cube's Zarr store; created when absent, appended to when it is a cube.
    chunk
        Spatial chunk size C: data chunks (1, 1, C, C), validity chunks (1, C, C).
    overwrite
        Rewrite (in place) dates that the cube already has for the same sensor; otherwise they
        are skipped and reported.
    resampling
        How coarse images go onto the fine grid: ``"average"`` (default; equals ``"nearest"``
        for nested integer-ratio grids), ``"nearest"``, ``"bilinear"`` or ``"cubic"``.
    roles
        Scene roles to ingest: ``("fine", "coarse")`` (default), either alone, or ``("truth",)``
        to write the truth images as ``fine`` into a separate evaluation cube.
    native
        Keep the coarse images on their native grid as ``coarse_native``: ``None`` (default)
        when the grids nest, ``True`` to require it (error otherwise), ``False`` never.
    root
        Overrides a manifest's ``root`` directory.
    unit_factor
        STAC only: physical value -> common units factor (default 10000).
    catalog
        Read ``source`` (STAC API URL, static catalog or item JSON files) as the catalog
        collections, region and dates of this query, through
        :func:`stfcube.pipeline.ingest.catalog.ingest.ingest_catalog` (a new cube, or the images an
        existing cube lacks, on its grid; ``chunk`` applies to a new cube).
    skip_empty
        Leave out (with a warning naming each) the scenes outside the fine grid or without a
        valid pixel on it, instead of refusing the whole source.

    Returns
    -------
    IngestReport

    Raises
    ------
    InputError
        Bad input (missing/unreadable/truncated file, broken link or symlink loop, grid/CRS/band
        mismatch, duplicate date, unknown role, a scene outside the fine grid or without a valid
        pixel on it, a manifest date that is not YYYY-MM-DD, a broken or looping STAC link) or
        input that reads but would be wrong (:mod:`stfcube.pipeline.ingest.sanity`: bands named in
        another order, values outside the cube's units, non-square pixels, a fine grid smaller
        than one coarse pixel); nothing has been written.
    ConfigError
        Bad parameters.
    OutputError
        ``cube_path`` exists and is not a cube.
    """
    if catalog is not None:
        from stfcube.pipeline.ingest.catalog.ingest import (
            ingest_catalog,  # imports this module's report
        )

        return ingest_catalog(source, cube_path, catalog, chunk=chunk, overwrite=overwrite)
    started = time.perf_counter()
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive number of pixels, not {chunk}")
    if resampling not in RESAMPLING_METHODS:
        raise ConfigError(f"resampling {resampling!r}: choose from {RESAMPLING_METHODS}")
    roles = check_roles(roles)
    cube_path = Path(cube_path)
    cube = open_existing_cube(cube_path)
    stack = load_source(source, root=root, unit_factor=unit_factor)
    plan, ignored = plan_ingest(stack, roles, cube, native, skip_empty)
    for note in plan.warnings:
        warnings.warn(note, UserWarning, stacklevel=2)
    by_key = {(s.role, s.date): s for s in plan.scenes}
    var_attrs = _var_attrs(plan, stack.units)
    if cube is None:
        dates = sorted({s.date for s in plan.scenes})
        attrs = _cube_attrs(stack, plan, resampling)
        ds = _dataset(dates, by_key, ("fine", "coarse"), plan, chunk, resampling, attrs, var_attrs)
        write_new_cube(ds, cube_path)
        written: list[ImageKey] = list(by_key)
        skipped: list[ImageKey] = []
        overwritten: list[ImageKey] = []
        n_times = len(dates)
    else:
        written, skipped, overwritten, n_times = _update(
            cube, cube_path, by_key, plan, chunk, resampling, overwrite
        )
        sensors = {sensor for sensor, _ in written + overwritten}
        stems = [stem for sensor in sensors for stem in _stems(plan.native is not None)[sensor]]
        merge_source_attrs(cube_path, {stem: var_attrs[stem] for stem in stems})
    record_sources(cube_path, {key: str(by_key[key].path) for key in [*written, *overwritten]})
    shares = valid_shares(cube_path, [*written, *overwritten])
    empty = tuple(
        f"{by_key[key].path}: {_key_label(key)} has no valid pixel on the grid (all masked)"
        for key, share in shares
        if share == 0
    )
    for note in empty:
        warnings.warn(note, UserWarning, stacklevel=2)
    return IngestReport(
        cube_path=str(cube_path),
        created=cube is None,
        written=tuple(sorted(_key_label(k) for k in written)),
        skipped=tuple(sorted(_key_label(k) for k in skipped)),
        overwritten=tuple(sorted(_key_label(k) for k in overwritten)),
        ignored=ignored,
        n_times=n_times,
        bands=plan.band_names,
        shape=plan.grid.shape,
        coarse_native=plan.native is not None,
        resampling=resampling if cube is None else str(cube.attrs.get("resampling")),
        warnings=(*plan.warnings, *empty),
        seconds=time.perf_counter() - started,
        valid_shares=tuple((_key_label(key), share) for key, share in shares),
    )


def valid_shares(cube_path: Path, keys: Sequence[ImageKey]) -> list[tuple[ImageKey, float]]:
    """The valid share of each image ``(sensor, day)`` of a cube, as recorded when written.

    Images of a cube without the per-date ``<sensor>_valid_fraction`` record are left out.
    """
    if not keys:
        return []
    ds = open_store(cube_path)
    index = {np.datetime64(t, "D"): i for i, t in enumerate(ds["time"].values)}
    fractions = {
        sensor: ds[f"{sensor}_valid_fraction"].values
        for sensor in {sensor for sensor, _ in keys}
        if f"{sensor}_valid_fraction" in ds.variables
    }
    return [
        (key, float(fractions[key[0]][index[key[1]]]))
        for key in sorted(keys)
        if key[0] in fractions
    ]


def open_existing_cube(path: Path) -> xr.Dataset | None:
    """The validated cube at ``path`` (as stored), or ``None`` when nothing is there.

    Raises
    ------
    OutputError
        When ``path`` holds something that is not a stfcube cube (never overwritten).
    """
    if not path.exists():
        return None
    if not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory (a Zarr cube)")
    try:
        ds = open_store(path, recover=True)
        validate_cube(ds, path)
    except InputError as exc:
        raise OutputError(f"{path}: exists and is not an stfcube cube ({exc.problem})") from exc
    return ds


def record_sources(cube_path: Path, paths: dict[ImageKey, str]) -> None:
    """Merge the file each written image came from into ``fine_sources``/``coarse_sources``
    (date -> path), so later messages (an unusable pair in ``fuse``) can name it."""
    group = open_group(cube_path, mode="r+")
    updates: dict[str, dict[str, str]] = {}
    for (sensor, day), path in paths.items():
        name = f"{sensor}_sources"
        if name not in updates:
            stored = group.attrs.get(name)
            updates[name] = dict(stored) if isinstance(stored, dict) else {}
        updates[name][str(day)] = path
    if updates:
        group.attrs.update(updates)
        consolidate(cube_path)


def _cube_attrs(stack: SceneStack, plan: IngestPlan, resampling: str) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "stfcube_schema": SCHEMA,
        "fine_sensor": stack.fine_sensor,
        "coarse_sensor": stack.coarse_sensor,
        "resampling": resampling,
        "source": stack.source,
    }
    if plan.coarse_ratio is not None:
        attrs["coarse_ratio"] = int(plan.coarse_ratio)
    return attrs


def with_cube_attrs(ds: xr.Dataset, cube: xr.Dataset) -> xr.Dataset:
    """Carry the cube's dataset and variable attributes (xarray rewrites them on writes)."""
    ds = ds.assign_attrs(cube.attrs)
    for name in ds.data_vars:
        ds[name].attrs = {**cube[name].attrs, **ds[name].attrs}
    return ds


def _update(
    cube: xr.Dataset,
    cube_path: Path,
    by_key: dict[ImageKey, Scene],
    plan: IngestPlan,
    chunk: int,
    resampling: str,
    overwrite: bool,
) -> tuple[list[ImageKey], list[ImageKey], list[ImageKey], int]:
    """Append new dates and region-write dates the cube has; returns the bookkeeping."""
    resampling = str(cube.attrs.get("resampling", resampling))
    index = {np.datetime64(t, "D"): i for i, t in enumerate(cube["time"].values)}
    observed = {s: cube[f"{s}_observed"].values for s in ("fine", "coarse")}
    written: list[ImageKey] = []
    skipped: list[ImageKey] = []
    overwritten: list[ImageKey] = []
    in_place: dict[int, list[str]] = {}
    for key in by_key:
        sensor, day = key
        if day not in index:
            written.append(key)
        elif observed[sensor][index[day]]:
            (overwritten if overwrite else skipped).append(key)
            if overwrite:
                in_place.setdefault(index[day], []).append(sensor)
        else:
            written.append(key)
            in_place.setdefault(index[day], []).append(sensor)
    for position, sensors in sorted(in_place.items()):
        day = np.datetime64(cube["time"].values[position], "D")
        ds = _dataset([day], by_key, sensors, plan, chunk, resampling)
        write_date(with_cube_attrs(ds, cube), cube_path, position)
    new_dates = sorted({day for _, day in by_key if day not in index})
    if new_dates:
        ds = _dataset(new_dates, by_key, ("fine", "coarse"), plan, chunk, resampling)
        append_dates(with_cube_attrs(ds, cube), cube_path)
    return written, skipped, overwritten, len(index) + len(new_dates)
