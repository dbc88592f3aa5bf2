"""The tiled engine: tiled == whole image, resume, incremental dates, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from helpers.hooks import KILL_AT_WRITE, hook_environment
from stfcube.kernels.starfm import starfm
from stfcube.pipeline.engine.run import fuse, prepare_fusion, run_fusion
from stfcube.pipeline.errors import ConfigError, InputError, OutputError

PAIR_DATES = ["2024-05-01", "2024-05-09"]
PREDICT_DATES = ["2024-05-03", "2024-05-05", "2024-05-07"]
SMALL = {"max_search_distance": 300.0}  # W = 20, halo 10: quick on the CI machine


@pytest.fixture(scope="module")
def small_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 130 x 150, 2-band cube: fine on two dates, coarse daily, a cloud on the second pair."""
    days = [f"2024-05-{d:02d}" for d in range(1, 10)]
    truth = synthetic_scene((130, 150), 2, days, seed=1)
    coarse = block_mean({d: truth[d] for d in PAIR_DATES + PREDICT_DATES}, 16)
    fine = {d: truth[d].copy() for d in PAIR_DATES}
    cloud = np.ones((130, 150), dtype=bool)
    cloud[40:70, 90:130] = False
    fine["2024-05-09"][:, ~cloud] = np.nan
    path = tmp_path_factory.mktemp("cube") / "cube.zarr"
    return write_cube(path, fine, coarse, fine_valid={"2024-05-09": cloud}, chunk=32)


def whole_image_reference(cube_path: Path, pair_dates, predict_dates, params) -> np.ndarray:
    """One whole-image kernel call per band: what the tiled engine must reproduce bit for bit."""
    cube = xr.open_zarr(cube_path, consolidated=False).load()
    pairs = [np.datetime64(d, "ns") for d in pair_dates]
    preds = [np.datetime64(d, "ns") for d in predict_dates]
    fine, coarse = cube["fine"].sel(time=pairs), cube["coarse"].sel(time=pairs)
    out = []
    for b in range(cube.sizes["band"]):
        result = starfm(
            fine.values[:, b],
            coarse.values[:, b],
            cube["coarse"].sel(time=preds).values[:, b],
            fine_valid=cube["fine_valid"].sel(time=pairs).values,
            coarse_valid=cube["coarse_valid"].sel(time=pairs).values,
            coarse_pred_valid=cube["coarse_valid"].sel(time=preds).values,
            **params,
        )
        out.append(result.prediction)
    return np.stack(out, axis=1)


def read_fused(path: Path, dates) -> np.ndarray:
    fused = xr.open_zarr(path, consolidated=False)["fused"]
    return fused.sel(time=[np.datetime64(d, "ns") for d in dates]).values


@pytest.mark.parametrize("tile", [16, 64, 100, 512])
def test_tiled_equals_whole_image(small_cube: Path, tmp_path: Path, tile: int) -> None:
    out = tmp_path / f"fused_{tile}.zarr"
    report = fuse(small_cube, out, tile=tile, params=SMALL, local_threads=2)
    assert report.dates == PREDICT_DATES
    assert report.groups == [{"pairs": PAIR_DATES, "dates": PREDICT_DATES}]
    expected = whole_image_reference(small_cube, PAIR_DATES, PREDICT_DATES, SMALL)
    np.testing.assert_array_equal(read_fused(out, PREDICT_DATES), expected)
    assert np.isfinite(expected).mean() > 0.99


