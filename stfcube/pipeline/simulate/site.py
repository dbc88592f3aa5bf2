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
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import rasterio

from stfcube.pipeline.simulate.catalog import (
    MASK_BAND,
    SitePaths,
    catalog_collections,
    reflectance_bands,
    site_paths,
)
from stfcube.pipeline.simulate.cog import CogSink
from stfcube.pipeline.simulate.config import SiteConfig, make_config
from stfcube.pipeline.simulate.constants import BAND_NAMES, FINE_PIXEL_SIZE, NODATA, SCALE
from stfcube.pipeline.simulate.scene import (
    LandCover,
    SceneModel,
    make_scene_model,
    quantize,
    render_reflectance,
    scene_layers,
)
from stfcube.pipeline.simulate.sensors import (
    CloudField,
    make_cloud_field,
    observe_coarse,
    observe_fine,
)
from stfcube.pipeline.simulate.stac import BandSpec, RasterGrid, write_catalog
from stfcube.pipeline.store.atomic import check_output_folder, staged

#: GDAL block cache while writing (MB).
_GDAL_CACHE_MB = 256


@dataclass
class _Sinks:
    """The open sinks of a site, indexed like :class:`SitePaths`."""

    truth: list[CogSink] = field(default_factory=list)
    coarse: list[CogSink] = field(default_factory=list)
    fine: list[CogSink] = field(default_factory=list)
    mask: list[CogSink] = field(default_factory=list)

    def all(self) -> Iterator[CogSink]:
        yield from (*self.truth, *self.coarse, *self.fine, *self.mask)


def _open_sinks(config: SiteConfig, root: Path, work: Path, paths: SitePaths) -> _Sinks:
    ratio = config.sensor.ratio
    fine_bands = reflectance_bands(config, FINE_PIXEL_SIZE)
    coarse_bands = reflectance_bands(config, FINE_PIXEL_SIZE * ratio)
    sinks = _Sinks()

    def sink(rel: Path, grid: RasterGrid, bands: Sequence[BandSpec], strip: int) -> CogSink:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        return CogSink(root / rel, work, grid=grid, bands=bands, rows_per_strip=strip)

    try:
        for rel in paths.truth:
            sinks.truth.append(sink(rel, config.fine_grid, fine_bands, ratio))
        for rel in paths.coarse:
            sinks.coarse.append(sink(rel, config.coarse_grid, coarse_bands, 1))
        for rel in paths.fine:
            sinks.fine.append(sink(rel, config.fine_grid, fine_bands, ratio))
        for rel in paths.mask:
            sinks.mask.append(sink(rel, config.fine_grid, (MASK_BAND,), ratio))
    except BaseException:
        for opened in sinks.all():
            opened.abort()
        raise
    return sinks


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
    stfcube.pipeline.errors.ConfigError
        On invalid parameters (e.g. ``size`` not a multiple of ``coarse_ratio``).
    stfcube.pipeline.errors.OutputError
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
    check_output_folder(out, overwrite=overwrite, kinds=("site",))
    with staged(out, replace=True) as staging:
        staging.mkdir()
        summary = _write_site(config, staging, out, progress)
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
    paths = site_paths(config)
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
        catalog_collections(config, staging, paths),
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
