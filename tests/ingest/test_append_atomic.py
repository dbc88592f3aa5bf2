"""Appends are all-or-nothing (issue 20, data-loss item 5 and the ingest SIGKILL test).

A failed append (a corrupt tile in the middle of a new scene) leaves the cube byte-for-byte as it
was; an append killed at any moment leaves a journal that readers refuse and the next ingest
rolls back before writing again, so the result equals an uninterrupted ingest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from test_ingest import make_site, tree_checksum

from helpers.hooks import KILL_AT_WRITE, hook_environment
from stfcube.pipeline.cli import main
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest import ingest
from stfcube.pipeline.store.cube import open_cube
from stfcube.pipeline.store.journal import has_journal, journal_path, roll_back

FIRST = (["2021-06-01"], ["2021-06-01", "2021-06-09"])
SECOND = (["2021-06-01", "2021-06-17"], ["2021-06-01", "2021-06-09", "2021-06-25"])


def _corrupt_a_middle_tile(tif: Path) -> None:
    """Break the compressed bytes of one inner tile; the header and other tiles stay valid."""
    with rasterio.open(tif) as src:
        offset = int(src.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
        size = int(src.get_tag_item("BLOCK_SIZE_1_1", "TIFF", bidx=1))
    data = bytearray(tif.read_bytes())
    data[offset + 2 : offset + size] = b"\xff" * (size - 2)
    tif.write_bytes(bytes(data))


def _site(tmp_path: Path) -> tuple[Path, Path]:
    """A cube of the first dates, and the manifest of the second (two new dates)."""
    manifest = make_site(tmp_path / "site", *FIRST)
    cube = tmp_path / "cube.zarr"
    ingest(manifest, cube, chunk=16)
    return cube, make_site(tmp_path / "site", *SECOND)


def _same_cube(a: Path, b: Path) -> None:
    """Equal values, coordinates and attributes; revision stamps are random, so only their
    written/unwritten pattern is compared."""
    one, two = open_cube(a), open_cube(b)  # in date order (an append stores dates as they come)
    assert sorted(one.variables) == sorted(two.variables)
    for name in one.variables:
        left, right = one[name].values, two[name].values
        if name.endswith("_revision"):
            left, right = left != 0, right != 0
        np.testing.assert_array_equal(left, right, err_msg=name)
    assert one.attrs == two.attrs


def test_a_failed_append_leaves_the_cube_byte_for_byte_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube, manifest = _site(tmp_path)
    _corrupt_a_middle_tile(manifest.parent / "fine_2021-06-17.tif")
    before = tree_checksum(cube)
    with pytest.raises(InputError, match=r"fine_2021-06-17\.tif"):
        ingest(manifest, cube, chunk=16)
    assert tree_checksum(cube) == before
    assert main(["ingest", str(manifest), str(cube), "--chunk", "16"]) == 2  # one line, exit 2
    assert "fine_2021-06-17.tif" in capsys.readouterr().err
    assert tree_checksum(cube) == before
    assert not has_journal(cube)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr", "site"]
    # repaired files: the dates are appended (not "already present"), equal to a fresh ingest
    make_site(tmp_path / "site", *SECOND)
    report = ingest(manifest, cube, chunk=16)
    assert len(report.written) == 2
    ingest(manifest, tmp_path / "fresh.zarr", chunk=16)
    _same_cube(cube, tmp_path / "fresh.zarr")


#: Three moments of the append: its first data chunk, the middle of the data, and the final
#: writes of the per-date coordinates (``time`` is the last array xarray extends).
MOMENTS = {
    "first-chunks": (r"^fine/c/2/", 1),  # the cube holds 2 dates: the new ones are 2 and 3
    "middle": (r"^(fine|coarse)(_valid)?/c/[23]/", 12),
    "final-writes": (r"^time/", 1),
}


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_a_killed_append_is_rolled_back_and_completed_by_the_rerun(
    tmp_path: Path, moment: str
) -> None:
    cube, manifest = _site(tmp_path)
    before = tree_checksum(cube)
    key, at = MOMENTS[moment]
    env = hook_environment(
        tmp_path / "hook", KILL_AT_WRITE, STFCUBE_TEST_KILL_KEY=key, STFCUBE_TEST_KILL_AT=str(at)
    )
    stfcube = str(Path(sys.executable).with_name("stfcube"))
    killed = subprocess.run(
        [stfcube, "ingest", str(manifest), str(cube), "--chunk", "16"],
        env=env,
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert has_journal(cube)
    with pytest.raises(InputError, match="interrupted ingest"):
        open_cube(cube)  # readers (fuse, evaluate) refuse a half-written cube
    copy = tmp_path / "copy.zarr"
    shutil.copytree(cube, copy)
    shutil.copytree(journal_path(cube), journal_path(copy))
    ingest_report = ingest(manifest, cube, chunk=16)  # rolls back, then appends again
    assert not has_journal(cube)
    assert len(ingest_report.written) == 2
    ingest(manifest, tmp_path / "fresh.zarr", chunk=16)
    _same_cube(cube, tmp_path / "fresh.zarr")
    # the rollback alone restores the cube exactly
    assert roll_back(copy)
    assert tree_checksum(copy) == before
