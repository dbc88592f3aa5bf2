"""The no-change baseline beside a run: what ``nochange`` predicts from the run's own pairs.

For each evaluated date, :func:`nochange_prediction` reads the fine images of the pairs the fused
store used for that date (its ``pairs_used``) from the source cube, masked by their
``fine_valid``, and applies the ``nochange`` rule to them (:func:`stfcube.xr.nochange`, the
kernel :func:`stfcube.kernels.baselines.nochange`: the nearest valid pair in time, pixel by
pixel), lazily and chunk by chunk. Dates that share their pairs share the reads. The prediction
is then scored by the same metrics pass as the run, on the pixels the run predicted
(:func:`on_run_pixels`), so both are measured on the same pixels.

No baseline (a note says why, never an error) when the run is itself ``nochange``, when no
source cube is known or readable, or when the source cube lacks the pairs, the bands or the grid
of the fused store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

import stfcube.xr as sxr
from stfcube.pipeline.evaluate.inputs import AlignedInputs, band_names, iso_dates
from stfcube.pipeline.geometry.grid import same_centres

#: The baseline's method name in reports (the method the baseline reproduces).
NOCHANGE = "nochange"
#: How the report describes the baseline's pixels and pairs.
BASELINE_PIXELS = "the pixels the run predicted, with the run's pairs"


def pair_dates_by_date(
    pairs_used: Mapping[str, Any], dates: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The fine dates of each date's pairs (``fine~coarse`` counts as its fine date)."""
    return {
        d: tuple(iso_dates([str(p).split("~")[0] for p in pairs_used.get(d) or []])) for d in dates
    }


def baseline_skip_reason(
    method: str | None,
    pairs: Mapping[str, Sequence[str]],
    bands: Sequence[str],
    fused: xr.Dataset,
    source: xr.Dataset | None,
) -> str | None:
    """Why the no-change baseline cannot be computed for this run, or None when it can."""
    if method == NOCHANGE:
        return "the run is itself nochange"
    if source is None or "fine" not in source or "fine_valid" not in source:
        return "no readable source cube with fine images"
    without = [d for d, p in pairs.items() if not p]
    if without:
        return f"no pairs recorded for {', '.join(without)}"
    missing = sorted(
        {p for ps in pairs.values() for p in ps} - set(iso_dates(source["time"].values))
    )
    if missing:
        return f"pair date(s) {', '.join(missing)} not in the source cube"
    if not set(bands) <= set(band_names(source)):
        return "the source cube lacks some evaluated bands"
    if not all(same_centres(fused[dim].values, source[dim].values) for dim in ("y", "x")):
        return "the source cube is on another grid than the fused store"
    return None


def nochange_prediction(
    source: xr.Dataset,
    pairs: Mapping[str, Sequence[str]],
    bands: Sequence[str],
    like: da.Array,
) -> da.Array:
    """``nochange`` from each date's pairs, lazily, chunked like ``like``.

    Parameters
    ----------
    source
        The source cube (``fine`` and ``fine_valid``), on the fused grid.
    pairs
        Per evaluated date (in order), the fine dates of its pairs.
    bands
        Evaluated bands.
    like
        The run's aligned ``(time, band, y, x)`` prediction: the chunks to follow.

    Returns
    -------
    dask.array.Array
        ``(time, band, y, x)`` float32, NaN where no pair is valid.
    """
    times = np.asarray(iso_dates(source["time"].values))
    groups: dict[tuple[str, ...], list[str]] = {}
    for date, used in pairs.items():
        groups.setdefault(tuple(used), []).append(date)
    predicted: dict[str, Any] = {}
    for used, dates in groups.items():
        index = [int(np.flatnonzero(times == p)[0]) for p in used]
        out = sxr.nochange(
            source["fine"].isel(time=index).sel(band=list(bands)),
            [np.datetime64(d, "D") for d in dates],
            fine_valid=source["fine_valid"].isel(time=index),
        )
        predicted |= {date: out.isel(time=i).data for i, date in enumerate(dates)}
    stacked = da.stack([da.asarray(predicted[d]) for d in pairs]).astype(np.float32)
    return stacked.rechunk(like.chunks)


def on_run_pixels(baseline: da.Array, run: da.Array) -> da.Array:
    """The baseline where the run predicted a value (NaN elsewhere): the same pixels."""
    return da.where(da.isfinite(run), baseline, np.float32(np.nan))


def baseline_inputs(
    inputs: AlignedInputs,
    fused: xr.Dataset,
    source: xr.Dataset | None,
    pairs: Mapping[str, Sequence[str]],
    bands: Sequence[str],
    notes: list[str],
) -> AlignedInputs | None:
    """The run's aligned arrays with the no-change baseline on the run's pixels as prediction
    (truth and mask unchanged), or None with a note saying why there is no baseline.

    Parameters
    ----------
    inputs
        The run's aligned arrays.
    fused
        The fused store (its ``method``, its grid).
    source
        The source cube, or None when unknown.
    pairs
        Per evaluated date (in order), the fine dates of its pairs
        (:func:`pair_dates_by_date`).
    bands
        Evaluated bands.
    notes
        The report's notes: the reason is appended when the baseline is skipped.
    """
    reason = baseline_skip_reason(fused.attrs.get("method"), pairs, bands, fused, source)
    if reason is not None or source is None:
        notes.append(f"no-change baseline not computed: {reason}")
        return None
    prediction = nochange_prediction(source, pairs, bands, inputs.fused)
    return replace(inputs, fused=on_run_pixels(prediction, inputs.fused))
