"""A cube given to :func:`~stfcube.pipeline.engine.run.fuse` as an ``xarray.Dataset``.

The Dataset is checked like a cube on disk (:func:`~stfcube.pipeline.store.cube.validate_cube`),
then staged, chunk by chunk, into a temporary Zarr cube beside the output, which the engine
fuses as it fuses any cube; the copy is removed when the run ends.

Why a staged copy rather than tiles read from the Dataset's dask arrays: a tile task is a small
picklable record that reads its halo window straight from a Zarr store through the per-process
chunk cache (:mod:`stfcube.pipeline.engine.chunk_cache`), on local threads or on distributed
workers. Reading from the Dataset instead would ship its dask graph with every task and
recompute each chunk for every tile whose halo touches it, and it would be a second reader to
keep equal to the first. Staging writes every chunk once with bounded memory (a few chunks per
thread) and keeps one engine: ``fuse(dataset, out)`` is ``fuse(path, out)`` on the copy, bit for
bit. The price is one copy of the Dataset's data on disk for the length of the run, in the
output's folder (where distributed workers, which write the output, can read it too); a cube
already on disk is best passed as its path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask.base
import xarray as xr

from stfcube.pipeline.defaults import DEFAULT_CHUNK
from stfcube.pipeline.store.cube import validate_cube, write_new_cube

#: How a Dataset is named in error messages and in the fused store's ``source_cube``.
DATASET_LABEL = "xarray.Dataset"
#: Encoding entries that describe the source store's layout, not the data: the staged copy
#: chooses its own (they would clash with the chunks it writes).
_LAYOUT_ENCODING = (
    "chunks",
    "preferred_chunks",
    "shards",
    "compressors",
    "filters",
    "serializer",
)


def dataset_source(ds: xr.Dataset) -> str:
    """What a fused store records as the source of a Dataset cube: ``xarray.Dataset <token>``.

    The token is dask's deterministic token of the Dataset (its graph for lazy data, its values
    for loaded data), so a rerun with the same Dataset resumes the run, and a rerun with other
    data is refused unless ``overwrite`` (the fingerprint differs).
    """
    return f"{DATASET_LABEL} {dask.base.tokenize(ds)}"


def _staging_layout(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` rechunked as a stored cube: one date, one band and ``edge`` pixels a side per chunk.

    ``edge`` is the source store's chunk edge when ``ds`` was opened from one, else
    :data:`~stfcube.pipeline.defaults.DEFAULT_CHUNK`.
    """
    stored = ds["fine"].encoding.get("chunks") or (DEFAULT_CHUNK,)
    edge = int(stored[-1])
    spatial = {"y": edge, "x": edge, "y_coarse": edge, "x_coarse": edge, "time": 1, "band": 1}
    out = ds.copy()
    for name, array in ds.data_vars.items():
        out[name] = array.chunk({dim: spatial[str(dim)] for dim in array.dims if dim in spatial})
    for var in out.variables.values():
        var.encoding = {k: v for k, v in var.encoding.items() if k not in _LAYOUT_ENCODING}
    return out


@contextmanager
def staged_dataset_cube(ds: xr.Dataset, out_path: Path) -> Iterator[Path]:
    """Validate a Dataset cube and write it to a temporary cube beside ``out_path``.

    Parameters
    ----------
    ds
        A Dataset with the cube schema (as ``xr.open_zarr(cube)`` returns it, or built alike).
    out_path
        The run's output store; the copy is written in its folder (created if missing).

    Yields
    ------
    Path
        The staged cube, removed on exit.

    Raises
    ------
    InputError
        Naming every schema violation (missing variable or coordinate, wrong dims or dtype).
    """
    validate_cube(ds, DATASET_LABEL)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_path.name}.cube-", dir=out_path.parent) as tmp:
        cube_path = Path(tmp) / "cube.zarr"
        write_new_cube(_staging_layout(ds), cube_path)
        yield cube_path
