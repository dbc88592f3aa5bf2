"""Bad inputs that ingest once accepted silently or with a traceback (issue 20, items 6-8, 10).

Each is refused before anything is written: one :class:`InputError` naming the file and the
problem, exit code 2 from ``stfcube ingest``, and every file under the test folder (sources and
the existing cube) byte-for-byte unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from rasterio.crs import CRS
from test_ingest import (
    CRS_UTM,
    NODATA,
    ORIGIN,
    coarse_image,
    fine_image,
    make_site,
    make_stac,
    write_tif,
)

from helpers.refusals import assert_ingest_refuses
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.geometry.grid import Grid, PixelWindow, covering_window
from stfcube.pipeline.ingest import ingest, readers
from stfcube.pipeline.ingest.catalog.find import find_items
from stfcube.pipeline.ingest.manifest import parse_day
from stfcube.pipeline.ingest.readers import Scene, has_data, probe_raster

NEW_DAY = "2021-07-01"

#: A refused input: (source to ingest, existing cube, problem stated, file named).
Refusal = tuple[Path, Path, str, str]


def _site_cube(tmp_path: Path) -> tuple[Path, Path]:
    """An existing cube and the manifest it came from."""
    manifest = make_site(tmp_path / "site", ["2021-06-01"], ["2021-06-01"])
    cube = tmp_path / "cube.zarr"
    ingest(manifest, cube, chunk=16)
    return manifest, cube


def _with_scene(manifest: Path, scene: dict) -> Path:
    data = yaml.safe_load(manifest.read_text())
    data["scenes"].append(scene)
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    return manifest


def _stac_cube(tmp_path: Path) -> tuple[Path, Path]:
    """An existing cube and the STAC catalog it came from."""
    catalog = make_stac(tmp_path / "stac")
    cube = tmp_path / "cube.zarr"
    ingest(catalog, cube, chunk=16)
    return catalog, cube


# ----------------------------------------------------------------------------- item 6


def _coarse_elsewhere(tmp_path: Path) -> Refusal:
    """A coarse scene in UTM zone 10 (California) for a fine grid in zone 33 (Sicily)."""
    manifest, cube = _site_cube(tmp_path)
    write_tif(manifest.parent / "bad.tif", coarse_image(1), res=240.0, crs=CRS.from_epsg(32610))
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "does not overlap the fine grid", "bad.tif"


# ----------------------------------------------------------------------------- item 7


def _fine_all_nodata(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    write_tif(manifest.parent / "bad.tif", np.full((3, 32, 32), NODATA, dtype=np.int16))
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "has no valid pixel: bands [1, 2, 3] hold only nodata", "bad.tif"


def _coarse_nan_over_the_grid(tmp_path: Path) -> Refusal:
    """A float coarse scene twice the grid's extent, NaN wherever it covers the fine grid."""
    manifest, cube = _site_cube(tmp_path)
    data = np.full((3, 8, 8), 500.0, dtype=np.float32)
    data[:, :4, :4] = np.nan  # the fine grid is 32 x 30 m = 4 coarse pixels of 240 m a side
    write_tif(manifest.parent / "bad.tif", data, res=240.0, nodata=None)
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "has no valid pixel where it covers the fine grid", "bad.tif"


# ----------------------------------------------------------------------------- item 8


