"""Inputs that read without error but would be wrong (issue 21): refused before anything is written.

Each refusal is one :class:`InputError` naming the file and the problem, exit code 2 from
``stfcube ingest`` without a traceback, and every file under the test folder (sources and any
existing cube) byte-for-byte unchanged, no cube created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from test_ingest import (
    BANDS,
    FINE_RES,
    NODATA,
    ORIGIN,
    RATIO,
    coarse_image,
    fine_image,
    make_site,
    make_stac,
    write_manifest,
    write_tif,
)
from test_ingest_reliability import NEW_DAY, Refusal, _site_cube, _with_scene

from helpers.checksums import file_checksums
from helpers.cli import one_line, run_stfcube
from helpers.refusals import assert_ingest_refuses
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest import ingest
from stfcube.pipeline.ingest.sanity import parse_units
from stfcube.pipeline.store.cube import open_cube


def _describe_bands(path: Path, names: list[str]) -> Path:
    """Give a GeoTIFF's bands descriptions (stored in the file, as GDAL writes them)."""
    with rasterio.open(path, "r+") as dst:
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)
    return path


def _pixel_size(path: Path, width: float, height: float) -> Path:
    """Give a GeoTIFF pixels of ``width`` x ``height`` (same origin)."""
    with rasterio.open(path, "r+") as dst:
        dst.transform = Affine(width, 0, ORIGIN[0], 0, -height, ORIGIN[1])
    return path


def _new_site(tmp_path: Path, fine_days: list[str], coarse_days: list[str]) -> tuple[Path, Path]:
    """A site's manifest and the path of a cube not yet created."""
    return make_site(tmp_path / "site", fine_days, coarse_days), tmp_path / "cube.zarr"


# ----------------------------------------------------------------------------- band identity


def _band_order(tmp_path: Path) -> Refusal:
    """A fine file whose GeoTIFF descriptions list the cube's bands in reverse order."""
    manifest, cube = _site_cube(tmp_path)
    tif = write_tif(manifest.parent / "bad.tif", fine_image(4))
    _describe_bands(tif, BANDS[::-1])
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "bad.tif"})
    problem = (
        "band order contradicts the cube's: its bands [1, 2, 3] are named "
        "['swir1', 'nir', 'red'] (GeoTIFF band descriptions) where the cube's bands are "
        "['red', 'nir', 'swir1']; refusing to read one band as another: give this scene "
        "`bands: [3, 2, 1]`"
    )
    return manifest, cube, problem, "bad.tif"


def _stac_band_order(tmp_path: Path) -> Refusal:
    """STAC coarse items whose eo:bands common names swap red and nir."""
    catalog = make_stac(tmp_path / "stac")
    for item in sorted((catalog.parent / "sim-coarse").glob("*/*.json")):
        document = json.loads(item.read_text())
        document["assets"]["data"]["eo:bands"] = [
            {"name": f"sur_refl_b0{i}", "common_name": common}
            for i, common in enumerate(["nir", "red", "swir1"], start=1)
        ]
        item.write_text(json.dumps(document))
    problem = (
        "band order contradicts the cube's: its bands [1, 2, 3] are named ['nir', 'red', "
        "'swir1'] (STAC eo:bands) where the cube's bands are ['red', 'nir', 'swir1']"
    )
    return catalog, tmp_path / "cube.zarr", problem, "coarse_2021-06-01.tif: "


# ----------------------------------------------------------------------------- units


def _coarse_reflectance_without_scale(tmp_path: Path) -> Refusal:
    """A coarse file in 0..1 reflectance with no scale, beside fine scenes in 0..10000."""
    manifest, cube = _site_cube(tmp_path)
    reflectance = coarse_image(2).astype(np.float32) / 10_000
    write_tif(manifest.parent / "bad.tif", reflectance, res=FINE_RES * RATIO, nodata=None)
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    problem = "cannot be reflectance x 10000: set `scale: 10000` for it (now 1)"
    return manifest, cube, problem, "bad.tif"


