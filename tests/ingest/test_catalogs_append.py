"""Catalog ingest into an existing cube: only the images it lacks are written.

The items are the real Planetary Computer Landsat item (``shared/data/stac_real``) on small local
rasters (:mod:`helpers.fixtures.stac.rasters`), copied to three dates with different values.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers.fixtures.stac.rasters import load_items, localize, save_items, window_bbox
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.ingest.catalog.ingest import CatalogQuery, ingest_catalog
from stfcube.pipeline.store.cube import open_cube

pytestmark = pytest.mark.shared

KEYS = ("blue", "green", "red", "nir08", "swir16", "swir22")
DAYS = ("2024-04-18", "2024-04-26", "2024-05-04")
SPAN = (dt.datetime(2024, 4, 1, tzinfo=dt.UTC), dt.datetime(2024, 5, 31, tzinfo=dt.UTC))
FIRST_TWO = (SPAN[0], dt.datetime(2024, 4, 30, tzinfo=dt.UTC))


def _write_items(shared_dir: Path, folder: Path, seed: int) -> tuple[Path, tuple]:
    """Three dated copies of the real item on local rasters drawn with ``seed``; the bbox."""
    raw = load_items(shared_dir, "landsat-c2-l2/pc_landsat-c2-l2_4items.json")[0]
    rng = np.random.default_rng(seed)
    written = []
    for n, day in enumerate(DAYS):
        item = copy.deepcopy(raw)
        item["id"] = f"{raw['id']}-{n}"
        item["properties"]["datetime"] = f"{day}T00:05:00Z"
        arrays = {k: rng.integers(7273, 43636, (48, 48)).astype(np.uint16) for k in KEYS}
        arrays["qa_pixel"] = rng.choice(np.array([21824, 22280], np.uint16), (48, 48))
        written.append(localize(item, arrays, folder / "rasters"))
    bbox = window_bbox(written[0], "red", (4, 44), (4, 44))
    return save_items(written, folder / "items.json"), bbox


@pytest.fixture
def items(shared_dir: Path, tmp_path: Path) -> tuple[Path, tuple]:
    """The item file of three dates and the query bbox."""
    return _write_items(shared_dir, tmp_path, seed=0)


def _query(bbox: tuple, dates: tuple | None, fine: bool = True, **more) -> CatalogQuery:
    ids = ("landsat-c2-l2",)
    return CatalogQuery(
        fine=ids if fine else (), coarse=() if fine else ids, bbox=bbox, dates=dates, **more
    )


def _days(ds) -> list[str]:
    return [str(d)[:10] for d in ds.time.values]


def test_new_dates_are_appended_and_a_rerun_is_a_no_op(items, tmp_path):
    source, bbox = items
    reference = tmp_path / "reference.zarr"
    ingest_catalog(source, reference, _query(bbox, SPAN), chunk=16)
    cube = tmp_path / "cube.zarr"
    first = ingest_catalog(source, cube, _query(bbox, FIRST_TWO), chunk=16)
    assert first.created and first.written == tuple(f"fine {d}" for d in DAYS[:2])

    report = ingest_catalog(source, cube, _query(bbox, SPAN), chunk=16)
    assert not report.created
    assert report.written == (f"fine {DAYS[2]}",)
    assert report.skipped == tuple(f"fine {d}" for d in DAYS[:2])
    assert report.n_times == 3
    ds, expected = open_cube(cube), open_cube(reference)
    assert _days(ds) == list(DAYS)
    for name in ("fine", "fine_valid", "coarse_valid", "fine_observed", "coarse_observed"):
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
    assert set(ds.attrs["fine_items"]) == set(DAYS)
    assert ds.attrs["fine_valid_fraction"] == expected.attrs["fine_valid_fraction"]

    before = zarr.open_group(str(cube), mode="r").attrs.asdict()
    again = ingest_catalog(source, cube, _query(bbox, SPAN), chunk=16)
    assert again.written == () and len(again.skipped) == 3 and again.n_times == 3
    assert zarr.open_group(str(cube), mode="r").attrs.asdict() == before


def test_other_sensor_is_region_written_into_existing_dates(items, tmp_path):
    source, bbox = items
    cube = tmp_path / "cube.zarr"
    ingest_catalog(source, cube, _query(bbox, FIRST_TWO), chunk=16)
    # The same Landsat items as the coarse sensor (30 m, so no native grid): two dates already
    # in the cube are region-written, the third is appended.
    report = ingest_catalog(source, cube, _query(bbox, SPAN, fine=False), chunk=16)
    assert report.written == tuple(f"coarse {d}" for d in DAYS)
    assert report.skipped == ()
    ds = open_cube(cube)
    assert _days(ds) == list(DAYS)
    assert ds.coarse_observed.values.all()
    assert list(ds.fine_observed.values) == [True, True, False]
    fine = ds.fine.isel(time=slice(0, 2)).values
    np.testing.assert_allclose(ds.coarse.isel(time=slice(0, 2)).values, fine, atol=0.01)
    np.testing.assert_array_equal(ds.coarse_valid.values[:2], ds.fine_valid.values[:2])
    assert ds.coarse_valid.values[2].any() and not ds.fine_valid.values[2].any()
    assert set(ds.attrs["coarse_items"]) == set(DAYS)


def test_other_bands_than_the_cube_are_refused_and_nothing_changes(items, tmp_path):
    source, bbox = items
    cube = tmp_path / "cube.zarr"
    ingest_catalog(source, cube, _query(bbox, FIRST_TWO), chunk=16)
    before = open_cube(cube).load()
    with pytest.raises(ConfigError, match="differ from the cube's"):
        ingest_catalog(source, cube, _query(bbox, SPAN, bands=("red", "nir")), chunk=16)
    after = open_cube(cube)
    assert _days(after) == list(DAYS[:2])
    np.testing.assert_array_equal(after.fine.values, before.fine.values)


def test_overwrite_rewrites_the_images_in_place(items, shared_dir, tmp_path):
    """A reprocessed collection: --overwrite replaces the images (and their stamps) in place."""
    source, bbox = items
    cube = tmp_path / "cube.zarr"
    ingest_catalog(source, cube, _query(bbox, SPAN), chunk=16)
    stamps = open_cube(cube)["fine_revision"].values.copy()
    reprocessed, _ = _write_items(shared_dir, tmp_path / "v2", seed=1)
    skipped = ingest_catalog(reprocessed, cube, _query(bbox, SPAN), chunk=16)
    assert skipped.skipped == tuple(f"fine {d}" for d in DAYS) and skipped.overwritten == ()
    report = ingest_catalog(reprocessed, cube, _query(bbox, SPAN), chunk=16, overwrite=True)
    assert report.overwritten == tuple(f"fine {d}" for d in DAYS)
    assert report.written == () and report.skipped == () and report.n_times == 3
    reference = tmp_path / "reference.zarr"
    ingest_catalog(reprocessed, reference, _query(bbox, SPAN), chunk=16)
    ds, expected = open_cube(cube), open_cube(reference)
    for name in ("fine", "fine_valid", "fine_observed", "coarse_observed"):
        np.testing.assert_array_equal(ds[name].values, expected[name].values)
    assert ds.attrs["fine_valid_fraction"] == expected.attrs["fine_valid_fraction"]
    assert (ds["fine_revision"].values != stamps).all()
