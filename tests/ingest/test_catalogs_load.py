"""Real catalog items (``shared/data/stac_real``) on small local rasters, ingested into cubes.

Each test rewrites the assets it needs to rasters written into ``tmp_path`` with the CRS,
transform origin, pixel size, dtype and nodata the item declares, then checks the cube's grid,
dates, values in common units (reflectance x 10000) and masks against QA decoded by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
from pyproj import CRS, Transformer

from helpers.fixtures.stac.rasters import (
    item_crs,
    item_transform,
    load_items,
    localize,
    save_items,
    window_bbox,
)
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery, ingest_catalog
from stfcube.pipeline.store.cube import open_cube

pytestmark = pytest.mark.shared

LANDSAT_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22")
#: qa_pixel values: clear (21824), fill (1), cloud+dilated (22280), shadow (23888), clear water
#: (21952), dilated cloud (21826).
LANDSAT_QA = np.array([21824, 1, 22280, 23888, 21952, 21826], dtype=np.uint16)
SHAPE = (64, 64)


def _landsat_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    arrays = {k: rng.integers(7273, 43636, SHAPE).astype(np.uint16) for k in LANDSAT_BANDS}
    arrays["qa_pixel"] = rng.choice(LANDSAT_QA, SHAPE)
    return arrays


def _window(ds, item: dict, key: str) -> tuple[slice, slice]:
    """Rows/cols of the item's raster under the cube's fine grid (same CRS and pixel size)."""
    t = item_transform(item, key)
    x0 = float(ds.x[0]) - t.a / 2
    y0 = float(ds.y[0]) - t.e / 2
    col, row = round((x0 - t.c) / t.a), round((y0 - t.f) / t.e)
    return slice(row, row + ds.sizes["y"]), slice(col, col + ds.sizes["x"])


def _ingest(tmp_path: Path, items: list[dict], **query) -> object:
    source = save_items(items, tmp_path / "items.json")
    return ingest_catalog(source, tmp_path / "cube.zarr", CatalogQuery(**query), chunk=32)


@pytest.mark.parametrize(
    ("relative", "index", "epsg", "day"),
    [
        ("landsat-c2-l2/pc_landsat-c2-l2_4items.json", 0, 32655, "2024-04-18"),
        (
            "landsat-c2-l2/usgs_LE07_L2SP_044033_20210329_20210424_02_T1_SR.json",
            0,
            32610,
            "2021-03-29",
        ),
        (
            "landsat-c2-l2/usgs_LC08_L2SP_028030_20200114_20200824_02_T1_SR.json",
            0,
            32615,
            "2020-01-14",
        ),
    ],
    ids=["pc-landsat9", "usgs-landsat7", "usgs-landsat8"],
)
def test_landsat_items_ingest_with_scale_offset_and_qa(
    shared_dir, tmp_path, relative, index, epsg, day
):
    raw = load_items(shared_dir, relative)[index]
    arrays = _landsat_arrays(np.random.default_rng(index + len(relative)))
    item = localize(raw, arrays, tmp_path / "rasters")
    bbox = window_bbox(item, "red", (8, 56), (8, 56))
    report = _ingest(tmp_path, [item], fine=(raw["collection"],), coarse=(), bbox=bbox)

    ds = open_cube(tmp_path / "cube.zarr")
    assert ds.rio.crs.to_epsg() == epsg
    t = ds.rio.transform()
    assert (t.a, t.e) == (30.0, -30.0)
    assert ((t.c - item_transform(item, "red").c) / 30) % 1 == 0  # on the scene's pixel grid
    assert [str(d)[:10] for d in ds.time.values] == [day]
    assert list(ds.band.values) == ["blue", "green", "red", "nir", "swir1", "swir2"]
    rows, cols = _window(ds, item, "red")
    expected_valid = (arrays["qa_pixel"][rows, cols] & 0b111111) == 0
    valid = ds.fine_valid.isel(time=0).values
    np.testing.assert_array_equal(valid, expected_valid)
    for band, key in zip(ds.band.values, LANDSAT_BANDS, strict=True):
        expected = arrays[key][rows, cols] * 0.275 - 2000.0  # 2.75e-5 * 1e4, -0.2 * 1e4
        got = ds.fine.sel(band=band).isel(time=0).values
        np.testing.assert_allclose(got[valid], expected[valid], rtol=0, atol=0.01)
        assert np.isnan(got[~valid]).all()
    attrs = ds.attrs
    assert attrs["fine_valid_fraction"][day] == pytest.approx(expected_valid.mean(), abs=1e-6)
    assert ds.fine.attrs["source_scale"] == pytest.approx(0.275)
    assert ds.fine.attrs["source_offset"] == pytest.approx(-2000.0)
    assert not ds.coarse_observed.any()
    assert report.written == (f"fine {day}",)


def test_mostly_cloudy_date_is_ingested_and_flagged(shared_dir, tmp_path):
    raw = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")[0]
    arrays = _landsat_arrays(np.random.default_rng(3))
    arrays["qa_pixel"][:] = 22280  # cloud everywhere
    arrays["qa_pixel"][:4, :] = 21824
    item = localize(raw, arrays, tmp_path / "rasters")
    report = _ingest(
        tmp_path,
        [item],
        fine=("landsat-c2-l2",),
        coarse=(),
        bbox=window_bbox(item, "red", (0, 64), (0, 64)),
    )
    ds = open_cube(tmp_path / "cube.zarr")
    assert bool(ds.fine_observed.values[0])
    assert ds.attrs["fine_flagged_dates"] == ["2024-04-18"]
    assert 0 < ds.attrs["fine_valid_fraction"]["2024-04-18"] < 0.1
    assert report.warnings and "2024-04-18" in report.warnings[0]


def test_hls_l30_and_s30_share_bands_by_name(shared_dir, tmp_path):
    rng = np.random.default_rng(7)
    keys = ("blue", "green", "red", "nir_narrow", "swir_1", "swir_2")
    fmask_values = np.array([64, 128, 96, 2, 8, 255, 16, 4], dtype=np.uint8)
    items, arrays = [], {}
    for name in (
        "stactools_HLS.L30.T19LDD.2022165T144027.v2.0.json",
        "stactools_HLS.S30.T19LDD.2022166T144741.v2.0.json",
    ):
        raw = load_items(shared_dir, f"hls/{name}")[0]
        arrays[raw["id"]] = {k: rng.integers(0, 9000, SHAPE).astype(np.int16) for k in keys}
        arrays[raw["id"]]["fmask"] = rng.choice(fmask_values, SHAPE)
        items.append(localize(raw, arrays[raw["id"]], tmp_path / "rasters"))
    bbox = window_bbox(items[0], "red", (4, 60), (4, 60))
    _ingest(tmp_path, items, fine=("hls",), coarse=(), bbox=bbox)

    ds = open_cube(tmp_path / "cube.zarr")
    assert ds.rio.crs.to_epsg() == 32619
    assert [str(d)[:10] for d in ds.time.values] == ["2022-06-14", "2022-06-15"]
    rows, cols = _window(ds, items[0], "red")
    for position, item in enumerate(items):
        source = arrays[item["id"]]
        fmask = source["fmask"][rows, cols]
        expected_valid = (fmask != 255) & ((fmask & 0b11110) == 0)
        valid = ds.fine_valid.isel(time=position).values
        np.testing.assert_array_equal(valid, expected_valid)
        nir = ds.fine.sel(band="nir").isel(time=position).values
        np.testing.assert_allclose(nir[valid], source["nir_narrow"][rows, cols][valid], atol=1e-3)


def test_static_catalog_source(shared_dir, tmp_path):
    raw = load_items(shared_dir, "hls/stactools_HLS.L30.T19LDD.2022165T144027.v2.0.json")[0]
    keys = ("blue", "green", "red", "nir_narrow", "swir_1", "swir_2")
    arrays = {k: np.full(SHAPE, 1500, np.int16) for k in keys}
    arrays["fmask"] = np.full(SHAPE, 64, np.uint8)
    item = pystac.Item.from_dict(localize(raw, arrays, tmp_path / "rasters"))
    item.clear_links()
    catalog = pystac.Catalog("local", "a local static catalog")
    catalog.add_item(item)
    catalog.normalize_and_save(str(tmp_path / "catalog"), pystac.CatalogType.ABSOLUTE_PUBLISHED)
    query = CatalogQuery(
        fine=("hls",),
        coarse=(),
        bbox=window_bbox(raw, "red", (4, 60), (4, 60)),
        bands=("red", "nir", "ndvi"),
    )
    ingest_catalog(tmp_path / "catalog" / "catalog.json", tmp_path / "cube.zarr", query)
    ds = open_cube(tmp_path / "cube.zarr")
    assert list(ds.band.values) == ["red", "nir", "ndvi"]
    np.testing.assert_allclose(ds.fine.sel(band="nir").values, 1500)
    np.testing.assert_allclose(ds.fine.sel(band="ndvi").values, 0.0)


def _modis_arrays(
    rng: np.random.Generator, bands: dict[str, str], qa: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Constant reflectance per band (1000, 1100, ...) and random QA."""
    arrays = {
        key: np.full((24, 24), 1000 + 100 * i, np.int16) for i, key in enumerate(bands.values())
    }
    for key, choices in qa.items():
        arrays[key] = rng.choice(choices, (24, 24))
    return arrays


