"""The fused store as an export reads it: dates, bands, grid, value scaling and provenance.

:func:`open_product` checks everything an export needs before anything is written: the store
is a fused store, the requested dates and bands are in it, and every requested date is complete
(all its tiles done), so an export never publishes a half-computed image.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from stfcube.pipeline.errors import ConfigError, InputError
from stfcube.pipeline.simulate.stac import BandSpec
from stfcube.pipeline.store.atomic import product_kind
from stfcube.pipeline.store.fused import day, json_attr, stored_state
from stfcube.pipeline.store.metadata import stated_units

#: EO common band names (STAC ``eo:bands``); a store band of one of these names gets it.
EO_COMMON_NAMES = frozenset(
    "coastal blue green red yellow pan rededge rededge071 rededge075 rededge078 nir nir08 "
    "nir09 cirrus swir16 swir22 lwir lwir11 lwir12".split()
)
#: ``units`` of the form "QUANTITY x FACTOR" (stfcube's common units: "reflectance x 10000").
_SCALED_UNITS = re.compile(r"^\s*(?P<quantity>.+?)\s*[x×*]\s*(?P<factor>[0-9.]+(?:[eE][+-]?\d+)?)$")
#: Dimensionless quantities: their physical unit is "1".
_DIMENSIONLESS = {"reflectance", "1", "index"}


@dataclass(frozen=True)
class FusedProduct:
    """What an export reads of a fused store.

    Attributes
    ----------
    path : pathlib.Path
        The fused store.
    fused : xarray.DataArray
        ``fused(time, band, y, x)``, lazily indexed (a window read reads only its chunks).
    dates : tuple of str
        The dates to export, ``YYYY-MM-DD``, sorted.
    bands : tuple of BandSpec
        The bands to export, in store order: name, data type, nodata, scale and offset (physical
        value = stored value x scale + offset), unit, EO common name, resolution.
    crs : rasterio.crs.CRS or None
        The CRS (None for a pixel-grid store).
    transform : affine.Affine
        Pixel-corner transform of the fine grid.
    attrs : dict
        The store's attributes, JSON ones parsed.
    layers : dict
        The method's layers stored beside ``fused`` (e.g. ``quality``): name -> dimensions.
    """

    path: Path
    fused: xr.DataArray
    dates: tuple[str, ...]
    bands: tuple[BandSpec, ...]
    crs: CRS | None
    transform: Affine
    attrs: dict[str, Any]
    layers: dict[str, tuple[str, ...]]

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the fine grid."""
        return self.fused.sizes["y"], self.fused.sizes["x"]

    @property
    def name(self) -> str:
        """The store's folder name without its suffix (``fused`` for ``fused.zarr``)."""
        return self.path.name.removesuffix(".zarr") or "fused"

    def image(self, date: str) -> xr.DataArray:
        """``(band, y, x)`` of the exported bands on ``date``, lazily indexed."""
        names = [band.name for band in self.bands]
        return self.fused.sel(time=np.datetime64(date, "ns"), band=names)

    def provenance(self, date: str) -> dict[str, Any]:
        """How ``date`` was computed: method, parameters, pairs and the input scenes read.

        Returns
        -------
        dict
            ``stfcube:``-prefixed STAC properties: ``method``, ``parameters``, ``version``,
            ``source_cube``, ``pairs`` (``{"fine": date, "coarse": date}`` each) and ``inputs``
            (``{"sensor", "date"}`` plus the ``source`` file or STAC ``items`` recorded at
            ingest, when the source cube records them).
        """
        pairs = []
        for entry in self.attrs["pairs_used"].get(date, []):
            fine, _, coarse = str(entry).partition("~")
            pairs.append({"fine": fine, "coarse": coarse or fine})
        sources = _source_records(self.attrs.get("source_cube"))
        reads = [("fine", p["fine"]) for p in pairs] + [("coarse", p["coarse"]) for p in pairs]
        inputs = [
            {"sensor": sensor, "date": when, **sources.get((sensor, when), {})}
            for sensor, when in [*reads, ("coarse", date)]
        ]
        return {
            "stfcube:method": self.attrs.get("method"),
            "stfcube:parameters": json_attr(self.attrs, "parameters"),
            "stfcube:version": self.attrs.get("stfcube_version"),
            "stfcube:source_cube": self.attrs.get("source_cube"),
            "stfcube:pairs": pairs,
            "stfcube:inputs": inputs,
        }


