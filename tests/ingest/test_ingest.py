"""Ingest tests on small synthetic stacks: GeoTIFF manifests, STAC catalogs, appends, CLI.

The helpers at the top (synthetic images, manifests, catalogs) are shared with the other ingest
tests; store checksums come from ``helpers.checksums``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
import yaml
from affine import Affine
from rasterio.crs import CRS
from typer.testing import CliRunner

from helpers.checksums import tree_checksum
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest.scenes import ingest
from stfcube.pipeline.store.cube import open_cube, validate_cube

CRS_UTM = CRS.from_epsg(32633)
FINE_RES = 30.0
RATIO = 8
ORIGIN = (500_000.0, 4_200_000.0)
NODATA = -9999
BANDS = ["red", "nir", "swir1"]


def write_tif(
    path: Path,
    data: np.ndarray,
    *,
    res: float = FINE_RES,
    origin: tuple[float, float] = ORIGIN,
    crs: CRS | None = CRS_UTM,
    nodata: float | None = NODATA,
) -> Path:
    """Write a (band, y, x) array as a tiled, zstd-compressed GeoTIFF."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype,
        "transform": Affine(res, 0, origin[0], 0, -res, origin[1]),
        "crs": crs,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
        "compress": "zstd",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def fine_image(seed: int, size: int = 32) -> np.ndarray:
    """int16 (3, size, size) reflectance x10000 with a few nodata pixels."""
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 6000, size=(len(BANDS), size, size)).astype(np.int16)
    data[1, seed % size, 3] = NODATA
    return data


