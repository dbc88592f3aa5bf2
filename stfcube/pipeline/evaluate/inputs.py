"""Opening the inputs of an evaluation and lining them up.

Opens the fused store and the truth cube (ingesting truth scenes first when needed), checks that
they share a pixel grid, selects the dates and bands to evaluate, finds the source cube for the
pictures and the ERGAS resolution ratio, and aligns the lazy arrays the metrics pass reads.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from stfcube.kernels import metrics as km
from stfcube.pipeline.engine.dataset_input import DATASET_LABEL
from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.geometry.grid import same_centres


def _open_zarr(path: Path, what: str) -> xr.Dataset:
    if not path.exists():
        raise InputError(path, f"{what} not found")
    try:
        return xr.open_zarr(path, consolidated=False, decode_coords="all")
    except Exception as exc:  # zarr raises many types for a non-store directory
        raise InputError(path, f"cannot open {what} as a Zarr store ({exc})") from exc


def _sorted_time(ds: xr.Dataset) -> xr.Dataset:
    return ds.sortby("time") if "time" in ds.dims else ds


def open_fused(path: str | Path) -> xr.Dataset:
    """Open a fused store (``stfcube fuse``) lazily, sorted by time.

    Parameters
    ----------
    path
        The fused Zarr store.

    Returns
    -------
    xarray.Dataset
        Dask-backed: ``fused(time, band, y, x)`` and the method's layers, nothing read yet;
        ``.rio.crs`` and ``.rio.transform()`` are the fused grid's.

    Raises
    ------
    InputError
        When the store is missing, unreadable or lacks the ``fused`` variable.

    Examples
    --------
    >>> import stfcube
    >>> fused = stfcube.open_fused(report.out_path)  # doctest: +SKIP
    >>> fused["fused"].sel(band="red").isel(time=0).plot()  # doctest: +SKIP
    """
    path = Path(path)
    return check_fused(_open_zarr(path, "fused store"), path)


def check_fused(ds: xr.Dataset, label: str | Path) -> xr.Dataset:
    """``ds`` sorted by time, once checked to hold ``fused(time, band, y, x)``.

    Raises
    ------
    InputError
        Naming ``label`` when the variable is missing or has other dims.
    """
    if "fused" not in ds or ds["fused"].dims != ("time", "band", "y", "x"):
        raise InputError(label, "not a fused store: no variable fused(time, band, y, x)")
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
    return check_truth(_open_zarr(path, "truth cube"), path)


def check_truth(ds: xr.Dataset, label: str | Path) -> xr.Dataset:
    """``ds`` sorted by time, once checked to hold ``fine(time, band, y, x)`` and ``fine_valid``.

    Raises
    ------
    InputError
        Naming ``label`` and the missing variables, or ``fine``'s wrong dims.
    """
    missing = [name for name in ("fine", "fine_valid") if name not in ds]
    if missing:
        raise InputError(label, f"not a truth cube: missing variable(s) {', '.join(missing)}")
    if ds["fine"].dims != ("time", "band", "y", "x"):
        raise InputError(label, f"fine has dims {ds['fine'].dims}, expected (time, band, y, x)")
    return _sorted_time(ds)


def truth_cube(truth: str | Path, workdir: Path, chunk: int, notes: list[str]) -> Path:
    """Path of a truth cube: ``truth`` itself, or scenes ingested into ``workdir``.

    A Zarr store is taken as a cube. Anything else (a STAC catalog or collection, a manifest, a
    directory holding one, or a URL) is ingested with ``roles=("truth",)`` into
    ``workdir/truth.zarr``, chunked like the fused store.

    Raises
    ------
    InputError
        When the scenes cannot be ingested (raised by :func:`stfcube.pipeline.ingest.ingest`).
    """
    text = str(truth)
    if "://" not in text and _is_zarr_store(Path(text)):
        return Path(text)
    from stfcube.pipeline.ingest.scenes import (
        ingest,  # deferred: STAC and raster readers are heavy imports
    )

    cube = workdir / "truth.zarr"
    ingest(text, cube, chunk=chunk, roles=("truth",))
    notes.append(f"truth scenes {text} ingested into a temporary cube")
    return cube


def iso_dates(times: Any) -> list[str]:
    """ISO dates (``YYYY-MM-DD``) of one time or an array of times."""
    return [pd.Timestamp(t).strftime("%Y-%m-%d") for t in np.atleast_1d(times)]


def band_names(ds: xr.Dataset) -> list[str]:
    """Band names of a store, in store order."""
    return [str(b) for b in ds["band"].values]


def observed_dates(ds: xr.Dataset) -> set[str]:
    """ISO dates with a fine observation (``fine_observed``; every date when it is absent)."""
    if "fine_observed" in ds.coords or "fine_observed" in ds:
        observed = np.asarray(ds["fine_observed"].values, dtype=bool)
        return set(np.asarray(iso_dates(ds["time"].values))[observed])
    return set(iso_dates(ds["time"].values))


def select_dates(
    fused: xr.Dataset, truth: xr.Dataset, dates: Sequence[str] | None, truth_path: str | Path
) -> list[str]:
    """Dates to evaluate: ``dates`` (checked) or every fused date the truth observed.

    Raises
    ------
    ConfigError
        When a requested date is not in both stores.
    InputError
        When the stores share no date.
    """
    fused_dates = iso_dates(fused["time"].values)
    truth_dates = observed_dates(truth)
    if dates:
        wanted = iso_dates([pd.Timestamp(d) for d in dates])
        _check_in_both("date", wanted, fused_dates, truth_dates)
        return sorted(set(wanted))
    common = [d for d in fused_dates if d in truth_dates]
    if not common:
        raise InputError(truth_path, "truth has no observed date in common with the fused store")
    return common


def select_bands(
    fused: xr.Dataset, truth: xr.Dataset, bands: Sequence[str] | None, truth_path: str | Path
) -> list[str]:
    """Bands to evaluate, in the fused store's order: ``bands`` (checked) or all shared ones."""
    truth_bands = set(band_names(truth))
    fused_bands = band_names(fused)
    if bands:
        _check_in_both("band", bands, fused_bands, truth_bands)
        return [b for b in fused_bands if b in set(bands)]
    common = [b for b in fused_bands if b in truth_bands]
    if not common:
        raise InputError(truth_path, "truth shares no band name with the fused store")
    return common


