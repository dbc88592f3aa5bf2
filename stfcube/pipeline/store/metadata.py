"""Analysis-ready metadata of the cube and fused stores: CF 1.10, GeoZarr, consolidation.

Other tools open stfcube's stores without reading its docs, so every store carries:

- **CF 1.10 variable attributes** (:func:`value_attrs`): ``units`` as a UDUNITS string,
  ``standard_name`` where the CF table has one, ``long_name``; the quantity text the sources were
  declared in (``reflectance x 10000``) stays in ``stfcube_units`` (:func:`stated_units`), which
  stfcube's own checks compare. Units rule: values are stored *already scaled*, as float32 in
  common units, so no ``scale_factor`` is written (a CF reader would multiply by it on open and
  stfcube's own readers would see physical reflectance instead of the common units); instead the
  unit itself states the scale: ``reflectance x 10000`` -> ``units: "1e-4"`` (UDUNITS: a
  dimensionless number times 1e-4), so ``value x 1e-4`` is reflectance and a unit-aware reader
  (cf-units, pint) converts to ``"1"`` by itself.
- **grid mappings** (:func:`write_grid_mappings`): ``spatial_ref`` (CRS WKT + GeoTransform, as
  rioxarray writes it) for the fine grid, and ``spatial_ref_coarse`` with the native grid's own
  GeoTransform for ``coarse_native``; each data variable names its mapping in ``grid_mapping`` and
  its auxiliary coordinates in ``coordinates``; ``x``/``y`` (and ``x_coarse``/``y_coarse``) carry
  ``standard_name`` ``projection_x/y_coordinate``, ``units`` ``m`` and ``axis``, so rioxarray
  finds the spatial dimensions and transform of each variable.
- **one CF time encoding** in every store (:data:`TIME_ENCODING`, :data:`TIME_ATTRS`).
- **band coordinates** (:func:`band_coords`): ``common_name(band)`` (STAC/eo common names) and
  ``center_wavelength(band)`` in micrometres.
- **GeoZarr-style group attributes** (:func:`geozarr_attrs`): ``proj:code``/``proj:wkt2``,
  ``spatial:dimensions``, ``spatial:transform``, ``spatial:shape``, ``spatial:bbox``.
- **consolidated metadata** (:func:`consolidate`, the one owner): every writer that changes
  metadata (creating a store, appending dates, updating attributes) calls it last, so a plain
  ``xr.open_zarr(path)`` reads the current metadata silently. stfcube's own readers keep opening
  the stores with ``consolidated=False`` (xarray) or ``use_consolidated=False`` (zarr,
  :func:`open_group`): they read the authoritative per-node metadata.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
import zarr

#: The spatial axes.
AXES: tuple[Literal["x", "y"], ...] = ("x", "y")
#: CF conventions the stores follow.
CONVENTIONS = "CF-1.10"
#: Attribute keeping the quantity text the sources were declared in (``reflectance x 10000``).
STATED_UNITS = "stfcube_units"
#: Grid-mapping variable of the fine grid (rioxarray's name) and of the native coarse grid.
GRID_MAPPING = "spatial_ref"
NATIVE_GRID_MAPPING = "spatial_ref_coarse"
#: Variables on the native coarse grid.
NATIVE_VARIABLES = ("coarse_native", "coarse_native_valid")
#: Daily time axis, stored exactly as integer days, identical in every store.
TIME_ENCODING = {
    "units": "days since 1970-01-01",
    "calendar": "proleptic_gregorian",
    "dtype": "int64",
}
#: CF attributes of the time coordinate.
TIME_ATTRS = {"standard_name": "time", "long_name": "date of the image", "axis": "T"}
#: Quantities without a physical dimension (their UDUNITS unit is a number).
DIMENSIONLESS = ("reflectance", "ndvi", "evi", "ndwi", "index", "1")
#: CF standard names of the quantities that have one.
STANDARD_NAMES = {"reflectance": "surface_bidirectional_reflectance"}
#: Band names -> (common name, nominal centre wavelength in micrometres). The centres are those
#: of Landsat 8/9 OLI (research/scale_facts.md, section 2), the usual fine sensor.
BANDS: dict[str, tuple[str, float]] = {
    "coastal": ("coastal", 0.44),
    "blue": ("blue", 0.48),
    "green": ("green", 0.56),
    "red": ("red", 0.65),
    "nir": ("nir", 0.87),
    "nir08": ("nir08", 0.87),
    "swir1": ("swir16", 1.61),
    "swir16": ("swir16", 1.61),
    "swir2": ("swir22", 2.20),
    "swir22": ("swir22", 2.20),
}

_SCALED = re.compile(
    r"^\s*(?P<quantity>[A-Za-z0-9_ ]+?)\s*(?:[x×*]\s*(?P<factor>[0-9.eE+-]+))?\s*$"
)


def cf_units(stated: str) -> str:
    """The UDUNITS string of a quantity text: ``reflectance x 10000`` -> ``1e-4``.

    Dimensionless quantities (:data:`DIMENSIONLESS`) become ``1`` times the inverse factor; any
    other text is taken as a unit already (``K``, ``degC``) and returned unchanged.
    """
    match = _SCALED.match(stated)
    if match is None or match["quantity"].strip().lower() not in DIMENSIONLESS:
        return stated
    factor = float(match["factor"] or 1.0)
    if factor == 1.0:
        return "1"
    exponent = np.log10(factor)
    return f"1e-{round(exponent)}" if np.isclose(exponent, round(exponent)) else f"{1 / factor:g}"


def stated_units(attrs: Mapping[str, Any]) -> str | None:
    """The quantity text of a variable (``stfcube_units``; ``units`` in stores of earlier
    versions), which stfcube compares between scenes, cubes and fused stores."""
    value = attrs.get(STATED_UNITS, attrs.get("units"))
    return None if value is None else str(value)


def value_attrs(stated: str, long_name: str) -> dict[str, Any]:
    """CF attributes of a value variable in the quantity ``stated``.

    Parameters
    ----------
    stated
        The quantity text (``reflectance x 10000``).
    long_name
        What the variable holds, in words.

    Returns
    -------
    dict
        ``units`` (UDUNITS), ``stfcube_units``, ``long_name`` and ``standard_name`` when the
        quantity has one.
    """
    attrs: dict[str, Any] = {
        "units": cf_units(stated),
        STATED_UNITS: stated,
        "long_name": long_name,
    }
    match = _SCALED.match(stated)
    quantity = match["quantity"].strip().lower() if match else ""
    if quantity in STANDARD_NAMES:
        attrs["standard_name"] = STANDARD_NAMES[quantity]
    return attrs


def band_coords(names: Sequence[str]) -> dict[str, tuple[str, np.ndarray, dict[str, str]]]:
    """``common_name`` and ``center_wavelength`` coordinates along ``band``.

    Bands whose names are not in :data:`BANDS` get an empty common name and a NaN wavelength.
    """
    known = [BANDS.get(str(n).lower(), ("", np.nan)) for n in names]
    return {
        "common_name": (
            "band",
            np.asarray([c for c, _ in known], dtype=object),
            {"long_name": "common name of the band (STAC eo)"},
        ),
        "center_wavelength": (
            "band",
            np.asarray([w for _, w in known], dtype=np.float64),
            {"long_name": "nominal centre wavelength of the band", "units": "um"},
        ),
    }


def _axis_attrs(crs: Any, axis: Literal["x", "y"], grid: str) -> dict[str, str]:
    projected = crs is None or not crs.is_geographic
    if projected:
        standard = f"projection_{axis}_coordinate"
        units = "m" if crs is not None else "1"
    else:
        standard, units = (
            ("longitude", "degrees_east") if axis == "x" else ("latitude", "degrees_north")
        )
    return {
        "standard_name": standard,
        "long_name": f"{axis} coordinate of the {grid} pixel centres",
        "units": units,
        "axis": axis.upper(),
    }


def geotransform(transform: Any) -> str:
    """GDAL's GeoTransform string of an affine transform (as rioxarray writes it)."""
    t = transform
    return " ".join(
        f"{v!r}" for v in (float(t.c), float(t.a), float(t.b), float(t.f), float(t.d), float(t.e))
    )