def _coarse_scaled_twice(tmp_path: Path) -> Refusal:
    """A coarse file already x 10000 given ``scale: 10000``."""
    manifest, cube = _site_cube(tmp_path)
    write_tif(manifest.parent / "bad.tif", coarse_image(2), res=FINE_RES * RATIO)
    scene = {"role": "coarse", "date": NEW_DAY, "path": "bad.tif", "scale": 10_000}
    _with_scene(manifest, scene)
    return manifest, cube, "set `scale: 1` for it (now 10000)", "bad.tif"


def _coarse_all_zero_fill(tmp_path: Path) -> Refusal:
    """A coarse file of 0 (its undeclared fill) everywhere."""
    manifest, cube = _site_cube(tmp_path)
    zeros = np.zeros_like(coarse_image(2))
    write_tif(manifest.parent / "bad.tif", zeros, res=FINE_RES * RATIO, nodata=None)
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    problem = "values 0 .. 0 (1st..99th percentile, after scale 1, offset 0) cannot be "
    return manifest, cube, problem + "reflectance x 10000: check its scale", "bad.tif"


def _coarse_undeclared_fill(tmp_path: Path) -> Refusal:
    """A coarse file whose left quarter is -9999 fill, with no nodata declared."""
    manifest, cube = _site_cube(tmp_path)
    data = coarse_image(2)
    data[:, :, :1] = -9999
    write_tif(manifest.parent / "bad.tif", data, res=FINE_RES * RATIO, nodata=None)
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "an undeclared fill value? set `nodata: -9999`", "bad.tif"


# ----------------------------------------------------------------------------- grids