def open_product(
    path: str | Path, dates: Sequence[str] | None = None, bands: Sequence[str] | None = None
) -> FusedProduct:
    """Open a fused store for export and select its dates and bands.

    Parameters
    ----------
    path
        The fused store (``stfcube fuse``).
    dates
        Dates ``YYYY-MM-DD`` to export (default: every date of the store).
    bands
        Band names to export (default: every band), written in store order.

    Returns
    -------
    FusedProduct

    Raises
    ------
    InputError
        When ``path`` is not a readable fused store, or a selected date is not complete.
    ConfigError
        When a requested date or band is not in the store, or a date is not ``YYYY-MM-DD``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "fused store not found")
    if product_kind(path) != "fused":
        raise InputError(path, "not a stfcube fused store (no stfcube_schema 'fused/...')")
    try:
        attrs, stored_dates, done = stored_state(path)
        ds = xr.open_zarr(path, consolidated=False, chunks=None, decode_coords="all")
    except Exception as exc:  # zarr raises many types for a damaged store
        raise InputError(path, f"cannot read the fused store ({exc})") from exc
    chosen = _chosen_dates(path, stored_dates, dates)
    unfinished = [d for d in chosen if not done[stored_dates.index(d)]]
    if unfinished:
        raise InputError(
            path,
            f"date(s) {', '.join(unfinished)} not completely fused (tiles missing); rerun "
            "`stfcube fuse` to finish them or leave them out with --dates",
        )
    fused = ds["fused"]
    return FusedProduct(
        path=path,
        fused=fused,
        dates=tuple(chosen),
        bands=tuple(_band_specs(path, fused, bands)),
        crs=fused.rio.crs,
        transform=fused.rio.transform(),
        attrs=attrs,
        layers={
            str(name): tuple(map(str, ds[name].dims))
            for name in json.loads(str(attrs.get("layers") or "[]"))
            if name in ds
        },
    )


def value_scaling(units: str | None) -> tuple[float, float, str | None]:
    """Scale, offset and physical unit of values stored in ``units``.

    ``"reflectance x 10000"`` (stfcube's common units) gives ``(1e-4, 0.0, "1")``: physical
    reflectance = stored value x 1e-4. Other units are taken as physical: ``(1.0, 0.0, units)``.
    """
    match = _SCALED_UNITS.match(units or "")
    if match is None or float(match["factor"]) == 0:
        return 1.0, 0.0, units or None
    quantity = match["quantity"].strip()
    return 1.0 / float(match["factor"]), 0.0, "1" if quantity in _DIMENSIONLESS else quantity


def _chosen_dates(path: Path, stored: Sequence[str], wanted: Sequence[str] | None) -> list[str]:
    if wanted is None:
        return sorted(stored)
    normalised = []
    for text in wanted:
        try:
            normalised.append(day(np.datetime64(text.strip(), "D")))
        except ValueError:
            raise ConfigError(f"{text!r} is not a date; use YYYY-MM-DD") from None
    missing = [d for d in normalised if d not in stored]
    if missing:
        span = f"{min(stored)} .. {max(stored)}, {len(stored)} dates" if stored else "no dates"
        raise ConfigError(f"{path}: date(s) {', '.join(missing)} not in the store ({span})")
    return sorted(set(normalised))


def _band_specs(path: Path, fused: xr.DataArray, wanted: Sequence[str] | None) -> list[BandSpec]:
    names = [str(b) for b in fused["band"].values]
    if wanted is not None:
        missing = [b for b in wanted if b not in names]
        if missing:
            raise ConfigError(
                f"{path}: band(s) {', '.join(missing)} not in the store ({', '.join(names)})"
            )
    scale, offset, unit = value_scaling(stated_units(fused.attrs))
    resolution = abs(float(fused.rio.transform().a))
    coords = fused["band"].coords
    specs = []
    for i, name in enumerate(names):
        if wanted is not None and name not in wanted:
            continue
        common = _band_coord(coords, "common_name", i) or (
            name if name in EO_COMMON_NAMES else None
        )
        wavelength = _band_coord(coords, "center_wavelength", i)
        specs.append(
            BandSpec(
                name=name,
                data_type=str(fused.dtype),
                nodata=float("nan"),
                scale=scale,
                offset=offset,
                unit=unit,
                common_name=None if common is None else str(common),
                center_wavelength=None if wavelength is None else float(wavelength),
                spatial_resolution=resolution,
            )
        )
    return specs


def _band_coord(coords: Any, name: str, index: int) -> Any:
    """The band's value of a per-band coordinate (``common_name``...), None when absent."""
    if name not in coords:
        return None
    value = coords[name].values[index]
    return None if value is None or value == "" or value != value else value


def _source_records(cube_path: str | None) -> dict[tuple[str, str], dict[str, Any]]:
    """``(sensor, date)`` -> ``{"source": file}`` / ``{"items": [ids]}`` recorded in the source
    cube at ingest; empty when the cube is gone or records none."""
    if not cube_path:
        return {}
    try:
        attrs = json.loads((Path(cube_path) / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return {}
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for sensor in ("fine", "coarse"):
        for key, field in (("sources", "source"), ("items", "items")):
            recorded = attrs.get(f"{sensor}_{key}")
            for when, value in (recorded if isinstance(recorded, dict) else {}).items():
                records.setdefault((sensor, str(when)), {})[field] = value
    return records
