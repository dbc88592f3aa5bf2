"""Loading prepared catalog items, decoded and masked, onto one target grid.

:func:`load_sensor` goes through ``odc.stac.load`` onto an odc-geo ``GeoBox``, lazily (dask
chunks), from items normalised by :mod:`stfcube.pipeline.ingest.catalog.prepare`. Items of one date
are fused by odc-stac in the target grid (first valid pixel wins), which stitches scenes from
several UTM zones into one seamless image. MODIS items, whose CRS is only ``proj:wkt2``
(``proj:epsg: null``), are reprojected from the sinusoidal grid. Resampling per sensor is stated
in :mod:`stfcube.pipeline.ingest.catalog.collections`. The coarse sensor is loaded twice: onto the
fine grid and onto its native-size grid (:mod:`stfcube.pipeline.ingest.catalog.grids`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import odc.stac
import xarray as xr
from odc.geo.geobox import GeoBox

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.ingest.catalog.collections import DERIVED_BANDS, QA_RESAMPLING, Decoding
from stfcube.pipeline.ingest.catalog.prepare import QA_KEY, PreparedItem
from stfcube.pipeline.ingest.catalog.qa import decoder
from stfcube.pipeline.store.cube import COMMON_UNIT_FACTOR


@dataclass(frozen=True)
class SensorData:
    """One sensor's images on one grid, decoded to common units.

    Attributes
    ----------
    values
        (time, band, y, x) float32 DataArray, reflectance x 10000 (or index x 10000); NaN where
        not valid. Dask-backed.
    valid
        (time, y, x) bool DataArray: inside a scene, no band at nodata or out of range, QA clear.
    items
        Per date, the ids of the items fused into it.
    decoding
        Per band, the distinct (scale, offset, nodata) of the sources, in common units.
    """

    values: xr.DataArray
    valid: xr.DataArray
    items: dict[np.datetime64, tuple[str, ...]]
    decoding: dict[str, tuple[tuple[float, float, float | None], ...]]


def load_sensor(
    prepared: Sequence[PreparedItem],
    bands: Sequence[str],
    geobox: GeoBox,
    *,
    resampling: str,
    chunk: int = 512,
    invalid: Iterable[str] | None = None,
) -> SensorData:
    """Load one sensor's items onto a grid, one image per date.

    Parameters
    ----------
    prepared
        Items of one sensor (:func:`prepare_items`), possibly of several collections with the
        same QA layout.
    bands
        Cube band names, in cube order.
    geobox
        Target grid.
    resampling
        Resampling of the band assets where reprojected (QA always ``nearest``).
    chunk
        Spatial dask chunk size.
    invalid
        QA flag names counted invalid; None for the layout's defaults.

    Returns
    -------
    SensorData
        Lazy (dask) arrays; nothing is read yet.
    """
    qa_name = _one_qa_layout(prepared)
    qa = decoder(qa_name)
    flags = qa.default_invalid if invalid is None else frozenset(invalid)
    days = sorted({p.day for p in prepared})
    day_of = {id(p.item): p.day for p in prepared}
    keys = list(dict.fromkeys(k for p in prepared for k in p.item.assets))
    read_bands = [k for k in keys if not k.startswith(QA_KEY)]
    loaded = odc.stac.load(
        [p.item for p in prepared],
        bands=keys,
        geobox=geobox,
        groupby=lambda item, parsed, idx: day_of[id(item)],
        resampling={k: QA_RESAMPLING if k.startswith(QA_KEY) else resampling for k in keys},
        chunks={"y": chunk, "x": chunk},
        fail_on_error=True,
    )
    loaded = loaded.assign_coords(time=np.asarray(days, dtype="datetime64[ns]"))
    decodings = _decodings_per_day(prepared, days, read_bands)
    physical = {b: _decode(loaded[b], decodings[b]) for b in read_bands}
    valid = _qa_valid(loaded, qa.decode, flags)
    for band in read_bands:
        valid = valid & np.isfinite(physical[band])
    layers = [_band_values(physical, band) for band in bands]
    values = xr.concat(layers, dim="band").assign_coords(band=list(bands))
    values = values.transpose("time", "band", "y", "x")
    values = values.where(valid).astype(np.float32)
    items = {d: tuple(p.item.id for p in prepared if p.day == d) for d in days}
    return SensorData(values, valid, items, _summary(decodings))


def _one_qa_layout(prepared: Sequence[PreparedItem]) -> str:
    layouts = {p.spec.qa_decoder for p in prepared}
    if len(layouts) != 1:
        raise ConfigError(
            f"one sensor mixes QA layouts {sorted(layouts)}; load them as separate sensors"
        )
    return layouts.pop()


def _decodings_per_day(
    prepared: Sequence[PreparedItem], days: Sequence[np.datetime64], bands: Sequence[str]
) -> dict[str, list[Decoding]]:
    """Per band, the decoding of each date; the items fused into one date must agree."""
    result: dict[str, list[Decoding]] = {b: [] for b in bands}
    for day in days:
        group = [p for p in prepared if p.day == day]
        for band in bands:
            found = {p.decoding[band] for p in group if band in p.decoding}
            if len(found) != 1:
                ids = ", ".join(p.item.id for p in group)
                raise InputError(
                    ids, f"items of {day} decode band {band} differently: {sorted(map(str, found))}"
                )
            result[band].append(found.pop())
    return result


def _decode(raw: xr.DataArray, decodings: Sequence[Decoding]) -> xr.DataArray:
    """Raw counts (time, y, x) to common units, NaN at nodata or out of the valid range."""

    def _per_day(values: list[float | None], missing: float) -> xr.DataArray:
        return xr.DataArray([missing if v is None else v for v in values], dims="time")

    scale = _per_day([d.scale for d in decodings], 1.0)
    offset = _per_day([d.offset for d in decodings], 0.0)
    fill = _per_day([d.nodata for d in decodings], np.nan)
    low = _per_day([d.valid_range and d.valid_range[0] for d in decodings], -np.inf)
    high = _per_day([d.valid_range and d.valid_range[1] for d in decodings], np.inf)
    ok = (raw != fill) & (raw >= low) & (raw <= high)
    physical = raw.astype(np.float32) * scale.astype(np.float32) + offset.astype(np.float32)
    return (physical * np.float32(COMMON_UNIT_FACTOR)).where(ok)


def _qa_valid(loaded: xr.Dataset, decode: Any, flags: frozenset[str]) -> xr.DataArray:
    qa_vars = [k for k in loaded.data_vars if str(k).startswith(QA_KEY)]
    valid = decode(loaded[qa_vars[0]], flags)
    for name in qa_vars[1:]:
        valid = valid & decode(loaded[name], flags)
    return valid


def _band_values(physical: dict[str, xr.DataArray], band: str) -> xr.DataArray:
    if band in physical:
        return physical[band]
    red, nir = (physical[b] for b in DERIVED_BANDS[band])
    return (nir - red) / (nir + red) * np.float32(COMMON_UNIT_FACTOR)


def _summary(
    decodings: dict[str, list[Decoding]],
) -> dict[str, tuple[tuple[float, float, float | None], ...]]:
    """Per band read, the distinct (scale, offset, nodata) to common units."""
    return {
        band: tuple(
            sorted(
                {
                    (d.scale * COMMON_UNIT_FACTOR, d.offset * COMMON_UNIT_FACTOR, d.nodata)
                    for d in days
                },
                key=str,
            )
        )
        for band, days in decodings.items()
    }
