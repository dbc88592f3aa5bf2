"""``stfcube export``: COGs that hold the store's values, STAC that validates and loads, refusals.

The fused store is a small STARFM run (70 x 90 px, 2 bands, 2 dates); the COG layout (tiles,
overviews, IFDs before the data, windows stitched) is checked on a 1100 x 700 image written in
512-px windows. STAC is validated offline: pystac's core schemas plus the extension schemas in
``tests/data/stac-schemas``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from rasterio.crs import CRS

from helpers.checksums import file_checksums
from helpers.cli import one_line, run_stfcube
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import ConfigError, InputError, OutputError
from stfcube.pipeline.export import export_cog, export_stac
from stfcube.pipeline.export.cog import write_cog
from stfcube.pipeline.export.product import open_product, value_scaling
from stfcube.pipeline.export.stac import stac_grid
from stfcube.pipeline.simulate.stac import BandSpec
from stfcube.pipeline.store.atomic import EXPORT_MARKER

PAIRS = ["2024-05-01", "2024-05-09"]
DATES = ["2024-05-03", "2024-05-05"]
SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "stac-schemas"


@pytest.fixture(scope="module")
def fused_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 70 x 90 px, 2-band fused store (STARFM) of two dates."""
    root = tmp_path_factory.mktemp("export")
    truth = synthetic_scene((70, 90), 2, [*PAIRS, *DATES], seed=2)
    fine = {d: truth[d] for d in PAIRS}
    cube = write_cube(root / "cube.zarr", fine, block_mean(truth, 16), chunk=32)
    out = root / "fused.zarr"
    fuse(cube, out, tile=32, params={"max_search_distance": 300.0}, local_threads=1)
    return out


@pytest.fixture(scope="module")
def stac_export(fused_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """COGs and STAC of every date of ``fused_store``."""
    out = tmp_path_factory.mktemp("stac") / "export"
    export_stac(fused_store, out)
    return out


def stored(fused: Path, date: str) -> np.ndarray:
    """``fused(band, y, x)`` on ``date`` as the Zarr store holds it."""
    ds = xr.open_zarr(fused, consolidated=False)
    return ds["fused"].sel(time=np.datetime64(date, "ns")).values


def test_cogs_hold_the_store_values_on_its_grid(fused_store: Path, stac_export: Path) -> None:
    ds = xr.open_zarr(fused_store, consolidated=False, decode_coords="all")
    for date in DATES:
        with rasterio.open(stac_export / f"fused_{date}.tif") as cog:
            assert cog.crs == ds.rio.crs
            assert cog.transform == ds.rio.transform()
            assert np.isnan(cog.nodata)
            assert cog.descriptions == ("b1", "b2")
            assert cog.scales == (1e-4, 1e-4) and cog.offsets == (0.0, 0.0)
            values = cog.read()
        expected = stored(fused_store, date)
        assert np.isfinite(expected).mean() > 0.9
        np.testing.assert_array_equal(values, expected)
    written = json.loads((stac_export / EXPORT_MARKER).read_text())
    assert sorted(p.name for p in stac_export.iterdir()) == sorted([*written, EXPORT_MARKER])
    assert not [p for p in stac_export.parent.iterdir() if p.name.startswith(".")]


def test_cog_layout_tiles_overviews_and_ifds_before_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1000, 50, (2, 1100, 700)).astype(np.float32)
    values[:, :40, :] = np.nan
    image = xr.DataArray(values, dims=("band", "y", "x"))
    band = BandSpec("red", "float32", nodata=float("nan"), scale=1e-4)
    path = tmp_path / "red.tif"
    calls: list[None] = []
    write_cog(
        image,
        path,
        crs=CRS.from_epsg(32633),
        transform=Affine(30, 0, 5e5, 0, -30, 4.5e6),
        bands=[band, dataclasses.replace(band, name="nir")],
        compress="zstd",
        progress=lambda: calls.append(None),
        window=512,
    )
    assert len(calls) == 3 * 2 + 1  # 6 windows of 512 px, then the COG itself
    assert [p.name for p in tmp_path.iterdir()] == ["red.tif"]  # the work file is gone
    with rasterio.open(path) as cog:
        assert cog.block_shapes == [(512, 512)] * 2
        assert cog.overviews(1) == [2, 4]
        assert cog.compression.name.lower() == "zstd"
        assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        np.testing.assert_array_equal(cog.read(), values)
        overview = cog.read(1, out_shape=(275, 175))
        assert np.isnan(overview[:10]).all() and np.isfinite(overview[10:]).all()
    assert b"LAYOUT=IFDS_BEFORE_DATA" in path.read_bytes()[:1000]
    try:
        from rio_cogeo.cogeo import cog_validate
    except ImportError:  # not a pinned dependency yet: the checks above stand in for it
        return
    valid, errors, warnings = cog_validate(str(path))
    assert valid and not errors and not warnings, (errors, warnings)


