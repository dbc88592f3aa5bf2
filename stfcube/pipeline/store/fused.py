"""The fused store: its schema, creation, extension, provenance and the one staleness rule.

A fused store (``stfcube_schema = "fused/1"``) holds ``fused(time, band, y, x)`` float32, the
layers its method declares (:class:`stfcube.pipeline.engine.methods.base.OutputLayer`, e.g. STARFM's
``quality``), ``tile_done(time, tile_y, tile_x)`` completion markers, and as attributes its
fingerprint (method, parameters, tiling: a rerun with others is refused), the pairs and the input
revision stamps each date was computed from, the dates the method skipped and why, and whether
every planned tile is done (``complete``). :func:`stale_dates` is the only place that decides
that a fused date is out of date; the engine and the incremental update both use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import numpy as np
import xarray as xr
import zarr

import stfcube.pipeline
from stfcube.pipeline.errors import OutputError
from stfcube.pipeline.geometry.tiling import Tile, tile_counts
from stfcube.pipeline.store.atomic import product_kind, remove_product, staged
from stfcube.pipeline.store.chunks import array_in, dense_array
from stfcube.pipeline.store.cube import COMMON_UNITS, cube_grid
from stfcube.pipeline.store.layout import fused_time_block
from stfcube.pipeline.store.lock import shard_lock
from stfcube.pipeline.store.metadata import (
    TIME_ENCODING,
    consolidate,
    geozarr_attrs,
    open_group,
    stated_units,
    value_attrs,
    with_time_attrs,
    write_grid_mappings,
)

#: Value of the ``stfcube_schema`` attribute.
FUSED_SCHEMA = "fused/1"


@dataclass(frozen=True)
class OutputLayer:
    """A layer a method writes beside ``fused``: ``(time, [band,] y, x)`` on the fine grid."""

    name: str
    dtype: str
    fill: float | int
    long_name: str
    units: str = "1"
    per_band: bool = True

    def attrs(self) -> dict[str, Any]:
        """CF attributes of the layer."""
        return {"long_name": self.long_name, "units": self.units}


class PairGroup(Protocol):
    """What the store records of a pair group
    (:class:`stfcube.pipeline.engine.pairing.PairGroup`)."""

    @property
    def pair_dates(self) -> tuple[np.datetime64, ...]: ...
    @property
    def coarse_dates(self) -> tuple[np.datetime64, ...]: ...
    @property
    def predict_dates(self) -> tuple[np.datetime64, ...]: ...


def day(value: Any) -> str:
    """``YYYY-MM-DD`` of a date."""
    return str(np.datetime64(value, "D"))


def pairs_used(groups: Iterable[PairGroup]) -> dict[str, list[str]]:
    """Per prediction day, its pairs: ``YYYY-MM-DD`` of each fine image, with ``~`` and the coarse
    date when the pair's coarse image is of another day (a tolerance or a composite)."""
    return {
        day(d): [
            day(p) if day(p) == day(c) else f"{day(p)}~{day(c)}"
            for p, c in zip(g.pair_dates, g.coarse_dates, strict=True)
        ]
        for g in groups
        for d in g.predict_dates
    }


def input_revisions(cube: xr.Dataset, groups: Iterable[PairGroup]) -> dict[str, list[int]]:
    """Per prediction day (``YYYY-MM-DD``): the revision stamps of the images it reads.

    The fine and coarse stamps of each pair in order, then the day's coarse stamp; 0 where the
    cube has no stamps (see :mod:`stfcube.pipeline.store.cube`). A prediction is out of date when
    these differ from the ones recorded when it was computed.

    Parameters
    ----------
    cube
        The cube (as stored).
    groups
        The pair groups of the plan.

    Returns
    -------
    dict
        ``YYYY-MM-DD`` -> stamps, for every prediction date of ``groups``.
    """

    def stamps(name: str) -> dict[np.datetime64, int]:
        if name not in cube.variables:
            return {}
        return dict(zip(cube["time"].values, np.asarray(cube[name].values).tolist(), strict=True))

    fine, coarse = stamps("fine_revision"), stamps("coarse_revision")
    return {
        day(d): [
            v
            for p, c in zip(g.pair_dates, g.coarse_dates, strict=True)
            for v in (fine.get(p, 0), coarse.get(c, 0))
        ]
        + [coarse.get(d, 0)]
        for g in groups
        for d in g.predict_dates
    }


