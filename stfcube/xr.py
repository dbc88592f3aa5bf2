"""The fusion kernels on ``xarray.DataArray`` s: grids checked, coordinates, attributes, CRS kept.

Each wrapper checks that its inputs share their grid, calls the kernel's public function of
:mod:`stfcube.kernels` on the arrays, and returns a DataArray named after the method with the
inputs' coordinates (prediction dates from ``coarse_pred``; band, y, x and the rioxarray
``spatial_ref`` from ``fine``, so ``.rio.crs`` and ``.rio.transform()`` are the fine grid's) and
``fine``'s attributes (``long_name`` set to the method's prediction).

Layout of the inputs: dims ``([lead,] [band,] y, x)``, in any order. ``lead`` is any one other
dim: the pairs of ``fine``/``coarse`` (with datetime coordinates where the method needs the
dates: the baselines) or the prediction dates of ``coarse_pred``; without it, one image. The
spatial dims are ``y``/``x``, or ``y_coarse``/``x_coarse`` for coarse images on their native
grid (a cube's ``coarse_native``). Methods that read the native coarse grid (:func:`fsdaf` in
seamless mode, :func:`fitfc`, :func:`coarse_residual`) take the fine/coarse ratio and the grids'
offset from the coordinates: the grids must nest. Masks (``*_valid``) are optional bool
DataArrays ``([lead,] y, x)``; NaN marks invalid values anyway.

Dask: :func:`nochange` is per pixel and runs lazily through ``xr.apply_ufunc(...,
dask="parallelized")``. The other kernels read a window around each pixel (and some whole-image
statistics), so their wrappers load their inputs into memory: for cubes larger than memory use
the tiled engine, :func:`stfcube.fuse`, which runs the same kernels tile by tile with halos.
This module imports no deep-learning framework.

Examples
--------
>>> import numpy as np, xarray as xr
>>> import stfcube.xr as sxr
>>> y, x = 4500000.0 - 30 * np.arange(40), 500000.0 + 30 * np.arange(40)
>>> def image(value, day):
...     data = np.full((1, 40, 40), value, dtype=np.float32)
...     time = np.array([day], dtype="datetime64[ns]")
...     return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": time, "y": y, "x": x})
>>> fine = image(1000.0, "2024-05-01").rio.write_crs("EPSG:32633")
>>> coarse, coarse_pred = image(1100.0, "2024-05-01"), image(1300.0, "2024-05-09")
>>> pred = sxr.starfm(fine, coarse, coarse_pred, use_spatial=False)
>>> pred.name, pred.dims, str(pred.rio.crs), float(pred[0, 20, 20])
('starfm', ('time', 'y', 'x'), 'EPSG:32633', 1200.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from stfcube.kernels import baselines as kb
from stfcube.kernels.estarfm import EstarfmParams
from stfcube.kernels.estarfm import estarfm as estarfm_kernel
from stfcube.kernels.fitfc import FitfcParams
from stfcube.kernels.fitfc import fitfc as fitfc_kernel
from stfcube.kernels.fsdaf import FsdafParams, fsdaf_program
from stfcube.kernels.fsdaf import fsdaf as fsdaf_kernel
from stfcube.kernels.starfm import starfm as starfm_kernel
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.geometry.grid import same_centres

__all__ = ["coarse_residual", "estarfm", "fitfc", "fsdaf", "nochange", "starfm"]

#: The spatial dims of an image on the fine grid and on the native coarse grid.
FINE_DIMS = ("y", "x")
NATIVE_DIMS = ("y_coarse", "x_coarse")
BAND = "band"


def _spatial_dims(array: xr.DataArray, what: str) -> tuple[str, str]:
    for dims in (FINE_DIMS, NATIVE_DIMS):
        if set(dims) <= set(array.dims):
            return dims
    raise InputError(
        None, f"{what} has dims {array.dims}: it needs y and x (or y_coarse, x_coarse)"
    )


def _lead(array: xr.DataArray, what: str) -> str | None:
    """The one dim of ``array`` that is neither band nor spatial (pairs or dates), if any."""
    others = [d for d in array.dims if d not in (BAND, *_spatial_dims(array, what))]
    if len(others) > 1:
        raise InputError(None, f"{what} has dims {array.dims}: at most one besides band, y, x")
    return str(others[0]) if others else None


def _stack(array: xr.DataArray, what: str, *, band: bool = True) -> np.ndarray:
    """``array``'s values as ``(n, band, y, x)`` (``(n, y, x)`` without ``band``), loaded."""
    y, x = _spatial_dims(array, what)
    lead = _lead(array, what)
    order = [lead or "_n", *([BAND] if band else []), y, x]
    missing = [d for d in order if d not in array.dims]
    if not band and BAND in array.dims:
        raise InputError(None, f"{what} is a mask: it has no band dim, got {array.dims}")
    return np.asarray(array.expand_dims(missing).transpose(*order).values)


