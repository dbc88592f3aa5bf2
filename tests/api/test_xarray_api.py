"""The Python API on xarray Datasets (issue 19): fuse and evaluate take Datasets as they take
paths, with the same results; open_fused returns the product lazily with its grid."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from affine import Affine

import stfcube
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.errors import InputError

PAIRS = ["2024-05-01", "2024-05-05"]
DAYS = [f"2024-05-0{d}" for d in range(1, 6)]
PARAMS = {"max_search_distance": 90.0}  # W = 6: quick


@pytest.fixture(scope="module")
def cubes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 40 x 48, 2-band cube (fine on two dates, coarse daily, native grid 8x) and its truth."""
    truth = synthetic_scene((40, 48), 2, DAYS, seed=1)
    root = tmp_path_factory.mktemp("xarray_api")
    coarse = block_mean(truth, 8)
    cube = write_cube(root / "cube.zarr", {d: truth[d] for d in PAIRS}, coarse, chunk=48)
    return cube, write_cube(root / "truth.zarr", truth, coarse, chunk=48)


@pytest.fixture(scope="module")
def fused_from_path(cubes: tuple[Path, Path]) -> Path:
    out = cubes[0].parent / "fused_path.zarr"
    stfcube.fuse(cubes[0], out, tile=48, params=PARAMS, local_threads=2)
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    left, right = stfcube.open_fused(a), stfcube.open_fused(b)
    assert set(left.data_vars) == set(right.data_vars)
    for name in left.data_vars:
        np.testing.assert_array_equal(left[name].values, right[name].values)


def test_fuse_from_a_dataset_equals_fuse_from_the_path(
    cubes: tuple[Path, Path], fused_from_path: Path
) -> None:
    folder = cubes[0].parent / "from_dataset"
    folder.mkdir()
    out = folder / "fused.zarr"
    lazy = xr.open_zarr(cubes[0], consolidated=False)
    report = stfcube.fuse(lazy, out, tile=48, params=PARAMS, local_threads=2)
    assert report.dates == ["2024-05-02", "2024-05-03", "2024-05-04"]
    _assert_same_store(fused_from_path, out)
    assert stfcube.open_fused(out).attrs["source_cube"].startswith("xarray.Dataset ")
    assert [p.name for p in folder.iterdir()] == ["fused.zarr"]  # the staged copy is gone
    again = stfcube.fuse(lazy, out, tile=48, params=PARAMS, local_threads=2)
    assert (again.tiles_computed, again.tiles_skipped) == (0, report.tiles_total)
    loaded = xr.open_zarr(cubes[0], consolidated=False, decode_coords="all").load()
    stfcube.fuse(loaded, folder / "loaded.zarr", tile=48, params=PARAMS, local_threads=2)
    _assert_same_store(fused_from_path, folder / "loaded.zarr")


def test_open_fused_is_lazy_on_the_cube_grid(fused_from_path: Path) -> None:
    fused = stfcube.open_fused(fused_from_path)
    assert isinstance(fused["fused"].data, da.Array)
    assert fused.rio.crs.to_epsg() == 32633
    assert fused["fused"].rio.transform() == Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4500000.0)
    assert list(fused.indexes["time"].strftime("%Y-%m-%d")) == DAYS[1:4]


@pytest.mark.parametrize(
    ("drop", "named"),
    [("fine_valid", "variable fine_valid is missing"), ("coarse_observed", "coarse_observed")],
)
def test_fuse_refuses_a_dataset_off_the_schema(
    cubes: tuple[Path, Path], tmp_path: Path, drop: str, named: str
) -> None:
    cube = xr.open_zarr(cubes[0], consolidated=False).drop_vars(drop)
    with pytest.raises(InputError, match=f"xarray.Dataset: not a valid stfcube cube: .*{named}"):
        stfcube.fuse(cube, tmp_path / "fused.zarr", params=PARAMS)
    assert not any(tmp_path.iterdir())


def test_evaluate_from_datasets_equals_evaluate_from_paths(
    cubes: tuple[Path, Path], fused_from_path: Path, tmp_path: Path
) -> None:
    truth = cubes[1]
    by_path = stfcube.evaluate(fused_from_path, truth, tmp_path / "paths", max_pictures=0)
    truth_ds = xr.open_zarr(truth, consolidated=False)
    fused_ds = stfcube.open_fused(fused_from_path)
    by_data = stfcube.evaluate(fused_ds, truth_ds, tmp_path / "datasets", max_pictures=0)
    for key in ("per_band", "per_date", "settings"):
        saved = json.loads((tmp_path / "datasets" / "metrics.json").read_text())[key]
        assert saved == json.loads((tmp_path / "paths" / "metrics.json").read_text())[key]
    assert by_data.truth_id == stfcube.evaluate.__globals__["truth_identity"](truth_ds)
    metrics = by_data.metrics()
    assert dict(metrics["rmse"].sizes) == {"time": 3, "band": 2}
    assert metrics["time"].dtype == np.dtype("datetime64[ns]")
    first = by_path.band_rows[0]
    assert metrics["rmse"].sel(time=first["date"], band=first["band"]) == first["rmse"]
    assert dict(metrics["sam"].sizes) == {"time": 3}
    table = metrics.to_dataframe()
    assert len(table) == 6 and table["count"].dtype == np.int64


def test_evaluate_refuses_a_dataset_without_fused(cubes: tuple[Path, Path], tmp_path: Path) -> None:
    cube = xr.open_zarr(cubes[0], consolidated=False)
    with pytest.raises(InputError, match=r"xarray.Dataset: not a fused store"):
        stfcube.evaluate(cube, cubes[1], tmp_path / "report")


def _module_imports(module: str) -> set[str]:
    """Names imported at module level by ``module`` (``TYPE_CHECKING`` blocks left out)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    names: set[str] = set()
    for node in ast.parse(Path(spec.origin).read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_stfcube_xr_imports_no_deep_learning_framework() -> None:
    seen, todo = set(), ["stfcube", "stfcube.xr"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [m for m in _module_imports(module) if m.startswith("stfcube")]
    imported = set().union(*map(_module_imports, seen))
    assert "torch" not in {m.split(".")[0] for m in imported}
    assert not any("learned" in m for m in seen)  # the learned methods' modules import torch
    assert _module_imports("stfcube") <= {"importlib.metadata", "typing", "stfcube.pipeline._lazy"}
