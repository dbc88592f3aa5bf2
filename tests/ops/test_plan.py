"""Continental planning: batches bounded, aligned with fuse's tiles, covering every output once."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stfcube.pipeline.cli import app
from stfcube.pipeline.engine.pairing import PairGroup
from stfcube.pipeline.errors import ConfigError
from stfcube.pipeline.geometry.tiling import tile_counts, tile_grid
from stfcube.pipeline.ops.plan import (
    THROUGHPUT,
    Plan,
    batch_cost,
    calendar_groups,
    format_bytes,
    method_cost,
    plan_batches,
    plan_region,
    spatial_blocks,
)
from stfcube.pipeline.ops.update import CalendarSpec, load_region_config, region_config_from_mapping

ROOT = Path(__file__).resolve().parents[2]
#: STARFM's defaults (W = 50) on 2 bands.
STARFM = method_cost("starfm", None, bands=2)
CONUS = ROOT / "deploy" / "regions" / "conus.yaml"


def day(text: str) -> np.datetime64:
    return np.datetime64(text, "D")


def assert_covers_once(plan: Plan, targets: set[str]) -> None:
    """Every (prediction date, tile) of the plan lies in exactly one batch."""
    n_ty, n_tx = tile_counts(plan.shape, plan.tile)
    by_dates: dict[tuple[str, ...], list] = {}
    for batch in plan.batches:
        by_dates.setdefault(batch.dates, []).append(batch)
    dates_seen: list[str] = [d for dates in by_dates for d in dates]
    assert sorted(dates_seen) == sorted(targets)  # date runs are disjoint and complete
    for region in {b.region for b in plan.batches}:
        tile_grid(plan.shape, plan.tile, region)  # fuse accepts it: aligned, inside the image
    for batches in by_dates.values():
        count = np.zeros((n_ty, n_tx), dtype=int)
        for batch in batches:
            r0, r1, c0, c1 = batch.region
            count[r0 // plan.tile : -(-r1 // plan.tile), c0 // plan.tile : -(-c1 // plan.tile)] += 1
        assert (count == 1).all()


@pytest.fixture(scope="module")
def conus_plan() -> Plan:
    return plan_region(load_region_config(CONUS))


def test_conus_plan_batches(conus_plan: Plan) -> None:
    config = load_region_config(CONUS)
    groups = calendar_groups(config.calendar, config.pairs)
    assert conus_plan.shape == (110_000, 165_000)
    assert (conus_plan.n_dates, conus_plan.n_groups) == (320, 46)  # 2024: 366 days, 46 fine
    assert len(conus_plan.batches) == 46 * 4  # one pair group x 2 x 2 spatial blocks
    assert max(b.tasks for b in conus_plan.batches) <= config.batching.max_tasks_per_batch
    assert conus_plan.tasks == 46 * 215 * 323  # every (group, tile) once
    targets = {str(d) for g in groups for d in g.predict_dates}
    assert_covers_once(conus_plan, targets)


def test_conus_plan_costs(conus_plan: Plan) -> None:
    pixels = 110_000 * 165_000
    # Every target date uses two pairs ("nearest": one before, one after) except the last ones.
    written = conus_plan.bytes_written
    assert written == pixels * 6 * 6 * 320  # float32 value + uint16 quality per band and date
    assert (conus_plan.halo, conus_plan.work_unit) == (25, "similar-pixel candidates")
    pairs_per_date = conus_plan.work / (pixels * 6 * 50**2 * 320)  # W = 50 from the method
    assert 1.9 < pairs_per_date <= 2.0
    core_hours = conus_plan.hours("starfm", "cpu")
    speed = THROUGHPUT["starfm", "cpu"].work_per_second
    assert core_hours == pytest.approx(conus_plan.work / speed / 3600)
    assert 1e4 < core_hours < 5e4
    assert conus_plan.hours("starfm-usda-c", "cpu") / core_hours == pytest.approx(speed / 0.26e9)
    assert conus_plan.bytes_read > written  # halo-extended tiles of pairs and dates + statistics
    with pytest.raises(ConfigError, match="no throughput figure"):
        conus_plan.hours("fsdaf", "cpu")


def test_plan_command_prints_without_computing() -> None:
    result = CliRunner().invoke(app, ["plan", str(CONUS), "--rows", "3"])
    assert result.exit_code == 0, result.output
    assert "184 batches" in result.output and "core-hours" in result.output
    assert "USDA C program" in result.output and "181 more batches" in result.output
    as_json = CliRunner().invoke(app, ["plan", str(CONUS), "--json"])
    document = json.loads(as_json.output)
    assert len(document["batches"]) == 184 and document["hours_unit"] == "core-hours"
    assert document["batches"][0]["region"] == [0, 54784, 0, 82432]


def test_small_image_gets_whole_image_batches() -> None:
    groups = [PairGroup((day("2024-05-01"),), (day("2024-05-02"), day("2024-05-03")))] * 5
    plan = plan_batches((100, 100), groups, bands=2, tile=50, cost=STARFM, max_tasks_per_batch=8)
    assert [len(b.dates) for b in plan.batches] == [4, 4, 2]  # 2 groups x 4 tiles per batch
    # the global statistics read the one pair image once per run, not once per batch
    assert plan.statistics_bytes == 100 * 100 * (4 * 2 + 1)
    assert plan.bytes_read == plan.statistics_bytes + sum(b.bytes_read for b in plan.batches)
    assert all(b.whole_image and b.fuse_region is None for b in plan.batches)


def test_batch_cost_by_hand() -> None:
    group = PairGroup((day("2024-05-01"),), (day("2024-05-02"), day("2024-05-03")))
    # STARFM with W = 4 (60 m at 30 m): halo 2, 16 candidates per pair, band and date
    cost = method_cost("starfm", {"max_search_distance": 60.0}, bands=1)
    assert (cost.halo, cost.per_pixel(1)) == (2, 16.0)
    tasks, read, written, work = batch_cost(
        (64, 64), (0, 32, 0, 64), [group], bands=1, tile=32, cost=cost
    )
    assert tasks == 2
    assert written == 32 * 64 * 1 * 6 * 2
    assert work == 32 * 64 * 1 * 1 * 16 * 2
    # halo 2: rows 0:34 (top tile clipped at the edge); columns 0:34 and 30:64 -> 34 x 68.
    extended = 34 * 68
    assert read == extended * (2 + 2) * (4 + 1)  # 1 pair (fine + coarse) + 2 dates' coarse


def test_calendar_groups_follow_the_engine_pair_rule() -> None:
    calendar = CalendarSpec(start=date(2024, 1, 1), end=date(2024, 1, 20), fine_every_days=8)
    groups = calendar_groups(calendar, "nearest")
    assert [[str(p) for p in g.pair_dates] for g in groups] == [
        ["2024-01-01", "2024-01-09"],
        ["2024-01-09", "2024-01-17"],
        ["2024-01-17"],
    ]
    assert sum(len(g.predict_dates) for g in groups) == 20 - 3


def test_plan_region_needs_grid_and_calendar_together() -> None:
    config = region_config_from_mapping(
        {
            "name": "half",
            "source": "s",
            "cube": "c.zarr",
            "fused": "f.zarr",
            "grid": {"height": 10, "width": 10},
        }
    )
    with pytest.raises(ConfigError, match="both 'grid' and 'calendar'"):
        plan_region(config)


def test_throughput_table_documents_its_sources() -> None:
    assert THROUGHPUT["starfm", "cpu"].work_per_second >= 1.5e9  # the kernel's target
    assert THROUGHPUT["starfm-usda-c", "cpu"].work_per_second == 0.26e9
    assert all(t.source for t in THROUGHPUT.values())


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    rows=st.integers(1, 400),
    cols=st.integers(1, 400),
    tile=st.integers(8, 64),
    max_tiles=st.integers(1, 40),
)
def test_spatial_blocks_cover_once_aligned_and_bounded(
    rows: int, cols: int, tile: int, max_tiles: int
) -> None:
    blocks = spatial_blocks((rows, cols), tile, max_tiles)
    n_ty, n_tx = tile_counts((rows, cols), tile)
    count = np.zeros((n_ty, n_tx), dtype=int)
    for region in blocks:
        tiles = tile_grid((rows, cols), tile, region)  # raises unless aligned
        assert len(tiles) <= max_tiles
        for t in tiles:
            count[t.ty, t.tx] += 1
    assert (count == 1).all()


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1.5 * 1024**4, "1.5 TiB")]
)
def test_format_bytes(n: float, text: str) -> None:
    assert format_bytes(n) == text
