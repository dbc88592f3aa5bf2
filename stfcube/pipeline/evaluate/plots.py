"""Drawing the pictures of an evaluation: quicklooks, scatter density, time series.

Everything here works on small in-memory arrays (decimated chips, pixel series); gathering them
from the stores is :mod:`stfcube.pipeline.evaluate.figures`' job. Figures use matplotlib's Agg
backend (:class:`matplotlib.figure.Figure`, no pyplot state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from stfcube.pipeline.evaluate.tables import format_value

STRETCH_PERCENTILES = (2.0, 98.0)
_DPI = 110
_NODATA_GREY = "0.85"


@dataclass(frozen=True)
class Composite:
    """A way to show a cube as an image: three bands as RGB, or one band in greyscale."""

    name: str
    bands: tuple[str, ...]


@dataclass(frozen=True)
class PointSeries:
    """Series at one location: label and, per source, ``(times, values[time, band])`` or None."""

    label: str
    series: Mapping[str, tuple[np.ndarray, np.ndarray] | None]


def composites_for(bands: Sequence[str]) -> list[Composite]:
    """True colour (red/green/blue) and false colour (nir/red/green) when present, else grey.

    Parameters
    ----------
    bands : sequence of str
        Available band names.

    Returns
    -------
    list of Composite
        At least one composite; a greyscale view of the first band when no triple is present.
    """
    names = {b.lower(): b for b in bands}
    found = []
    for label, triple in (
        ("true colour", ("red", "green", "blue")),
        ("false colour", ("nir", "red", "green")),
    ):
        if all(t in names for t in triple):
            found.append(Composite(label, tuple(names[t] for t in triple)))
    return found or [Composite(f"{bands[0]} (greyscale)", (bands[0],))]


def percentile_limits(reference: np.ndarray) -> tuple[float, float]:
    """Robust ``(low, high)`` display limits: the 2nd and 98th percentiles of finite values."""
    finite = reference[np.isfinite(reference)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, STRETCH_PERCENTILES)
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def stretch(image: np.ndarray, limits: Sequence[tuple[float, float]]) -> np.ndarray:
    """Linear stretch of a ``(channel, h, w)`` image to RGBA in ``[0, 1]`` (alpha 0 where NaN).

    Parameters
    ----------
    image : numpy.ndarray
        One or three channels.
    limits : sequence of (low, high)
        One pair per channel, e.g. from :func:`percentile_limits` of the truth.

    Returns
    -------
    numpy.ndarray
        ``(h, w, 4)`` float RGBA; one channel is repeated as grey.
    """
    scaled = np.stack([(image[c] - lo) / (hi - lo) for c, (lo, hi) in enumerate(limits)], axis=-1)
    if scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    alpha = np.all(np.isfinite(scaled), axis=-1, keepdims=True).astype(np.float64)
    rgb = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0)
    return np.concatenate([rgb, alpha], axis=-1)


def _select(image: np.ndarray, bands: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    return image[[list(bands).index(b) for b in wanted]]


def _blank(ax: Axes, title: str, text: str) -> None:
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_quicklook(
    path: Path,
    context: Mapping[str, np.ndarray | None],
    fused: np.ndarray,
    truth: np.ndarray,
    bands: Sequence[str],
    *,
    fused_label: str = "fused",
    title: str = "",
) -> None:
    """Side-by-side composites: context images (coarse, base fine), fused, truth and the error.

    One row per composite of :func:`composites_for`. All images of a row share one 2–98 %
    stretch taken from the truth, so brightness differences are real. The error panel shows
    ``fused − truth`` of the row's first band with a diverging colormap and symmetric limits
    (98th percentile of ``|error|``).

    Parameters
    ----------
    path : Path
        PNG to write.
    context : mapping of str to array or None
        Titled ``(band, h, w)`` images shown before the fused one; None draws "not available".
    fused, truth : numpy.ndarray
        ``(band, h, w)`` chips, NaN where invalid.
    bands : sequence of str
        Band names of the chips' first axis.
    fused_label, title : str
        Panel and figure titles.
    """
    composites = composites_for(bands)
    panels = {**context, fused_label: fused, "truth": truth}
    ncols = len(panels) + 1
    height = 3.3 * len(composites)
    fig = Figure(figsize=(3.2 * ncols, height))  # fixed margins: constrained layout took half
    axes = fig.subplots(len(composites), ncols, squeeze=False)  # the rendering time
    fig.subplots_adjust(
        left=0.01, right=0.96, bottom=0.02, top=1 - 0.75 / height, wspace=0.12, hspace=0.3
    )
    for row, comp in zip(axes, composites, strict=True):
        ref = _select(truth, bands, comp.bands)
        if not np.isfinite(ref).any():
            ref = _select(fused, bands, comp.bands)
        limits = [percentile_limits(channel) for channel in ref]
        for ax, (name, image) in zip(row, panels.items(), strict=False):
            if image is None:
                _blank(ax, name, "not available")
                continue
            ax.set_facecolor(_NODATA_GREY)
            ax.imshow(stretch(_select(image, bands, comp.bands), limits), interpolation="nearest")
            ax.set_title(f"{name}\n{comp.name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        _error_panel(fig, row[-1], fused, truth, bands, comp.bands[0])
    fig.suptitle(title)
    fig.savefig(path, dpi=_DPI)


def _error_panel(
    fig: Figure,
    ax: Axes,
    fused: np.ndarray,
    truth: np.ndarray,
    bands: Sequence[str],
    band: str,
) -> None:
    b = list(bands).index(band)
    error = fused[b].astype(np.float64) - truth[b]
    finite = np.abs(error[np.isfinite(error)])
    if finite.size == 0:
        _blank(ax, f"error ({band})", "no valid pixels")
        return
    limit = float(np.percentile(finite, STRETCH_PERCENTILES[1])) or float(finite.max()) or 1.0
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=_NODATA_GREY)
    im = ax.imshow(
        np.ma.masked_invalid(error), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax.set_title(f"fused − truth ({band})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)


def plot_scatter(
    path: Path,
    data: Mapping[str, tuple[np.ndarray, np.ndarray]],
    stats: Mapping[str, Mapping[str, Any]],
    *,
    title: str = "",
) -> None:
    """Density scatter (hexbin, log colour) of fused against truth, one panel per band.

    Parameters
    ----------
    path : Path
        PNG to write.
    data : mapping of band to (fused values, truth values)
        Valid-pixel samples (1-D arrays of equal length).
    stats : mapping of band to metric row
        Full-resolution metrics; ``r``, ``rmse`` and ``count`` are annotated.
    title : str
        Figure title.
    """
    n = len(data)
    fig = Figure(figsize=(4.2 * n, 4.0))  # fixed margins, as in plot_quicklook
    axes = fig.subplots(1, n, squeeze=False)
    fig.subplots_adjust(left=0.85 / (4.2 * n), right=0.97, bottom=0.13, top=0.84, wspace=0.45)
    for ax, (band, (fused, truth)) in zip(axes[0], data.items(), strict=True):
        if fused.size == 0:
            _blank(ax, band, "no valid pixels")
            continue
        both = np.concatenate([fused, truth])
        lo, hi = float(both.min()), float(both.max())
        hi = hi if hi > lo else lo + 1.0
        hb = ax.hexbin(
            truth,
            fused,
            gridsize=80,
            extent=(lo, hi, lo, hi),
            mincnt=1,
            norm=LogNorm(),
            cmap="viridis",
        )
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--", label="1:1")
        row = stats.get(band, {})
        ax.text(
            0.03,
            0.97,
            "\n".join(
                f"{name} = {format_value(row.get(key))}"
                for name, key in (("r", "r"), ("RMSE", "rmse"), ("n", "count"))
            ),
            transform=ax.transAxes,
            va="top",
            fontsize=9,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel("truth")
        ax.set_ylabel("fused")
        ax.set_title(band)
        colorbar = fig.colorbar(hb, ax=ax, fraction=0.046, pad=0.04, label="pixels")
        colorbar.minorticks_off()  # a log colorbar's minor ticks: a third of the drawing time
    fig.suptitle(title)
    fig.savefig(path, dpi=_DPI)


_SERIES_STYLE: dict[str, dict[str, Any]] = {
    "coarse": {"color": "0.55", "marker": ".", "ls": "-", "lw": 0.8},
    "fine observations": {"color": "tab:green", "marker": "o", "ls": "none", "ms": 5},
    "fused": {"color": "tab:blue", "marker": ".", "ls": "-", "lw": 1.2},
    "truth": {"color": "tab:red", "marker": "x", "ls": "none", "ms": 7},
}


def plot_timeseries(path: Path, points: Sequence[PointSeries], bands: Sequence[str]) -> None:
    """Series at each location (rows) and band (columns): coarse, fine, fused and truth.

    Parameters
    ----------
    path : Path
        PNG to write.
    points : sequence of PointSeries
        Locations and their series; missing series are left out of the legend.
    bands : sequence of str
        Band names of the series' second axis.
    """
    fig = Figure(layout="constrained", figsize=(4.5 * len(bands), 2.8 * len(points)))
    axes = fig.subplots(len(points), len(bands), squeeze=False, sharex=True)
    for row, point in zip(axes, points, strict=True):
        for bi, (ax, band) in enumerate(zip(row, bands, strict=True)):
            for name, series in point.series.items():
                if series is None:
                    continue
                times, values = series
                keep = np.isfinite(values[:, bi])
                if keep.any():
                    ax.plot(times[keep], values[keep, bi], label=name, **_SERIES_STYLE[name])
            ax.set_title(f"{point.label} — {band}", fontsize=9)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=8)
    fig.savefig(path, dpi=_DPI)
