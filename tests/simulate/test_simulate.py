"""Tests of the synthetic site generator (``stfcube.pipeline.simulate``, ``stfcube simulate``)."""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from typer.testing import CliRunner

from stfcube.pipeline.errors import ConfigError, OutputError
from stfcube.pipeline.simulate import SiteSummary, simulate_site
from stfcube.pipeline.simulate.cog import OverviewPyramid, overview_shapes
from stfcube.pipeline.simulate.constants import BAND_NAMES, NODATA
from stfcube.pipeline.simulate.noise import value_noise
from stfcube.pipeline.simulate.sensors import block_mean, psf_kernel
from stfcube.pipeline.simulate.stac import ROLE_KEY, VALID_VALUES_KEY

SMALL = {"size": 128, "days": 8, "fine_every": 4, "seed": 7}


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def tif_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.tif"))}


def all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.*"))}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteSummary:
    return simulate_site(tmp_path_factory.mktemp("sim") / "site", **SMALL)


def test_site_files_dates_and_summary(site: SiteSummary) -> None:
    assert site.dates[0] == date(2024, 5, 1) and len(site.dates) == 8
    assert site.fine_dates == (date(2024, 5, 1), date(2024, 5, 5), date(2024, 5, 8))
    assert site.cloud_dates == (date(2024, 5, 5),)
    paths = [*site.truth_paths, *site.coarse_paths, *site.fine_paths, *site.mask_paths]
    assert len(paths) == 8 + 8 + 3 + 3 and all(p.is_file() for p in paths)
    assert sorted(site.out_dir.rglob("*.tif")) == sorted(paths)  # no work files left
    info = json.loads(site.site_json.read_text())
    assert info == json.loads(json.dumps(site.to_dict()))
    assert info["crs"] == "EPSG:32633" and info["coarse_ratio"] == 16 and info["size"] == 128
    assert {e["kind"] for e in info["events"]} == {"flood", "harvest"}
    assert all((site.out_dir / f).is_file() for files in info["files"].values() for f in files)
    assert info["cloud_fraction"]["2024-05-05"] > 0.05
    assert info["cloud_fraction"]["2024-05-01"] == 0


def test_rasters_are_georeferenced_cogs(site: SiteSummary) -> None:
    with rasterio.open(site.fine_paths[0]) as fine:
        assert fine.crs.to_epsg() == 32633
        assert tuple(fine.transform)[:6] == (30.0, 0.0, 400000.0, 0.0, -30.0, 5400000.0)
        assert (fine.count, fine.height, fine.width) == (6, 128, 128)
        assert fine.dtypes[0] == "int16" and fine.nodata == NODATA
        assert fine.descriptions == BAND_NAMES
        assert fine.scales == (1e-4,) * 6
        assert fine.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert fine.compression.name == "deflate"
    with rasterio.open(site.coarse_paths[0]) as coarse:
        assert coarse.crs.to_epsg() == 32633
        assert tuple(coarse.transform)[:6] == (480.0, 0.0, 400000.0, 0.0, -480.0, 5400000.0)
        assert (coarse.count, coarse.height, coarse.width) == (6, 8, 8)
    with rasterio.open(site.mask_paths[1]) as mask:
        assert mask.dtypes[0] == "uint8" and mask.count == 1
        assert set(np.unique(mask.read(1))) == {0, 1}