def _check_same_grid(arrays: dict[str, xr.DataArray | None]) -> None:
    """Refuse arrays (``None`` skipped) whose spatial coordinates or CRS differ."""
    given = {k: a for k, a in arrays.items() if a is not None}
    (first, ref), *rest = given.items()
    ref_dims = _spatial_dims(ref, first)
    for what, array in rest:
        for ref_dim, dim in zip(ref_dims, _spatial_dims(array, what), strict=True):
            a, b = np.asarray(ref[ref_dim].values), np.asarray(array[dim].values)
            if not same_centres(a, b):
                raise InputError(
                    None,
                    f"{what} and {first} are not on the same grid: {dim} has {b.size} pixels "
                    f"from {b[:1]} in {what}, {a.size} from {a[:1]} in {first}",
                )
        if ref.rio.crs is not None and array.rio.crs is not None and ref.rio.crs != array.rio.crs:
            raise InputError(None, f"{what} ({array.rio.crs}) and {first} ({ref.rio.crs}) differ")


def _check_pairs(fine: xr.DataArray, coarse: xr.DataArray, count: int | None = None) -> None:
    """Refuse ``fine`` and ``coarse`` with different pair counts (or not ``count`` pairs)."""
    n_fine, n_coarse = (
        a.sizes[lead] if (lead := _lead(a, name)) else 1
        for a, name in ((fine, "fine"), (coarse, "coarse"))
    )
    if n_fine != n_coarse or (count is not None and n_fine != count):
        wanted = f"{count} " if count is not None else "as many "
        raise InputError(None, f"fine has {n_fine} pairs, coarse {n_coarse}: {wanted}needed")


def nested_grid(fine: xr.DataArray, coarse: xr.DataArray) -> tuple[int, tuple[int, int]]:
    """Fine pixels per coarse pixel and the coarse grid's ``(row, col)`` corner offset relative
    to the fine grid's corner, in fine pixels, from the coordinates (pixel centres).

    Raises
    ------
    InputError
        When a grid has fewer than two pixels on an axis or the grids do not nest (a ratio or
        an offset that is not an integer).
    """
    ratio: list[float] = []
    offset: list[float] = []
    for fine_dim, coarse_dim in zip(
        _spatial_dims(fine, "fine"), _spatial_dims(coarse, "coarse"), strict=True
    ):
        f, c = np.asarray(fine[fine_dim].values), np.asarray(coarse[coarse_dim].values)
        if f.size < 2 or c.size < 2:
            raise InputError(None, f"fine and coarse need two pixels or more along {fine_dim}")
        step, coarse_step = float(f[1] - f[0]), float(c[1] - c[0])
        ratio.append(coarse_step / step)
        offset.append(((c[0] - coarse_step / 2) - (f[0] - step / 2)) / step)
    values = np.array([*ratio, *offset])
    if ratio[0] != ratio[1] or ratio[0] < 1 or not np.allclose(values, np.round(values)):
        raise InputError(
            None,
            f"the coarse grid does not nest in the fine grid (ratio {ratio}, offset {offset} "
            "fine pixels): coarse pixels must be whole multiples of fine pixels, aligned",
        )
    return round(ratio[0]), (round(offset[0]), round(offset[1]))