def _sample_native(ds, item: dict, key: str, array: np.ndarray) -> np.ndarray:
    """The raster's value at each fine pixel centre (nearest), transformed to the item's CRS."""
    to_item = Transformer.from_crs(CRS(ds.rio.crs.to_wkt()), item_crs(item, key), always_xy=True)
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    sx, sy = to_item.transform(xx, yy)
    col, row = ~item_transform(item, key) * (sx, sy)
    return array[np.floor(row).astype(int), np.floor(col).astype(int)]


@pytest.mark.parametrize(
    ("relative", "day"),
    [
        ("modis-09A1-061/stactools_MOD09A1.A2022033.h19v10.061.json", "2022-02-05"),
        ("modis-43A4-061/stactools_MCD43A4.A2022032.h14v10.061.json", "2022-02-01"),
    ],
    ids=["09A1-midpoint", "43A4-datetime"],
)
def test_modis_sinusoidal_reprojected_to_fine_grid_and_native_grid(
    shared_dir, tmp_path, relative, day
):
    raw = load_items(shared_dir, relative)[0]
    assert raw["properties"]["proj:epsg"] is None and "proj:wkt2" in raw["properties"]
    rng = np.random.default_rng(11)
    if "09A1" in relative:
        bands = {
            b: f"sur_refl_b{n:02d}"
            for b, n in {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}.items()
        }
        state = np.array(
            [0b1000, 0b1001, 0b1010, 0b1011, 0b1100, 1 << 10 | 0b1000, 65535], dtype=np.uint16
        )
        qa = {"sur_refl_state_500m": state}
    else:
        bands = {
            b: f"Nadir_Reflectance_Band{n}"
            for b, n in {"blue": 3, "green": 4, "red": 1, "nir": 2, "swir1": 6, "swir2": 7}.items()
        }
        quality = np.array([0, 0, 0, 1, 2, 255], dtype=np.uint8)
        qa = {f"BRDF_Albedo_Band_Mandatory_Quality_Band{n}": quality for n in (1, 2, 3, 4, 6, 7)}
    arrays = _modis_arrays(rng, bands, qa)
    item = localize(raw, arrays, tmp_path / "rasters")
    bbox = window_bbox(item, next(iter(bands.values())), (6, 18), (6, 18))
    _ingest(tmp_path, [item], fine=(), coarse=(raw["collection"],), bbox=bbox, resolution=30.0)

    ds = open_cube(tmp_path / "cube.zarr")
    assert [str(d)[:10] for d in ds.time.values] == [day]
    assert ds.rio.crs.to_epsg() in range(32701, 32761)  # southern UTM zone of the region
    assert ds.attrs["coarse_ratio"] == 16
    assert float(ds.x_coarse[1] - ds.x_coarse[0]) == 480.0
    if "09A1" in relative:
        decoded = _sample_native(ds, item, "sur_refl_state_500m", arrays["sur_refl_state_500m"])
        state = decoded & 0b11
        expected = (
            (decoded != 65535)
            & (state != 1)
            & (state != 2)
            & ~((decoded >> 2) & 1 == 1)
            & ~((decoded >> 10) & 1 == 1)
        )
    else:
        expected = np.ones(ds.fine_valid.shape[1:], bool)
        for key in qa:
            sampled = _sample_native(ds, item, key, arrays[key])
            expected &= (sampled == 0) | (sampled == 1)
    valid = ds.coarse_valid.isel(time=0).values
    np.testing.assert_array_equal(valid, expected)
    assert 0 < valid.mean() < 1
    for i, band in enumerate(bands):
        values = ds.coarse.sel(band=band).isel(time=0).values
        np.testing.assert_allclose(values[valid], 1000 + 100 * i, atol=0.01)
        native = ds.coarse_native.sel(band=band).isel(time=0).values
        native_valid = ds.coarse_native_valid.isel(time=0).values
        assert native_valid.any()
        np.testing.assert_allclose(native[native_valid], 1000 + 100 * i, atol=0.01)