def write_grid_mappings(
    ds: xr.Dataset, crs: Any, transform: Any, native_transform: Any | None = None
) -> xr.Dataset:
    """Attach the grid mappings and CF coordinate attributes (see the module docstring).

    ``spatial_ref`` describes the fine grid; ``spatial_ref_coarse`` (when ``native_transform`` is
    given) the native coarse grid of :data:`NATIVE_VARIABLES`. Each variable on a grid gets
    ``grid_mapping`` and ``coordinates`` attributes (none in its encoding, where rioxarray puts
    them but where an explicit ``to_zarr`` encoding would drop them).
    """
    if crs is not None:
        ds = ds.rio.write_crs(crs)
    ds = ds.rio.write_transform(transform)
    crs = ds.rio.crs
    for axis in AXES:
        ds[axis].attrs.update(_axis_attrs(crs, axis, "fine"))
    if native_transform is not None:
        native = ds[GRID_MAPPING].copy().assign_attrs(GeoTransform=geotransform(native_transform))
        ds = ds.assign_coords({NATIVE_GRID_MAPPING: native})
        for axis in AXES:
            ds[f"{axis}_coarse"].attrs.update(_axis_attrs(crs, axis, "native coarse"))
    for name, var in ds.data_vars.items():
        var.encoding.pop("grid_mapping", None)
        var.encoding.pop("coordinates", None)
        if not ({"y", "x"} <= set(var.dims) or {"y_coarse", "x_coarse"} <= set(var.dims)):
            continue  # not on a grid (``tile_done``)
        mapping = NATIVE_GRID_MAPPING if name in NATIVE_VARIABLES else GRID_MAPPING
        aux = [str(c) for c, v in ds.coords.items() if v.dims and set(v.dims) <= set(var.dims)]
        aux = [c for c in aux if c not in var.dims]
        var.attrs["grid_mapping"] = mapping
        var.attrs["coordinates"] = " ".join([mapping, *sorted(aux)])
    # the dataset's own grid for rioxarray (``ds.rio.crs``/``transform``): the fine grid, where
    # it would otherwise refuse a dataset whose variables name two grid mappings
    ds.attrs["grid_mapping"] = GRID_MAPPING
    return ds