def stale_dates(
    wanted_pairs: Mapping[str, list[str]],
    revisions: Mapping[str, list[int]],
    recorded_pairs: Mapping[str, list[str]],
    recorded_revisions: Mapping[str, list[int]],
) -> list[str]:
    """The rule: a fused date is out of date when its pairs changed (e.g. a nearer fine scene)
    or one of the images it read was rewritten since (its revision stamps differ).

    Dates not yet recorded are new, not stale. Returns the stale dates, sorted.
    """
    return sorted(
        d
        for d, pairs in wanted_pairs.items()
        if d in recorded_pairs
        and (
            recorded_pairs[d] != pairs
            or (d in recorded_revisions and recorded_revisions[d] != revisions.get(d))
        )
    )


def json_attr(attrs: Mapping[str, Any], key: str) -> Any:
    """A JSON-encoded attribute of a fused store, parsed (``{}`` when absent)."""
    return json.loads(str(attrs.get(key) or "{}"))


def done_markers(group: zarr.Group) -> np.ndarray:
    """The store's ``tile_done(time, tile_y, tile_x)`` markers."""
    return np.asarray(array_in(group, "tile_done")[...])


def stored_state(path: Path) -> tuple[dict[str, Any], list[str], np.ndarray]:
    """A fused store's attributes (JSON ones parsed), its dates and which are fully done."""
    group = open_group(path)
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    for key in ("pairs_used", "input_revisions", "skipped_dates"):
        attrs[key] = json_attr(attrs, key)
    times = xr.open_zarr(path, consolidated=False)["time"].values
    done = np.asarray(done_markers(group).reshape(len(times), -1).all(axis=1))
    return attrs, [day(t) for t in times], done


def layer_template(
    cube: xr.Dataset, dates: Sequence[np.datetime64], tile: int, layers: Sequence[OutputLayer]
) -> xr.Dataset:
    """Metadata-only (dask) dataset of the output for ``dates``: ``fused``, the method's layers
    and ``tile_done``, with the cube's CF metadata (units, band coordinates, grid mapping)."""
    n_t, n_b = len(dates), cube.sizes["band"]
    n_y, n_x = cube.sizes["y"], cube.sizes["x"]
    n_ty, n_tx = tile_counts((n_y, n_x), tile)
    chunks = (1, 1, min(tile, n_y), min(tile, n_x))
    coords: dict[str, Any] = {
        "time": np.asarray(dates, dtype="datetime64[ns]"),
        "band": cube["band"].values.astype(object),
        "y": cube["y"],
        "x": cube["x"],
    }
    for name in ("common_name", "center_wavelength"):
        if name in cube.coords:  # loaded: a lazy coordinate is not written by compute=False
            values = cube[name].values
            values = values.astype(object) if values.dtype.kind in "OTU" else values
            coords[name] = ("band", values, dict(cube[name].attrs))
    stated = stated_units(cube["fine"].attrs) or COMMON_UNITS
    variables = {
        "fused": xr.DataArray(
            da.full((n_t, n_b, n_y, n_x), np.nan, dtype=np.float32, chunks=chunks),
            dims=("time", "band", "y", "x"),
            attrs=value_attrs(stated, "fused fine-resolution prediction"),
        ),
        "tile_done": xr.DataArray(
            da.zeros((n_t, n_ty, n_tx), dtype=np.uint8, chunks=(1, 1, 1)),
            dims=("time", "tile_y", "tile_x"),
            attrs={"long_name": "1 where the tile's prediction for the date is completely written"},
        ),
    }
    for layer in layers:
        dims = ("time", "band", "y", "x") if layer.per_band else ("time", "y", "x")
        shape = (n_t, n_b, n_y, n_x) if layer.per_band else (n_t, n_y, n_x)
        variables[layer.name] = xr.DataArray(
            da.full(shape, layer.fill, dtype=layer.dtype, chunks=chunks[-len(shape) :]),
            dims=dims,
            attrs=layer.attrs(),
        )
    out = with_time_attrs(xr.Dataset(variables, coords=coords))
    grid = cube_grid(cube)
    return write_grid_mappings(out, grid.crs, grid.transform)