def _check_in_both(
    kind: str, wanted: Sequence[str], in_fused: Collection[str], in_truth: Collection[str]
) -> None:
    """Raise :class:`ConfigError` naming the requested items missing from either store."""
    absent = [w for w in wanted if w not in in_fused or w not in in_truth]
    if absent:
        raise ConfigError(f"{kind}(s) {', '.join(absent)} not in both the fused store and truth")


def check_same_grid(fused: xr.Dataset, truth: xr.Dataset, truth_path: str | Path) -> None:
    """Raise :class:`InputError` unless both stores lie on the same y/x pixel grid."""
    for dim in ("y", "x"):
        a, b = np.asarray(fused[dim].values), np.asarray(truth[dim].values)
        if not same_centres(a, b):
            raise InputError(
                truth_path,
                f"truth grid differs from the fused grid along {dim} "
                f"({b.size} vs {a.size} pixels or shifted coordinates)",
            )


def _resolve_source_cube(
    fused: xr.Dataset, fused_path: Path | None, override: Path | None
) -> Path | None:
    if override is not None:
        return Path(override)
    attr = fused.attrs.get("source_cube")
    if not attr:
        return None
    candidate = Path(attr)
    if fused_path is not None and not candidate.is_absolute() and not candidate.exists():
        candidate = fused_path.parent / candidate
    return candidate


def open_source_cube(
    fused: xr.Dataset, fused_path: Path | None, override: str | Path | None, notes: list[str]
) -> xr.Dataset | None:
    """The cube the fusion read (coarse and base fine images for the pictures), or None.

    ``override`` when given, else the fused store's ``source_cube`` attribute (relative to the
    store's folder ``fused_path``, if known, when it does not exist as given). A missing or
    unreadable cube, or one fused from an ``xarray.Dataset``, is not an error: a note says which
    context the pictures lack.
    """
    path = _resolve_source_cube(fused, fused_path, None if override is None else Path(override))
    if path is None or str(path).startswith(DATASET_LABEL):
        notes.append(
            f"no source cube known{' (fused from an xarray.Dataset)' if path else ''}: "
            "quicklooks and time series lack coarse/base images"
        )
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


# --------------------------------------------------------------------------------------------
# Lazy arrays read by the metrics pass


@dataclass(frozen=True)
class AlignedInputs:
    """Aligned dask arrays over the evaluated dates and bands, all bands in one chunk."""

    fused: da.Array  # (time, band, y, x) float32
    truth: da.Array  # (time, band, y, x) float32
    truth_valid: da.Array  # (time, y, x) bool

    @property
    def valid(self) -> da.Array:
        """Per band: truth valid and both values finite."""
        finite = da.isfinite(self.fused) & da.isfinite(self.truth)
        return self.truth_valid[:, None, :, :] & finite


def align_inputs(
    fused: xr.Dataset, truth: xr.Dataset, dates: list[str], bands: list[str]
) -> AlignedInputs:
    """Fused, truth and truth mask at ``dates`` and ``bands``, chunked for the metrics pass.

    One date and all bands per chunk; spatial chunks at least the SSIM window's ``2r`` wide, so
    a chunk's border strips are all its neighbours need from it.
    """

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
    return AlignedInputs(fused=f, truth=t, truth_valid=tv)
