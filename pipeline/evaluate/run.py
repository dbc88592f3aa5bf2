"""Accuracy of a fused cube against truth: lazy, tiled metrics plus the report around them.

:func:`evaluate` opens a fused store (schema ``fused/1``) and a truth cube (schema ``cube/1``, whose
``fine`` variable is the truth and ``fine_valid`` its mask), computes per date and band RMSE, MAE,
bias, Pearson r, R², SSIM, PSNR and global UIQI, and per date SAM and ERGAS, in one dask pass over
the chunks (plus one pass over the truth for its data range unless ``data_range`` is given). Each
chunk is reduced to a few mergeable partial sums (:mod:`kernels.metrics`), so memory stays bounded
by a few chunks whatever the cube size. Decimated chips for quicklooks and scatter plots are read
in the same pass. :func:`compare` puts several evaluations side by side.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from kernels import metrics as km
from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.evaluate import report as rp

#: Longest side, in pixels, of the decimated chips used for quicklooks and scatter plots.
MAX_CHIP = 1024
#: Metric columns of a per-(date, band) row, in report order.
BAND_METRICS: tuple[str, ...] = ("rmse", "mae", "bias", "r", "r2", "ssim", "psnr", "uiqi")
#: Metric columns of a per-date (all bands) row.
DATE_METRICS: tuple[str, ...] = ("sam", "ergas")
STATUS_OK = "ok"
STATUS_EMPTY = "no valid pixels"
MEAN_LABEL = "mean"
_N_SSIM_PARTS = 2  # sum and count of the defined SSIM-map values of a chunk
_N_SAM_PARTS = 2  # sum and count of spectral angles of a chunk

DEFINITIONS: dict[str, str] = {
    "rmse": "sqrt(mean((fused - truth)^2)) over pixels valid in both",
    "mae": "mean(|fused - truth|)",
    "bias": "mean(fused - truth); positive = fused too high",
    "r": "Pearson correlation coefficient of fused and truth",
    "r2": "coefficient of determination 1 - SS_res/SS_tot, SS_res = sum((fused - truth)^2), "
    "SS_tot = sum((truth - mean(truth))^2); can be negative; not r^2",
    "ssim": "mean SSIM (Wang et al. 2004) as skimage.metrics.structural_similarity: 7x7 uniform "
    "window, K1=0.01, K2=0.03, sample covariance, data_range as stated; averaged over pixels "
    "whose whole window is valid (image border and masked neighbourhoods excluded)",
    "psnr": "10*log10(data_range^2 / MSE) in dB",
    "uiqi": "universal image quality index Q (Wang & Bovik 2002), global form: one window over "
    "all valid pixels",
    "sam": "spectral angle mapper: mean over pixels valid in every band of "
    "arccos(<fused, truth> / (|fused| |truth|)), degrees",
    "ergas": "100 * (h/l) * sqrt(mean_b (RMSE_b / mean(truth_b))^2), h/l = fine / coarse pixel "
    "size (resolution_ratio)",
    "mean": "rows dated 'mean' average the per-date values over dates with valid pixels; "
    "their count is the total",
}


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate` measured and wrote.

    Attributes
    ----------
    out_dir : Path
        Report directory.
    fused_path : Path
        The evaluated fused store.
    truth : str
        The truth as given (cube path, or the scenes' source).
    method : str or None
        Fusion method named by the fused store.
    dates, bands : tuple of str
        Evaluated dates (ISO) and band names.
    band_rows : tuple of dict
        One row per date and band (keys ``date``, ``band``, ``status``, ``count``, the
        :data:`BAND_METRICS`, ``data_range``, ``mean_truth``, ``mean_fused``), then one
        ``mean`` row per band.
    date_rows : tuple of dict
        One row per date (``date``, ``status``, ``count``, ``sam``, ``ergas``), then ``mean``.
    settings : dict
        Data ranges, resolution ratio, SSIM window and the metric definitions.
    files : dict
        Written files by role, relative to ``out_dir``.
    notes : tuple of str
        Remarks for the reader (missing context, defaults taken).
    """

    out_dir: Path
    fused_path: Path
    truth: str
    method: str | None
    dates: tuple[str, ...]
    bands: tuple[str, ...]
    band_rows: tuple[dict[str, Any], ...]
    date_rows: tuple[dict[str, Any], ...]
    settings: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the content of ``metrics.json``)."""
        return {
            "stfcube_report": "evaluation/1",
            "fused": str(self.fused_path),
            "truth": self.truth,
            "method": self.method,
            "dates": list(self.dates),
            "bands": list(self.bands),
            "settings": self.settings,
            "per_band": [dict(row) for row in self.band_rows],
            "per_date": [dict(row) for row in self.date_rows],
            "files": dict(self.files),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ComparisonReport:
    """What :func:`compare` wrote: one label per evaluation and the side-by-side tables."""

    out_dir: Path
    labels: tuple[str, ...]
    files: dict[str, str]


# --------------------------------------------------------------------------------------------
# Opening and aligning the inputs


def _open_zarr(path: Path, what: str) -> xr.Dataset:
    if not path.exists():
        raise InputError(path, f"{what} not found")
    try:
        return xr.open_zarr(path, consolidated=False)
    except Exception as exc:  # zarr raises many types for a non-store directory
        raise InputError(path, f"cannot open {what} as a Zarr store ({exc})") from exc


def _sorted_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.sortby("time") if "time" in ds.dims else ds


def open_fused(path: str | Path) -> xr.Dataset:
    """Open a fused store and check that it has ``fused(time, band, y, x)``.

    Raises
    ------
    InputError
        When the store is missing, unreadable or lacks the ``fused`` variable.
    """
    path = Path(path)
    ds = _open_zarr(path, "fused store")
    if "fused" not in ds or ds["fused"].dims != ("time", "band", "y", "x"):
        raise InputError(path, "not a fused store: no variable fused(time, band, y, x)")
    return _sorted_time(ds)


def _is_zarr_store(path: Path) -> bool:
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def open_truth(path: str | Path) -> xr.Dataset:
    """Open a truth cube: its ``fine`` variable is the truth, ``fine_valid`` its mask.

    Raises
    ------
    InputError
        When the path is not a cube with ``fine`` and ``fine_valid``.
    """
    path = Path(path)
    ds = _open_zarr(path, "truth cube")
    missing = [name for name in ("fine", "fine_valid") if name not in ds]
    if missing:
        raise InputError(path, f"not a truth cube: missing variable(s) {', '.join(missing)}")
    if ds["fine"].dims != ("time", "band", "y", "x"):
        raise InputError(path, f"fine has dims {ds['fine'].dims}, expected (time, band, y, x)")
    return _sorted_time(ds)


def truth_cube(truth: str | Path, workdir: Path, chunk: int, notes: list[str]) -> Path:
    """Path of a truth cube: ``truth`` itself, or scenes ingested into ``workdir``.

    A Zarr store is taken as a cube. Anything else (a STAC catalog or collection, a manifest, a
    directory holding one, or a URL) is ingested with ``roles=("truth",)`` into
    ``workdir/truth.zarr``, chunked like the fused store.

    Raises
    ------
    InputError
        When the scenes cannot be ingested (raised by :func:`pipeline.ingest.ingest`).
    """
    text = str(truth)
    if "://" not in text and _is_zarr_store(Path(text)):
        return Path(text)
    from pipeline.ingest.scenes import ingest  # deferred: STAC and raster readers are heavy imports

    cube = workdir / "truth.zarr"
    ingest(text, cube, chunk=chunk, roles=("truth",))
    notes.append(f"truth scenes {text} ingested into a temporary cube")
    return cube


def _iso(times: Any) -> list[str]:
    return [pd.Timestamp(t).strftime("%Y-%m-%d") for t in np.atleast_1d(times)]


def _band_names(ds: xr.Dataset) -> list[str]:
    return [str(b) for b in ds["band"].values]


def _observed_dates(ds: xr.Dataset) -> set[str]:
    if "fine_observed" in ds.coords or "fine_observed" in ds:
        observed = np.asarray(ds["fine_observed"].values, dtype=bool)
        return set(np.asarray(_iso(ds["time"].values))[observed])
    return set(_iso(ds["time"].values))


def select_dates(
    fused: xr.Dataset, truth: xr.Dataset, dates: Sequence[str] | None, truth_path: Path
) -> list[str]:
    """Dates to evaluate: ``dates`` (checked) or every fused date the truth observed.

    Raises
    ------
    ConfigError
        When a requested date is not in both stores.
    InputError
        When the stores share no date.
    """
    fused_dates = _iso(fused["time"].values)
    truth_dates = _observed_dates(truth)
    if dates:
        wanted = _iso([pd.Timestamp(d) for d in dates])
        absent = [d for d in wanted if d not in fused_dates or d not in truth_dates]
        if absent:
            raise ConfigError(f"date(s) {', '.join(absent)} not in both the fused store and truth")
        return sorted(set(wanted))
    common = [d for d in fused_dates if d in truth_dates]
    if not common:
        raise InputError(truth_path, "truth has no observed date in common with the fused store")
    return common


def select_bands(
    fused: xr.Dataset, truth: xr.Dataset, bands: Sequence[str] | None, truth_path: Path
) -> list[str]:
    """Bands to evaluate, in the fused store's order: ``bands`` (checked) or all shared ones."""
    truth_bands = set(_band_names(truth))
    fused_bands = _band_names(fused)
    if bands:
        absent = [b for b in bands if b not in truth_bands or b not in fused_bands]
        if absent:
            raise ConfigError(f"band(s) {', '.join(absent)} not in both the fused store and truth")
        return [b for b in fused_bands if b in set(bands)]
    common = [b for b in fused_bands if b in truth_bands]
    if not common:
        raise InputError(truth_path, "truth shares no band name with the fused store")
    return common


