"""The pictures of an evaluation, gathered from the stores: quicklooks, scatter plots, series.

Picks the dates that get pictures, adds the context images (coarse and the base fine image the
fusion started from) read from the source cube, takes the scatter samples from the decimated chips
of the metrics pass, reads pixel time series at the requested locations, and hands each to its
drawing function in :mod:`stfcube.pipeline.evaluate.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.evaluate import plots
from stfcube.pipeline.evaluate.baseline import pair_dates_by_date
from stfcube.pipeline.evaluate.inputs import band_names, iso_dates, observed_dates
from stfcube.pipeline.evaluate.reduce import Chips
from stfcube.pipeline.store.fused import json_attr


def _date_index(ds: xr.Dataset, date: str) -> int | None:
    hits = np.flatnonzero(np.asarray(iso_dates(ds["time"].values)) == date)
    return int(hits[0]) if hits.size else None


def _base_date(fused: xr.Dataset, source: xr.Dataset | None, date: str) -> str | None:
    """Nearest pair date used for ``date`` (``pairs_used``), else nearest other fine date."""
    candidates = list(pair_dates_by_date(json_attr(fused.attrs, "pairs_used"), [date])[date])
    if not candidates and source is not None:
        candidates = sorted(d for d in observed_dates(source) if d != date)
    if not candidates:
        return None
    target = pd.Timestamp(date)
    return min(candidates, key=lambda d: abs(pd.Timestamp(d) - target))


def _source_chip(
    source: xr.Dataset | None, var: str, date: str | None, bands: Sequence[str], stride: int
) -> np.ndarray | None:
    """Decimated ``(band, h, w)`` chip of a source-cube variable at a date, NaN where invalid."""
    if source is None or date is None or var not in source:
        return None
    ti = _date_index(source, date)
    if ti is None or not set(bands) <= set(band_names(source)):
        return None
    step = slice(None, None, stride)
    data = source[var].isel(time=ti, y=step, x=step).sel(band=list(bands)).values
    mask_var = f"{var}_valid"
    if mask_var in source:
        data = np.where(source[mask_var].isel(time=ti, y=step, x=step).values, data, np.nan)
    return data.astype(np.float32)


def picture_indices(n_dates: int, max_pictures: int | None) -> list[int]:
    """Indices of the dates that get quicklooks and scatter plots.

    All of them when ``max_pictures`` is ``None`` or not smaller than ``n_dates``; otherwise
    ``max_pictures`` dates spread evenly from the first to the last.
    """
    if max_pictures is None or n_dates <= max_pictures:
        return list(range(n_dates))
    if max_pictures < 1:
        return []
    step = (n_dates - 1) / max(max_pictures - 1, 1)
    return sorted({round(i * step) for i in range(max_pictures)})


def write_quicklooks(
    out: Path,
    chips: Chips,
    fused: xr.Dataset,
    source: xr.Dataset | None,
    dates: Sequence[str],
    bands: Sequence[str],
    method: str | None,
    picks: Sequence[int],
) -> dict[str, str]:
    """Write ``quicklook_<date>.png`` for the picked dates; return the files by role.

    Each shows the coarse image and the base fine image of the source cube (when known), the
    fused and the truth chips and the error, at the chips' stride.
    """
    files: dict[str, str] = {}
    for ti in picks:
        date = dates[ti]
        base = _base_date(fused, source, date)
        context = {
            "coarse": _source_chip(source, "coarse", date, bands, chips.stride),
            f"base fine ({base or 'none'})": _source_chip(
                source, "fine", base, bands, chips.stride
            ),
        }
        name = f"quicklook_{date}.png"
        plots.plot_quicklook(
            out / name,
            context,
            np.where(chips.valid[ti], chips.fused[ti], np.nan),
            np.where(chips.valid[ti], chips.truth[ti], np.nan),
            bands,
            fused_label=f"fused ({method or 'unknown method'})",
            title=date,
        )
        files[f"quicklook:{date}"] = name
    return files


def write_scatters(
    out: Path,
    chips: Chips,
    dates: Sequence[str],
    bands: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    picks: Sequence[int],
) -> dict[str, str]:
    """Write ``scatter_<date>.png`` for the picked dates; return the files by role.

    The samples are the chips' valid pixels; the annotations are the full-resolution ``rows``.
    """
    files: dict[str, str] = {}
    for ti in picks:
        date = dates[ti]
        valid = chips.valid[ti]
        samples = {
            band: (chips.fused[ti, bi][valid[bi]], chips.truth[ti, bi][valid[bi]])
            for bi, band in enumerate(bands)
        }
        name = f"scatter_{date}.png"
        plots.plot_scatter(
            out / name,
            samples,
            {r["band"]: r for r in rows if r["date"] == date},
            title=f"{date}: fused vs truth (pixel stride {chips.stride}; statistics at full "
            "resolution)",
        )
        files[f"scatter:{date}"] = name
    return files


def _pixel_of_point(ds: xr.Dataset, x: float, y: float) -> tuple[int, int]:
    """Row and column of the pixel containing CRS point ``(x, y)``."""
    rc = []
    for dim, value in (("y", y), ("x", x)):
        coords = np.asarray(ds[dim].values, dtype=np.float64)
        half = abs(coords[1] - coords[0]) / 2 if coords.size > 1 else 0.5
        idx = int(np.argmin(np.abs(coords - value)))
        if abs(coords[idx] - value) > half * (1 + 1e-9):
            raise ConfigError(
                f"point ({x}, {y}) lies outside the cube "
                f"(x {ds['x'].values.min()}..{ds['x'].values.max()}, "
                f"y {ds['y'].values.min()}..{ds['y'].values.max()})"
            )
        rc.append(idx)
    return rc[0], rc[1]


def _series(
    ds: xr.Dataset | None, var: str, mask: str | None, bands: Sequence[str], row: int, col: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(times, values[time, band])`` of a variable at one pixel, NaN where invalid."""
    if ds is None or var not in ds or not set(bands) <= set(band_names(ds)):
        return None
    values = ds[var].isel(y=row, x=col).sel(band=list(bands)).values.astype(np.float64)
    if mask is not None and mask in ds:
        values = np.where(ds[mask].isel(y=row, x=col).values[:, None], values, np.nan)
    return np.asarray(ds["time"].values), values