def _integer_date(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    write_tif(manifest.parent / "new.tif", fine_image(4))
    _with_scene(manifest, {"role": "fine", "date": 20210701, "path": "new.tif"})
    problem = "scenes.2.date: 20210701 is a number, not a date: write 2021-07-01 (YYYY-MM-DD)"
    return manifest, cube, f"{problem} (scene new.tif)", "manifest.yaml"


def _date_with_junk(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    write_tif(manifest.parent / "new.tif", fine_image(4))
    _with_scene(manifest, {"role": "fine", "date": f"{NEW_DAY}x9", "path": "new.tif"})
    problem = f"scenes.2.date: '{NEW_DAY}x9' is not a date: write YYYY-MM-DD (scene new.tif)"
    return manifest, cube, problem, "manifest.yaml"


# ----------------------------------------------------------------------------- item 10

ITEM = "sim-fine/fine-2021-06-17/fine-2021-06-17.json"


def _broken_item_link(tmp_path: Path) -> Refusal:
    catalog, cube = _stac_cube(tmp_path)
    (catalog.parent / ITEM).unlink()
    return catalog, cube, "cannot read the STAC item linked from", f"{ITEM}: "


def _item_not_json(tmp_path: Path) -> Refusal:
    catalog, cube = _stac_cube(tmp_path)
    (catalog.parent / ITEM).write_text('{"type": "Feature", "id": ')
    return catalog, cube, "collection.json: not valid JSON", f"{ITEM}: "


def _looping_links(tmp_path: Path) -> Refusal:
    catalog, cube = _stac_cube(tmp_path)
    _loop_back(catalog)
    return catalog, cube, "but already read: the catalog's links loop", "catalog.json: "


def _loop_back(catalog: Path) -> None:
    """Give a collection a child link back to the root catalog."""
    collection = catalog.parent / "sim-coarse" / "collection.json"
    document = json.loads(collection.read_text())
    document["links"].append(
        {"rel": "child", "href": "../catalog.json", "type": "application/json"}
    )
    collection.write_text(json.dumps(document))


CASES: dict[str, Callable[[Path], Refusal]] = {
    "6-coarse-scene-elsewhere": _coarse_elsewhere,
    "7-fine-scene-all-nodata": _fine_all_nodata,
    "7-coarse-scene-nan-over-the-grid": _coarse_nan_over_the_grid,
    "8-integer-date": _integer_date,
    "8-date-with-trailing-junk": _date_with_junk,
    "10-broken-item-link": _broken_item_link,
    "10-item-not-json": _item_not_json,
    "10-looping-links": _looping_links,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_file_and_changes_nothing(tmp_path: Path, case: str):
    assert_ingest_refuses(*CASES[case](tmp_path), root=tmp_path)


# ----------------------------------------------------------------------------- what still passes


def test_coarse_scene_in_another_crs_that_overlaps_is_ingested(tmp_path: Path):
    """A lon/lat coarse scene around the UTM site is warped onto the fine grid, not refused."""
    manifest = make_site(tmp_path / "site", ["2021-06-01"], [])
    data = np.random.default_rng(0).integers(100, 6000, size=(3, 12, 16)).astype(np.int16)
    west, north = 14.99, 37.96  # the site's corner (500 km E, 4200 km N in UTM 33) is 15.0, 37.95
    tif = manifest.parent / "lonlat.tif"
    write_tif(tif, data, res=0.0025, origin=(west, north), crs=CRS.from_epsg(4326))
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "lonlat.tif"})
    with pytest.warns(UserWarning, match="coarse_native not kept"):
        report = ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    assert f"coarse {NEW_DAY}" in report.written


def test_covering_window_of_disjoint_overlapping_and_reprojected_grids():
    fine = Grid(CRS_UTM, Affine(30, 0, ORIGIN[0], 0, -30, ORIGIN[1]), 32, 32)
    coarse = Grid(CRS_UTM, Affine(240, 0, ORIGIN[0] - 480, 0, -240, ORIGIN[1] + 480), 8, 8)
    assert covering_window(coarse, fine) == PixelWindow(2, 6, 2, 6)
    beside = Grid(CRS_UTM, Affine(240, 0, ORIGIN[0] + 960, 0, -240, ORIGIN[1]), 4, 4)
    assert covering_window(beside, fine) is None  # touching edges share no pixel
    far = Grid(CRS.from_epsg(32610), fine.transform, 32, 32)
    assert covering_window(far, fine) is None
    lonlat = Grid(CRS.from_epsg(4326), Affine(0.0025, 0, 14.99, 0, -0.0025, 37.96), 12, 16)
    assert covering_window(lonlat, fine) is not None


def test_has_data_scans_window_by_window_and_finds_one_pixel(tmp_path, monkeypatch):
    """A single pixel with data at a corner is found; a scene with none reads as none."""
    monkeypatch.setattr(readers, "SCAN_WINDOW", 16)  # 16 windows for a 64 x 64 file
    data = np.full((3, 64, 64), NODATA, dtype=np.int16)
    data[:, 63, 0] = 42
    path = str(write_tif(tmp_path / "corner.tif", data))
    info = probe_raster(path)
    scene = Scene(role="fine", date=np.datetime64("2021-06-01"), path=path, bands=(1, 2, 3))
    whole = covering_window(info.grid, info.grid)
    assert whole is not None and has_data(scene, info, whole)
    data[:, 63, 0] = NODATA
    write_tif(tmp_path / "corner.tif", data)
    assert not has_data(scene, info, whole)
    one_band_set = Scene(role="fine", date=scene.date, path=path, bands=(2,))
    data[1, 5, 5] = 7  # data in band 2 only: a pixel has data when every band read has
    write_tif(tmp_path / "corner.tif", data)
    assert not has_data(scene, info, whole) and has_data(one_band_set, info, whole)


@pytest.mark.parametrize(
    "written", [dt.date(2004, 12, 28), "2004-12-28", "2004-12-28T10:30:00Z", "2004-12-28 23:59"]
)
def test_manifest_dates_in_iso_form_are_read_as_that_day(written: object):
    assert parse_day(written) == dt.date(2004, 12, 28)


@pytest.mark.parametrize(
    "written", [20041228, 2004.5, True, "20041228", "2004-12-28x9", "28.12.04"]
)
def test_manifest_dates_in_any_other_form_are_refused(written: object):
    with pytest.raises(ValueError, match="not a date"):
        parse_day(written)


def test_catalog_front_end_refuses_looping_links(tmp_path: Path):
    catalog = make_stac(tmp_path / "stac")
    _loop_back(catalog)
    with pytest.raises(InputError, match=r"catalog\.json: linked as a child of .* links loop"):
        find_items(catalog, collections=["sim-fine"])
