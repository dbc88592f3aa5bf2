"""Validated parameters of a site: :class:`SiteConfig` and :func:`make_config`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from affine import Affine

from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.simulate.constants import (
    BAND_NAMES,
    EPSG,
    FINE_PIXEL_SIZE,
    ORIGIN_X,
    ORIGIN_Y,
)
from stfcube.pipeline.simulate.sensors import CoarseSensor
from stfcube.pipeline.simulate.stac import RasterGrid

#: Pixels per streamed block by default (about 4 Mpixel).
_BLOCK_PIXELS = 1 << 22


@dataclass(frozen=True)
class SiteConfig:
    """Validated parameters of a site (their meaning:
    :func:`stfcube.pipeline.simulate.simulate_site`)."""

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
    """Validate the parameters of :func:`stfcube.pipeline.simulate.simulate_site` into a config.

    Raises
    ------
    stfcube.pipeline.errors.ConfigError
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
