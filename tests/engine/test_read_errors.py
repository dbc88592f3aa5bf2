"""Damaged input cubes: a missing or undecodable chunk is an error naming variable, date and chunk.

Zarr would read a deleted chunk as its fill value (NaN, or False for a validity), and a fuse run
would then report success with holes in its output; a truncated chunk would surface as a raw Zstd
traceback. Chunks that a cube legitimately leaves unwritten (all NaN and all invalid) still read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.engine import chunk_cache
from stfcube.pipeline.engine.chunk_cache import DecodedChunkCache, read_halo_block
from stfcube.pipeline.engine.run import fuse
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.geometry.tiling import Tile

DAYS = ["2024-05-01", "2024-05-03", "2024-05-05"]
PARAMS = {"max_search_distance": 300.0}  # halo 10 px
TILE = 16


@pytest.fixture
def cube(tmp_path: Path) -> Path:
    """48 x 48 px, one band, 16 px chunks: fine on the first day, coarse on all three.

    The fine image is clouded (NaN, invalid) over its whole top-left chunk, which the cube then
    legitimately leaves unwritten, as it does every chunk of fine on the two coarse-only days.
    """
    truth = synthetic_scene((48, 48), 1, DAYS, seed=3)
    fine = {DAYS[0]: truth[DAYS[0]].copy()}
    fine[DAYS[0]][:, :16, :16] = np.nan
    return write_cube(tmp_path / "cube.zarr", fine, block_mean(truth, 8), chunk=16)


def _fuse(cube: Path, out: Path) -> None:
    fuse(cube, out, tile=TILE, params=PARAMS, local_threads=2)


def test_a_clean_cube_with_unwritten_empty_chunks_fuses(cube: Path, tmp_path: Path) -> None:
    assert not (cube / "fine" / "c" / "0" / "0" / "0" / "0").exists()  # clouded: never written
    assert not (cube / "fine_valid" / "c" / "0" / "0" / "0").exists()
    _fuse(cube, tmp_path / "fused.zarr")


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        (
            "coarse/c/1/0/1/1",
            r"variable coarse, date 2024-05-03, chunk \(1, 0, 1, 1\) of \(time, band, y, x\) is "
            r"missing from the store although coarse_valid marks valid pixels there",
        ),
        (
            "fine_valid/c/0/2/1",
            r"variable fine_valid, date 2024-05-01, chunk \(0, 2, 1\) of \(time, y, x\) is "
            r"missing from the store although fine holds values there",
        ),
    ],
)
def test_a_deleted_chunk_fails_the_run_naming_it(
    cube: Path, tmp_path: Path, chunk: str, message: str
) -> None:
    (cube / chunk).unlink()
    with pytest.raises(InputError, match=message) as raised:
        _fuse(cube, tmp_path / "fused.zarr")
    assert raised.value.path == str(cube)
    assert "stfcube verify" in str(raised.value)


def test_a_truncated_chunk_fails_the_run_naming_it(cube: Path, tmp_path: Path) -> None:
    path = cube / "fine" / "c" / "0" / "0" / "2" / "0"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(
        InputError,
        match=r"variable fine, date 2024-05-01, chunk \(0, 0, 2, 0\) of \(time, band, y, x\) is "
        r"undecodable \(Zstd",
    ):
        _fuse(cube, tmp_path / "fused.zarr")


def test_the_cli_exits_2_with_one_line_naming_the_chunk(
    cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stfcube.pipeline.cli import main

    (cube / "coarse" / "c" / "2" / "0" / "0" / "0").unlink()
    args = ["fuse", str(cube), str(tmp_path / "f.zarr"), "--tile", str(TILE)]
    monkeypatch.setattr(sys, "argv", ["stfcube", *args, "-p", "max_search_distance=300"])
    try:
        code = main()
    except SystemExit as exc:  # the entry point exits, or returns its code
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert "variable coarse, date 2024-05-05, chunk (2, 0, 0, 0)" in " ".join(err.split())


def _time_chunked_store(path: Path) -> Path:
    """A cube-like pair ``fine``/``fine_valid`` chunked by 3 dates, without time coordinate."""
    group = zarr.open_group(str(path), mode="w")
    fine = group.create_array("fine", shape=(4, 2, 20, 20), chunks=(3, 1, 10, 10), dtype="f4")
    valid = group.create_array("fine_valid", shape=(4, 20, 20), chunks=(3, 10, 10), dtype=bool)
    fine[...] = 1.0
    valid[...] = True
    return path


@pytest.mark.parametrize("budget", [0, 2**20])
def test_missing_chunks_are_found_with_or_without_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    path = _time_chunked_store(tmp_path / "store.zarr")
    (path / "fine" / "c" / "1" / "1" / "0" / "1").unlink()  # dates 3.., band 1, rows 0.., cols 10..
    monkeypatch.setattr(chunk_cache, "CHUNKS", DecodedChunkCache(max_bytes=budget))
    tile = Tile(ty=0, tx=0, row0=0, row1=10, col0=0, col1=10)
    block = read_halo_block("r", str(path), "fine", [0, 2], tile, 4, (20, 20), np.nan)
    assert np.isfinite(block[..., 4:, 4:]).all()  # dates 0 and 2 live in time chunk 0
    with pytest.raises(InputError, match=r"variable fine, date time index 3, chunk \(1, 1, 0, 1\)"):
        read_halo_block("r", str(path), "fine", [3], tile, 4, (20, 20), np.nan)