def _encoding(
    template: xr.Dataset, tile: int, layers: Sequence[OutputLayer]
) -> dict[str, dict[str, Any]]:
    """Fill values, the shared time encoding and the layout
    (:mod:`stfcube.pipeline.store.layout`)."""
    shape = (template.sizes["y"], template.sizes["x"])
    block = fused_time_block(shape, tile)
    fills = {"fused": np.nan, "tile_done": 0, **{layer.name: layer.fill for layer in layers}}
    encoding: dict[str, dict[str, Any]] = {"time": dict(TIME_ENCODING)}
    for name, var in template.data_vars.items():
        entry: dict[str, Any] = {"fill_value": fills[str(name)]}
        if name == "tile_done":
            entry["chunks"] = (block, *var.shape[1:]) if block > 1 else (1, 1, 1)
        elif block > 1:
            inner = tuple(c[0] for c in var.chunks or ())
            entry["chunks"] = inner
            entry["shards"] = (block, *var.shape[1:-2], *inner[-2:])
        encoding[str(name)] = entry
    return encoding


def prepare_output(
    out_path: Path,
    cube: xr.Dataset,
    groups: Sequence[PairGroup],
    skipped: Mapping[np.datetime64, str],
    fingerprint: Mapping[str, Any],
    layers: Sequence[OutputLayer],
    *,
    tile: int,
    overwrite: bool,
    cube_path: Path,
) -> dict[np.datetime64, int]:
    """Create or extend the output store; return each prediction date's time index in it.

    Dates already in the store keep their index; new dates are appended. A stale date
    (:func:`stale_dates`) has its completion markers cleared so that its tiles are recomputed.
    ``overwrite`` replaces an existing fused store only
    (:func:`stfcube.pipeline.store.atomic.remove_product`): never another folder, never the input
    cube ``cube_path``.

    Raises
    ------
    OutputError
        When the path holds something else, a damaged store, or a store written with other
        parameters (without ``overwrite``).
    """
    from stfcube.pipeline.store.verify import check_fused_store

    wanted = pairs_used(groups)
    dates = sorted(d for g in groups for d in g.predict_dates)
    if out_path.exists() and not out_path.is_dir():
        raise OutputError(f"{out_path}: the output path is a file, not a Zarr store directory")
    if out_path.is_dir() and not any(out_path.iterdir()):
        out_path.rmdir()  # an empty folder made for the output: nothing to lose
    if out_path.exists() and overwrite:
        remove_product(out_path, ("fused",), inputs=[cube_path])
    if out_path.exists() and product_kind(out_path) != "fused":
        raise OutputError(
            f"{out_path}: exists and is not a stfcube fused store; choose another output path"
        )
    if not out_path.exists():
        _create(out_path, cube, dates, fingerprint, layers, tile)
    group = open_group(out_path, mode="r+")
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    if attrs.get("stfcube_schema") != FUSED_SCHEMA:
        raise OutputError(f"{out_path}: exists and is not a stfcube fused store; use another path")
    check_fused_store(out_path, group)
    if json_attr(attrs, "fingerprint") != dict(fingerprint):
        raise OutputError(
            f"{out_path}: exists with other parameters ({attrs.get('fingerprint')}); "
            "pass --overwrite to replace it or choose another output path"
        )
    stored = xr.open_zarr(out_path, consolidated=False)["time"].values
    new_dates = [d for d in dates if d not in set(stored)]
    if new_dates:
        layer_template(cube, new_dates, tile, layers).to_zarr(
            out_path,
            mode="a",
            append_dim="time",
            compute=False,
            consolidated=False,
            safe_chunks=False,  # metadata only: no chunk is written here
        )
        stored = np.concatenate([stored, np.asarray(new_dates, dtype=stored.dtype)])
    index = {t: i for i, t in enumerate(stored)}
    previous = json_attr(attrs, "pairs_used")
    revisions = input_revisions(cube, groups)
    previous_revisions = json_attr(attrs, "input_revisions")
    done = array_in(group, "tile_done")
    for stale in stale_dates(wanted, revisions, previous, previous_revisions):
        done[index[np.datetime64(stale, "ns")]] = 0
    was_skipped = json_attr(attrs, "skipped_dates")
    now_skipped = {day(d): reason for d, reason in skipped.items()}
    group.attrs.update(
        {
            "pairs_used": json.dumps({**previous, **wanted}, sort_keys=True),
            "input_revisions": json.dumps({**previous_revisions, **revisions}, sort_keys=True),
            "skipped_dates": json.dumps(
                {d: r for d, r in {**was_skipped, **now_skipped}.items() if d not in wanted},
                sort_keys=True,
            ),
            "complete": False,
        }
    )
    consolidate(out_path)
    return {d: index[d] for d in dates}