def coarse_image(seed: int, size: int = 32) -> np.ndarray:
    """int16 (3, size/RATIO, size/RATIO) reflectance x10000 on the 240 m grid."""
    rng = np.random.default_rng(100 + seed)
    return rng.integers(100, 6000, size=(len(BANDS), size // RATIO, size // RATIO)).astype(np.int16)


def mask_image(seed: int, size: int = 32) -> np.ndarray:
    """uint8 mask, 1 = clear, 0 = cloud in a small block."""
    mask = np.ones((size, size), dtype=np.uint8)
    mask[seed : seed + 4, 10:14] = 0
    return mask


def make_site(root: Path, fine_days: list[str], coarse_days: list[str], size: int = 32) -> Path:
    """Write GeoTIFFs and ``manifest.yaml`` for a small site under ``root``; return the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i, day in enumerate(fine_days):
        write_tif(root / f"fine_{day}.tif", fine_image(i, size))
        write_tif(root / f"mask_{day}.tif", mask_image(i, size), nodata=None)
        scenes.append(
            {"role": "fine", "date": day, "path": f"fine_{day}.tif", "mask": f"mask_{day}.tif"}
        )
    for i, day in enumerate(coarse_days):
        write_tif(root / f"coarse_{day}.tif", coarse_image(i, size), res=FINE_RES * RATIO)
        scenes.append({"role": "coarse", "date": day, "path": f"coarse_{day}.tif"})
    return write_manifest(root / "manifest.yaml", scenes)


def write_manifest(path: Path, scenes: list[dict], **extra: object) -> Path:
    """A YAML manifest with the test bands and defaults."""
    manifest = {
        "fine_sensor": "landsat",
        "coarse_sensor": "modis",
        "bands": BANDS,
        "defaults": {"fine": {"nodata": NODATA, "mask_valid_values": [1]}},
        "scenes": scenes,
        **extra,
    }
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def make_stac(root: Path, size: int = 32) -> Path:
    """A SELF_CONTAINED catalog following the stfcube convention (fine+mask, coarse, truth)."""
    root.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog("sim", "synthetic site")
    specs = {
        "fine": ["2021-06-01", "2021-06-17"],
        "coarse": ["2021-06-01", "2021-06-09", "2021-06-17"],
        "truth": ["2021-06-09"],
    }
    for role, days in specs.items():
        collection = pystac.Collection(
            f"sim-{role}",
            f"{role} images",
            pystac.Extent(
                pystac.SpatialExtent([[0, 0, 1, 1]]),
                pystac.TemporalExtent([[None, None]]),
            ),
            extra_fields={"stfcube:role": role},
        )
        catalog.add_child(collection)
        for i, day in enumerate(days):
            res = FINE_RES * (RATIO if role == "coarse" else 1)
            data = coarse_image(i, size) if role == "coarse" else fine_image(i + 5, size)
            tif = write_tif(root / f"{role}_{day}.tif", data, res=res)
            item = pystac.Item(
                f"{role}-{day}",
                None,
                None,
                np.datetime64(f"{day}T10:30:00").astype(object),
                {
                    "stfcube:role": role,
                    "proj:code": "EPSG:32633",
                    "proj:shape": list(data.shape[1:]),
                    "proj:transform": [res, 0, ORIGIN[0], 0, -res, ORIGIN[1]],
                },
            )
            raster = [
                {"nodata": NODATA, "scale": 0.0001, "offset": 0, "data_type": "int16"}
                for _ in BANDS
            ]
            item.add_asset(
                "data",
                pystac.Asset(
                    str(tif),
                    media_type=pystac.MediaType.COG,
                    extra_fields={"raster:bands": raster, "eo:bands": [{"name": b} for b in BANDS]},
                ),
            )
            if role == "fine":
                mask = write_tif(root / f"mask_{day}.tif", mask_image(i, size), nodata=None)
                item.add_asset(
                    "mask",
                    pystac.Asset(str(mask), extra_fields={"stfcube:valid_values": [1]}),
                )
            collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


# ----------------------------------------------------------------------------- tests


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Two fine dates with masks, three coarse dates at ratio 8 (one shared with fine)."""
    return make_site(tmp_path / "site", ["2021-06-01", "2021-06-17"], ["2021-06-01", "2021-06-09"])


def _expected_fine(seed: int, mask_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    raw, mask = fine_image(seed), mask_image(seed if mask_seed is None else mask_seed)
    valid = (raw != NODATA).all(axis=0) & (mask == 1)
    return np.where(valid, raw.astype(np.float32), np.nan), valid


def test_new_cube_round_trips_values_masks_dates_and_native_grid(site: Path, tmp_path: Path):
    cube_path = tmp_path / "cube.zarr"
    report = ingest(site, cube_path, chunk=16)
    assert report.created and report.coarse_native and report.n_times == 3
    assert report.written == (
        "coarse 2021-06-01",
        "coarse 2021-06-09",
        "fine 2021-06-01",
        "fine 2021-06-17",
    )
    ds = xr.open_zarr(cube_path, consolidated=False, decode_coords="all")
    assert ds.rio.crs == CRS_UTM
    assert ds.rio.transform() == Affine(30, 0, ORIGIN[0], 0, -30, ORIGIN[1])
    assert list(ds["band"].values) == BANDS
    assert ds["time"].values.astype("datetime64[D]").astype(str).tolist() == [
        "2021-06-01",
        "2021-06-09",
        "2021-06-17",
    ]
    assert ds["fine_observed"].values.tolist() == [True, False, True]
    assert ds["coarse_observed"].values.tolist() == [True, True, False]
    assert ds["fine"].dtype == np.float32 and ds["fine_valid"].dtype == bool
    assert ds["fine"].encoding["chunks"] == (1, 1, 16, 16)
    assert ds["fine_valid"].encoding["chunks"] == (1, 16, 16)
    assert "zstd" in repr(ds["fine"].encoding["compressors"]).lower()
    assert ds.attrs["stfcube_schema"] == "cube/1" and ds.attrs["coarse_ratio"] == RATIO
    assert ds.attrs["resampling"] == "average"
    assert ds["fine"].attrs["source_nodata"] == NODATA and ds["fine"].attrs["source_scale"] == 1
    for t, seed in ((0, 0), (2, 1)):
        values, valid = _expected_fine(seed)
        np.testing.assert_array_equal(ds["fine"][t].values, values)
        np.testing.assert_array_equal(ds["fine_valid"][t].values, valid)
    assert np.isnan(ds["fine"][1].values).all() and not ds["fine_valid"][1].values.any()
    for t, seed in ((0, 0), (1, 1)):
        native = coarse_image(seed).astype(np.float32)
        np.testing.assert_array_equal(ds["coarse_native"][t].values, native)
        upsampled = np.repeat(np.repeat(native, RATIO, axis=1), RATIO, axis=2)
        np.testing.assert_array_equal(ds["coarse"][t].values, upsampled)
        assert ds["coarse_valid"][t].values.all()
    np.testing.assert_allclose(ds["x_coarse"].values, ORIGIN[0] + 240 * (np.arange(4) + 0.5))


def test_open_cube_sorts_appended_dates_and_validates(site: Path, tmp_path: Path):
    cube_path = tmp_path / "cube.zarr"
    ingest(site, cube_path, chunk=16)
    later = make_site(tmp_path / "more", [], ["2021-05-20"])
    report = ingest(later, cube_path, chunk=16)
    assert not report.created and report.written == ("coarse 2021-05-20",)
    stored = xr.open_zarr(cube_path, consolidated=False)["time"].values
    assert stored[-1] == np.datetime64("2021-05-20")
    ds = open_cube(cube_path)
    assert (np.diff(ds["time"].values) > np.timedelta64(0)).all()
    validate_cube(ds)
    with pytest.raises(InputError, match="stfcube_schema"):
        validate_cube(ds.assign_attrs(stfcube_schema="other"), cube_path)


def test_append_region_write_noop_and_overwrite(tmp_path: Path):
    root = tmp_path / "site"
    first = make_site(root, ["2021-06-01"], ["2021-06-01", "2021-06-09"])
    cube_path = tmp_path / "cube.zarr"
    ingest(first, cube_path, chunk=16)
    # a fine image at a coarse-only date (region write) and a new date (append)
    second = make_site(root, ["2021-06-01", "2021-06-09", "2021-06-25"], ["2021-06-09"])
    report = ingest(second, cube_path, chunk=16)
    assert report.written == ("fine 2021-06-09", "fine 2021-06-25")
    assert report.skipped == ("coarse 2021-06-09", "fine 2021-06-01")
    ds = open_cube(cube_path)
    assert ds.sizes["time"] == 3
    assert ds["fine_observed"].values.tolist() == [True, True, True]
    assert ds["coarse_observed"].values.tolist() == [True, True, False]
    # revision stamps: one per written (sensor, date), 0 where nothing was written
    fine_stamps = ds["fine_revision"].values.tolist()
    coarse_stamps = ds["coarse_revision"].values.tolist()
    assert all(fine_stamps) and len(set(fine_stamps)) == 3  # first ingest, region write, append
    assert coarse_stamps[0] and coarse_stamps[1] and coarse_stamps[2] == 0
    np.testing.assert_array_equal(ds["fine"][1].values, _expected_fine(1)[0])
    np.testing.assert_array_equal(ds["coarse_native"][1].values, coarse_image(1))  # kept
    # re-ingesting is a no-op that leaves the store byte-identical
    before = tree_checksum(cube_path)
    assert ingest(second, cube_path, chunk=16).written == ()
    assert tree_checksum(cube_path) == before
    # --overwrite rewrites the date in place from the changed file
    write_tif(root / "fine_2021-06-01.tif", fine_image(7))
    report = ingest(second, cube_path, chunk=16, overwrite=True, roles=("fine",))
    assert "fine 2021-06-01" in report.overwritten
    ds = open_cube(cube_path)
    rewritten = [a != b for a, b in zip(ds["fine_revision"].values, fine_stamps, strict=True)]
    assert rewritten[0] and ds["coarse_revision"].values.tolist() == coarse_stamps
    # valid fractions are recorded with every write (new cube, region write, append, overwrite)
    for sensor in ("fine", "coarse"):
        shares = ds[f"{sensor}_valid"].mean(("y", "x")).values
        np.testing.assert_allclose(ds[f"{sensor}_valid_fraction"].values, shares, rtol=1e-12)
    raw = fine_image(7).astype(np.float32)
    valid = ds["fine_valid"][0].values
    np.testing.assert_array_equal(ds["fine"][0].values[:, valid], raw[:, valid])
    np.testing.assert_array_equal(ds["coarse_native"][0].values, coarse_image(0))


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_resampling_method_is_recorded_and_applied(site: Path, tmp_path: Path, method: str):
    cube_path = tmp_path / f"{method}.zarr"
    ingest(site, cube_path, resampling=method, chunk=16)
    ds = open_cube(cube_path)
    assert ds.attrs["resampling"] == method
    upsampled = np.repeat(np.repeat(coarse_image(0), RATIO, axis=1), RATIO, axis=2)
    same = np.array_equal(ds["coarse"][0].values, upsampled.astype(np.float32))
    assert same == (method == "nearest")


def test_misaligned_coarse_is_warped_but_not_kept_native(tmp_path: Path):
    root = tmp_path / "site"
    manifest = make_site(root, ["2021-06-01"], [])
    big = np.random.default_rng(3).integers(100, 6000, size=(3, 5, 5)).astype(np.int16)
    write_tif(root / "c.tif", big, res=250.0, origin=(499_900.0, 4_200_100.0))
    scenes = yaml.safe_load(manifest.read_text())["scenes"]
    scenes.append({"role": "coarse", "date": "2021-06-01", "path": "c.tif"})
    write_manifest(manifest, scenes)
    with pytest.warns(UserWarning, match="coarse_native not kept"):
        report = ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    assert not report.coarse_native
    ds = open_cube(tmp_path / "cube.zarr")
    assert "coarse_native" not in ds and ds["coarse_valid"][0].values.all()
    with pytest.raises(InputError, match=r"c\.tif.*native coarse grid requested.*not one integer"):
        ingest(manifest, tmp_path / "other.zarr", native=True)


def test_csv_manifest(site: Path, tmp_path: Path):
    rows = "role,date,path,mask,mask_valid_values,nodata\n"
    rows += "fine,2021-06-01,fine_2021-06-01.tif,mask_2021-06-01.tif,1,-9999\n"
    rows += "coarse,2021-06-01,coarse_2021-06-01.tif,,,\n"
    (site.parent / "manifest.csv").write_text(rows)
    report = ingest(site.parent / "manifest.csv", tmp_path / "cube.zarr", chunk=16)
    assert report.bands == ("b1", "b2", "b3") and report.n_times == 1
    ds = open_cube(tmp_path / "cube.zarr")
    np.testing.assert_array_equal(ds["fine"][0].values, _expected_fine(0)[0])


def test_stac_catalog_by_role_and_truth_cube(tmp_path: Path):
    catalog = make_stac(tmp_path / "stac")
    report = ingest(catalog, tmp_path / "cube.zarr", chunk=16)
    assert report.ignored == 1 and report.coarse_native
    ds = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False, decode_coords="all")
    assert ds.rio.crs == CRS_UTM and list(ds["band"].values) == BANDS
    assert ds["time"].values.astype("datetime64[D]").astype(str).tolist() == [
        "2021-06-01",
        "2021-06-09",
        "2021-06-17",
    ]
    # raster:bands scale 0.0001 x common-unit factor 10000: DN x10000 stays x10000
    values, valid = _expected_fine(5, mask_seed=0)
    np.testing.assert_array_equal(ds["fine"][0].values, values)
    np.testing.assert_array_equal(ds["fine_valid"][0].values, valid)
    np.testing.assert_array_equal(ds["coarse_native"][1].values, coarse_image(1))
    truth = ingest(catalog, tmp_path / "truth.zarr", roles=("truth",))
    assert truth.written == ("fine 2021-06-09",) and truth.ignored == 5
    tds = open_cube(tmp_path / "truth.zarr")
    truth_raw = fine_image(5)
    expected = np.where((truth_raw != NODATA).all(axis=0), truth_raw.astype(np.float32), np.nan)
    np.testing.assert_array_equal(tds["fine"][0].values, expected)


def test_cli_ingest_and_noop_report(site: Path, tmp_path: Path):
    from stfcube.pipeline.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(site), str(tmp_path / "c.zarr"), "--chunk", "16"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    again = runner.invoke(app, ["ingest", str(site), str(tmp_path / "c.zarr")])
    assert again.exit_code == 0 and "already in the cube" in again.output


def test_simulated_site_ingests(tmp_path: Path):
    simulate = pytest.importorskip("stfcube.pipeline.simulate.site")
    simulate.simulate_site(tmp_path / "site", size=64, days=6)
    catalog = pystac.read_file(str(tmp_path / "site" / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    roles = {i.properties["stfcube:role"]: set() for i in items}
    for item in items:
        roles[item.properties["stfcube:role"]].add(np.datetime64(item.datetime.date(), "D"))
    report = ingest(tmp_path / "site" / "catalog.json", tmp_path / "cube.zarr", chunk=32)
    ds = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False, decode_coords="all")
    assert ds.rio.crs is not None and report.coarse_native
    days = set(ds["time"].values.astype("datetime64[D]"))
    assert days == roles["fine"] | roles["coarse"]
    fine_days = set(ds["time"].values[ds["fine_observed"].values].astype("datetime64[D]"))
    assert fine_days == roles["fine"]
    assert ds.attrs["coarse_ratio"] == 16
    assert 0 < float(ds["fine_valid"].mean()) < 1


def test_rewritten_scene_makes_its_predictions_out_of_date(tmp_path: Path):
    """ingest --overwrite of a pair's fine scene: the dates fused from it are fused again."""
    from stfcube.pipeline.engine.run import fuse
    from stfcube.pipeline.ops.update import dates_to_fuse

    root = tmp_path / "site"
    manifest = make_site(root, ["2021-06-01"], ["2021-06-01", "2021-06-09"])
    cube_path, fused_path = tmp_path / "cube.zarr", tmp_path / "fused.zarr"
    ingest(manifest, cube_path, chunk=16)
    params = {"max_search_distance": 240.0}
    first = fuse(cube_path, fused_path, tile=16, params=params, local_threads=1)
    assert first.dates_computed == ["2021-06-09"]
    plan = dates_to_fuse(cube_path, fused_path, params=params)
    assert plan.dates == ()
    before = xr.open_zarr(fused_path, consolidated=False)["fused"].values
    write_tif(root / "fine_2021-06-01.tif", fine_image(5))
    ingest(manifest, cube_path, chunk=16, overwrite=True, roles=("fine",))
    plan = dates_to_fuse(cube_path, fused_path, params=params)
    assert plan.changed == ("2021-06-09",) and plan.new == ()
    second = fuse(cube_path, fused_path, tile=16, params=params, local_threads=1)
    assert second.dates_computed == ["2021-06-09"] and second.tiles_computed == 4
    after = xr.open_zarr(fused_path, consolidated=False)["fused"].values
    assert not np.array_equal(before, after, equal_nan=True)
    assert dates_to_fuse(cube_path, fused_path, params=params).dates == ()