def _validator() -> JsonSchemaSTACValidator:
    """pystac's validator with every schema in its cache: it never goes to the network."""
    validator = JsonSchemaSTACValidator()
    for file in SCHEMAS.glob("*.json"):
        schema = json.loads(file.read_text())
        validator.schema_cache[schema["$id"]] = schema
    return validator


def test_stac_validates_and_describes_the_product(fused_store: Path, stac_export: Path) -> None:
    validator = _validator()
    cached = set(validator.schema_cache)
    collection = pystac.Collection.from_file(str(stac_export / "collection.json"))
    assert collection.validate(validator=validator)
    items = list(collection.get_items())
    assert [item.id for item in items] == [f"fused_{d}" for d in DATES]
    for item in items:
        assert item.validate(validator=validator)
    assert set(validator.schema_cache) == cached  # nothing was fetched
    props = items[0].properties
    assert props["proj:code"] == "EPSG:32633"
    assert props["proj:shape"] == [70, 90]
    assert props["proj:transform"] == [30.0, 0.0, 500000.0, 0.0, -30.0, 4500000.0]
    assert props["proj:bbox"] == [500000.0, 4497900.0, 502700.0, 4500000.0]
    assert props["stfcube:method"] == "starfm"
    assert props["stfcube:parameters"]["max_search_distance"] == 300.0
    assert props["stfcube:pairs"] == [{"fine": d, "coarse": d} for d in PAIRS]
    assert {"sensor": "coarse", "date": DATES[0]} in props["stfcube:inputs"]
    asset = items[0].assets["data"]
    assert Path(asset.get_absolute_href() or "") == stac_export / f"fused_{DATES[0]}.tif"
    assert [b["name"] for b in asset.extra_fields["eo:bands"]] == ["b1", "b2"]
    raster = asset.extra_fields["raster:bands"][0]
    assert raster["nodata"] == "nan" and raster["data_type"] == "float32"
    assert raster["scale"] == 1e-4 and raster["offset"] == 0.0
    cube = collection.extra_fields
    assert cube["cube:dimensions"]["band"]["values"] == ["b1", "b2"]
    assert set(cube["cube:variables"]) == {"fused", "quality"}
    assert collection.assets["zarr"].href == str(fused_store.resolve())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proj:shape", ["70", "90"]),
        ("proj:transform", [30, 0]),
        ("raster:bands", [{"nodata": "NaN"}]),
    ],
)
def test_the_schemas_catch_broken_fields(stac_export: Path, field: str, value: object) -> None:
    item = pystac.Item.from_file(str(stac_export / f"fused_{DATES[0]}.json")).to_dict()
    where = item["assets"]["data"] if field.startswith("raster:") else item["properties"]
    where[field] = value
    with pytest.raises(pystac.errors.STACValidationError):
        pystac.Item.from_dict(item).validate(validator=_validator())


def test_odc_stac_loads_the_items_into_the_zarr_values(
    fused_store: Path, stac_export: Path
) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    items = list(pystac.Collection.from_file(str(stac_export / "collection.json")).get_items())
    loaded = odc_stac.load(items, chunks={}).load()
    assert loaded.sizes == {"time": 2, "y": 70, "x": 90}
    zarr_x = xr.open_zarr(fused_store, consolidated=False)["x"].values
    np.testing.assert_allclose(loaded["x"].values, zarr_x)
    for t, date in enumerate(DATES):
        expected = stored(fused_store, date)
        for b, name in enumerate(["b1", "b2"]):
            np.testing.assert_array_equal(loaded[name].values[t], expected[b])


def test_selected_dates_and_bands(fused_store: Path, tmp_path: Path) -> None:
    result = export_cog(fused_store, tmp_path / "one", dates=["2024-05-05"], bands=["b2"])
    assert list(result.cogs) == ["2024-05-05"] and result.bands == ["b2"]
    with rasterio.open(result.cogs["2024-05-05"]) as cog:
        assert cog.count == 1 and cog.descriptions == ("b2",)
        np.testing.assert_array_equal(cog.read(1), stored(fused_store, "2024-05-05")[1])