def _fine_30_by_20(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    _pixel_size(write_tif(manifest.parent / "bad.tif", fine_image(4)), 30, 20)
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "pixels are 30 x 20, not square", "bad.tif"


def _new_cube_30_by_20(tmp_path: Path) -> Refusal:
    manifest, cube = _new_site(tmp_path, ["2021-06-01"], ["2021-06-01"])
    _pixel_size(manifest.parent / "fine_2021-06-01.tif", 30, 20)
    return manifest, cube, "pixels are 30 x 20, not square", "fine_2021-06-01.tif"


def _coarse_240_by_160(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    tif = write_tif(manifest.parent / "bad.tif", coarse_image(2), res=FINE_RES * RATIO)
    _pixel_size(tif, 240, 160)
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "pixels are 240 x 160, not square", "bad.tif"


def _one_pixel(tmp_path: Path) -> Refusal:
    """A 1 x 1 fine image with a 1 x 1 coarse image of 8 x 8 fine pixels."""
    manifest, cube = _new_site(tmp_path, ["2021-06-01"], ["2021-06-01"])
    write_tif(manifest.parent / "fine_2021-06-01.tif", fine_image(0)[:, :1, :1])
    write_tif(manifest.parent / "mask_2021-06-01.tif", np.ones((1, 1), np.uint8), nodata=None)
    problem = "the fine grid is 1x1 pixels, smaller than one coarse pixel (8x8 fine pixels)"
    return manifest, cube, problem, "fine_2021-06-01.tif"


def _one_pixel_alone(tmp_path: Path) -> Refusal:
    manifest, cube = _new_site(tmp_path, [], [])
    write_tif(manifest.parent / "one.tif", fine_image(0)[:, :1, :1])
    write_manifest(manifest, [{"role": "fine", "date": NEW_DAY, "path": "one.tif"}])
    return manifest, cube, "the fine grid is 1x1 pixels, smaller than 2x2", "one.tif"


# ----------------------------------------------------------------------------- messages


def _fine_without_crs(tmp_path: Path) -> Refusal:
    """The fine scene lacks the CRS: it is the one named, not the healthy coarse scene."""
    manifest, cube = _new_site(tmp_path, ["2021-06-01"], ["2021-06-01"])
    write_tif(manifest.parent / "fine_2021-06-01.tif", fine_image(0), crs=None)
    problem = "has no CRS while the coarse scene"
    return manifest, cube, problem, "fine_2021-06-01.tif: "


def _first_fine_without_crs(tmp_path: Path) -> Refusal:
    """Of two fine scenes, the first (the grid's source) lacks the CRS the second has."""
    manifest, cube = _new_site(tmp_path, ["2021-06-01", "2021-06-17"], [])
    write_tif(manifest.parent / "fine_2021-06-01.tif", fine_image(0), crs=None)
    problem = "has no CRS while the fine scene"
    return manifest, cube, problem, "fine_2021-06-01.tif: "


def _fine_without_crs_its_mask_has_one(tmp_path: Path) -> Refusal:
    manifest, cube = _new_site(tmp_path, ["2021-06-01"], [])
    write_tif(manifest.parent / "fine_2021-06-01.tif", fine_image(0), crs=None)
    return manifest, cube, "has no CRS while its mask", "fine_2021-06-01.tif: "


def _symlink_loop(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    os.symlink("bad.tif", manifest.parent / "bad.tif")
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "symlink loop", "bad.tif"


def _broken_link(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    os.symlink("gone.tif", manifest.parent / "bad.tif")
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "bad.tif"})
    return manifest, cube, "broken symbolic link to gone.tif", "bad.tif"


def _manifest_symlink_loop(tmp_path: Path) -> Refusal:
    manifest, cube = _site_cube(tmp_path)
    loop = manifest.parent / "loop.yaml"
    os.symlink("other.yaml", loop)
    os.symlink("loop.yaml", manifest.parent / "other.yaml")
    return loop, cube, "symlink loop", "loop.yaml"


CASES: dict[str, Callable[[Path], Refusal]] = {
    "band-order-geotiff": _band_order,
    "band-order-stac": _stac_band_order,
    "units-reflectance-without-scale": _coarse_reflectance_without_scale,
    "units-scaled-twice": _coarse_scaled_twice,
    "units-all-zero-fill": _coarse_all_zero_fill,
    "units-undeclared-fill": _coarse_undeclared_fill,
    "fine-pixels-30x20-append": _fine_30_by_20,
    "fine-pixels-30x20-new-cube": _new_cube_30_by_20,
    "coarse-pixels-240x160": _coarse_240_by_160,
    "one-pixel-image": _one_pixel,
    "one-pixel-image-without-coarse": _one_pixel_alone,
    "fine-scene-without-crs": _fine_without_crs,
    "first-fine-scene-without-crs": _first_fine_without_crs,
    "fine-scene-without-crs-its-mask-has-one": _fine_without_crs_its_mask_has_one,
    "symlink-loop": _symlink_loop,
    "broken-symlink": _broken_link,
    "manifest-symlink-loop": _manifest_symlink_loop,
}


@pytest.mark.parametrize("case", list(CASES))
def test_wrong_input_is_refused_naming_the_file_and_changes_nothing(tmp_path: Path, case: str):
    assert_ingest_refuses(*CASES[case](tmp_path), root=tmp_path)


# ----------------------------------------------------------------------------- what still passes


def test_band_descriptions_in_order_or_in_another_vocabulary_are_ingested(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], ["2021-06-01"])
    _describe_bands(manifest.parent / "fine_2021-06-01.tif", [b.upper() for b in BANDS])
    _describe_bands(manifest.parent / "coarse_2021-06-01.tif", ["B4", "B5", "B6"])
    report = ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    assert len(report.written) == 2


def test_reordered_bands_listed_in_the_manifest_are_ingested(tmp_path: Path):
    """The fix the refusal suggests: ``bands: [3, 2, 1]`` reads the file in the cube's order."""
    manifest = make_site(tmp_path / "site", ["2021-06-01"], [])
    tif = write_tif(manifest.parent / "rev.tif", fine_image(4)[::-1])
    _describe_bands(tif, BANDS[::-1])
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "rev.tif", "bands": [3, 2, 1]})
    ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    stored = open_cube(tmp_path / "cube.zarr")["fine"].sel(time=NEW_DAY).values
    expected = fine_image(4).astype(np.float32)
    present = np.isfinite(stored)
    np.testing.assert_array_equal(stored[present], expected[present])


def test_units_with_an_unknown_range_are_not_checked(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], [])
    tiny = fine_image(0).astype(np.float32) / 1e6
    write_tif(manifest.parent / "fine_2021-06-01.tif", tiny)
    data = yaml.safe_load(manifest.read_text())
    write_manifest(manifest, data["scenes"], units="kelvin")
    assert ingest(manifest, tmp_path / "cube.zarr", chunk=16).written == ("fine 2021-06-01",)


