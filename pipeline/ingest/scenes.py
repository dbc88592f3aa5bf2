"""``stfcube ingest``: scene stacks (STAC catalog or manifest) into one analysis-ready cube.

Two front-ends produce the same :class:`~pipeline.ingest.readers.SceneStack`:

- :func:`~pipeline.ingest.manifest.load_manifest` for a directory of files plus a YAML/CSV manifest;
- :func:`load_stac` for a STAC catalog or collection (local path or URL) following the stfcube
  convention: ``"stfcube:role"`` (``fine``/``coarse``/``truth``) on items or their collection, a
  multi-band asset ``data`` with ``raster:bands`` (scale, offset, nodata) and band names, and an
  optional single-band asset ``mask`` with ``"stfcube:valid_values"``.

:func:`ingest` then validates everything (each file's metadata and completeness, grids, CRSs,
band counts, duplicate dates) *before* writing anything, and writes lazily with dask:

- fine scenes must all lie on one grid, the cube's fine grid;
- coarse scenes on another grid are warped onto the fine grid with ``resampling`` (default
  ``"average"``: for a coarse grid that nests the fine grid with an integer ratio, each fine pixel
  then takes the value of the coarse pixel containing it, exactly like ``nearest``; across
  misaligned or reprojected grids it is the area-weighted mean), and are kept on their native grid
  as ``coarse_native`` when that grid nests the fine grid (same CRS, integer ratio, aligned);
- a coarse scene with a CRS cannot go onto a fine grid without one (or the reverse).

Appending to an existing cube adds new dates along ``time`` and region-writes images into dates
the cube already has for the other sensor; a date already present for that sensor is skipped
(reported) unless ``overwrite=True``, which rewrites it in place.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pystac
import xarray as xr

if TYPE_CHECKING:
    from pipeline.ingest.catalog.ingest import CatalogQuery

from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.ingest.manifest import load_manifest, to_day
from pipeline.ingest.readers import (
    RESAMPLING_METHODS,
    ROLES,
    Grid,
    RasterInfo,
    Scene,
    SceneStack,
    coarse_alignment,
    native_grid,
    probe_raster,
    read_scene,
    repeat_to_grid,
)
from pipeline.store.cube import (
    COMMON_UNIT_FACTOR,
    DEFAULT_CHUNK,
    SCHEMA,
    append_dates,
    build_dataset,
    cube_grid,
    empty_layer,
    merge_source_attrs,
    native_cube_grid,
    open_store,
    summarise,
    validate_cube,
    write_date,
    write_new_cube,
)

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
        Non-fatal problems (no CRS, native grid not kept, ...).
    seconds
        Wall time.
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

    def summary(self) -> str:
        """One line for logs and the CLI."""
        verb = "created" if self.created else "updated"
        return (
            f"{self.cube_path}: {verb}; {len(self.written)} image(s) written, "
            f"{len(self.overwritten)} overwritten, {len(self.skipped)} already present, "
            f"{self.ignored} ignored; {self.n_times} dates x {len(self.bands)} bands x "
            f"{self.shape[0]}x{self.shape[1]} in {self.seconds:.1f} s"
        )


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
    if not path.exists():
        raise InputError(path, "source not found")
    if path.suffix.lower() == ".json":
        return load_stac(str(path), unit_factor=unit_factor)
    if path.suffix.lower() in {".yaml", ".yml", ".csv"}:
        return load_manifest(path, root=root)
    raise InputError(path, "unknown source type: expected a STAC .json, a .yaml/.csv manifest")


def _item_role(item: pystac.Item) -> str | None:
    role = item.properties.get("stfcube:role")
    collection = item.get_collection()
    if role is None and collection is not None:
        role = collection.extra_fields.get("stfcube:role")
    return role


def _asset_bands(asset: pystac.Asset, item: pystac.Item) -> list[dict]:
    """Per-band ``name``/``scale``/``offset``/``nodata`` of an asset (STAC 1.0 or 1.1 style)."""
    raster = asset.extra_fields.get("raster:bands")
    eo = asset.extra_fields.get("eo:bands") or item.properties.get("eo:bands")
    if raster is None and "bands" in asset.extra_fields:  # STAC 1.1 unified bands
        unified = asset.extra_fields["bands"]
        raster = [
            {k.removeprefix("raster:"): v for k, v in b.items() if k != "name"} for b in unified
        ]
        eo = [{"name": b.get("name")} for b in unified]
    count = len(raster or eo or [])
    bands = []
    for i in range(count):
        r = raster[i] if raster and i < len(raster) else {}
        e = eo[i] if eo and i < len(eo) else {}
        bands.append(
            {
                "name": e.get("name") or e.get("common_name") or f"b{i + 1}",
                "scale": r.get("scale"),
                "offset": r.get("offset", 0.0),
                "nodata": r.get("nodata"),
            }
        )
    return bands


def _one_value(bands: list[dict], key: str, where: str) -> float | None:
    values = {b[key] for b in bands}
    if len(values) > 1:
        raise InputError(where, f"asset 'data' bands have different {key} values {sorted(values)}")
    return values.pop() if values else None


def _stac_scene(item: pystac.Item, unit_factor: float) -> tuple[Scene, tuple[str, ...], str]:
    """Scene, band names and sensor name of one stfcube-convention STAC item."""
    where = item.get_self_href() or item.id
    role = _item_role(item)
    if role not in ROLES:
        raise InputError(where, f"unknown stfcube:role {role!r} (expected one of {ROLES})")
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(where, "item has neither datetime nor start_datetime")
    if "data" not in item.assets:
        raise InputError(where, "item has no 'data' asset")
    asset = item.assets["data"]
    bands = _asset_bands(asset, item)
    scale = _one_value(bands, "scale", where)
    offset = _one_value(bands, "offset", where) or 0.0
    factor = 1.0 if scale is None else unit_factor
    mask_path, valid_values = None, ()
    if "mask" in item.assets:
        mask = item.assets["mask"]
        valid_values = tuple(mask.extra_fields.get("stfcube:valid_values", ()))
        if not valid_values:
            raise InputError(where, "asset 'mask' has no stfcube:valid_values")
        mask_path = mask.get_absolute_href()
    scene = Scene(
        role=role,
        date=to_day(when.date(), where),
        path=asset.get_absolute_href(),
        bands=tuple(range(1, len(bands) + 1)),
        scale=(1.0 if scale is None else scale) * factor,
        offset=offset * factor,
        nodata=_one_value(bands, "nodata", where),
        mask_path=mask_path,
        mask_valid_values=valid_values,
    )
    sensor = item.properties.get("platform") or item.collection_id or role
    return scene, tuple(b["name"] for b in bands), sensor


def load_stac(href: str, *, unit_factor: float = COMMON_UNIT_FACTOR) -> SceneStack:
    """Scenes of a STAC catalog or collection that follows the stfcube convention.

    Parameters
    ----------
    href
        Path or URL of ``catalog.json`` / ``collection.json``.
    unit_factor
        Multiplies ``raster:bands`` scale and offset (which map raw DN to physical reflectance)
        so that the cube holds common units (reflectance x 10000). Assets without a scale are
        taken as already in common units.

    Returns
    -------
    SceneStack
    """
    try:
        root = pystac.read_file(href)
    except (OSError, ValueError, pystac.STACError) as exc:
        raise InputError(href, f"cannot read the STAC document ({exc})") from exc
    if isinstance(root, pystac.Item):
        items: Iterable[pystac.Item] = [root]
    elif isinstance(root, pystac.Catalog):
        items = root.get_items(recursive=True)
    else:
        raise InputError(href, f"a {type(root).__name__} is not a catalog, collection or item")
    scenes, names, sensors = [], {}, {}
    for item in items:
        scene, band_names, sensor = _stac_scene(item, unit_factor)
        if names.setdefault(scene.role, band_names) != band_names:
            raise InputError(
                item.get_self_href() or item.id,
                f"band names {list(band_names)} differ from the other {scene.role} items' "
                f"{list(names[scene.role])}",
            )
        sensors.setdefault(scene.role, sensor)
        scenes.append(scene)
    if not scenes:
        raise InputError(href, "the catalog holds no items")
    band_names = names.get("fine") or names.get("truth") or next(iter(names.values()))
    return SceneStack(
        source=href,
        scenes=tuple(scenes),
        band_names=band_names,
        fine_sensor=sensors.get("fine") or sensors.get("truth", "fine"),
        coarse_sensor=sensors.get("coarse", "coarse"),
    )


# ----------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Plan:
    """Validated inputs and the layout of the cube to write."""

    scenes: tuple[Scene, ...]
    infos: dict[str, RasterInfo]
    grid: Grid
    native: Grid | None
    band_names: tuple[str, ...]
    coarse_ratio: int | None
    warnings: tuple[str, ...]


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
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


def _probe_all(scenes: Sequence[Scene]) -> dict[str, RasterInfo]:
    infos: dict[str, RasterInfo] = {}
    for scene in scenes:
        for path in (scene.path, scene.mask_path):
            if path is not None and path not in infos:
                infos[path] = probe_raster(path)
    return infos


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


def _check_masks(scenes: Sequence[Scene], infos: dict[str, RasterInfo]) -> None:
    for scene in scenes:
        if scene.mask_path is not None and not infos[scene.mask_path].grid.matches(
            infos[scene.path].grid
        ):
            raise InputError(
                scene.mask_path,
                f"mask grid {infos[scene.mask_path].grid.describe()} differs from its image's "
                f"{infos[scene.path].grid.describe()}",
            )


def _check_fine(scenes: Sequence[Scene], infos: dict[str, RasterInfo], grid: Grid) -> None:
    for scene in scenes:
        if scene.role == "fine" and not infos[scene.path].grid.matches(grid):
            raise InputError(
                scene.path,
                f"grid {infos[scene.path].grid.describe()} differs from the fine grid "
                f"{grid.describe()}: fine scenes must share one grid",
            )


def _check_coarse_crs(coarse: Sequence[Scene], infos: dict[str, RasterInfo], grid: Grid) -> None:
    for scene in coarse:
        own = infos[scene.path].grid
        if (own.crs is None) != (grid.crs is None):
            has, lacks = ("has no CRS", "has one") if own.crs is None else ("has a CRS", "has none")
            raise InputError(
                scene.path,
                f"{has} while the fine grid {lacks}: it cannot be put on the fine grid",
            )


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


def _plan(
    stack: SceneStack,
    roles: tuple[str, ...],
    cube: xr.Dataset | None,
    native: bool | None,
) -> tuple[_Plan, int]:
    """Validate every input against each other and the existing cube; nothing is written."""
    scenes, ignored = _select(stack, roles)
    _check_duplicates(scenes)
    infos = _probe_all(scenes)
    scenes, band_names = _resolve_bands(scenes, infos, stack.band_names)
    _check_masks(scenes, infos)
    notes: list[str] = []
    fine = [s for s in scenes if s.role == "fine"]
    coarse = [s for s in scenes if s.role == "coarse"]
    if cube is not None:
        grid = cube_grid(cube)
        cube_bands = tuple(str(b) for b in cube["band"].values)
        if cube_bands != band_names:
            raise InputError(
                stack.source, f"bands {list(band_names)} differ from the cube's {list(cube_bands)}"
            )
    elif fine:
        grid = infos[fine[0].path].grid
    else:
        raise InputError(
            stack.source, "no fine scene: a new cube takes its grid from the fine scenes"
        )
    if grid.crs is None:
        notes.append("the fine grid has no CRS: the cube is a pixel grid only")
    _check_fine(scenes, infos, grid)
    _check_coarse_crs(coarse, infos, grid)
    existing_native = native_cube_grid(cube) if cube is not None else None
    target, ratio, more = _decide_native(
        coarse, infos, grid, existing_native, cube is not None, native
    )
    notes.extend(more)
    if ratio is None and coarse:
        ratio = stack.coarse_ratio or _pixel_ratio(coarse, infos, grid)
    plan = _Plan(tuple(scenes), infos, grid, target, band_names, ratio, tuple(notes))
    return plan, ignored


def _pixel_ratio(coarse: Sequence[Scene], infos: dict[str, RasterInfo], grid: Grid) -> int | None:
    """Integer coarse/fine pixel ratio of the first coarse scene in the fine CRS, if any."""
    own = infos[coarse[0].path].grid
    if not own.same_crs(grid):
        return None
    ratio = abs(own.res[0] / grid.res[0])
    return round(ratio) if abs(ratio - round(ratio)) < 1e-6 else None


# ----------------------------------------------------------------------------- writing


def _stems(native: bool) -> dict[str, tuple[str, ...]]:
    """Variable stems written for each sensor."""
    return {"fine": ("fine",), "coarse": ("coarse", "coarse_native") if native else ("coarse",)}


def _scene_layer(
    scene: Scene, stem: str, plan: _Plan, chunk: int, resampling: str, native_layer: tuple | None
) -> tuple:
    """Lazy (values, valid) of one scene for one variable stem.

    Coarse images that nest the fine grid are put on it by repeating their native layer (one
    read of the file) when the method is ``average`` or ``nearest``, which are then identical.
    """
    nested = native_layer is not None and resampling in {"average", "nearest"}
    if stem == "coarse" and nested and plan.native is not None:
        return repeat_to_grid(*native_layer, _native_ratio(plan), plan.grid.shape, chunk)
    target = plan.native if stem == "coarse_native" else plan.grid
    mask_info = plan.infos.get(scene.mask_path) if scene.mask_path else None
    return read_scene(
        scene,
        plan.infos[scene.path],
        target,
        chunk=chunk,
        resampling=resampling if stem == "coarse" else "nearest",
        mask_info=mask_info,
    )


def _native_ratio(plan: _Plan) -> int:
    return round(plan.native.transform.a / plan.grid.transform.a)


def _layers_for(
    dates: Sequence[np.datetime64],
    by_key: dict[tuple[str, np.datetime64], Scene],
    sensors: Sequence[str],
    plan: _Plan,
    chunk: int,
    resampling: str,
) -> dict[str, list]:
    """Per stem, one lazy (values, valid) pair per date: the scene's, or an empty layer."""
    nbands = len(plan.band_names)
    layers: dict[str, list] = {}
    for sensor in sensors:
        stems = _stems(plan.native is not None)[sensor]
        for stem in stems:
            layers[stem] = []
        for day in dates:
            scene = by_key.get((sensor, day))
            native_layer = None
            for stem in sorted(stems, reverse=True):  # coarse_native before coarse
                target = plan.native if stem == "coarse_native" else plan.grid
                on_fine_grid = scene is not None and plan.infos[scene.path].grid.matches(plan.grid)
                if scene is None or (stem == "coarse_native" and on_fine_grid):
                    layers[stem].append(empty_layer(nbands, target.shape, chunk))
                    continue
                layer = _scene_layer(scene, stem, plan, chunk, resampling, native_layer)
                native_layer = layer if stem == "coarse_native" else native_layer
                layers[stem].append(layer)
    return layers