def _wrap(values: Any, fine: xr.DataArray, dates: xr.DataArray | None, name: str) -> xr.DataArray:
    """A prediction ``(dates, band, y, x)`` as a DataArray laid out like ``fine``'s image (band
    only if ``fine`` has one) over the lead dim of ``dates`` (none if it has none)."""
    y, x = _spatial_dims(fine, "fine")
    lead = None if dates is None else _lead(dates, "coarse_pred")
    data = np.asarray(values)
    if BAND not in fine.dims:
        data = data[:, 0]
    if lead is None:
        data = data[0]
    dims = [*([lead] if lead else []), *([BAND] if BAND in fine.dims else []), y, x]
    coords = {k: c.variable for k, c in fine.coords.items() if set(c.dims) <= {BAND, y, x}}
    if lead is not None and dates is not None:
        coords.update({k: c.variable for k, c in dates.coords.items() if c.dims == (lead,)})
    attrs = {**fine.attrs, "long_name": f"{name} prediction"}
    out = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name=name)
    if "grid_mapping" in fine.encoding:
        out.encoding["grid_mapping"] = fine.encoding["grid_mapping"]
    return out


def _mask(array: xr.DataArray | None, what: str) -> np.ndarray | None:
    return None if array is None else _stack(array, what, band=False).astype(bool)


class _Masks(TypedDict):
    """The validity masks a pair-series kernel takes, as boolean arrays (None: all valid)."""

    fine_valid: np.ndarray | None
    coarse_valid: np.ndarray | None
    coarse_pred_valid: np.ndarray | None


def _pair_series(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    pairs: int | None,
    fine_valid: xr.DataArray | None,
    coarse_valid: xr.DataArray | None,
    coarse_pred_valid: xr.DataArray | None,
    **others: xr.DataArray | None,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], _Masks]:
    """Check that every input lies on ``fine``'s grid and that ``fine``/``coarse`` hold the same
    number of pairs (``pairs`` when given); return the stacked images ``(fine, coarse,
    coarse_pred)`` and the masks as boolean arrays (None: all valid)."""
    masks = {
        "fine_valid": fine_valid,
        "coarse_valid": coarse_valid,
        "coarse_pred_valid": coarse_pred_valid,
    }
    grid = {"fine": fine, "coarse": coarse, "coarse_pred": coarse_pred}
    _check_same_grid({**grid, **masks, **others})
    _check_pairs(fine, coarse, pairs)
    images = (_stack(fine, "fine"), _stack(coarse, "coarse"), _stack(coarse_pred, "coarse_pred"))
    return images, _Masks(
        fine_valid=_mask(fine_valid, "fine_valid"),
        coarse_valid=_mask(coarse_valid, "coarse_valid"),
        coarse_pred_valid=_mask(coarse_pred_valid, "coarse_pred_valid"),
    )