def check_same_grid(fused: xr.Dataset, truth: xr.Dataset, truth_path: Path) -> None:
    """Raise :class:`InputError` unless both stores lie on the same y/x pixel grid."""
    for dim in ("y", "x"):
        a, b = np.asarray(fused[dim].values), np.asarray(truth[dim].values)
        step = abs(float(a[1] - a[0])) if a.size > 1 else 1.0
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=1e-6 * step):
            raise InputError(
                truth_path,
                f"truth grid differs from the fused grid along {dim} "
                f"({b.size} vs {a.size} pixels or shifted coordinates)",
            )


def _resolve_source_cube(fused: xr.Dataset, fused_path: Path, override: Path | None) -> Path | None:
    if override is not None:
        return Path(override)
    attr = fused.attrs.get("source_cube")
    if not attr:
        return None
    candidate = Path(attr)
    if not candidate.is_absolute() and not candidate.exists():
        candidate = fused_path.parent / candidate
    return candidate


def _open_source_cube(path: Path | None, notes: list[str]) -> xr.Dataset | None:
    if path is None:
        notes.append("no source cube known: quicklooks and time series lack coarse/base images")
        return None
    try:
        return _sorted_time(xr.open_zarr(path, consolidated=False))
    except Exception as exc:
        notes.append(f"source cube {path} unreadable ({type(exc).__name__}): context omitted")
        return None