def _var_attrs(plan: _Plan, units: str) -> dict[str, dict]:
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
    by_key: dict[tuple[str, np.datetime64], Scene],
    sensors: Sequence[str],
    plan: _Plan,
    chunk: int,
    resampling: str,
    attrs: dict | None = None,
    var_attrs: dict | None = None,
) -> xr.Dataset:
    observed = {s: [(s, d) in by_key for d in dates] for s in ("fine", "coarse")}
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


def _key_label(key: tuple[str, np.datetime64]) -> str:
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
        :func:`pipeline.ingest.catalog.ingest.ingest_catalog` (a new cube, or the images an existing
        cube lacks, on its grid; ``chunk`` applies to a new cube).

    Returns
    -------
    IngestReport

    Raises
    ------
    InputError
        Bad input (missing/unreadable/truncated file, grid/CRS/band mismatch, duplicate date,
        unknown role); nothing has been written.
    ConfigError
        Bad parameters.
    OutputError
        ``cube_path`` exists and is not a cube.
    """
    if catalog is not None:
        from pipeline.ingest.catalog.ingest import ingest_catalog  # imports this module's report

        return ingest_catalog(source, cube_path, catalog, chunk=chunk, overwrite=overwrite)
    started = time.perf_counter()
    if chunk < 1:
        raise ConfigError(f"chunk must be a positive number of pixels, not {chunk}")
    if resampling not in RESAMPLING_METHODS:
        raise ConfigError(f"resampling {resampling!r}: choose from {RESAMPLING_METHODS}")
    roles = _check_roles(roles)
    cube_path = Path(cube_path)
    cube = open_existing_cube(cube_path)
    stack = load_source(source, root=root, unit_factor=unit_factor)
    plan, ignored = _plan(stack, roles, cube, native)
    for note in plan.warnings:
        warnings.warn(note, UserWarning, stacklevel=2)
    by_key = {(s.role, s.date): s for s in plan.scenes}
    var_attrs = _var_attrs(plan, stack.units)
    if cube is None:
        dates = sorted({s.date for s in plan.scenes})
        attrs = _cube_attrs(stack, plan, resampling)
        ds = _dataset(dates, by_key, ("fine", "coarse"), plan, chunk, resampling, attrs, var_attrs)
        write_new_cube(ds, cube_path)
        written, skipped, overwritten, n_times = list(by_key), [], [], len(dates)
    else:
        written, skipped, overwritten, n_times = _update(
            cube, cube_path, by_key, plan, chunk, resampling, overwrite
        )
        sensors = {sensor for sensor, _ in written + overwritten}
        stems = [stem for sensor in sensors for stem in _stems(plan.native is not None)[sensor]]
        merge_source_attrs(cube_path, {stem: var_attrs[stem] for stem in stems})
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
        warnings=plan.warnings,
        seconds=time.perf_counter() - started,
    )


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
        ds = open_store(path)
        validate_cube(ds, path)
    except InputError as exc:
        raise OutputError(f"{path}: exists and is not an stfcube cube ({exc.problem})") from exc
    return ds


def _cube_attrs(stack: SceneStack, plan: _Plan, resampling: str) -> dict:
    attrs = {
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
    by_key: dict[tuple[str, np.datetime64], Scene],
    plan: _Plan,
    chunk: int,
    resampling: str,
    overwrite: bool,
) -> tuple[list, list, list, int]:
    """Append new dates and region-write dates the cube has; returns the bookkeeping."""
    resampling = str(cube.attrs.get("resampling", resampling))
    index = {np.datetime64(t, "D"): i for i, t in enumerate(cube["time"].values)}
    observed = {s: cube[f"{s}_observed"].values for s in ("fine", "coarse")}
    written, skipped, overwritten = [], [], []
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
