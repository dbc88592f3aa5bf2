"""``stfcube verify``: damaged cubes and fused stores are reported; ``--fix`` repairs the markers.

A fused store whose chunks were deleted while ``tile_done`` still says 1, or whose ``tile_done`` or
``pairs_used`` is damaged, is reported; ``fix`` clears the markers so that a rerun of fuse
recomputes the tiles, and the result then equals a clean run. ``fuse`` itself refuses such a store
with one message instead of a traceback.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import InputError, OutputError
from stfcube.pipeline.store.verify import verify_store

DAYS = ["2024-05-01", "2024-05-03", "2024-05-05"]
OPTIONS = {"tile": 16, "params": {"max_search_distance": 300.0}, "local_threads": 2}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 48 x 48 px cube (16 px chunks, the top-left fine chunk clouded) and its fused store."""
    root = tmp_path_factory.mktemp("clean")
    truth = synthetic_scene((48, 48), 2, DAYS, seed=5)
    fine = {DAYS[0]: truth[DAYS[0]].copy()}
    fine[DAYS[0]][:, :16, :16] = np.nan
    cube = write_cube(root / "cube.zarr", fine, block_mean(truth, 8), chunk=16)
    fuse(cube, root / "fused.zarr", **OPTIONS)
    return cube, root / "fused.zarr"