def starfm(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    *,
    fine_valid: xr.DataArray | None = None,
    coarse_valid: xr.DataArray | None = None,
    coarse_pred_valid: xr.DataArray | None = None,
    class_map: xr.DataArray | None = None,
    engine: str = "auto",
    **params: Any,
) -> xr.DataArray:
    """STARFM (:func:`stfcube.kernels.starfm.starfm`) band by band, on one grid.

    Parameters
    ----------
    fine, coarse
        The pairs' fine images and coarse images on the fine grid, ``([pair,] [band,] y, x)``.
    coarse_pred
        Coarse images at the prediction dates, ``([time,] [band,] y, x)``.
    fine_valid, coarse_valid, coarse_pred_valid, class_map
        Optional masks and class map ``([lead,] y, x)``, as the kernel takes them.
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.
    **params
        The kernel's parameters: ``resolution`` (default 30, in the grid's units: set it for
        other pixel sizes), ``max_search_distance``, ``num_slice_pure_test``,
        ``fine_uncertainty``, ``coarse_uncertainty``, ``data_range``, ``fill_value``, ``mode``,
        ``use_spatial``.

    Returns
    -------
    xarray.DataArray
        ``starfm``: the prediction, laid out like ``coarse_pred``, NaN where none.
    """
    (f, c, p), valid = _pair_series(
        fine, coarse, coarse_pred, None, fine_valid, coarse_valid, coarse_pred_valid,
        class_map=class_map,
    )  # fmt: skip
    classes = None if class_map is None else np.asarray(class_map.values)
    bands = [
        starfm_kernel(
            f[:, b], c[:, b], p[:, b], class_map=classes, engine=engine, **valid, **params
        ).prediction
        for b in range(f.shape[1])
    ]
    return _wrap(np.stack(bands, axis=1), fine, coarse_pred, "starfm")


def estarfm(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    params: EstarfmParams | None = None,
    *,
    fine_valid: xr.DataArray | None = None,
    coarse_valid: xr.DataArray | None = None,
    coarse_pred_valid: xr.DataArray | None = None,
    engine: str = "auto",
) -> xr.DataArray:
    """ESTARFM (:func:`stfcube.kernels.estarfm.estarfm`) from two pairs, on one grid.

    Parameters
    ----------
    fine, coarse
        The two pairs' images ``(pair, [band,] y, x)``, coarse on the fine grid.
    coarse_pred
        ``([time,] [band,] y, x)`` coarse images at the prediction dates.
    params
        :class:`~stfcube.kernels.estarfm.EstarfmParams` (default: the program's, seamless).
    fine_valid, coarse_valid, coarse_pred_valid
        Optional masks ``([lead,] y, x)``.
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    xarray.DataArray
        ``estarfm``: the prediction (float64), laid out like ``coarse_pred``, NaN where none.
    """
    (f, c, p), valid = _pair_series(
        fine, coarse, coarse_pred, 2, fine_valid, coarse_valid, coarse_pred_valid
    )
    result = estarfm_kernel(f, c, p, params, engine=engine, **valid)
    return _wrap(result.prediction, fine, coarse_pred, "estarfm")


def _one_pair(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    predict: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    name: str,
) -> xr.DataArray:
    """A one-pair, one-date kernel ``predict(F1, C1, C2) -> (band, y, x)`` run for every date
    of ``coarse_pred`` (``coarse`` and ``coarse_pred`` on one grid)."""
    _check_same_grid({"coarse": coarse, "coarse_pred": coarse_pred})
    _check_pairs(fine, coarse, 1)
    f1, c1 = _stack(fine, "fine")[0], _stack(coarse, "coarse")[0]
    dates = _stack(coarse_pred, "coarse_pred")
    return _wrap(np.stack([predict(f1, c1, c2) for c2 in dates]), fine, coarse_pred, name)