@pytest.mark.parametrize(
    ("units", "factor"),
    [
        ("reflectance x 10000", ("reflectance", 10_000.0)),
        ("NDVI x 10000", ("ndvi", 10_000.0)),
        ("reflectance*10,000", ("reflectance", 10_000.0)),
        ("reflectance", ("reflectance", 1.0)),
        ("kelvin", None),
        ("digital numbers", None),
    ],
)
def test_parse_units(units: str, factor: tuple[str, float] | None):
    assert parse_units(units) == factor


# ----------------------------------------------------------------------------- valid shares


def test_every_written_image_reports_its_valid_share(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01", "2021-06-17"], ["2021-06-01"])
    report = ingest(manifest, tmp_path / "cube.zarr", chunk=16)
    ds = open_cube(tmp_path / "cube.zarr")
    shares = dict(report.valid_shares)
    assert sorted(shares) == sorted(report.written)
    for label, share in shares.items():
        sensor, day = label.split()
        assert share == pytest.approx(float(ds[f"{sensor}_valid"].sel(time=day).mean()))
    lowest = min(shares, key=shares.__getitem__)
    assert f"valid pixels {shares[lowest]:.1%} ({lowest}) to 100.0% of the grid" in report.summary()


def test_a_fully_masked_scene_is_ingested_with_a_warning(tmp_path: Path):
    """A fully clouded scene is a valid observation, but its 0 % valid share is said loudly."""
    manifest = make_site(tmp_path / "site", ["2021-06-01", "2021-06-17"], [])
    write_tif(manifest.parent / "mask_2021-06-17.tif", np.zeros((32, 32), np.uint8), nodata=None)
    result = run_stfcube("ingest", manifest, tmp_path / "cube.zarr", "--chunk", "16")
    assert result.returncode == 0, result.stderr
    printed = one_line(result.stdout + result.stderr)
    assert "fine_2021-06-17.tif: fine 2021-06-17 has no valid pixel on the grid" in printed
    assert "valid pixels 0.0% (fine 2021-06-17)" in printed


# ----------------------------------------------------------------------------- --skip-empty


def test_skip_empty_leaves_out_empty_scenes_and_names_each(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], ["2021-06-01"])
    write_tif(manifest.parent / "nodata.tif", np.full((3, 32, 32), NODATA, dtype=np.int16))
    far = (ORIGIN[0] + 100_000, ORIGIN[1])
    write_tif(manifest.parent / "far.tif", coarse_image(1), res=FINE_RES * RATIO, origin=far)
    _with_scene(manifest, {"role": "fine", "date": NEW_DAY, "path": "nodata.tif"})
    _with_scene(manifest, {"role": "coarse", "date": NEW_DAY, "path": "far.tif"})
    cube = tmp_path / "cube.zarr"
    result = run_stfcube("ingest", manifest, cube, "--chunk", "16", "--skip-empty")
    assert result.returncode == 0, result.stderr
    printed = one_line(result.stdout + result.stderr)
    skipped = f"skipped (--skip-empty): {manifest.parent / 'nodata.tif'}: fine {NEW_DAY} has no "
    assert skipped in printed
    assert f"{manifest.parent / 'far.tif'}: coarse {NEW_DAY} does not overlap" in printed
    times = open_cube(cube)["time"].values.astype("datetime64[D]").astype(str).tolist()
    assert times == ["2021-06-01"]


def test_skip_empty_with_no_fine_scene_left_is_refused(tmp_path: Path):
    manifest = make_site(tmp_path / "site", ["2021-06-01"], ["2021-06-01"])
    write_tif(manifest.parent / "fine_2021-06-01.tif", np.full((3, 32, 32), NODATA, np.int16))
    before = file_checksums(tmp_path)
    with pytest.raises(InputError, match=r"manifest\.yaml: no fine scene left with data"):
        ingest(manifest, tmp_path / "cube.zarr", skip_empty=True)
    assert file_checksums(tmp_path) == before


def test_units_differing_from_the_cube_are_refused(tmp_path: Path):
    manifest, cube = _site_cube(tmp_path)
    data = yaml.safe_load(manifest.read_text())
    write_manifest(manifest, data["scenes"], units="NDVI x 10000")
    assert_ingest_refuses(
        manifest,
        cube,
        "units 'NDVI x 10000' differ from the cube's 'reflectance x 10000'",
        "manifest.yaml: ",
        root=tmp_path,
    )