def test_catalog_structure(site: SiteSummary) -> None:
    catalog = pystac.Catalog.from_file(site.catalog)
    collections = {c.id: c for c in catalog.get_children()}
    assert set(collections) == {"sim-fine", "sim-coarse", "sim-truth"}
    expected = {"sim-fine": ("fine", 3), "sim-coarse": ("coarse", 8), "sim-truth": ("truth", 8)}
    for cid, (role, n_items) in expected.items():
        collection = collections[cid]
        assert collection.extra_fields[ROLE_KEY] == role
        items = list(collection.get_items())
        assert len(items) == n_items
        interval = collection.extent.temporal.intervals[0]
        assert interval[0] == items[0].datetime and interval[1] == items[-1].datetime
        west, south, east, north = collection.extent.spatial.bboxes[0]
        assert 13 < west < east < 15 and 48 < south < north < 49
        for item in items:
            assert item.properties[ROLE_KEY] == role
            assert item.properties["proj:code"] == "EPSG:32633"
            grid = 8 if role == "coarse" else 128
            assert item.properties["proj:shape"] == [grid, grid]
            data = item.assets["data"]
            assert data.roles == ["data"] and Path(data.get_absolute_href()).is_file()
            bands = data.extra_fields["raster:bands"]
            assert [b["data_type"] for b in bands] == ["int16"] * 6
            assert {(b["nodata"], b["scale"], b["offset"], b["unit"]) for b in bands} == {
                (NODATA, 1e-4, 0.0, "1")
            }
            assert [b["name"] for b in data.extra_fields["eo:bands"]] == list(BAND_NAMES)
            if role == "fine":
                mask = item.assets["mask"]
                assert mask.roles == ["cloud"] and mask.extra_fields[VALID_VALUES_KEY] == [1]
                assert Path(mask.get_absolute_href()).is_file()
    # Self-contained: every href in every JSON file is relative.
    for path in site.out_dir.rglob("*.json"):
        doc = json.loads(path.read_text())
        hrefs = [link["href"] for link in doc.get("links", [])]
        hrefs += [asset["href"] for asset in doc.get("assets", {}).values()]
        assert all(not h.startswith("/") and "://" not in h for h in hrefs), path


@pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform:DeprecationWarning")
def test_odc_stac_loads_the_native_grids(site: SiteSummary) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    catalog = pystac.Catalog.from_file(site.catalog)
    for cid, paths in (("sim-coarse", site.coarse_paths), ("sim-fine", site.fine_paths)):
        items = list(catalog.get_child(cid).get_items())
        loaded = odc_stac.load(items, bands=["data.4"], chunks={})
        with rasterio.open(paths[-1]) as ds:
            assert loaded.odc.geobox.affine == ds.transform
            np.testing.assert_array_equal(loaded["data.4"].isel(time=-1).values, ds.read(4))


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    params = {"size": 64, "days": 4, "fine_every": 2, "seed": 3}
    first = simulate_site(tmp_path / "a", **params)
    second = simulate_site(tmp_path / "b", **params)
    other = simulate_site(tmp_path / "c", **{**params, "seed": 4})
    assert all_bytes(first.out_dir) == all_bytes(second.out_dir)
    assert tif_bytes(first.out_dir).keys() == tif_bytes(other.out_dir).keys()
    assert read(first.truth_paths[0]).tobytes() != read(other.truth_paths[0]).tobytes()


def test_output_does_not_depend_on_block_rows(tmp_path: Path) -> None:
    params = {"size": 96, "days": 3, "coarse_ratio": 8, "fine_every": 2, "seed": 5}
    params["cloud_dates"] = ["2024-05-03"]
    thin = simulate_site(tmp_path / "thin", block_rows=8, **params)
    thick = simulate_site(tmp_path / "thick", block_rows=40, **params)
    whole = simulate_site(tmp_path / "whole", block_rows=96, **params)
    assert thin.config.sensor.halo() > 1  # blocks of 1 coarse row need a halo from neighbours
    assert tif_bytes(thin.out_dir) == tif_bytes(whole.out_dir) == tif_bytes(thick.out_dir)