def test_output_metadata_and_quality(small_cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused.zarr"
    fuse(small_cube, out, tile=64, params=SMALL, local_threads=2)
    fused = xr.open_zarr(out, consolidated=False)
    assert fused.attrs["method"] == "starfm"
    assert fused.attrs["complete"] is True
    assert json.loads(fused.attrs["pairs_used"])["2024-05-05"] == PAIR_DATES
    assert json.loads(fused.attrs["parameters"])["max_search_distance"] == 300.0
    assert fused.rio.crs.to_epsg() == 32633
    cube = xr.open_zarr(small_cube, consolidated=False)
    np.testing.assert_array_equal(fused["x"].values, cube["x"].values)
    assert list(fused["band"].values) == ["b1", "b2"]
    quality = fused["quality"].values
    assert quality.dtype == np.uint16
    assert ((quality == 0) == np.isnan(fused["fused"].values)).all()
    assert fused["tile_done"].values.all()


def test_distributed_cluster_matches_thread_pool(small_cube: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    local = fuse(small_cube, tmp_path / "a.zarr", tile=64, params=SMALL, local_threads=1)
    with (
        LocalCluster(  # two workers: each is given a band of tiles (spatial_shares)
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        dist = fuse(small_cube, tmp_path / "b.zarr", tile=64, params=SMALL, client=client)
    assert dist.tiles_computed == local.tiles_computed == 9
    np.testing.assert_array_equal(
        read_fused(tmp_path / "a.zarr", PREDICT_DATES),
        read_fused(tmp_path / "b.zarr", PREDICT_DATES),
    )


def test_batches_of_one_prepared_run_equal_a_single_run(small_cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused.zarr"
    setup = prepare_fusion(small_cube, out, tile=64, params=SMALL)
    blocks = [(0, 64, 0, 150), (64, 130, 0, 150)]
    reports = []
    for d in PREDICT_DATES:
        for b in blocks:
            assert xr.open_zarr(out, consolidated=False).attrs["complete"] is False
            reports.append(run_fusion(setup, dates=[d], region=b))
    assert [r.tiles_computed for r in reports] == [3, 6] * 3
    assert all(r.dates_computed == r.dates and len(r.dates) == 1 for r in reports)
    expected = whole_image_reference(small_cube, PAIR_DATES, PREDICT_DATES, SMALL)
    np.testing.assert_array_equal(read_fused(out, PREDICT_DATES), expected)
    # the last batch completes the store (as the flows run it: batch by batch)
    assert xr.open_zarr(out, consolidated=False).attrs["complete"] is True
    assert run_fusion(setup).tiles_computed == 0
    assert xr.open_zarr(out, consolidated=False).attrs["complete"] is True
    with pytest.raises(ConfigError, match="not in the prepared run"):
        run_fusion(setup, dates=["2024-05-02"])


def test_rerun_is_a_no_op_and_other_parameters_are_refused(
    small_cube: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fused.zarr"
    first = fuse(small_cube, out, tile=64, params=SMALL, local_threads=2)
    again = fuse(small_cube, out, tile=64, params=SMALL, local_threads=2)
    assert (first.tiles_computed, again.tiles_computed, again.tiles_skipped) == (9, 0, 9)
    with pytest.raises(OutputError, match="other parameters"):
        fuse(small_cube, out, tile=64, params={"max_search_distance": 450.0})
    replaced = fuse(small_cube, out, tile=64, params={"max_search_distance": 450.0}, overwrite=True)
    assert replaced.tiles_computed == 9


def test_new_dates_are_appended_and_only_they_are_computed(
    small_cube: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fused.zarr"
    first = fuse(small_cube, out, dates=["2024-05-03"], tile=64, params=SMALL, local_threads=2)
    assert first.dates_computed == ["2024-05-03"]
    second = fuse(small_cube, out, dates=PREDICT_DATES, tile=64, params=SMALL, local_threads=2)
    assert second.dates_computed == ["2024-05-03", "2024-05-05", "2024-05-07"]
    assert second.tiles_skipped == 0  # the group changed: one task covers all three dates
    expected = whole_image_reference(small_cube, PAIR_DATES, PREDICT_DATES, SMALL)
    np.testing.assert_array_equal(read_fused(out, PREDICT_DATES), expected)
    third = fuse(small_cube, out, dates=["2024-05-05"], tile=64, params=SMALL, local_threads=2)
    assert third.tiles_computed == 0


def test_changed_pairs_recompute_the_date(tmp_path: Path) -> None:
    days = ["2024-05-01", "2024-05-03", "2024-05-05"]
    truth = synthetic_scene((48, 48), 1, days, seed=3)
    coarse = block_mean(truth, 8)
    cube = tmp_path / "cube.zarr"
    write_cube(cube, {"2024-05-01": truth["2024-05-01"]}, coarse, chunk=16)
    out = tmp_path / "fused.zarr"
    first = fuse(cube, out, dates=["2024-05-03"], tile=16, params=SMALL)
    assert first.groups == [{"pairs": ["2024-05-01"], "dates": ["2024-05-03"]}]
    # a new fine scene arrives on 05-05: 05-03 now has a pair on each side and is recomputed
    write_cube(cube, {d: truth[d] for d in ("2024-05-01", "2024-05-05")}, coarse, chunk=16)
    second = fuse(cube, out, dates=["2024-05-03"], tile=16, params=SMALL)
    assert second.dates_computed == ["2024-05-03"]
    assert second.tiles_computed == 9
    expected = whole_image_reference(cube, ["2024-05-01", "2024-05-05"], ["2024-05-03"], SMALL)
    np.testing.assert_array_equal(read_fused(out, ["2024-05-03"]), expected)
    pairs_used = json.loads(xr.open_zarr(out, consolidated=False).attrs["pairs_used"])
    assert pairs_used["2024-05-03"] == ["2024-05-01", "2024-05-05"]


def test_cloudy_pair_is_skipped(tmp_path: Path) -> None:
    days = ["2024-06-01", "2024-06-02", "2024-06-03"]
    truth = synthetic_scene((40, 40), 1, days)
    fine = {"2024-06-01": truth["2024-06-01"], "2024-06-03": truth["2024-06-03"]}
    cloudy = np.zeros((40, 40), dtype=bool)
    cloudy[:5] = True  # 12.5 % valid
    cube = write_cube(
        tmp_path / "c.zarr", fine, block_mean(truth, 8), fine_valid={"2024-06-03": cloudy}
    )
    report = fuse(cube, tmp_path / "f.zarr", params=SMALL)
    assert report.skipped_pairs == ["2024-06-03"]
    assert report.groups == [{"pairs": ["2024-06-01"], "dates": ["2024-06-02", "2024-06-03"]}]


def test_bad_input_is_reported_clearly(small_cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "fused.zarr"
    with pytest.raises(ConfigError, match="unknown fusion method 'magic'"):
        fuse(small_cube, out, method="magic")
    with pytest.raises(ConfigError, match="date 2023-01-01 is not in the cube"):
        fuse(small_cube, out, dates=["2023-01-01"])
    with pytest.raises(ConfigError, match="2024-05-03: no usable pair with rule 'after'"):
        fuse(small_cube, out, dates=["2024-05-03"], pairs="after", min_pair_valid_fraction=0.99)
    with pytest.raises(ConfigError, match="unknown starfm parameter"):
        fuse(small_cube, out, params={"window": 3})
    a_file = tmp_path / "a_file.zarr"
    a_file.write_text("not a store")
    with pytest.raises(OutputError, match="is a file"):
        fuse(small_cube, a_file, params=SMALL)
    assert a_file.read_text() == "not a store"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match="not a readable Zarr store"):
        fuse(plain, out)
    assert not out.exists()


def test_unreachable_scheduler_is_reported(small_cube: Path, tmp_path: Path) -> None:
    from stfcube.pipeline.engine.cluster import ClusterSpec

    with pytest.raises(ConfigError, match="cannot reach the dask scheduler"):
        fuse(
            small_cube,
            tmp_path / "f.zarr",
            params=SMALL,
            cluster=ClusterSpec(scheduler="tcp://127.0.0.1:9", connect_timeout="2s"),
        )


def _done_tiles(out: Path) -> int:
    try:
        return int(zarr.open_group(str(out), mode="r")["tile_done"][...].sum())
    except Exception:
        return 0


#: The run (90 tiles x 3 dates, one tile at a time) is killed at the N-th write of a tile's
#: completion marker: the first tile's, mid-run, and the very last one (its final writes).
KILL_MOMENTS = {"first-tiles": (1, 0), "middle": (135, 44), "final-writes": (270, 89)}


@pytest.mark.parametrize("moment", sorted(KILL_MOMENTS))
def test_killed_run_resumes_only_missing_tiles(
    small_cube: Path, tmp_path: Path, moment: str
) -> None:
    write, done_tiles = KILL_MOMENTS[moment]
    env = hook_environment(
        tmp_path / "hook",
        KILL_AT_WRITE,
        STFCUBE_TEST_KILL_KEY=r"^tile_done/c/",
        STFCUBE_TEST_KILL_AT=str(write),
    )
    out = tmp_path / "fused.zarr"
    stfcube = Path(sys.executable).with_name("stfcube")
    cmd = [str(stfcube), "fuse", str(small_cube), str(out), "--tile", "16", "--workers", "1"]
    cmd += ["--threads-per-worker", "1", "--quiet", "-p", "max_search_distance=300.0"]
    killed = subprocess.run(cmd, env=env, capture_output=True, check=False)
    assert killed.returncode == -9, killed.stderr
    done_before = _done_tiles(out) // 3
    assert done_before == done_tiles
    assert not xr.open_zarr(out, consolidated=False).attrs["complete"]
    total = 9 * 10
    resumed = fuse(small_cube, out, tile=16, params=SMALL, local_threads=2)
    assert resumed.tiles_skipped == done_before
    assert resumed.tiles_computed == total - done_before
    clean = fuse(small_cube, tmp_path / "clean.zarr", tile=16, params=SMALL, local_threads=2)
    assert clean.tiles_computed == total
    for variable in ("fused", "quality", "tile_done"):
        np.testing.assert_array_equal(
            xr.open_zarr(out, consolidated=False)[variable].values,
            xr.open_zarr(tmp_path / "clean.zarr", consolidated=False)[variable].values,
        )
    assert xr.open_zarr(out, consolidated=False).attrs["complete"] is True


def test_fuse_command_on_a_simulated_site(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stfcube.pipeline.cli import app
    from stfcube.pipeline.ingest.scenes import ingest
    from stfcube.pipeline.simulate.site import simulate_site

    site = simulate_site(tmp_path / "site", size=64, days=6, fine_every=5, cloud_dates=[])
    ingest(site.catalog, tmp_path / "cube.zarr", chunk=32)
    out = tmp_path / "fused.zarr"
    args = [
        "fuse",
        str(tmp_path / "cube.zarr"),
        str(out),
        "--tile",
        "32",
        "--workers",
        "1",
        "--threads-per-worker",
        "2",
        "--quiet",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    fused = xr.open_zarr(out, consolidated=False)
    cube = xr.open_zarr(tmp_path / "cube.zarr", consolidated=False)
    coarse_only = cube["time"].values[~cube["fine_observed"].values]
    assert sorted(fused["time"].values) == sorted(coarse_only)
    assert len(coarse_only) == 6 - len(site.fine_dates)
    assert fused.rio.crs == cube.rio.crs and fused.rio.crs is not None
    assert fused["fused"].rio.transform() == cube["fine"].rio.transform()
    assert list(fused["band"].values) == list(cube["band"].values)
    assert np.isfinite(fused["fused"].values).mean() > 0.95


def test_pair_rules_and_pair_bounds() -> None:
    from stfcube.pipeline.engine.pairing import plan_groups, select_pairs

    days = [np.datetime64(d, "D") for d in ("2024-05-01", "2024-05-09", "2024-05-17")]
    target = np.datetime64("2024-05-10", "D")
    assert select_pairs(target, days, "nearest") == (days[1], days[2])
    assert select_pairs(target, days, "before") == (days[1],)
    assert select_pairs(target, days, "after") == (days[2],)
    assert select_pairs(target, days, 2) == (days[1], days[2])
    assert select_pairs(days[1], days, "nearest") == (days[0], days[2])  # never itself
    late = np.datetime64("2024-05-20", "D")
    groups, skipped = plan_groups([late, target], days, "nearest", 2, min_pairs=2)
    assert [g.predict_dates for g in groups] == [(target,)]  # the other date is skipped ...
    assert skipped[late] == "only 1 usable pair(s) with rule 'nearest'; the method needs 2"
    many, _ = plan_groups([target], days, 3, None)  # a time-series method: no upper bound
    assert many[0].pair_dates == tuple(days)
    with pytest.raises(ConfigError, match="at most 2 pairs"):
        plan_groups([target], days, 3, 2)


@pytest.mark.gpu
def test_gpu_device_equals_cpu(small_cube: Path, tmp_path: Path) -> None:
    cpu = fuse(small_cube, tmp_path / "cpu.zarr", tile=64, params=SMALL)
    gpu = fuse(small_cube, tmp_path / "gpu.zarr", tile=64, params=SMALL, device="gpu")
    assert cpu.tiles_computed == gpu.tiles_computed
    for variable in ("fused", "quality"):
        np.testing.assert_array_equal(
            xr.open_zarr(tmp_path / "cpu.zarr", consolidated=False)[variable].values,
            xr.open_zarr(tmp_path / "gpu.zarr", consolidated=False)[variable].values,
        )


def test_planning_uses_the_recorded_valid_fractions(
    small_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pair valid shares come from the cube's ``fine_valid_fraction``; older cubes compute them."""
    import shutil

    import stfcube.pipeline.engine.planning
    from stfcube.pipeline.engine.methods.registry import get_method
    from stfcube.pipeline.engine.planning import open_cube_raw, plan_fusion

    method = get_method("starfm")
    kwargs = dict(
        method=method,
        params=method.make_params(SMALL),
        dates=None,
        pairs="nearest",
        min_pair_valid_fraction=0.5,
    )
    recorded = plan_fusion(open_cube_raw(small_cube), small_cube, **kwargs)
    older = tmp_path / "older.zarr"
    shutil.copytree(small_cube, older)
    shutil.rmtree(older / "fine_valid_fraction")
    computed = plan_fusion(open_cube_raw(older), older, **kwargs)
    assert recorded.pair_valid_fraction == pytest.approx(computed.pair_valid_fraction, rel=1e-12)
    assert recorded.groups == computed.groups
    cloudy = recorded.pair_valid_fraction[np.datetime64("2024-05-09", "ns")]
    assert cloudy == pytest.approx(1 - 30 * 40 / (130 * 150))

    def no_compute(*args: object, **kw: object) -> None:
        raise AssertionError("planning read the masks")

    monkeypatch.setattr(stfcube.pipeline.engine.planning.dask, "compute", no_compute)
    assert plan_fusion(open_cube_raw(small_cube), small_cube, **kwargs).groups == recorded.groups


def test_spatial_shares_are_balanced_bands_of_tile_rows() -> None:
    from helpers.tasks import tile_task
    from stfcube.pipeline.engine.tasks import TileTask, spatial_shares
    from stfcube.pipeline.geometry.tiling import tile_grid

    def task(tile, out: int) -> TileTask:
        return tile_task(tile, out=(out,), halo=10, shape=(70, 50))

    tiles = tile_grid((70, 50), 16)  # 5 x 4 tiles
    tasks = [task(t, out) for out in (1, 0) for t in reversed(tiles)]  # 40, scrambled
    shares = spatial_shares(tasks, 3)
    assert [len(s) for s in shares] == [14, 13, 13]
    flat = [t for share in shares for t in share]
    assert sorted(map(id, flat)) == sorted(map(id, tasks))  # a partition
    keys = [(t.tile.ty, t.tile.tx, t.out_index) for t in flat]
    assert keys == sorted(keys)  # consecutive bands, row-major inside each
    assert spatial_shares(tasks[:2], 5) == [[tasks[1]], [tasks[0]]]  # no empty shares


def test_date_runs_fill_the_workers_only_as_far_as_needed() -> None:
    """Few tiles x groups: dates cut into consecutive runs until each worker thread has about
    TASKS_PER_THREAD tasks; enough tasks already: groups untouched."""
    from stfcube.pipeline.engine.pairing import PairGroup
    from stfcube.pipeline.engine.run import TASKS_PER_THREAD, date_runs

    days = [np.datetime64("2024-05-01") + i for i in range(10)]
    groups = [
        (0, PairGroup((days[0],), tuple(days[1:8]), (days[0],))),
        (1, PairGroup((days[8],), (days[9],), (days[8],))),
    ]
    assert date_runs(groups, n_tiles=4, workers=2) == groups  # 8 tasks >= 3 x 2
    runs = date_runs(groups, n_tiles=1, workers=2)  # 2 tasks: group 0 cut into 3 runs
    assert [i for i, _ in runs] == [0, 0, 0, 1]
    assert [len(g.predict_dates) for _, g in runs] == [3, 2, 2, 1]
    assert sum((g.predict_dates for i, g in runs if i == 0), ()) == groups[0][1].predict_dates
    assert all(g.pair_dates == groups[i][1].pair_dates for i, g in runs)
    many = date_runs(groups[:1], n_tiles=1, workers=4)  # a group is cut at most into its dates
    assert len(many) == min(TASKS_PER_THREAD * 4, 7)