def geozarr_attrs(crs: Any, transform: Any, shape: tuple[int, int]) -> dict[str, Any]:
    """GeoZarr-style ``proj:``/``spatial:`` attributes of a store's (fine) grid.

    Parameters
    ----------
    crs
        The grid's CRS (``None`` for a pixel grid: no ``proj:`` attributes).
    transform
        Affine transform of the pixel corners.
    shape
        (rows, columns).

    Returns
    -------
    dict
        Attributes for the root group.
    """
    t = transform
    rows, cols = shape
    xs = (t.c, t.c + t.a * cols)
    ys = (t.f, t.f + t.e * rows)
    attrs: dict[str, Any] = {
        "Conventions": CONVENTIONS,
        "spatial:dimensions": ["y", "x"],
        "spatial:transform": [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
        "spatial:shape": [int(rows), int(cols)],
        "spatial:bbox": [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))],
        "spatial:registration": "pixel",
    }
    if crs is not None:
        epsg = crs.to_epsg()
        if epsg is not None:
            attrs["proj:code"] = f"EPSG:{epsg}"
        attrs["proj:wkt2"] = crs.to_wkt()
    return attrs


def with_time_attrs(ds: xr.Dataset) -> xr.Dataset:
    """The dataset with the CF attributes of its ``time`` coordinate."""
    if "time" in ds.coords:
        ds["time"].attrs.update(TIME_ATTRS)
    return ds


def open_group(path: str | Path, mode: Literal["r", "r+"] = "r") -> zarr.Group:
    """A store's root group from its authoritative metadata (never the consolidated copy)."""
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def consolidate(path: str | Path) -> None:
    """Consolidate a store's metadata (into its root ``zarr.json``): the one owner.

    Called last by every writer that changes metadata; zarr's warning that consolidated
    metadata is not yet in the Zarr v3 specification is expected and silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(str(path))