def write_timeseries(
    out: Path,
    fused: xr.Dataset,
    truth: xr.Dataset,
    source: xr.Dataset | None,
    bands: Sequence[str],
    locations: Sequence[tuple[str, int, int]],
) -> dict[str, str]:
    """Write ``timeseries.png``: coarse, fine, fused and truth at each ``(label, row, col)``."""
    panels = []
    for label, row, col in locations:
        panels.append(
            plots.PointSeries(
                label=label,
                series={
                    "coarse": _series(source, "coarse", "coarse_valid", bands, row, col),
                    "fine observations": _series(source, "fine", "fine_valid", bands, row, col),
                    "fused": _series(fused, "fused", None, bands, row, col),
                    "truth": _series(truth, "fine", "fine_valid", bands, row, col),
                },
            )
        )
    plots.plot_timeseries(out / "timeseries.png", panels, bands)
    return {"timeseries": "timeseries.png"}


def series_locations(
    fused: xr.Dataset,
    points: Sequence[tuple[float, float]] | None,
    pixels: Sequence[tuple[int, int]] | None,
    notes: list[str],
) -> list[tuple[str, int, int]]:
    """Time-series locations as ``(label, row, col)``: the points, then the pixels.

    The centre pixel (with a note) when neither is given.

    Raises
    ------
    ConfigError
        When a point or a pixel lies outside the grid.
    """
    ny, nx = fused.sizes["y"], fused.sizes["x"]
    found = []
    for x, y in points or ():
        row, col = _pixel_of_point(fused, x, y)
        found.append((f"x={x:g}, y={y:g} (pixel {row},{col})", row, col))
    for row, col in pixels or ():
        if not (0 <= row < ny and 0 <= col < nx):
            raise ConfigError(f"pixel ({row}, {col}) outside the {ny} x {nx} grid")
        found.append((f"pixel {row},{col}", int(row), int(col)))
    if not found:
        found.append((f"centre pixel {ny // 2},{nx // 2}", ny // 2, nx // 2))
        notes.append("no --point/--pixel given: time series drawn at the centre pixel")
    return found
