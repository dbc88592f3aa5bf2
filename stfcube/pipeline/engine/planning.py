"""Planning a fuse run: the prediction dates, their pairs and groups (no pixels read).

:func:`plan_fusion` asks the method for its pair rule and inputs, matches every usable fine
image with a coarse image (same day, or within a tolerance / the composite that covers it),
and groups the prediction dates by the pairs the rule picks. Dates the method cannot predict
(too few usable pairs) are skipped with their reason, reported in the run report and recorded
in the fused store; a run with no predictable date at all is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr

from stfcube.pipeline.engine.methods.base import FusionMethod, InputSpec
from stfcube.pipeline.engine.pairing import PairGroup, match_coarse, parse_rule, plan_groups
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.store.cube import open_store, validate_cube
from stfcube.pipeline.store.fused import day

#: Edge (pixels) of the dask blocks of whole-image reductions (pair valid shares, statistics).
REDUCTION_BLOCK = 1024


@dataclass(frozen=True)
class FusionPlan:
    """What a fuse run will compute (no pixels read yet, except the pairs' valid fractions)."""

    method: str
    params: Any
    groups: tuple[PairGroup, ...]
    pair_valid_fraction: Mapping[np.datetime64, float]
    """The valid share of each pair's fine image."""
    skipped_pairs: tuple[np.datetime64, ...]
    """Fine dates too cloudy to serve as pairs."""
    halo: int
    spec: InputSpec = field(default_factory=InputSpec)
    skipped_dates: Mapping[np.datetime64, str] = field(default_factory=dict)
    """Prediction dates the method cannot predict, with why."""
    unusable_pairs: Mapping[np.datetime64, str] = field(default_factory=dict)
    """Fine dates not used as pairs: their valid share and the file they came from."""

    @property
    def dates(self) -> tuple[np.datetime64, ...]:
        """Every prediction date, sorted."""
        return tuple(sorted(d for g in self.groups for d in g.predict_dates))


def open_cube_raw(cube_path: str | Path, *, spatial_block: int | None = None) -> xr.Dataset:
    """Open and validate a cube lazily in its stored time order (tasks address stored indices).

    ``spatial_block``: see :func:`stfcube.pipeline.store.cube.open_store` (for whole-image
    reductions).
    """
    cube = open_store(cube_path, spatial_block=spatial_block)
    validate_cube(cube, cube_path)
    return cube


def _as_dates(
    values: Iterable[Any], cube_times: np.ndarray, cube_path: Path
) -> list[np.datetime64]:
    """Match user dates (text or datetime) to the cube's time values by calendar day."""
    by_day = {np.datetime64(t, "D"): t for t in cube_times}
    dates = []
    for value in values:
        try:
            day = np.datetime64(str(value)[:10] if isinstance(value, str) else value, "D")
        except ValueError as exc:
            raise ConfigError(f"cannot read {value!r} as a date (use YYYY-MM-DD)") from exc
        if day not in by_day:
            first, last = np.datetime64(cube_times.min(), "D"), np.datetime64(cube_times.max(), "D")
            raise ConfigError(
                f"date {day} is not in the cube {cube_path} (it holds {len(cube_times)} dates "
                f"from {first} to {last})"
            )
        dates.append(by_day[day])
    return dates


def _valid_fractions(cube: xr.Dataset, candidates: np.ndarray) -> dict[np.datetime64, float]:
    """The valid share of the fine image at each candidate index (recorded at ingest)."""
    times = cube["time"].values
    if "fine_valid_fraction" in cube.variables:
        fractions = np.asarray(cube["fine_valid_fraction"].values, dtype=float)[candidates]
    elif len(candidates):  # a cube written before fractions were recorded
        fractions = dask.compute(*[cube["fine_valid"][i].mean() for i in candidates])
    else:
        fractions = []
    return {times[i]: float(f) for i, f in zip(candidates, fractions, strict=True)}


#: A tile whose halo-extended read exceeds this many times its own pixels gets a note.
MAX_READ_AMPLIFICATION = 4.0
#: A tile whose inputs exceed this many bytes in memory gets a note.
MAX_TILE_BYTES = 2 * 2**30


def tile_notes(tile: int, halo: int, bands: int, images: int) -> list[str]:
    """What is wasteful about a tile size for a method's halo: reads amplified by the halo
    (below ``2 * halo`` a tile reads more than 4x its pixels), or inputs too large for one task.

    Parameters
    ----------
    tile, halo
        Tile edge and the method's halo, fine pixels.
    bands, images
        Bands, and images a tile reads (pairs' fine and coarse, prediction dates' coarse).
    """
    notes = []
    amplification = (tile + 2 * halo) ** 2 / tile**2
    if amplification > MAX_READ_AMPLIFICATION:
        notes.append(
            f"tile {tile} px with a halo of {halo} px reads {amplification:.1f}x its own pixels; "
            f"--tile {2 * halo} or more reads at most {MAX_READ_AMPLIFICATION:.0f}x"
        )
    working = (tile + 2 * halo) ** 2 * images * (4 * bands + 1)
    if working > MAX_TILE_BYTES:
        notes.append(
            f"tile {tile} px holds {working / 2**30:.1f} GiB of inputs per task (over "
            f"{MAX_TILE_BYTES / 2**30:.0f} GiB): a smaller --tile bounds each worker's memory"
        )
    return notes


def unusable_pairs(
    cube: xr.Dataset, fractions: Mapping[np.datetime64, float], threshold: float
) -> dict[np.datetime64, str]:
    """Why each fine image below ``threshold`` is not a pair: its valid share and its source
    (the file, or the STAC item, recorded at ingest; cubes of earlier versions record none)."""
    sources = cube.attrs.get("fine_sources") or {}
    items = cube.attrs.get("fine_items") or {}
    reasons = {}
    for date, share in sorted(fractions.items()):
        if share >= threshold:
            continue
        key = day(date)
        origin = sources.get(key) or ", ".join(items.get(key, [])) or "source not recorded"
        reasons[date] = f"{share:.1%} valid pixels < {threshold:.0%} ({origin})"
    return reasons


def _targets(
    cube: xr.Dataset, cube_path: Path, dates: Sequence[Any] | str | None, pairs: set
) -> list[np.datetime64]:
    times = cube["time"].values
    coarse_obs = np.asarray(cube["coarse_observed"].values, dtype=bool)
    if dates is None:
        return [t for t, obs in zip(times, coarse_obs, strict=True) if obs and t not in pairs]
    if isinstance(dates, str) and dates == "all":
        return [t for t, obs in zip(times, coarse_obs, strict=True) if obs]
    targets = _as_dates([dates] if isinstance(dates, str) else dates, times, cube_path)
    has_coarse = dict(zip(times, coarse_obs, strict=True))
    for target in targets:
        if not has_coarse[target]:
            raise ConfigError(f"date {day(target)} has no coarse image in {cube_path}")
    return targets


def plan_fusion(
    cube: xr.Dataset,
    cube_path: Path,
    *,
    method: FusionMethod[Any],
    params: Any,
    dates: Sequence[Any] | str | None,
    pairs: str | int | None,
    min_pair_valid_fraction: float,
    pair_tolerance_days: int = 0,
) -> FusionPlan:
    """Choose prediction dates and pairs, and group the dates by their pairs.

    Parameters
    ----------
    dates
        ``None``: every coarse date without a usable pair on that day (the gaps to fill);
        ``"all"``: every coarse date; or explicit dates (each must have a coarse image).
    pairs
        Pair rule, see :mod:`stfcube.pipeline.engine.pairing` (``None``: the method's default).
    min_pair_valid_fraction
        A fine image whose valid share of pixels is below this is not used as a pair.
    pair_tolerance_days
        Largest distance between a pair's fine and coarse dates (composites: see
        :func:`stfcube.pipeline.engine.pairing.match_coarse`; the cube attribute
        ``coarse_composite_days`` declares composite periods).

    Raises
    ------
    ConfigError
        When no date can be predicted (naming why), or the inputs the method needs are missing.
    """
    if not 0.0 <= min_pair_valid_fraction <= 1.0:
        raise ConfigError(
            f"the minimum valid share of a pair must lie in [0, 1], got {min_pair_valid_fraction}"
        )
    spec = method.inputs(params)
    if spec.native and "coarse_native" not in cube:
        raise ConfigError(
            f"{method.name} reads the coarse data on their native grid, but {cube_path} has none "
            "(ingest keeps it when the coarse pixel size is an integer multiple of the fine one "
            "and the grids align)"
        )
    missing = [name for name in spec.static if name not in cube]
    if missing:
        raise ConfigError(f"{method.name} needs the static layer(s) {missing} in {cube_path}")
    times = cube["time"].values
    fine_obs = np.asarray(cube["fine_observed"].values, dtype=bool)
    coarse_obs = np.asarray(cube["coarse_observed"].values, dtype=bool)
    fractions = _valid_fractions(cube, np.flatnonzero(fine_obs))
    usable_fine = {t for t, f in fractions.items() if f >= min_pair_valid_fraction}
    if spec.pairs_need_coarse:
        composite = cube.attrs.get("coarse_composite_days")
        coarse_of = match_coarse(
            usable_fine,
            set(times[coarse_obs]),
            pair_tolerance_days,
            int(composite) if composite else None,
        )
    else:
        coarse_of = {d: d for d in usable_fine}
    valid_fraction = {t: fractions[t] for t in coarse_of}
    unusable = unusable_pairs(cube, fractions, min_pair_valid_fraction)
    skipped_pairs = tuple(sorted(unusable))
    targets = _targets(cube, cube_path, dates, set(coarse_of))
    if not targets:
        raise ConfigError(f"no prediction date: every coarse date of {cube_path} has a fine image")
    groups, skipped = plan_groups(
        sorted(set(targets)),
        coarse_of.keys(),
        parse_rule(pairs if pairs is not None else method.default_pairs),
        method.max_pairs,
        method.min_pairs,
        coarse_of,
    )
    if not groups:
        first, reason = next(iter(skipped.items()))
        usable = ", ".join(day(d) for d in sorted(coarse_of)) or "none"
        raise ConfigError(
            f"no date of {cube_path} can be fused with {method.name}: "
            f"{day(first)}: {reason} (usable pair dates: {usable}"
            + "".join(f"; fine {day(d)} not a pair: {why}" for d, why in unusable.items())
            + (
                "; no coarse image within the pair tolerance of a fine date: try "
                "--pair-tolerance DAYS"
                if spec.pairs_need_coarse and usable_fine and not coarse_of
                else ""
            )
            + ")"
        )
    return FusionPlan(
        method=method.name,
        params=params,
        groups=tuple(groups),
        pair_valid_fraction=valid_fraction,
        skipped_pairs=skipped_pairs,
        halo=method.halo(params),
        spec=spec,
        skipped_dates=skipped,
        unusable_pairs=unusable,
    )