def parse_resolution_ratio(text: str | float | None) -> float | None:
    """Parse an ERGAS ratio h/l given as a number (``0.0625``) or a fraction (``30/480``).

    Raises
    ------
    ConfigError
        When the text is not a positive number or fraction.
    """
    if text is None or isinstance(text, float | int):
        value = None if text is None else float(text)
    else:
        num, _, den = str(text).partition("/")
        try:
            value = float(num) / float(den) if den else float(num)
        except (ValueError, ZeroDivisionError) as exc:
            raise ConfigError(f"resolution ratio {text!r} is not a number or fraction") from exc
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"resolution ratio must be positive, got {text!r}")
    return value


def _resolution_ratio(
    given: float | None, cubes: Sequence[xr.Dataset | None], notes: list[str]
) -> float | None:
    if given is not None:
        return given
    for cube in cubes:
        ratio = None if cube is None else cube.attrs.get("coarse_ratio")
        if ratio:
            return 1.0 / float(ratio)
    notes.append(
        "ERGAS not computed: fine/coarse resolution ratio unknown (no coarse_ratio attribute); "
        "pass resolution_ratio, e.g. 30/480"
    )
    return None


# --------------------------------------------------------------------------------------------
# Lazy arrays and partial sums
#
# The pass is a two-stage graph per chunk (time, y block, x block) with all bands together.
# Stage 1 reads the chunk once and reduces it: moments per band, SSIM over the pixels whose
# window lies inside the chunk, spectral angles, its share of the decimated chips, and the
# chunk's 2r-wide border strips. Stage 2 computes the SSIM of the r-wide ring along the chunk's
# edges from its own and its eight neighbours' strips. Each chunk read feeds exactly one task
# and is released after it, so memory stays at a few chunks (dask's overlap would keep whole
# rows of neighbouring chunks alive), and the result equals the whole-image computation.


@dataclass(frozen=True)
class _Inputs:
    """Aligned dask arrays over the evaluated dates and bands, all bands in one chunk."""

    fused: da.Array  # (time, band, y, x) float32
    truth: da.Array  # (time, band, y, x) float32
    truth_valid: da.Array  # (time, y, x) bool

    @property
    def valid(self) -> da.Array:
        """Per band: truth valid and both values finite."""
        finite = da.isfinite(self.fused) & da.isfinite(self.truth)
        return self.truth_valid[:, None, :, :] & finite


def _aligned_inputs(
    fused: xr.Dataset, truth: xr.Dataset, dates: list[str], bands: list[str]
) -> _Inputs:
    def pick(var: xr.DataArray) -> da.Array:
        times = pd.DatetimeIndex(var["time"].values).strftime("%Y-%m-%d")
        index = [int(np.flatnonzero(times == d)[0]) for d in dates]
        data = var.isel(time=index).data
        return data if isinstance(data, da.Array) else da.from_array(data)

    min_chunk = 2 * km.ssim_radius()
    f = pick(fused["fused"].sel(band=bands))
    spatial = {
        axis: da.overlap.ensure_minimum_chunksize(min_chunk, f.chunks[axis]) for axis in (2, 3)
    }
    f = f.rechunk({0: 1, 1: -1, **spatial}).astype(np.float32)
    t = pick(truth["fine"].sel(band=bands)).rechunk({0: 1, 1: -1, **spatial}).astype(np.float32)
    tv = pick(truth["fine_valid"]).astype(bool).rechunk({0: 1, 1: spatial[2], 2: spatial[3]})
    return _Inputs(fused=f, truth=t, truth_valid=tv)


def truth_data_range(inputs: _Inputs) -> da.Array:
    """Per band ``max − min`` of the truth over its valid pixels (lazy, one pass)."""
    masked = da.where(inputs.valid, inputs.truth, np.nan)
    return da.nanmax(masked, axis=(0, 2, 3)) - da.nanmin(masked, axis=(0, 2, 3))