@pytest.fixture
def cube(clean: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the clean cube, to damage."""
    return Path(shutil.copytree(clean[0], tmp_path / "cube.zarr"))


@pytest.fixture
def fused(clean: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the clean fused store (reading the clean cube), to damage."""
    return Path(shutil.copytree(clean[1], tmp_path / "fused.zarr"))


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """``stfcube ARGS`` in this process; its exit code."""
    from stfcube.pipeline.cli import main

    monkeypatch.setattr(sys, "argv", ["stfcube", *args])
    try:
        code = main()
    except SystemExit as exc:  # the entry point exits, or returns its code
        code = exc.code
    return int(code or 0)


def assert_equals_clean_run(fused: Path, clean: Path) -> None:
    """Same predictions, quality, markers and pairs as the uninterrupted run."""
    got, want = (xr.open_zarr(p, consolidated=False).load() for p in (fused, clean))
    for name in ("fused", "quality", "tile_done"):
        np.testing.assert_array_equal(got[name].values, want[name].values)
    assert got.attrs["pairs_used"] == want.attrs["pairs_used"]
    assert got.attrs["complete"] is True


# --------------------------------------------------------------------------------------------
# Cubes


def test_a_clean_cube_and_fused_store_are_healthy(
    clean: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for path, kind in zip(clean, ("cube", "fused store"), strict=True):
        report = verify_store(path)
        assert report.kind == kind and report.healthy, report.problems
        assert report.chunks_checked > 0
        assert run_cli(["verify", str(path)], monkeypatch) == 0
        assert "healthy" in capsys.readouterr().out


def test_a_deleted_value_chunk_is_reported(
    cube: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (cube / "coarse" / "c" / "2" / "1" / "2" / "0").unlink()
    report = verify_store(cube)
    assert report.problems == [
        "variable coarse, date 2024-05-05, chunk (2, 1, 2, 0) of (time, band, y, x) is missing "
        "from the store although coarse_valid marks valid pixels there"
    ]
    assert run_cli(["verify", str(cube), "--fix"], monkeypatch) == 2  # a cube is not repaired
    printed = capsys.readouterr()
    assert "1 problem(s)" in printed.out and "chunk (2, 1, 2, 0)" in printed.out
    assert "1 problem(s) remain; a cube is repaired by ingesting" in " ".join(printed.err.split())


def test_a_truncated_chunk_is_reported(cube: Path) -> None:
    path = cube / "fine_valid" / "c" / "0" / "1" / "1"
    path.write_bytes(path.read_bytes()[:-3])
    (problem,) = verify_store(cube).problems
    assert problem.startswith(
        "variable fine_valid, date 2024-05-01, chunk (0, 1, 1) of (time, y, x) is undecodable"
    )


def test_a_chunk_deleted_with_its_validity_is_caught_by_the_valid_fraction(cube: Path) -> None:
    for chunk in ("fine/c/0/0/1/1", "fine/c/0/1/1/1", "fine_valid/c/0/1/1"):
        (cube / chunk).unlink()
    (problem,) = verify_store(cube).problems
    assert problem == (
        "fine_valid_fraction records 2048 valid pixels on 2024-05-01, fine_valid holds 1792 "
        "(chunks lost or rewritten)"
    )


def test_a_date_without_data_is_reported_by_its_bookkeeping(cube: Path) -> None:
    """Data of a date that is not observed, and an observed date that lost its fraction."""
    group = zarr.open_group(str(cube), mode="r+")
    group["fine_observed"][0] = False
    group["coarse_valid_fraction"][1] = np.nan
    assert sorted(verify_store(cube).problems) == [
        "coarse_valid_fraction is missing on 2024-05-03",
        "fine_observed is false on 2024-05-01 but fine_valid has 2048 valid pixels",
    ]


def test_a_path_that_is_no_store_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="store not found"):
        verify_store(tmp_path / "nothing.zarr")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="not a readable Zarr store"):
        verify_store(tmp_path / "folder")


# --------------------------------------------------------------------------------------------
# Fused stores


def test_deleted_chunks_of_a_done_tile_are_reported_fixed_and_recomputed(
    fused: Path, clean: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("fused", "quality"):  # the whole tile (1, 2) of the second date, both bands
        for band in (0, 1):
            (fused / name / "c" / "1" / str(band) / "1" / "2").unlink()
    report = verify_store(fused)
    assert len(report.problems) == 2
    assert report.problems[0] == (
        "variable fused, date 2024-05-05, chunk (1, 0, 1, 2) of (time, band, y, x) is missing "
        "from the store, yet tile_done marks tile (1, 2) done"
    )
    assert report.problems[1] == "complete is true but 1 of 18 tiles are not done"
    assert run_cli(["verify", str(fused)], monkeypatch) == 2

    assert run_cli(["verify", str(fused), "--fix"], monkeypatch) == 0
    group = zarr.open_group(str(fused), mode="r")
    assert group["tile_done"][1, 1, 2] == 0 and group.attrs["complete"] is False
    assert verify_store(fused).healthy

    rerun = fuse(clean[0], fused, **OPTIONS)
    assert rerun.tiles_computed == 1
    assert_equals_clean_run(fused, clean[1])
    assert verify_store(fused).healthy


def _damage_tile_done(fused: Path, how: str) -> None:
    group = zarr.open_group(str(fused), mode="r+")
    if how == "missing":
        del group["tile_done"]
    elif how == "wrong shape":
        group.create_array(
            "tile_done", shape=(2, 1, 1), chunks=(1, 1, 1), dtype="u1", overwrite=True
        )
    elif how == "non-JSON pairs_used":
        group.attrs["pairs_used"] = "{2024-05-03: [2024-05-01]"


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("missing", "array tile_done is missing"),
        (
            "wrong shape",
            "tile_done is (dim_0, dim_1, dim_2) of shape (2, 1, 1), expected (time, tile_y, "
            "tile_x) of shape (2, 3, 3) for tiles of 16 pixels",
        ),
        ("non-JSON pairs_used", "attribute pairs_used is not valid JSON"),
    ],
)
def test_damaged_markers_are_refused_by_fuse_and_repaired_by_fix(
    fused: Path,
    clean: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
    problem: str,
) -> None:
    _damage_tile_done(fused, how)
    report = verify_store(fused)
    assert report.problems[0].startswith(problem), report.problems
    with pytest.raises(OutputError, match=f"damaged fused store: {re.escape(problem)}.*--fix"):
        fuse(clean[0], fused, **OPTIONS)
    args = ["fuse", str(clean[0]), str(fused), "--tile", "16", "-p", "max_search_distance=300"]
    assert run_cli(args, monkeypatch) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "damaged fused store" in err and "Traceback" not in err

    fixed = verify_store(fused, fix=True)
    assert fixed.healthy and fixed.repaired[0].startswith(problem)
    assert zarr.open_group(str(fused), mode="r").attrs["complete"] is False
    assert fuse(clean[0], fused, **OPTIONS).tiles_computed == 9  # every (group, tile) task
    assert_equals_clean_run(fused, clean[1])


def test_a_non_json_fingerprint_cannot_be_repaired(
    fused: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zarr.open_group(str(fused), mode="r+").attrs["fingerprint"] = "not json"
    report = verify_store(fused, fix=True)
    assert report.problems == ["attribute fingerprint is not valid JSON (cannot be repaired)"]
    assert run_cli(["verify", str(fused), "--fix"], monkeypatch) == 2


def test_an_undecodable_marker_is_reported_and_cleared(fused: Path) -> None:
    (fused / "tile_done" / "c" / "0" / "2" / "2").write_bytes(b"garbage")
    report = verify_store(fused)
    assert report.problems[0].startswith("tile_done at date 2024-05-03, tile (2, 2) is undecodable")
    verify_store(fused, fix=True)
    assert zarr.open_group(str(fused), mode="r")["tile_done"][0, 2, 2] == 0
    assert verify_store(fused).healthy


def test_fix_sets_complete_when_every_tile_is_done(fused: Path) -> None:
    zarr.open_group(str(fused), mode="r+").attrs["complete"] = False
    assert verify_store(fused).healthy  # an incomplete flag is no damage ...
    verify_store(fused, fix=True)
    assert zarr.open_group(str(fused), mode="r").attrs["complete"] is True  # ... but is set