def _create(
    out_path: Path,
    cube: xr.Dataset,
    dates: Sequence[np.datetime64],
    fingerprint: Mapping[str, Any],
    layers: Sequence[OutputLayer],
    tile: int,
) -> None:
    """Write the metadata-only store in a temporary sibling and rename it into place."""
    template = layer_template(cube, dates, tile, layers)
    template.attrs = {
        "stfcube_schema": FUSED_SCHEMA,
        "method": fingerprint["method"],
        "parameters": json.dumps(fingerprint["parameters"], sort_keys=True),
        "fingerprint": json.dumps(dict(fingerprint), sort_keys=True),
        "layers": json.dumps([layer.name for layer in layers]),
        "pairs_used": "{}",
        "input_revisions": "{}",
        "skipped_dates": "{}",
        "stfcube_version": stfcube.pipeline.__version__,
        "source_cube": fingerprint["source_cube"],
        "complete": False,
    }
    for key in ("fine_sensor", "coarse_sensor"):
        if key in cube.attrs:
            template.attrs[key] = cube.attrs[key]
    grid = cube_grid(cube)
    template.attrs.update(geozarr_attrs(grid.crs, grid.transform, grid.shape))
    with staged(out_path) as staging:
        template.to_zarr(
            staging,
            mode="w",
            compute=False,
            consolidated=False,
            safe_chunks=False,  # metadata only: no chunk is written here
            encoding=_encoding(template, tile, layers),
        )
        consolidate(staging)


def mark_complete_if_done(out_path: Path) -> bool:
    """Set ``complete`` when every tile of every date is marked done; return the flag."""
    group = open_group(out_path, mode="r+")
    complete = bool(done_markers(group).all())
    group.attrs["complete"] = complete
    consolidate(out_path)
    return complete


def write_tile(
    out_path: str | Path, tile: Tile, out_index: Sequence[int], values: Mapping[str, np.ndarray]
) -> None:
    """Write one tile of each layer for the dates ``out_index``, then mark it done.

    ``values[name][k]`` is the tile's ``([band,] rows, cols)`` block for date ``out_index[k]``.
    Every write into an object that other tasks also write (a shard of a large store, a
    ``tile_done`` chunk of several dates: :mod:`stfcube.pipeline.store.layout`) holds that object's
    :func:`~stfcube.pipeline.store.lock.shard_lock`; the markers are set only after all the data.
    """
    group = open_group(out_path, mode="r+")
    rows, cols = slice(tile.row0, tile.row1), slice(tile.col0, tile.col1)
    for name, blocks in values.items():
        array = dense_array(group, name)
        for block, ks in _time_blocks(array, out_index):
            with _shared_object(out_path, array, (block, tile.ty, tile.tx)):
                for run in _runs(out_index, ks):
                    times = slice(out_index[run[0]], out_index[run[-1]] + 1)
                    array[times, ..., rows, cols] = np.stack([blocks[k] for k in run])
    done = array_in(group, "tile_done")
    for block, ks in _time_blocks(done, out_index):
        with _shared_object(out_path, done, (block,)):
            for run in _runs(out_index, ks):
                done[out_index[run[0]] : out_index[run[-1]] + 1, tile.ty, tile.tx] = 1


def _runs(out_index: Sequence[int], ks: Sequence[int]) -> list[list[int]]:
    """``ks`` cut into runs whose dates ``out_index[k]`` are consecutive (one write each)."""
    runs: list[list[int]] = []
    for k in ks:
        if runs and out_index[k] == out_index[runs[-1][-1]] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs


def _time_blocks(array: zarr.Array, out_index: Sequence[int]) -> list[tuple[int, list[int]]]:
    """The positions in ``out_index`` grouped by the array's objects along time."""
    extent = (array.shards or array.chunks)[0]
    blocks: dict[int, list[int]] = {}
    for k, t in enumerate(out_index):
        blocks.setdefault(t // extent, []).append(k)
    return sorted(blocks.items())


def _shared_object(
    out_path: str | Path, array: zarr.Array, key: tuple[int, ...]
) -> AbstractContextManager[None]:
    """The lock of an object spanning several dates, or nothing for one task's own chunk."""
    if (array.shards or array.chunks)[0] == 1:
        return nullcontext()
    name = array.path.rpartition("/")[2]
    return shard_lock(out_path, ".".join([name, *map(str, key)]))