def _zone_item(raw: dict, epsg: int, lon0: float, lat0: float, size: int) -> dict:
    """The item re-gridded to a window of ``size`` 30 m pixels whose corner is at lon0, lat0."""
    item = json.loads(json.dumps(raw))
    x, y = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True).transform(lon0, lat0)
    x, y = 30 * round(x / 30) + 15, 30 * round(y / 30) + 15
    item["properties"]["proj:epsg"] = epsg
    item["properties"]["proj:transform"] = [30.0, 0.0, x, 0.0, -30.0, y]
    return item


def _ramp(item: dict, size: int) -> np.ndarray:
    """DN = a smooth function of lon/lat at the raster's pixel centres."""
    t = item_transform(item, "red")
    cols, rows = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    xs, ys = t * (cols, rows)
    lon, lat = Transformer.from_crs(item_crs(item), "EPSG:4326", always_xy=True).transform(xs, ys)
    return _dn(lon, lat)


def _dn(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return 20000 + 300000 * (lon - 150.0) + 100000 * (lat + 38.5)


def test_two_utm_zones_one_date_join_without_seam(shared_dir, tmp_path):
    items = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")
    west = _zone_item(items[2], 32655, 149.985, -38.49, 64)  # row 088, zone 55
    east = _zone_item(items[3], 32656, 149.995, -38.49, 64)  # row 087, zone 56
    written = []
    for item in (west, east):
        dn = _ramp(item, 64)
        arrays = {k: np.round(dn).astype(np.uint16) for k in LANDSAT_BANDS}
        arrays["qa_pixel"] = np.full((64, 64), 21824, np.uint16)
        written.append(localize(item, arrays, tmp_path / "rasters"))
    bbox = (149.99, -38.505, 150.01, -38.495)
    _ingest(tmp_path, written, fine=("landsat-c2-l2",), coarse=(), bbox=bbox, crs="EPSG:32655")

    ds = open_cube(tmp_path / "cube.zarr")
    assert ds.sizes["time"] == 1 and ds.rio.crs.to_epsg() == 32655
    assert set(ds.attrs["fine_items"]["2024-04-18"]) == {west["id"], east["id"]}
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    lon, lat = Transformer.from_crs("EPSG:32655", "EPSG:4326", always_xy=True).transform(xx, yy)
    assert lon.min() < 150.0 < lon.max()  # the grid straddles the zone border
    assert ds.fine_valid.all()  # no gap along the border
    red = ds.fine.sel(band="red").isel(time=0).values
    expected = _dn(lon, lat) * 0.275 - 2000.0
    step = np.abs(np.diff(expected, axis=1)).max()  # one pixel's change along x
    assert np.abs(red - expected).max() < 0.5 * step
    jumps = np.abs(np.diff(red - expected, axis=1))
    assert jumps.max() < 0.5 * step  # no step across the border column


def _bad(shared_dir: Path, tmp_path: Path, edit) -> tuple[dict, dict]:
    raw = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")[0]
    item = localize(raw, _landsat_arrays(np.random.default_rng(5)), tmp_path / "rasters")
    query = {
        "fine": ("landsat-c2-l2",),
        "coarse": (),
        "bbox": window_bbox(item, "red", (8, 56), (8, 56)),
    }
    edit(item, query)
    return item, query


def _drop_red(item, query):
    del item["assets"]["red"]


def _missing_file(item, query):
    item["assets"]["nir08"]["href"] = "/nonexistent/LC09_B5.TIF"


def _unreachable_url(item, query):
    item["assets"]["swir16"]["href"] = "http://127.0.0.1:9/LC09_B6.TIF"


def _no_datetime(item, query):
    item["properties"]["datetime"] = None


def _unknown_collection(item, query):
    item["collection"] = "landsat-c3-l3"
    query["fine"] = ("landsat-c3-l3",)


def _band_not_present(item, query):
    query["bands"] = ("red", "nir", "thermal")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_drop_red, "no asset for band red"),
        (_missing_file, "asset nir cannot be read from /nonexistent/LC09_B5.TIF"),
        (_unreachable_url, "asset swir1 cannot be read from http://127.0.0.1:9"),
        (_no_datetime, "datetime is null and there is no start_datetime/end_datetime"),
        (_unknown_collection, "collection 'landsat-c3-l3' is not supported"),
        (_band_not_present, "band 'thermal' is not available in collection landsat-c2-l2"),
    ],
    ids=[
        "asset-missing",
        "file-missing",
        "url-unreachable",
        "null-datetime",
        "unknown-collection",
        "band-not-present",
    ],
)
def test_bad_metadata_names_the_item_and_writes_nothing(shared_dir, tmp_path, edit, message):
    item, query = _bad(shared_dir, tmp_path, edit)
    with pytest.raises(InputError, match="LC09_L2SP_089090_20240417_02_T1") as caught:
        _ingest(tmp_path, [item], **query)
    assert message in str(caught.value)
    assert not (tmp_path / "cube.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cube.zarr")]