def fsdaf(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    params: FsdafParams | None = None,
    *,
    classes: xr.DataArray | None = None,
    engine: str = "auto",
) -> xr.DataArray:
    """FSDAF from one pair: :func:`stfcube.kernels.fsdaf.fsdaf_program` (``params.mode`` =
    ``"reference"``, the default: coarse images on the fine grid) or
    :func:`stfcube.kernels.fsdaf.fsdaf` (``"seamless"``: coarse images on their native grid,
    ratio and offset from the coordinates).

    Parameters
    ----------
    fine
        F1 ``([band,] y, x)`` (or with a pair dim of length 1).
    coarse, coarse_pred
        C1 ``([band,] y, x)`` and C2 ``([time,] [band,] y, x)``, on the grid the mode reads.
    params
        :class:`~stfcube.kernels.fsdaf.FsdafParams` (default: the program's).
    classes
        Optional ``(y, x)`` class map on the fine grid (default: ISODATA).
    engine
        Final-smoothing engine.

    Returns
    -------
    xarray.DataArray
        ``fsdaf``: the prediction (float64), laid out like ``coarse_pred``.
    """
    params = params or FsdafParams()
    _check_same_grid({"fine": fine, "classes": classes})
    class_map = None if classes is None else np.asarray(classes.values)
    if params.mode == "reference":
        _check_same_grid({"fine": fine, "coarse": coarse})

        def predict(f1: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> Any:
            return fsdaf_program(f1, c1, c2, params, classes=class_map, engine=engine)

    else:
        ratio, offset = nested_grid(fine, coarse)

        def predict(f1: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> Any:
            return fsdaf_kernel(
                f1, c1, c2, ratio, params, classes=class_map, offset=offset, engine=engine
            )

    return _one_pair(fine, coarse, coarse_pred, predict, "fsdaf")


def fitfc(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    params: FitfcParams | None = None,
    *,
    engine: str = "auto",
) -> xr.DataArray:
    """Fit-FC (:func:`stfcube.kernels.fitfc.fitfc`) from one pair; the fine/coarse ratio and
    the grids' offset come from the coordinates (ratio 1 for coarse on the fine grid).

    Parameters
    ----------
    fine
        F1 ``(band, y, x)`` (or with a pair dim of length 1); ``params.red_band`` and
        ``nir_band`` index its bands.
    coarse, coarse_pred
        C1 ``(band, y, x)`` and C2 ``([time,] band, y, x)`` on their (native or fine) grid.
    params
        :class:`~stfcube.kernels.fitfc.FitfcParams` (default: the program's).
    engine
        ``"auto"``, ``"numba"``, ``"cuda"`` or ``"reference"``.

    Returns
    -------
    xarray.DataArray
        ``fitfc``: the prediction (float64), laid out like ``coarse_pred``.
    """
    ratio, offset = nested_grid(fine, coarse)

    def predict(f1: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> Any:
        return fitfc_kernel(f1, c1, c2, ratio, params, offset=offset, engine=engine)

    return _one_pair(fine, coarse, coarse_pred, predict, "fitfc")


def _pair_offsets(fine: xr.DataArray, dates: Any) -> np.ndarray:
    """``(dates, pairs)`` days from each date to each pair of ``fine`` (pair - date)."""
    lead = _lead(fine, "fine")
    if lead is None or not np.issubdtype(fine[lead].dtype, np.datetime64):
        raise InputError(None, "fine needs a pair dim with datetime coordinates (their dates)")
    pairs = fine[lead].values.astype("datetime64[D]")
    days = np.asarray(dates, dtype="datetime64[D]")
    return (pairs[None, :] - days[:, None]).astype(np.int64)


def _finite(array: xr.DataArray) -> xr.DataArray:
    """Valid where every band holds a value (not NaN)."""
    present = array.notnull()
    return present.all(BAND) if BAND in array.dims else present


def nochange(
    fine: xr.DataArray, dates: Sequence[Any], *, fine_valid: xr.DataArray | None = None
) -> xr.DataArray:
    """The nearest valid fine pixel in time (:func:`stfcube.kernels.baselines.nochange`), lazily
    for dask-backed inputs (the kernel is per pixel: one dask task per spatial chunk).

    Parameters
    ----------
    fine
        The pairs' fine images ``(pair, [band,] y, x)`` with datetime coordinates on ``pair``
        (any name, e.g. ``time``).
    dates
        The prediction dates.
    fine_valid
        Optional mask ``(pair, y, x)`` (default: a value in every band).

    Returns
    -------
    xarray.DataArray
        ``nochange``: ``(time, [band,] y, x)`` float32, NaN where no pair is valid.
    """
    _check_same_grid({"fine": fine, "fine_valid": fine_valid})
    offsets = _pair_offsets(fine, dates)
    lead = str(_lead(fine, "fine"))
    valid = (_finite(fine) if fine_valid is None else fine_valid.astype(bool)).rename({lead: "_p"})
    image = fine if BAND in fine.dims else fine.expand_dims(BAND)
    image = image.rename({lead: "_p"})

    def block(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # core dims last: (y, x, pair, band) and (y, x, pair) -> (y, x, time, band)
        moved = np.moveaxis(values, (-2, -1), (0, 1))
        prediction, _ = kb.nochange(moved, np.moveaxis(mask, -1, 0), offsets)
        return np.moveaxis(prediction, (0, 1), (-2, -1))

    out = xr.apply_ufunc(
        block,
        image,
        valid,
        input_core_dims=[["_p", BAND], ["_p"]],
        output_core_dims=[["time", BAND]],
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"time": len(offsets)}, "allow_rechunk": True},
    )
    times = xr.DataArray(np.asarray(dates, dtype="datetime64[ns]"), dims="time")
    out = out.assign_coords(time=times).transpose("time", BAND, *_spatial_dims(fine, "fine"))
    if BAND not in fine.dims:
        out = out.squeeze(BAND, drop=True)
    attrs = {**fine.attrs, "long_name": "nochange prediction"}
    return out.drop_vars("_p", errors="ignore").assign_attrs(attrs).rename("nochange")


def coarse_residual(
    fine: xr.DataArray,
    coarse: xr.DataArray,
    coarse_pred: xr.DataArray,
    *,
    fine_valid: xr.DataArray | None = None,
    coarse_valid: xr.DataArray | None = None,
    coarse_pred_valid: xr.DataArray | None = None,
    spread: str = "bilinear",
) -> xr.DataArray:
    """The nearest valid fine pixel plus the coarse change since its date
    (:func:`stfcube.kernels.baselines.coarse_residual`).

    Parameters
    ----------
    fine
        The pairs' fine images ``(pair, [band,] y, x)``, datetime coordinates on ``pair``.
    coarse, coarse_pred
        The pairs' coarse images and those of the prediction dates ``(time, [band,] y, x)``
        on their native grid (nested in the fine grid, covering it plus one coarse pixel for
        ``"bilinear"``); ``coarse_pred``'s coordinates give the dates.
    fine_valid, coarse_valid, coarse_pred_valid
        Optional masks (default: a value in every band).
    spread
        ``"bilinear"`` or ``"nearest"``.

    Returns
    -------
    xarray.DataArray
        ``coarse_residual``: ``(time, [band,] y, x)`` float32, NaN where no pair is usable.
    """
    _check_same_grid({"fine": fine, "fine_valid": fine_valid})
    _check_same_grid({"coarse": coarse, "coarse_valid": coarse_valid})
    _check_same_grid({"coarse": coarse, "coarse_pred": coarse_pred, "mask": coarse_pred_valid})
    _check_pairs(fine, coarse)
    ratio, offset = nested_grid(fine, coarse)
    lead = _lead(coarse_pred, "coarse_pred")
    if lead is None:
        raise InputError(None, "coarse_pred needs a dates dim with datetime coordinates")

    def valid(mask: xr.DataArray | None, image: xr.DataArray, what: str) -> np.ndarray:
        return _stack(_finite(image) if mask is None else mask, what, band=False).astype(bool)

    prediction, _ = kb.coarse_residual(
        _stack(fine, "fine"),
        valid(fine_valid, fine, "fine_valid"),
        _stack(coarse, "coarse"),
        valid(coarse_valid, coarse, "coarse_valid"),
        _stack(coarse_pred, "coarse_pred"),
        valid(coarse_pred_valid, coarse_pred, "coarse_pred_valid"),
        _pair_offsets(fine, coarse_pred[lead].values),
        ratio,
        offset,
        spread,
    )
    return _wrap(prediction, fine, coarse_pred, "coarse_residual")