def test_overwrite_replaces_only_an_export(fused_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cogs"
    export_cog(fused_store, out, dates=[DATES[0]])
    with pytest.raises(OutputError, match="pass --overwrite"):
        export_cog(fused_store, out, dates=[DATES[1]])
    export_cog(fused_store, out, dates=[DATES[1]], overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [EXPORT_MARKER, f"fused_{DATES[1]}.tif"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"did not write \(notes.txt\)"):
        export_cog(fused_store, out, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"x")
    with pytest.raises(OutputError, match="not something stfcube wrote"):
        export_cog(fused_store, other, overwrite=True)
    assert (other / "photo.jpg").exists() and (out / "notes.txt").exists()


@pytest.mark.parametrize(
    ("call", "error", "problem"),
    [
        ({"dates": ["2024-06-01"]}, ConfigError, "date(s) 2024-06-01 not in the store"),
        ({"dates": ["5 May"]}, ConfigError, "is not a date"),
        ({"bands": ["b1", "nir"]}, ConfigError, "band(s) nir not in the store (b1, b2)"),
    ],
)
def test_bad_dates_and_bands_are_refused(
    fused_store: Path, tmp_path: Path, call: dict, error: type, problem: str
) -> None:
    with pytest.raises(error) as info:
        export_cog(fused_store, tmp_path / "out", **call)
    assert problem in str(info.value)
    assert not (tmp_path / "out").exists()


def test_inputs_that_are_not_exportable(fused_store: Path, tmp_path: Path) -> None:
    cube = fused_store.parent / "cube.zarr"
    with pytest.raises(InputError, match="not a stfcube fused store"):
        export_cog(cube, tmp_path / "out")
    with pytest.raises(OutputError, match="lies inside the input"):
        export_cog(fused_store, fused_store / "cogs")
    product = open_product(fused_store)
    with pytest.raises(OutputError, match="needs an EPSG CRS"):
        stac_grid(dataclasses.replace(product, crs=None))
    assert not (tmp_path / "out").exists() and not (fused_store / "cogs").exists()


def test_value_scaling_from_units() -> None:
    assert value_scaling("reflectance x 10000") == (1e-4, 0.0, "1")
    assert value_scaling("K x 100") == (0.01, 0.0, "K")
    assert value_scaling("K") == (1.0, 0.0, "K")
    assert value_scaling(None) == (1.0, 0.0, None)


def test_command_exports_and_refuses_with_one_line(fused_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = run_stfcube("export", fused_store, "--cog", out, "--stac", "--dates", DATES[1])
    assert done.returncode == 0, done.stderr
    assert "wrote 1 COG(s) of b1, b2" in one_line(done.stderr)
    assert (out / "collection.json").is_file() and (out / f"fused_{DATES[1]}.tif").is_file()
    before = file_checksums(tmp_path)
    for args, problem in [
        (["--cog", out], f"{out}: exists and is not empty; choose another or pass --overwrite"),
        (["--cog", tmp_path / "new", "--bands", "nir"], "band(s) nir not in the store"),
        (["--cog", tmp_path / "new", "--compress", "lzw"], "'lzw' is not a compression"),
    ]:
        result = run_stfcube("export", fused_store, *args)
        assert result.returncode == 2, result.stderr
        assert problem in one_line(result.stderr) and "Traceback" not in result.stderr
    assert file_checksums(tmp_path) == before


def test_the_export_ingests_back_as_a_fine_series(
    fused_store: Path, stac_export: Path, tmp_path: Path
) -> None:
    """Round trip: the exported STAC (items of role fine) is a source of ``stfcube ingest``, so a
    fused series can be the fine input of another run. Values come back as stored; a pixel
    missing in one band is invalid in all (the cube's validity is per pixel)."""
    from stfcube.pipeline.ingest import ingest

    cube = tmp_path / "again.zarr"
    ingest(stac_export / "collection.json", cube, roles=("fine",))
    again = xr.open_zarr(cube, consolidated=False)
    assert [str(b) for b in again.band.values] == ["b1", "b2"]
    np.testing.assert_array_equal(again.x.values, xr.open_zarr(fused_store).x.values)
    assert again.fine.attrs["stfcube_units"] == "reflectance x 10000"
    for date in DATES:
        expected = stored(fused_store, date)
        expected[:, np.isnan(expected).any(axis=0)] = np.nan
        got = again.fine.sel(time=np.datetime64(date, "ns")).values
        np.testing.assert_array_equal(got, expected)
