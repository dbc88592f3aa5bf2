"""Region configs and incremental updates: which dates a fused store still needs.

A *region config* (``deploy/regions/*.yaml``) names one operational fusion product: where its
scenes come from, its cube and fused store, the fusion settings, where the work runs, and (for
planning at scale) the extent and calendar of the product. The flows, ``stfcube run`` and
``stfcube plan`` all read it through :func:`load_region_config`.

:func:`dates_to_fuse` compares the cube with the fused store's provenance: a prediction date
needs fusing when it is not in the store yet (*new*), when the pairs the engine would now use
differ from the ``pairs_used`` recorded for it or one of its input images was rewritten since
(``input_revisions``; *changed*, e.g. a new fine scene is nearer or a scene was re-ingested with
``--overwrite``), or when some of its tiles are not marked done (*unfinished*, an interrupted
run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from stfcube.pipeline.engine.pairing import PairGroup
from stfcube.pipeline.errors import ConfigError, InputError

if TYPE_CHECKING:
    from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery


class RunnerConfig(BaseModel):
    """Where the flows' Dask tasks run: a local cluster, a running scheduler, or batch jobs.

    Exactly one of ``address`` and ``hpc`` may be set; with neither, a local cluster of
    ``n_workers`` workers (threads by default, so Prefect keeps one API connection) is started.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    """Address of a running Dask scheduler (``tcp://host:8786``)."""
    hpc: Path | None = None
    """A ``deploy/hpc/*.yaml`` config: start a dask-jobqueue cluster from it."""
    min_jobs: PositiveInt = 1
    """Batch jobs kept while the flow runs (``hpc`` only)."""
    max_jobs: PositiveInt = 1
    """Batch jobs the cluster may scale up to (``hpc`` only)."""
    n_workers: PositiveInt = 1
    """Workers of the local cluster."""
    threads_per_worker: PositiveInt | None = None
    """Threads per local worker (default: all cores)."""
    processes: bool = False
    """Local workers as processes (then export PREFECT_API_URL to share one Prefect server)."""

    @model_validator(mode="after")
    def _one_target(self) -> RunnerConfig:
        if self.address is not None and self.hpc is not None:
            raise ValueError("give either 'address' or 'hpc', not both")
        if self.min_jobs > self.max_jobs:
            raise ValueError(f"min_jobs ({self.min_jobs}) exceeds max_jobs ({self.max_jobs})")
        return self