@dataclass(frozen=True)
class _Block:
    """Position of a chunk: date index, origin row/column and shape in pixels."""

    time: int
    row0: int
    col0: int
    height: int
    width: int


def _ssim_parts(smap: np.ndarray) -> tuple[float, int]:
    defined = np.isfinite(smap)
    return float(smap[defined].sum()), int(defined.sum())


def _block_stats(
    fused: np.ndarray,
    truth: np.ndarray,
    truth_valid: np.ndarray,
    *,
    block: _Block,
    data_range: np.ndarray,
    stride: int,
) -> dict[str, Any]:
    """Stage 1: reduce one chunk (``(1, band, h, w)`` arrays) to partial sums and strips."""
    f, t = fused[0], truth[0]
    v = truth_valid[0][None] & np.isfinite(f) & np.isfinite(t)
    bands = range(f.shape[0])
    moments = np.stack([km.pair_moments(f[b], t[b], v[b]) for b in bands])
    ssim = np.array(
        [_ssim_parts(km.ssim_map(f[b], t[b], v[b], data_range=data_range[b])) for b in bands]
    )
    all_valid = v.all(axis=0)
    f64, t64 = (np.where(all_valid, a, 0.0).astype(np.float64) for a in (f, t))
    angles = km.spectral_angle((f64 * t64).sum(0), (f64 * f64).sum(0), (t64 * t64).sum(0))
    defined = all_valid & np.isfinite(angles)
    view = (
        slice(None),
        slice((-block.row0) % stride, None, stride),
        slice((-block.col0) % stride, None, stride),
    )
    d = 2 * km.ssim_radius()
    h, w = block.height, block.width
    strips = [
        (r0, c0, *(a[:, rows, cols].copy() for a in (f, t, v)))
        for r0, c0, rows, cols in (
            (0, 0, slice(0, d), slice(None)),
            (h - d, 0, slice(h - d, h), slice(None)),
            (0, 0, slice(None), slice(0, d)),
            (0, w - d, slice(None), slice(w - d, w)),
        )
    ]
    return {
        "block": block,
        "moments": moments,
        "ssim": ssim,
        "sam": np.array([angles[defined].sum(), defined.sum()]),
        "chip": tuple(a[view].copy() for a in (f, t, v)),  # copies: views would pin the chunk
        "strips": strips,
    }


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    """Stage-1 result without the border strips (what the caller keeps)."""
    return {k: v for k, v in stats.items() if k != "strips"}


def _paste(dst: np.ndarray, src: np.ndarray, top: int, left: int) -> None:
    """Copy ``src`` into ``dst`` with its corner at ``(top, left)``, clipped to ``dst``."""
    rows, cols = dst.shape[-2:]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + src.shape[-2], rows), min(left + src.shape[-1], cols)
    if r1 > r0 and c1 > c0:
        dst[..., r0:r1, c0:c1] = src[..., r0 - top : r1 - top, c0 - left : c1 - left]


def _ring_ssim(
    neighbourhood: Sequence[dict[str, Any] | None], *, block: _Block, data_range: np.ndarray
) -> np.ndarray:
    """Stage 2: SSIM sum and count per band over the r-wide ring along a chunk's edges."""
    r = km.ssim_radius()
    h, w = block.height, block.width
    n_bands = data_range.size
    shape = (n_bands, h + 2 * r, w + 2 * r)
    ext_f, ext_t = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    ext_v = np.zeros(shape, dtype=bool)  # outside the image stays invalid
    for stats in neighbourhood:
        if stats is None:
            continue
        other = stats["block"]
        for r0, c0, f, t, v in stats["strips"]:
            top = other.row0 - block.row0 + r + r0
            left = other.col0 - block.col0 + r + c0
            for dst, src in ((ext_f, f), (ext_t, t), (ext_v, v)):
                _paste(dst, src, top, left)
    # target pixels in extended coordinates: top rows, bottom rows, left and right columns
    targets = (
        (r, 2 * r, r, r + w),
        (h, h + r, r, r + w),
        (2 * r, h, r, 2 * r),
        (2 * r, h, w, w + r),
    )
    out = np.zeros((n_bands, 2))
    for b in range(n_bands):
        for ra, rb, ca, cb in targets:
            if rb <= ra or cb <= ca:
                continue
            window = (slice(ra - r, rb + r), slice(ca - r, cb + r))
            smap = km.ssim_map(
                ext_f[b][window], ext_t[b][window], ext_v[b][window], data_range=data_range[b]
            )
            out[b] += _ssim_parts(smap[r:-r, r:-r])
    return out


@dataclass(frozen=True)
class _Chips:
    """Decimated views read in the metrics pass: (time, band, h, w) arrays and the stride."""

    fused: np.ndarray
    truth: np.ndarray
    valid: np.ndarray
    stride: int


def _chip_stride(ny: int, nx: int, max_chip: int) -> int:
    return max(1, math.ceil(max(ny, nx) / max_chip))


@dataclass(frozen=True)
class _Partials:
    moments: np.ndarray  # (time, band, K)
    ssim_sum: np.ndarray  # (time, band)
    ssim_count: np.ndarray  # (time, band)
    sam_sum: np.ndarray  # (time,)
    sam_count: np.ndarray  # (time,)


