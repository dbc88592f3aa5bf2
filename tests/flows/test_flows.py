"""Prefect flows end to end on a small synthetic site, inside one temporary Prefect server.

One session harness (a temporary SQLite-backed server, no network, telemetry off) serves every
test; tasks run on a thread-based ``LocalCluster`` through ``DaskTaskRunner``. The site is 64 x
64 pixels over 12 days with fine images on days 1, 5, 9 and 12 (day 12 is never ingested).
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import yaml
from prefect.testing.utilities import prefect_test_harness

import stfcube.pipeline.engine.run
import stfcube.pipeline.ingest.scenes
from stfcube.flows import evaluate_flow, fuse_flow, ingest_flow, run_update, update_flow
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.ops.plan import plan_region
from stfcube.pipeline.ops.update import RegionConfig, dates_to_fuse, region_config_from_mapping
from stfcube.pipeline.simulate.site import simulate_site

#: Source of the first update: coarse days 1-8, fine days 1 and 5.
FIRST_UNTIL = date(2024, 5, 8)
#: Source of the second update: 3 more coarse dates (9-11) and 1 more fine date (9).
SECOND_UNTIL = date(2024, 5, 11)


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """One temporary Prefect API for the whole session (its start costs ~10 s)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The synthetic site: 64 x 64 pixels, 12 days, fine on days 1, 5, 9 and 12, no clouds."""
    out = tmp_path_factory.mktemp("flows") / "site"
    return simulate_site(out, size=64, days=12, coarse_ratio=8, fine_every=4, cloud_dates=())


def _scene_date(path: Path) -> date:
    stamp = path.stem.rsplit("-", 1)[-1]
    return date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))


def write_manifest(site: Any, path: Path, until: date) -> Path:
    """A manifest of the site's fine, coarse and truth scenes up to ``until``."""
    scenes = [
        {"role": role, "date": _scene_date(p).isoformat(), "path": str(p), **extra(p)}
        for role, paths, extra in (
            ("fine", site.fine_paths, lambda p: {"mask": str(p.with_name(f"{p.stem}_mask.tif"))}),
            ("coarse", site.coarse_paths, lambda p: {}),
            ("truth", site.truth_paths, lambda p: {}),
        )
        for p in paths
        if _scene_date(p) <= until
    ]
    manifest = {
        "fine_sensor": "sim-fine",
        "coarse_sensor": "sim-coarse",
        "bands": list(site.config.bands),
        "defaults": {
            "fine": {"scale": 1, "nodata": -9999, "mask_valid_values": [1]},
            "coarse": {"scale": 1, "nodata": -9999},
            "truth": {"scale": 1, "nodata": -9999},
        },
        "scenes": scenes,
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path / "manifest.yaml"


def region(root: Path, source: Path, **overrides: Any) -> RegionConfig:
    """A small region config writing under ``root``."""
    fields: dict[str, Any] = {
        "name": "test-site",
        "source": str(source),
        "cube": str(root / "cube.zarr"),
        "fused": str(root / "fused.zarr"),
        "truth": str(root / "truth.zarr"),
        "ingest_truth": True,
        "evaluation": str(root / "report"),
        "tile": 32,
        "chunk": 32,
        "runner": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
        "retries": {"retries": 1, "delay_seconds": 0},
        **overrides,
    }
    return region_config_from_mapping(fields)


def tree_digest(path: Path) -> str:
    """Hash of every file (name and bytes) under ``path``."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode())
        digest.update(item.read_bytes())
    return digest.hexdigest()


def fused_arrays(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, fused, quality) of a fused store, in date order."""
    ds = xr.open_zarr(path, consolidated=False).sortby("time")
    return ds["time"].values, ds["fused"].values, ds["quality"].values


@pytest.fixture(scope="module")
def incremental(site: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two updates of one region: days 1-8, then after days 9-11 arrived."""
    root = tmp_path_factory.mktemp("incremental")
    source = write_manifest(site, root / "source", FIRST_UNTIL)
    config = region(root, source.parent, truth=None, ingest_truth=False)
    first = run_update(config)
    write_manifest(site, root / "source", SECOND_UNTIL)
    expected = dates_to_fuse(config.cube, config.fused)  # before the second ingest: nothing new
    second_ingest_only = ingest_flow(config)
    predicted = dates_to_fuse(config.cube, config.fused)
    second = update_flow(config)
    return {
        "config": config,
        "first": first,
        "before_ingest": expected,
        "second_ingest": second_ingest_only,
        "predicted": predicted,
        "second": second,
    }


def test_update_flow_builds_cube_and_fused_store(incremental: dict[str, Any]) -> None:
    config, first = incremental["config"], incremental["first"]
    cube = xr.open_zarr(config.cube, consolidated=False)
    assert cube.sizes["y"] == cube.sizes["x"] == 64
    assert first.dates_computed == [f"2024-05-0{d}" for d in (2, 3, 4, 6, 7, 8)]
    times, fused, quality = fused_arrays(config.fused)  # after both updates
    all_dates = sorted({*first.dates_computed, "2024-05-10", "2024-05-11"})
    assert [str(t)[:10] for t in times] == all_dates
    assert np.isfinite(fused).mean() > 0.9 and quality.max() > 0
    assert first.evaluation is None  # no truth configured


def test_second_update_fuses_only_new_and_changed_dates(incremental: dict[str, Any]) -> None:
    assert incremental["before_ingest"].dates == ()
    predicted, second = incremental["predicted"], incremental["second"]
    # The fine image of day 9 is a new pair: days 6-8 change pairs (5 -> 5 and 9); 10-11 are new.
    assert predicted.new == ("2024-05-10", "2024-05-11")
    assert predicted.changed == ("2024-05-06", "2024-05-07", "2024-05-08")
    assert predicted.unfinished == ()
    assert second.dates_computed == list(predicted.dates)
    assert sum(r.tiles_computed for r in second.fused) == len(predicted.groups) * 4


def test_individual_flows_from_scratch_equal_the_incremental_result(
    site: Any, incremental: dict[str, Any], tmp_path: Path
) -> None:
    source = write_manifest(site, tmp_path / "source", SECOND_UNTIL)
    config = region(tmp_path, source.parent)
    ingested = ingest_flow(config)
    assert [Path(r.cube_path) for r in ingested] == [config.cube, config.truth]
    reports = fuse_flow(str(_write_config(config, tmp_path / "region.yaml")))
    assert sorted(d for r in reports for d in r.dates_computed) == [
        "2024-05-02",
        "2024-05-03",
        "2024-05-04",
        "2024-05-06",
        "2024-05-07",
        "2024-05-08",
        "2024-05-10",
        "2024-05-11",
    ]
    evaluation = evaluate_flow(config)
    assert evaluation is not None and (config.evaluation_dir / "metrics.json").is_file()
    scratch = fused_arrays(config.fused)
    updated = fused_arrays(incremental["config"].fused)
    np.testing.assert_array_equal(scratch[0], updated[0])
    np.testing.assert_array_equal(scratch[1], updated[1])
    np.testing.assert_array_equal(scratch[2], updated[2])


def _write_config(config: RegionConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_failing_fuse_is_retried_then_fails_cleanly(
    site: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_manifest(site, tmp_path / "source", FIRST_UNTIL)
    config = region(tmp_path, source.parent, truth=None, ingest_truth=False)
    real_prepare = stfcube.pipeline.engine.run.prepare_fusion
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("object store timed out (injected)")
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(stfcube.pipeline.engine.run, "prepare_fusion", flaky)
    report = run_update(config)
    assert len(calls) == 2 and len(report.dates_computed) == 6
    cube_before, fused_before = tree_digest(config.cube), tree_digest(config.fused)

    def broken(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        raise OSError("object store unreachable (injected)")

    monkeypatch.setattr(stfcube.pipeline.engine.run, "prepare_fusion", broken)
    write_manifest(site, tmp_path / "source", SECOND_UNTIL)
    state = update_flow(config, return_state=True)
    assert state.is_failed()
    assert len(calls) == 2 + 1 + config.retries.retries
    with pytest.raises(OSError, match="object store unreachable"):
        state.result()
    assert tree_digest(config.fused) == fused_before
    assert tree_digest(config.cube) != cube_before  # the new scenes were ingested ...
    monkeypatch.setattr(stfcube.pipeline.engine.run, "prepare_fusion", real_prepare)
    assert set(dates_to_fuse(config.cube, config.fused).dates) == {  # ... and are still due
        "2024-05-06",
        "2024-05-07",
        "2024-05-08",
        "2024-05-10",
        "2024-05-11",
    }


def test_nothing_to_fuse_before_the_first_coarse_only_date(site: Any, tmp_path: Path) -> None:
    source = write_manifest(site, tmp_path / "source", date(2024, 5, 1))  # one fine+coarse pair
    config = region(tmp_path, source.parent, truth=None, ingest_truth=False)
    stfcube.pipeline.ingest.ingest(config.source, config.cube, chunk=config.chunk)
    update = dates_to_fuse(config.cube, config.fused)
    assert update.dates == () and update.groups == ()
    with pytest.raises(ConfigError, match="up to date"):
        plan_region(config)


@pytest.mark.parametrize(
    "method", ["nochange", "coarse-residual", "helpers.static_method:ClassChangeMethod"]
)
def test_methods_run_through_fuse_flow_as_through_fuse(method: str, tmp_path: Path) -> None:
    """A baseline on the native coarse grid, and a test-only method with a static layer, its
    own statistics and layer, run through the flow (batches on the Dask cluster) as through
    ``fuse``; the flow leaves the store complete."""
    from helpers.cube_factory import block_mean, synthetic_scene, write_cube

    days = [f"2024-05-{d:02d}" for d in range(1, 9)]
    truth = synthetic_scene((48, 40), 2, days, seed=4)
    yy, xx = np.mgrid[0:48, 0:40]
    cube = write_cube(
        tmp_path / "cube.zarr",
        {d: truth[d] for d in ("2024-05-01", "2024-05-06")},
        block_mean(truth, 8),
        chunk=16,
        native_ratio=8,
        static={"landcover": ((yy // 11 + xx // 9) % 4).astype(np.uint8)},
    )
    config = region(
        tmp_path,
        tmp_path,
        truth=None,
        ingest_truth=False,
        method=method,
        tile=16,
        batching={"max_tasks_per_batch": 6},
    )
    reports = fuse_flow(config)
    assert len(reports) > 1  # several batches
    direct = stfcube.pipeline.engine.run.fuse(
        cube, tmp_path / "direct.zarr", method=method, tile=16
    )
    flowed = xr.open_zarr(config.fused, consolidated=False).sortby("time")
    alone = xr.open_zarr(tmp_path / "direct.zarr", consolidated=False).sortby("time")
    assert sorted(flowed.data_vars) == sorted(alone.data_vars)
    for name in flowed.data_vars:
        np.testing.assert_array_equal(flowed[name].values, alone[name].values, err_msg=name)
    assert flowed.attrs["complete"] is True
    assert direct.dates == [d for d in days if d not in ("2024-05-01", "2024-05-06")]


def test_two_pair_method_daily_update_skips_dates_after_the_last_fine_image(
    site: Any, tmp_path: Path
) -> None:
    """Days 6-8 come after the last fine image (day 5): a two-pair method skips them with a
    report line and fuses days 2-4."""
    source = write_manifest(site, tmp_path / "source", FIRST_UNTIL)
    config = region(
        tmp_path,
        source.parent,
        truth=None,
        ingest_truth=False,
        method="helpers.static_method:TwoPairMeanMethod",
        params={"layer": ""},
    )
    report = run_update(config)
    assert report.dates_computed == ["2024-05-02", "2024-05-03", "2024-05-04"]
    assert sorted(report.skipped) == ["2024-05-06", "2024-05-07", "2024-05-08"]
    assert "skipped 2024-05-06: only 1 usable pair(s) with rule 'nearest'" in report.summary()
    fused = xr.open_zarr(config.fused, consolidated=False)
    assert [str(t)[:10] for t in fused["time"].values] == report.dates_computed
    assert fused.attrs["complete"] is True