def test_value_noise_is_tileable() -> None:
    rows, cols = np.arange(50) + 0.5, np.arange(30) + 0.5
    whole = value_noise(rows, cols, seed=1, salt=2, spacing=7.0)
    parts = [
        value_noise(rows[a:b], cols, seed=1, salt=2, spacing=7.0) for a, b in ((0, 13), (13, 50))
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert 0 <= whole.min() and whole.max() < 1 and whole.std() > 0.05


def reference_overview(full: np.ndarray, factor: int, nodata: int | None) -> np.ndarray:
    """Valid-pixel mean of ``factor × factor`` blocks (partial at the edges), rounded half up."""
    bands, height, width = full.shape
    out_h, out_w = -(-height // factor), -(-width // factor)
    out = np.empty((bands, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            cell = full[:, i * factor : (i + 1) * factor, j * factor : (j + 1) * factor]
            for b in range(bands):
                values = cell[b][cell[b] != nodata] if nodata is not None else cell[b].ravel()
                out[b, i, j] = np.floor(values.mean() + 0.5) if values.size else nodata
    return out


class FakeLevel:
    """Collects what the pyramid writes to one overview level."""

    dtype = np.dtype("int16")

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def append(self, block: np.ndarray) -> None:
        self.blocks.append(block)


@pytest.mark.parametrize("rows_per_push", [1, 3, 8, 37])
def test_streamed_overviews_match_block_means(rows_per_push: int) -> None:
    rng = np.random.default_rng(0)
    full = rng.integers(0, 10000, size=(2, 37, 23)).astype(np.int16)
    full[:, 5:14, 3:9] = NODATA
    full[1, 20:22, :] = NODATA
    levels = [FakeLevel() for _ in range(3)]
    pyramid = OverviewPyramid(levels, NODATA)
    for row in range(0, 37, rows_per_push):
        pyramid.push(full[:, row : row + rows_per_push])
    pyramid.close()
    for k, level in enumerate(levels, start=1):
        written = np.concatenate(level.blocks, axis=1)
        np.testing.assert_array_equal(written, reference_overview(full, 2**k, NODATA))
    assert overview_shapes((37, 23), block=4) == [(19, 12), (10, 6), (5, 3), (3, 2)]


def test_large_site_cogs_carry_streamed_overviews(tmp_path: Path) -> None:
    params = {"size": 1056, "days": 2, "bands": ("red", "nir"), "seed": 1}
    params["cloud_dates"] = ["2024-05-02"]
    thin = simulate_site(tmp_path / "thin", block_rows=48, **params)
    whole = simulate_site(tmp_path / "whole", block_rows=1056, **params)
    assert tif_bytes(thin.out_dir) == tif_bytes(whole.out_dir)
    with rasterio.open(thin.fine_paths[1]) as ds:
        assert ds.overviews(1) == [2, 4]
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        full = ds.read()
        half = ds.read(out_shape=(2, 528, 528))  # read from the first overview level
    np.testing.assert_array_equal(half, reference_overview(full, 2, NODATA))


def coarse_site(tmp_path: Path, name: str, **sensor: object) -> SiteSummary:
    params = {"size": 128, "days": 3, "coarse_ratio": 8, "fine_every": 2, "seed": 11}
    return simulate_site(tmp_path / name, cloud_dates=(), **params, **sensor)


def test_coarse_is_exact_block_mean_without_psf_shift_noise(tmp_path: Path) -> None:
    site = coarse_site(tmp_path, "ideal", psf_sigma=0, misregistration=(0, 0), coarse_noise=0)
    for truth_path, coarse_path in zip(site.truth_paths, site.coarse_paths, strict=True):
        expected = np.rint(block_mean(read(truth_path), 8)).astype(np.int16)
        np.testing.assert_array_equal(read(coarse_path), expected)


def test_coarse_shift_moves_the_image(tmp_path: Path) -> None:
    site = coarse_site(tmp_path, "shift", psf_sigma=0, misregistration=(0, 1.0), coarse_noise=0)
    means = np.rint(block_mean(read(site.truth_paths[1]), 8)).astype(np.int16)
    coarse = read(site.coarse_paths[1])
    np.testing.assert_array_equal(coarse[:, :, :-1], means[:, :, 1:])  # sees one pixel east
    np.testing.assert_array_equal(coarse[:, :, -1], means[:, :, -1])  # edge replicated


def test_coarse_is_blurred_shifted_noisy_block_mean(tmp_path: Path) -> None:
    site = coarse_site(tmp_path, "real")  # defaults: sigma 0.5, shift (0.2, 0.3), noise 1 %
    sensor = site.config.sensor
    k_rows, k_cols = sensor.kernels()
    residuals = []
    for truth_path, coarse_path in zip(site.truth_paths, site.coarse_paths, strict=True):
        means = block_mean(read(truth_path), 8)
        plain = np.rint(means)
        coarse = read(coarse_path).astype(np.float64)
        assert np.abs(coarse - plain).mean() > 50  # not a copy of the block mean
        r = (k_rows.size - 1) // 2
        padded = np.pad(means, ((0, 0), (r, r), (r, r)), mode="edge")
        blurred = sum(
            w_r * w_c * padded[:, i : i + 16, j : j + 16]
            for i, w_r in enumerate(k_rows)
            for j, w_c in enumerate(k_cols)
        )
        residuals.append(coarse - blurred)
    noise = np.concatenate([r.ravel() for r in residuals])
    assert abs(noise.mean()) < 10  # 1 % reflectance = 100 DN std, over 4608 samples
    assert 90 < noise.std() < 110


def test_psf_kernel_moments() -> None:
    np.testing.assert_array_equal(psf_kernel(0, 0), [1.0])
    np.testing.assert_allclose(psf_kernel(0, 0.25), [0, 0.75, 0.25])
    for sigma, shift in ((0.5, 0.3), (0.5, -0.2), (1.0, 1.4)):
        weights = psf_kernel(sigma, shift)
        offsets = np.arange(weights.size) - (weights.size - 1) // 2
        assert weights.sum() == pytest.approx(1)
        assert (weights * offsets).sum() == pytest.approx(shift)


def test_change_events_are_abrupt(tmp_path: Path) -> None:
    site = simulate_site(
        tmp_path / "events", size=128, days=6, seed=2, flood_day=4, harvest_day=2, cloud_dates=()
    )
    events = {e.kind: e for e in site.events}
    assert events["flood"].day == 4 and events["flood"].date == date(2024, 5, 5)
    assert events["flood"].pixels > 200 and events["harvest"].pixels > 200
    nir = [read(p)[BAND_NAMES.index("nir")].astype(int) for p in site.truth_paths]
    jumps = [int((np.abs(b - a) > 500).sum()) for a, b in itertools.pairwise(nir)]
    # jumps[d - 1] compares day d with day d - 1: only event days change abruptly.
    assert jumps[0] == jumps[2] == jumps[4] == 0
    assert jumps[1] >= 0.9 * events["harvest"].pixels
    assert jumps[3] >= 0.8 * events["flood"].pixels


def test_fine_differs_from_truth_only_where_masked(site: SiteSummary) -> None:
    fine_days = site.config.fine_days
    for day, fine_path, mask_path in zip(fine_days, site.fine_paths, site.mask_paths, strict=True):
        truth, fine, mask = read(site.truth_paths[day]), read(fine_path), read(mask_path)[0]
        np.testing.assert_array_equal(fine[:, mask == 1], truth[:, mask == 1])
        if site.dates[day] in site.cloud_dates:
            assert 0.05 < (mask == 0).mean() < 0.8
            assert (fine == NODATA).any() and (fine[:, mask == 1] != NODATA).all()
            hidden = (fine != truth).any(axis=0)
            assert hidden[mask == 0].mean() > 0.95
            seen = (fine != NODATA).all(axis=0)
            shadow = (fine < truth).all(axis=0) & seen
            cloud = (fine > truth).all(axis=0) & seen
            assert shadow.sum() > 20 and cloud.sum() > 20 and not (mask[shadow | cloud]).any()
        else:
            assert mask.all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 100}, "multiple of --coarse-ratio 16"),
        ({"size": 64, "block_rows": 24}, "--block-rows 24"),
        ({"size": 64, "bands": ("red", "pan")}, "--bands"),
        ({"size": 64, "days": 10, "cloud_dates": ["2024-05-02"]}, "not fine-sensor dates"),
        ({"size": 64, "days": 1}, "--days"),
        ({"size": 64, "start_date": "May 1st"}, "YYYY-MM-DD"),
        ({"size": 64, "days": 4, "flood_day": 9}, "flood_day"),
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate_site(tmp_path / "out", **params)
    assert not (tmp_path / "out").exists()


def test_output_directory_rules(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        simulate_site(busy, size=32, days=2)
    with pytest.raises(OutputError, match="not something stfcube wrote"):
        simulate_site(busy, size=32, days=2, overwrite=True)
    assert (busy / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    first = simulate_site(empty, size=32, days=2)
    with pytest.raises(OutputError, match="--overwrite"):
        simulate_site(empty, size=32, days=2)
    again = simulate_site(empty, size=32, days=3, overwrite=True)
    assert len(again.truth_paths) == 3 and first.out_dir == again.out_dir
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_site(tmp_path / "site", size=64, days=2, block_rows=16, progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_a_site_and_reports_errors(tmp_path: Path) -> None:
    from stfcube.pipeline.cli import app  # imports every command; keep the other tests independent

    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["simulate", str(out), "--size", "64", "--days", "3", "--bands", "red,nir"]
    result = runner.invoke(app, [*args, "--cloud-dates", "none", "--shift", "0,0"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "site.json").read_text())
    assert info["bands"] == ["red", "nir"] and info["cloud_dates"] == []
    assert info["coarse_sensor"]["shift_rows"] == 0
    failed = runner.invoke(app, ["simulate", str(tmp_path / "bad"), "--size", "70"])
    assert isinstance(failed.exception, ConfigError)
    help_text = runner.invoke(app, ["simulate", "--help"]).output
    assert "Examples" in help_text and "--coarse-ratio" in help_text