def _block_grid(inputs: _Inputs) -> dict[tuple[int, int, int], _Block]:
    row0 = np.cumsum((0, *inputs.fused.chunks[2]))
    col0 = np.cumsum((0, *inputs.fused.chunks[3]))
    return {
        (ti, yi, xi): _Block(ti, int(row0[yi]), int(col0[xi]), int(hh), int(ww))
        for ti in range(inputs.fused.shape[0])
        for yi, hh in enumerate(inputs.fused.chunks[2])
        for xi, ww in enumerate(inputs.fused.chunks[3])
    }


def compute_partials(
    inputs: _Inputs, data_range: np.ndarray, max_chip: int = MAX_CHIP
) -> tuple[_Partials, _Chips]:
    """Run the single pass: per-chunk partial sums of every metric plus decimated chips."""
    n_time, n_band, ny, nx = inputs.fused.shape
    stride = _chip_stride(ny, nx, max_chip)
    blocks = _block_grid(inputs)
    f_parts, t_parts = inputs.fused.to_delayed(), inputs.truth.to_delayed()
    v_parts = inputs.truth_valid.to_delayed()
    stage1 = {
        key: dask.delayed(_block_stats)(
            f_parts[key[0], 0, key[1], key[2]],
            t_parts[key[0], 0, key[1], key[2]],
            v_parts[key],
            block=block,
            data_range=data_range,
            stride=stride,
        )
        for key, block in blocks.items()
    }
    rings = {
        key: dask.delayed(_ring_ssim)(
            [
                stage1.get((key[0], key[1] + dy, key[2] + dx))
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ],
            block=blocks[key],
            data_range=data_range,
        )
        for key in blocks
    }
    summaries, ring_parts = dask.compute(
        [dask.delayed(_summary)(s) for s in stage1.values()], list(rings.values())
    )
    moments = np.zeros((n_time, n_band, km.N_MOMENTS))
    ssim = np.zeros((n_time, n_band, 2))
    sam = np.zeros((n_time, 2))
    shape = (n_time, n_band, math.ceil(ny / stride), math.ceil(nx / stride))
    chips = [np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)]
    chips.append(np.zeros(shape, dtype=bool))
    for s, ring in zip(summaries, ring_parts, strict=True):
        block = s["block"]
        ti = block.time
        moments[ti] = km.merge_moments(moments[ti], s["moments"])
        ssim[ti] += s["ssim"] + ring
        sam[ti] += s["sam"]
        top, left = -(-block.row0 // stride), -(-block.col0 // stride)
        for dst, piece in zip(chips, s["chip"], strict=True):
            _paste(dst[ti], piece, top, left)
    partials = _Partials(
        moments=moments,
        ssim_sum=ssim[..., 0],
        ssim_count=ssim[..., 1],
        sam_sum=sam[:, 0],
        sam_count=sam[:, 1],
    )
    return partials, _Chips(fused=chips[0], truth=chips[1], valid=chips[2], stride=stride)


# --------------------------------------------------------------------------------------------
# Rows of the report


def _clean(value: Any) -> Any:
    """JSON-friendly scalar: NaN becomes None, numpy scalars become Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def band_rows(
    partials: _Partials, dates: Sequence[str], bands: Sequence[str], data_range: np.ndarray
) -> list[dict[str, Any]]:
    """Per-(date, band) metric rows, then one ``mean`` row per band."""
    m = partials.moments
    with np.errstate(invalid="ignore", divide="ignore"):
        ssim = np.where(partials.ssim_count > 0, partials.ssim_sum / partials.ssim_count, np.nan)
    values = {
        "rmse": km.rmse_from_moments(m),
        "mae": km.mae_from_moments(m),
        "bias": km.bias_from_moments(m),
        "r": km.pearson_r_from_moments(m),
        "r2": km.r2_from_moments(m),
        "ssim": ssim,
        "psnr": km.psnr_from_moments(m, data_range[None, :]),
        "uiqi": km.uiqi_from_moments(m),
        "mean_truth": km.mean_truth_from_moments(m),
        "mean_fused": km.mean_fused_from_moments(m),
    }
    count = km.count_from_moments(m)
    rows = []
    for ti, date in enumerate(dates):
        for bi, band in enumerate(bands):
            n = int(count[ti, bi])
            row: dict[str, Any] = {
                "date": date,
                "band": band,
                "status": STATUS_OK if n else STATUS_EMPTY,
                "count": n,
                "data_range": float(data_range[bi]),
            }
            row.update({k: _clean(v[ti, bi]) if n else None for k, v in values.items()})
            rows.append(row)
    for band in bands:
        rows.append(_mean_row([r for r in rows if r["band"] == band], {"band": band}, BAND_METRICS))
    return rows


def _mean_row(
    rows: Sequence[Mapping[str, Any]], keys: Mapping[str, Any], columns: Sequence[str]
) -> dict[str, Any]:
    """Average of ``columns`` over the rows with valid pixels (finite values only)."""
    used = [r for r in rows if r["status"] == STATUS_OK]
    out: dict[str, Any] = {"date": MEAN_LABEL, **keys}
    out["status"] = STATUS_OK if used else STATUS_EMPTY
    out["count"] = int(sum(r["count"] for r in rows))
    for col in columns:
        vals = [r[col] for r in used if r.get(col) is not None and math.isfinite(r[col])]
        out[col] = float(np.mean(vals)) if vals else None
    return out


def date_rows(
    partials: _Partials,
    dates: Sequence[str],
    rows_by_band: Sequence[Mapping[str, Any]],
    resolution_ratio: float | None,
) -> list[dict[str, Any]]:
    """Per-date SAM and ERGAS rows, then a ``mean`` row."""
    rows = []
    for ti, date in enumerate(dates):
        n = int(partials.sam_count[ti])
        band_stats = [r for r in rows_by_band if r["date"] == date and r["status"] == STATUS_OK]
        ergas = None
        if resolution_ratio is not None and band_stats:
            ergas = km.ergas_from_band_stats(
                [r["rmse"] for r in band_stats],
                [r["mean_truth"] for r in band_stats],
                resolution_ratio,
            )
        sam = partials.sam_sum[ti] / n if n else None
        rows.append(
            {
                "date": date,
                "status": STATUS_OK if band_stats else STATUS_EMPTY,
                "count": n,
                "sam": _clean(sam),
                "ergas": _clean(ergas),
            }
        )
    rows.append(_mean_row(rows, {}, DATE_METRICS))
    return rows


# --------------------------------------------------------------------------------------------
# Context for the pictures: quicklook chips and time series


def _date_index(ds: xr.Dataset, date: str) -> int | None:
    hits = np.flatnonzero(np.asarray(_iso(ds["time"].values)) == date)
    return int(hits[0]) if hits.size else None


def _base_date(fused: xr.Dataset, source: xr.Dataset | None, date: str) -> str | None:
    """Nearest pair date used for ``date`` (``pairs_used``), else nearest other fine date."""
    pairs = json.loads(fused.attrs.get("pairs_used", "{}") or "{}")
    candidates = [str(p)[:10] for p in pairs.get(date, [])]
    if not candidates and source is not None:
        candidates = sorted(d for d in _observed_dates(source) if d != date)
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
    if ti is None or not set(bands) <= set(_band_names(source)):
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


def _quicklooks(
    out: Path,
    chips: _Chips,
    fused: xr.Dataset,
    source: xr.Dataset | None,
    dates: Sequence[str],
    bands: Sequence[str],
    method: str | None,
    picks: Sequence[int],
) -> dict[str, str]:
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
        rp.plot_quicklook(
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


def _scatters(
    out: Path,
    chips: _Chips,
    dates: Sequence[str],
    bands: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    picks: Sequence[int],
) -> dict[str, str]:
    files: dict[str, str] = {}
    for ti in picks:
        date = dates[ti]
        valid = chips.valid[ti]
        samples = {
            band: (chips.fused[ti, bi][valid[bi]], chips.truth[ti, bi][valid[bi]])
            for bi, band in enumerate(bands)
        }
        name = f"scatter_{date}.png"
        rp.plot_scatter(
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
    if ds is None or var not in ds or not set(bands) <= set(_band_names(ds)):
        return None
    values = ds[var].isel(y=row, x=col).sel(band=list(bands)).values.astype(np.float64)
    if mask is not None and mask in ds:
        values = np.where(ds[mask].isel(y=row, x=col).values[:, None], values, np.nan)
    return np.asarray(ds["time"].values), values


def _timeseries(
    out: Path,
    fused: xr.Dataset,
    truth: xr.Dataset,
    source: xr.Dataset | None,
    bands: Sequence[str],
    locations: Sequence[tuple[str, int, int]],
) -> dict[str, str]:
    panels = []
    for label, row, col in locations:
        panels.append(
            rp.PointSeries(
                label=label,
                series={
                    "coarse": _series(source, "coarse", "coarse_valid", bands, row, col),
                    "fine observations": _series(source, "fine", "fine_valid", bands, row, col),
                    "fused": _series(fused, "fused", None, bands, row, col),
                    "truth": _series(truth, "fine", "fine_valid", bands, row, col),
                },
            )
        )
    rp.plot_timeseries(out / "timeseries.png", panels, bands)
    return {"timeseries": "timeseries.png"}


def _locations(
    fused: xr.Dataset,
    points: Sequence[tuple[float, float]] | None,
    pixels: Sequence[tuple[int, int]] | None,
    notes: list[str],
) -> list[tuple[str, int, int]]:
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


# --------------------------------------------------------------------------------------------
# Public entry points


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse a file or a non-empty directory (unless ``overwrite``); create the parent."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"{out_dir}: report directory exists and is not empty (use --overwrite)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)


def _staging_dir(out_dir: Path, overwrite: bool) -> Path:
    """Temporary sibling of ``out_dir`` to build the report in (renamed when complete)."""
    _check_out_dir(out_dir, overwrite)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))


def _publish(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)


def _data_ranges(
    given: float | None, inputs: _Inputs, bands: Sequence[str], notes: list[str]
) -> np.ndarray:
    if given is not None:
        if not given > 0:
            raise ConfigError(f"data range must be positive, got {given}")
        return np.full(len(bands), float(given))
    ranges = np.asarray(truth_data_range(inputs).compute(), dtype=np.float64)
    degenerate = ~(ranges > 0)
    if degenerate.any():
        names = ", ".join(b for b, d in zip(bands, degenerate, strict=True) if d)
        notes.append(f"truth constant or empty in band(s) {names}: data range 1.0 used there")
        ranges = np.where(degenerate, 1.0, ranges)
    return ranges


def evaluate(
    fused_path: str | Path,
    truth: str | Path,
    out_dir: str | Path,
    *,
    dates: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    resolution_ratio: float | str | None = None,
    points: Sequence[tuple[float, float]] | None = None,
    pixels: Sequence[tuple[int, int]] | None = None,
    data_range: float | None = None,
    source_cube: str | Path | None = None,
    max_chip: int = MAX_CHIP,
    max_pictures: int | None = 8,
    overwrite: bool = False,
) -> EvaluationReport:
    """Evaluate a fused store against truth and write the report directory.

    Parameters
    ----------
    fused_path : str or Path
        Fused Zarr store (``fused/1``).
    truth : str or Path
        Truth on the fused grid: a cube (``cube/1``; ``fine`` is the truth, ``fine_valid`` its
        mask), or scenes (STAC catalog/collection, manifest, a directory holding one) that are
        ingested with ``roles=("truth",)`` into a temporary cube beside ``out_dir``.
    out_dir : str or Path
        Report directory: ``metrics.json``, ``metrics.csv``, ``quicklook_<date>.png``,
        ``scatter_<date>.png``, ``timeseries.png``, ``report.md``, ``report.html``.
    dates : sequence of str, optional
        ISO dates to evaluate; default every fused date observed in the truth.
    bands : sequence of str, optional
        Band names; default all bands in both.
    resolution_ratio : float or str, optional
        ERGAS ``h/l`` (fine / coarse pixel size, e.g. ``30/480``); default ``1/coarse_ratio`` of
        the source or truth cube. ERGAS is omitted (with a note) when unknown.
    points : sequence of (x, y), optional
        Time-series locations in CRS units.
    pixels : sequence of (row, col), optional
        Time-series locations in pixel indices. Default (neither given): the centre pixel.
    data_range : float, optional
        Data range ``L`` for SSIM and PSNR; default per band ``max − min`` of the valid truth
        over the evaluated dates (one extra pass over the truth).
    source_cube : str or Path, optional
        Cube the fusion read (coarse and base fine for the pictures); default the fused
        store's ``source_cube`` attribute.
    max_chip : int
        Longest side of the decimated quicklook/scatter chips.
    max_pictures : int or None
        Dates that get a quicklook and a scatter plot, spread evenly over the evaluated dates
        (first and last included); ``None`` for every date. Metrics cover every date.
    overwrite : bool
        Replace an existing non-empty report directory.

    Returns
    -------
    EvaluationReport
        The metrics and the written files.

    Raises
    ------
    InputError, ConfigError, OutputError
        On unreadable or mismatched inputs, bad options or an unwritable report directory.
    """
    fused_path, out_dir = Path(fused_path), Path(out_dir)
    notes: list[str] = []
    fused_ds = open_fused(fused_path)
    _check_out_dir(out_dir, overwrite)
    with tempfile.TemporaryDirectory(prefix=".stfcube-truth-", dir=out_dir.parent) as workdir:
        chunk = max(fused_ds["fused"].encoding.get("chunks", (1, 1, 512, 512))[-2:])
        truth_path = truth_cube(truth, Path(workdir), int(chunk), notes)
        return _evaluate_opened(
            fused_path,
            fused_ds,
            str(truth),
            open_truth(truth_path),
            out_dir,
            notes,
            dates=dates,
            bands=bands,
            resolution_ratio=resolution_ratio,
            points=points,
            pixels=pixels,
            data_range=data_range,
            source_cube=source_cube,
            max_chip=max_chip,
            max_pictures=max_pictures,
            overwrite=overwrite,
        )


def _evaluate_opened(
    fused_path: Path,
    fused_ds: xr.Dataset,
    truth: str,
    truth_ds: xr.Dataset,
    out_dir: Path,
    notes: list[str],
    *,
    dates: Sequence[str] | None,
    bands: Sequence[str] | None,
    resolution_ratio: float | str | None,
    points: Sequence[tuple[float, float]] | None,
    pixels: Sequence[tuple[int, int]] | None,
    data_range: float | None,
    source_cube: str | Path | None,
    max_chip: int,
    max_pictures: int | None,
    overwrite: bool,
) -> EvaluationReport:
    """:func:`evaluate` once both inputs are open (``truth`` names the truth as given)."""
    truth_path = Path(truth)
    check_same_grid(fused_ds, truth_ds, truth_path)
    sel_dates = select_dates(fused_ds, truth_ds, dates, truth_path)
    sel_bands = select_bands(fused_ds, truth_ds, bands, truth_path)
    ratio = parse_resolution_ratio(resolution_ratio)
    locations = _locations(fused_ds, points, pixels, notes)
    staging = _staging_dir(out_dir, overwrite)
    try:
        source = _open_source_cube(
            _resolve_source_cube(fused_ds, fused_path, source_cube and Path(source_cube)), notes
        )
        ratio = _resolution_ratio(ratio, (source, truth_ds), notes)
        inputs = _aligned_inputs(fused_ds, truth_ds, sel_dates, sel_bands)
        ranges = _data_ranges(data_range, inputs, sel_bands, notes)
        partials, chips = compute_partials(inputs, ranges, max_chip)
        b_rows = band_rows(partials, sel_dates, sel_bands, ranges)
        d_rows = date_rows(partials, sel_dates, b_rows, ratio)
        notes.extend(f"{r['date']}: no valid pixels" for r in d_rows if r["status"] == STATUS_EMPTY)
        method = fused_ds.attrs.get("method")
        files = {"metrics_json": "metrics.json", "metrics_csv": "metrics.csv"}
        picks = picture_indices(len(sel_dates), max_pictures)
        files |= _quicklooks(staging, chips, fused_ds, source, sel_dates, sel_bands, method, picks)
        files |= _scatters(staging, chips, sel_dates, sel_bands, b_rows, picks)
        files |= _timeseries(staging, fused_ds, truth_ds, source, sel_bands, locations)
        files |= {"report_md": "report.md", "report_html": "report.html"}
        report = EvaluationReport(
            out_dir=out_dir,
            fused_path=fused_path,
            truth=truth,
            method=method,
            dates=tuple(sel_dates),
            bands=tuple(sel_bands),
            band_rows=tuple(b_rows),
            date_rows=tuple(d_rows),
            settings={
                "data_range": dict(zip(sel_bands, map(float, ranges), strict=True)),
                "data_range_source": "given" if data_range is not None else "truth max - min",
                "resolution_ratio": ratio,
                "ssim_window": km.SSIM_WIN_SIZE,
                "ssim_k1": km.SSIM_K1,
                "ssim_k2": km.SSIM_K2,
                "chip_stride": chips.stride,
                "definitions": DEFINITIONS,
            },
            files=files,
            notes=tuple(notes),
        )
        rp.write_metrics(staging, report.to_dict())
        rp.write_reports(staging, report.to_dict())
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _load_evaluation(path: Path) -> dict[str, Any]:
    metrics = path / "metrics.json" if path.is_dir() else path
    if not metrics.is_file():
        raise InputError(path, "no metrics.json: not a report directory of `stfcube evaluate`")
    try:
        return json.loads(metrics.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(metrics, f"unreadable metrics file ({exc})") from exc


def _is_fused_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").exists() and not (path / "metrics.json").exists()


def compare(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    labels: Sequence[str] | None = None,
    truth: str | Path | None = None,
    overwrite: bool = False,
    **evaluate_options: Any,
) -> ComparisonReport:
    """Put several evaluations side by side (best value per column highlighted).

    Parameters
    ----------
    inputs : sequence of str or Path
        Report directories of :func:`evaluate`, or fused stores (then ``truth`` is required and
        each is evaluated into ``out_dir/<label>/``).
    out_dir : str or Path
        Where ``compare.md``, ``compare.html`` and ``compare.csv`` go.
    labels : sequence of str, optional
        One label per input; default the fused store's method, else the input's name.
    truth : str or Path, optional
        Truth cube for inputs that are fused stores.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    **evaluate_options
        Passed to :func:`evaluate` for fused-store inputs (``dates``, ``data_range``, ...).

    Returns
    -------
    ComparisonReport
        Labels and written files.
    """
    out_dir = Path(out_dir)
    paths = [Path(p) for p in inputs]
    if len(paths) < 2:
        raise ConfigError("compare needs at least two reports or fused stores")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels for {len(paths)} inputs")
    staging = _staging_dir(out_dir, overwrite)
    try:
        evaluations = []
        for i, path in enumerate(paths):
            if _is_fused_store(path):
                if truth is None:
                    raise ConfigError(f"{path} is a fused store: pass truth to evaluate it")
                name = labels[i] if labels else f"{i + 1}_{path.stem}"
                evaluations.append(
                    evaluate(path, truth, staging / name, **evaluate_options).to_dict()
                )
            else:
                evaluations.append(_load_evaluation(path))
        names = list(labels) if labels else _default_labels(evaluations, paths)
        files = rp.write_comparison(staging, dict(zip(names, evaluations, strict=True)))
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ComparisonReport(out_dir=out_dir, labels=tuple(names), files=files)


def _default_labels(evaluations: Sequence[Mapping[str, Any]], paths: Sequence[Path]) -> list[str]:
    """Method names, made unique with the input names where two are equal."""
    names = [str(e.get("method") or p.stem) for e, p in zip(evaluations, paths, strict=True)]
    if len(set(names)) == len(names):
        return names
    return [f"{n} ({p.name})" for n, p in zip(names, paths, strict=True)]