class RetryPolicy(BaseModel):
    """Retries of the flows' I/O tasks, with exponential backoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    retries: NonNegativeInt = 3
    """Attempts after the first one."""
    delay_seconds: NonNegativeFloat = 10.0
    """Wait before the first retry; each further retry waits twice as long."""
    jitter: float = Field(0.2, ge=0, le=1)
    """Random share added to each wait, so retries of many tasks do not hit storage together."""


class GridSpec(BaseModel):
    """Extent of a product that does not exist yet (planning only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    height: PositiveInt
    """Rows of the fine grid."""
    width: PositiveInt
    """Columns of the fine grid."""
    bands: PositiveInt = 6
    pixel_size: float | None = None
    """Fine pixel size in CRS units (informative)."""
    crs: str | None = None
    """CRS of the fine grid (informative)."""


class CalendarSpec(BaseModel):
    """Acquisition calendar of a product that does not exist yet (planning only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date
    end: date
    coarse_every_days: PositiveInt = 1
    """Coarse revisit (MODIS/VIIRS: daily)."""
    fine_every_days: PositiveInt = 16
    """Fine revisit (Landsat 8 + 9 together: 8; one Landsat: 16)."""

    @model_validator(mode="after")
    def _ordered(self) -> CalendarSpec:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class BatchingSpec(BaseModel):
    """How a large region is cut into batches (each one bounded dask computation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tasks_per_batch: PositiveInt = 20_000
    """Tile tasks (pair group x tile) one batch may hold. The halo and the cost of a batch come
    from the method and its parameters, never from a separate knob."""


class CatalogSpec(BaseModel):
    """The catalog collections, region and dates a product ingests from its STAC ``source``.

    ``source`` is then a STAC API URL, a static catalog or item JSON file(s); the first ingest
    grids the region (``crs``, ``resolution``), later ones load onto the cube's own grid.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fine: tuple[str, ...] = ()
    """Collection ids of the fine sensor (e.g. ``landsat-c2-l2``)."""
    coarse: tuple[str, ...] = ()
    """Collection ids of the coarse sensor (e.g. ``modis-43A4-061``)."""
    bbox: tuple[float, float, float, float]
    """Region: W, S, E, N in degrees."""
    dates: str | None = None
    """``YYYY-MM-DD/YYYY-MM-DD`` (inclusive), or None for every date."""
    crs: str | None = None
    """CRS of a new cube (default: the fine scenes' CRS, else the region's UTM zone)."""
    resolution: PositiveFloat | None = None
    """Pixel size of a new cube in CRS units (default: the fine collection's)."""
    bands: tuple[str, ...] | None = None
    """Cube bands (default: every band both sensors have)."""

    @model_validator(mode="after")
    def _valid_query(self) -> CatalogSpec:
        try:
            self.query()
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def query(self) -> CatalogQuery:
        """The :class:`~stfcube.pipeline.ingest.catalog.ingest.CatalogQuery` of this section.

        Raises
        ------
        ConfigError
            No collection named, or a malformed bbox or date range.
        """
        from stfcube.pipeline.ingest.catalog.ingest import (
            catalog_query,  # odc-stac only for catalog regions
        )

        query = catalog_query(
            ",".join(self.fine),
            ",".join(self.coarse),
            ",".join(str(v) for v in self.bbox),
            self.dates,
            crs=self.crs,
            resolution=self.resolution,
            bands=",".join(self.bands) if self.bands else None,
        )
        if query is None:
            raise ConfigError("name at least one fine or coarse collection")
        return query


class RegionConfig(BaseModel):
    """One operational fusion product: sources, stores, settings, compute and planning.

    Relative paths are taken relative to the working directory of the process that runs it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source: str
    """Scene source for ingest: a directory of scenes or a STAC catalog (path or URL); with
    ``catalog``, a STAC API URL, static catalog or item JSON file(s)."""
    catalog: CatalogSpec | None = None
    """Read ``source`` as these catalog collections, region and dates (odc-stac ingest)."""
    cube: Path
    fused: Path
    truth: Path | None = None
    """Truth cube for evaluation (``cube/1``); no evaluation when absent."""
    ingest_truth: bool = False
    """Ingest the source's ``truth`` scenes into ``truth`` (e.g. a simulated site's truth)."""
    evaluation: Path | None = None
    """Folder for evaluation reports (default: beside the fused store)."""
    method: str = "starfm"
    pairs: str | PositiveInt | None = None
    """Pair rule (default: the method's own)."""
    pair_tolerance_days: int = Field(0, ge=0)
    """Largest distance in days between a pair's fine and coarse images (coarse composites)."""
    params: dict[str, Any] = Field(default_factory=dict)
    tile: PositiveInt = 512
    chunk: PositiveInt = 512
    min_pair_valid_fraction: float = Field(0.5, ge=0, le=1)
    device: Literal["cpu", "gpu"] = "cpu"
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    retries: RetryPolicy = RetryPolicy()
    batching: BatchingSpec = Field(default_factory=BatchingSpec)
    grid: GridSpec | None = None
    calendar: CalendarSpec | None = None

    @model_validator(mode="after")
    def _truth_target(self) -> RegionConfig:
        if self.ingest_truth and self.truth is None:
            raise ValueError("'ingest_truth' needs 'truth', the cube to ingest the truth into")
        if self.ingest_truth and self.catalog is not None:
            raise ValueError("'ingest_truth' needs truth scenes, which a 'catalog' has none of")
        return self

    @property
    def evaluation_dir(self) -> Path:
        """Where evaluation reports go."""
        return self.evaluation or self.fused.with_name(f"{self.fused.stem}-evaluation")


def load_region_config(path: str | Path) -> RegionConfig:
    """Read and validate a region config (YAML).

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or does not validate (each problem named with its key).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such region config") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return region_config_from_mapping(data, origin=path)


def as_region_config(region: RegionConfig | str | Path | dict[str, Any]) -> RegionConfig:
    """A region config from itself, a YAML path, or a mapping (flow parameters take all three)."""
    if isinstance(region, RegionConfig):
        return region
    if isinstance(region, dict):
        return region_config_from_mapping(region)
    return load_region_config(region)


def region_config_from_mapping(data: Any, *, origin: str | Path = "region config") -> RegionConfig:
    """Validate a mapping as a :class:`RegionConfig`, reporting problems by key path."""
    try:
        return RegionConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from exc


@dataclass(frozen=True)
class UpdatePlan:
    """The prediction dates an update must fuse, and why (dates as ``YYYY-MM-DD``)."""

    new: tuple[str, ...]
    """Prediction dates not yet in the fused store."""
    changed: tuple[str, ...]
    """Stale dates in the store (:func:`stfcube.pipeline.store.fused.stale_dates`): their pairs
    changed, or their input images were rewritten since they were fused."""
    unfinished: tuple[str, ...]
    """Dates in the store with tiles not marked done (an interrupted run)."""
    groups: tuple[PairGroup, ...]
    """Pair groups of the dates to fuse (what the engine will compute)."""
    skipped: tuple[tuple[str, str], ...] = ()
    """Dates the method cannot predict, with the reason (e.g. after the last fine image for a
    two-pair method); reported, not fused."""

    @property
    def dates(self) -> tuple[str, ...]:
        """Every date to fuse, sorted."""
        return tuple(sorted({*self.new, *self.changed, *self.unfinished}))


def _has_coarse_only_date(cube: Any) -> bool:
    """True when some coarse date of the cube has no fine image (a date to predict)."""
    coarse = np.asarray(cube["coarse_observed"].values, dtype=bool)
    fine = np.asarray(cube["fine_observed"].values, dtype=bool)
    return bool((coarse & ~fine).any())


def dates_to_fuse(
    cube_path: str | Path,
    fused_path: str | Path,
    *,
    method: str = "starfm",
    pairs: str | int | None = None,
    params: dict[str, Any] | None = None,
    min_pair_valid_fraction: float = 0.5,
    pair_tolerance_days: int = 0,
) -> UpdatePlan:
    """Compare a cube with its fused store: which prediction dates are new, changed or unfinished.

    The prediction dates and their pairs come from the engine's own planner
    (:func:`stfcube.pipeline.engine.planning.plan_fusion` with ``dates=None``: every coarse date
    without a usable fine image), so this agrees with what :func:`stfcube.pipeline.engine.run.fuse`
    computes; whether a fused date is stale is decided by
    :func:`stfcube.pipeline.store.fused.stale_dates`, the
    rule the engine applies too.

    Parameters
    ----------
    cube_path, fused_path
        The cube and the fused store (which may not exist yet: then every date is new).
    method, pairs, params, min_pair_valid_fraction, pair_tolerance_days
        The fusion settings of the product, as given to :func:`stfcube.pipeline.engine.run.fuse`.

    Returns
    -------
    UpdatePlan
        Empty when every date is done, or when the cube has no coarse-only date yet.

    Raises
    ------
    ConfigError
        From the engine's planner when no date to predict has enough usable pairs.
    """
    from stfcube.pipeline.engine.methods.registry import get_method
    from stfcube.pipeline.engine.planning import REDUCTION_BLOCK, open_cube_raw, plan_fusion
    from stfcube.pipeline.store.fused import (
        day,
        input_revisions,
        pairs_used,
        stale_dates,
        stored_state,
    )

    cube_path, fused_path = Path(cube_path), Path(fused_path)
    fusion_method = get_method(method)
    cube = open_cube_raw(cube_path, spatial_block=REDUCTION_BLOCK)
    try:
        plan = plan_fusion(
            cube,
            cube_path,
            method=fusion_method,
            params=fusion_method.make_params(params),
            dates=None,
            pairs=pairs,
            min_pair_valid_fraction=min_pair_valid_fraction,
            pair_tolerance_days=pair_tolerance_days,
        )
    except ConfigError:
        if _has_coarse_only_date(cube):
            raise
        return UpdatePlan((), (), (), ())  # e.g. the first day: only a fine+coarse pair yet
    wanted = pairs_used(plan.groups)
    if fused_path.exists():
        try:
            attrs, stored_dates, done = stored_state(fused_path)
        except Exception as exc:
            raise InputError(fused_path, f"cannot be read as a fused store: {exc}") from exc
        recorded, recorded_revisions = attrs["pairs_used"], attrs["input_revisions"]
        complete = {d for d, ok in zip(stored_dates, done, strict=True) if ok}
    else:
        recorded, recorded_revisions, complete = {}, {}, set()
    revisions = input_revisions(cube, plan.groups)
    new = tuple(sorted(d for d in wanted if d not in recorded))
    changed = tuple(stale_dates(wanted, revisions, recorded, recorded_revisions))
    unfinished = tuple(
        sorted(d for d in wanted if d in recorded and d not in changed and d not in complete)
    )
    todo = {*new, *changed, *unfinished}
    groups = tuple(
        PairGroup(g.pair_dates, tuple(d for d in g.predict_dates if day(d) in todo), g.coarse_dates)
        for g in plan.groups
        if any(day(d) in todo for d in g.predict_dates)
    )
    skipped = tuple((day(d), why) for d, why in sorted(plan.skipped_dates.items()))
    return UpdatePlan(new, changed, unfinished, groups, skipped)
