"""The scales metrics are measured on: SSIM/PSNR data range, truth coverage, ERGAS ratio.

Metrics of two runs compare only when they use the same scales, so none of them is taken from
the pixels a run happened to predict:

- the **data range** ``L`` of SSIM and PSNR is the cube's nominal range (:func:`nominal_range`:
  a CF ``valid_range`` or ``valid_min``/``valid_max`` on the truth, else its ``units``:
  reflectance ``x F`` spans ``[0, F]``, a normalised index ``x F`` spans ``[-F, F]``), else the
  truth's own ``max - min`` over its valid pixels of the evaluated dates, never the fused values;
- the **coverage** of a run is the share of valid truth pixels it predicted
  (:func:`summarise_truth` counts them, per date and band);
- the **ERGAS ratio** ``h/l`` is the real fine/coarse pixel-size ratio
  (:func:`ergas_resolution_ratio`): given, else the cube's native coarse grid, else its
  ``coarse_ratio`` (set by the manifest for coarse data delivered on the fine grid); a ratio of
  1 says only that coarse came on the fine grid, so ERGAS is then left out with a note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.evaluate.inputs import AlignedInputs
from stfcube.pipeline.ingest.sanity import parse_units
from stfcube.pipeline.store.metadata import stated_units

#: ``data_range_source`` values of an evaluation's settings.
RANGE_GIVEN = "given"
RANGE_TRUTH = "truth max - min (no nominal range known)"


@dataclass(frozen=True)
class TruthSummary:
    """Valid truth pixels per date and band, and the truth's extremes per band."""

    counts: np.ndarray  # (time, band) int
    low: np.ndarray  # (band,) NaN where no valid pixel
    high: np.ndarray  # (band,)


def summarise_truth(inputs: AlignedInputs) -> TruthSummary:
    """Count the valid truth pixels and find the truth's extremes, in one pass over the truth."""
    valid = inputs.truth_valid[:, None, :, :] & da.isfinite(inputs.truth)
    masked = da.where(valid, inputs.truth, np.nan)
    counts, low, high = dask.compute(
        valid.sum(axis=(2, 3)),
        da.nanmin(masked, axis=(0, 2, 3)),
        da.nanmax(masked, axis=(0, 2, 3)),
    )
    return TruthSummary(
        counts=np.asarray(counts, dtype=np.int64),
        low=np.asarray(low, dtype=np.float64),
        high=np.asarray(high, dtype=np.float64),
    )


def _attr_range(attrs: Mapping[str, Any]) -> float | None:
    """``max - min`` of a CF ``valid_range`` or ``valid_min``/``valid_max`` pair, if stated."""
    bounds = attrs.get("valid_range")
    if bounds is None and "valid_min" in attrs and "valid_max" in attrs:
        bounds = (attrs["valid_min"], attrs["valid_max"])
    if bounds is None:
        return None
    low, high = (float(v) for v in np.ravel(bounds)[:2])
    return high - low if high > low else None


def nominal_range(truth: xr.DataArray) -> tuple[float, str] | None:
    """The nominal data range of the truth's values and where it comes from, or None.

    A CF ``valid_range`` (or ``valid_min``/``valid_max``) wins; else ``units`` naming
    reflectance (``[0, F]`` for ``reflectance x F``) or a normalised index (``[-F, F]``).
    """
    stated = _attr_range(truth.attrs)
    if stated is not None:
        return stated, "nominal (valid_range of the truth)"
    units = str(stated_units(truth.attrs) or "")
    parsed = parse_units(units) if units else None
    if parsed is None:
        return None
    quantity, factor = parsed
    low = 0.0 if quantity == "reflectance" else -factor
    return factor - low, f"nominal (units {units!r}: {low:g}..{factor:g})"


def choose_data_ranges(
    given: float | None,
    truth: xr.DataArray,
    summary: TruthSummary,
    bands: Sequence[str],
    notes: list[str],
) -> tuple[np.ndarray, str]:
    """Data range ``L`` per band for SSIM and PSNR, and its source.

    ``given``, else :func:`nominal_range`, else the truth's ``max - min`` per band over its
    valid pixels (1.0, with a note, where the truth is constant or empty).

    Raises
    ------
    ConfigError
        When ``given`` is not positive.
    """
    if given is not None:
        if not given > 0:
            raise ConfigError(f"data range must be positive, got {given}")
        return np.full(len(bands), float(given)), RANGE_GIVEN
    nominal = nominal_range(truth)
    if nominal is not None:
        return np.full(len(bands), nominal[0]), nominal[1]
    ranges = summary.high - summary.low
    degenerate = ~(ranges > 0)
    if degenerate.any():
        names = ", ".join(b for b, d in zip(bands, degenerate, strict=True) if d)
        notes.append(f"truth constant or empty in band(s) {names}: data range 1.0 used there")
        ranges = np.where(degenerate, 1.0, ranges)
    notes.append(
        "no nominal data range (no valid_range, units not reflectance or an index): SSIM/PSNR "
        "use the truth's max - min; pass --data-range to fix it"
    )
    return ranges, RANGE_TRUTH


def _native_ratio(cube: xr.Dataset) -> float | None:
    """Coarse/fine pixel-size ratio of a cube's native coarse grid, if it has one."""
    if "x_coarse" not in cube.coords or cube.sizes.get("x_coarse", 0) < 2 or cube.sizes["x"] < 2:
        return None
    coarse, fine = cube["x_coarse"].values, cube["x"].values
    return abs(float(coarse[1] - coarse[0]) / float(fine[1] - fine[0]))


def ergas_resolution_ratio(
    given: float | None, cubes: Sequence[xr.Dataset | None], notes: list[str]
) -> tuple[float | None, str]:
    """ERGAS ``h/l`` (fine / coarse pixel size) and where it comes from.

    ``given``; else the native coarse grid of the first cube that has one; else the first
    ``coarse_ratio`` attribute above 1. None (with a note) when unknown: a ``coarse_ratio`` of
    1 means coarse data delivered on the fine grid without their real ratio.
    """
    if given is not None:
        return given, "given"
    present = [c for c in cubes if c is not None]
    for cube in present:
        native = _native_ratio(cube)
        if native:
            return 1.0 / native, "the cube's native coarse grid"
    for cube in present:
        ratio = float(cube.attrs.get("coarse_ratio") or 0)
        if ratio > 1 and math.isfinite(ratio):
            return 1.0 / ratio, "the cube's coarse_ratio"
    notes.append(
        "ERGAS not computed: the real fine/coarse resolution ratio is unknown (no native coarse "
        "grid, and no coarse_ratio above 1: coarse given on the fine grid); pass "
        "resolution_ratio, e.g. 30/480"
    )
    return None, "unknown"
