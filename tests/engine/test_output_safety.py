"""``fuse`` never deletes what stfcube did not write, never writes into or over its input, and
one store has one writer at a time (issue 20, data-loss items 1-4 and the concurrency rule).

Every case runs the real CLI and checks the one-line message, exit code 2 and that every file
under the test's folder (the input cube, the user's files) is byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from helpers.hooks import SLOW_TILES, hook_environment
from stfcube.pipeline.cli import main
from stfcube.pipeline.engine import fuse
from stfcube.pipeline.errors import OutputError
from stfcube.pipeline.store.lock import lock_path, store_lock

PARAMS = {"max_search_distance": 300.0}
ARGS = ["--tile", "32", "--quiet", "-p", "max_search_distance=300.0"]


def folder_checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``project/cube.zarr`` (40 x 48 px, 2 pairs, 2 coarse-only dates) beside user files."""
    days = ["2024-05-01", "2024-05-03", "2024-05-05", "2024-05-07"]
    truth = synthetic_scene((40, 48), 2, days, seed=3)
    fine = {d: truth[d] for d in (days[0], days[3])}
    root = tmp_path / "project"
    root.mkdir()
    write_cube(root / "cube.zarr", fine, block_mean(truth, 8), chunk=16)
    documents = root / "my_documents"
    documents.mkdir()
    (documents / "data.csv").write_text("a,b\n1,2\n")
    (documents / "thesis.txt").write_text("four years of work")
    return root


def _refused(project: Path, args: list[str], message: str) -> None:
    """The CLI's exit code is 2, its one-line message says ``message``, no file changed."""
    before = folder_checksums(project)
    result = subprocess.run(
        [sys.executable, "-m", "stfcube.pipeline.cli", "fuse", *args, *ARGS],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert folder_checksums(project) == before


def test_overwrite_refuses_a_folder_stfcube_did_not_write(project: Path) -> None:
    cube, documents = project / "cube.zarr", project / "my_documents"
    _refused(
        project,
        [str(cube), str(documents), "--overwrite"],
        "is not something stfcube wrote; --overwrite replaces only a stfcube fused",
    )
    # without --overwrite too: an existing folder that is not a fused store is never written into
    _refused(project, [str(cube), str(documents)], "is not a stfcube fused store")


def test_overwrite_refuses_the_folder_holding_the_input(project: Path) -> None:
    _refused(
        project,
        [str(project / "cube.zarr"), str(project), "--overwrite"],
        "the output holds the input",
    )


def test_output_equal_to_the_input_is_refused(project: Path) -> None:
    cube = project / "cube.zarr"
    _refused(project, [str(cube), str(cube), "--overwrite"], "the output is the input")
    _refused(project, [str(cube), str(cube)], "the output is the input")


def test_output_inside_the_input_is_refused(project: Path) -> None:
    cube = project / "cube.zarr"
    _refused(project, [str(cube), str(cube / "fused.zarr")], "the output lies inside the input")


def test_overwrite_refuses_a_cube_and_a_store_holding_foreign_files(project: Path) -> None:
    cube = project / "cube.zarr"
    out = project / "fused.zarr"
    fuse(cube, out, tile=32, params=PARAMS, local_threads=1)
    (out / "notes.txt").write_text("mine")
    _refused(project, [str(cube), str(out), "--overwrite"], "holds files stfcube did not write")
    (out / "notes.txt").unlink()
    other = project / "cube2.zarr"
    other_before = folder_checksums(cube)
    shutil.copytree(cube, other)
    _refused(project, [str(cube), str(other), "--overwrite"], "is a stfcube cube")
    assert folder_checksums(cube) == other_before


def test_overwrite_replaces_a_fused_store(project: Path) -> None:
    cube, out = project / "cube.zarr", project / "fused.zarr"
    fuse(cube, out, tile=32, params=PARAMS, local_threads=1)
    first = xr.open_zarr(out, consolidated=False)["fused"].values
    assert main(["fuse", str(cube), str(out), "--overwrite", *ARGS]) == 0
    np.testing.assert_array_equal(xr.open_zarr(out, consolidated=False)["fused"].values, first)
    assert not list(project.glob(".*"))  # no staging, retired store or lock left behind


def test_a_second_writer_is_refused_while_the_first_holds_the_store(project: Path) -> None:
    out = project / "fused.zarr"
    with store_lock(out, "fuse"):
        with pytest.raises(OutputError, match=rf"pid {os.getpid()} on .* delete .*stfcube-lock"):
            fuse(project / "cube.zarr", out, tile=32, params=PARAMS, local_threads=1)
    assert not lock_path(out).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(project: Path) -> None:
    out = project / "fused.zarr"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    lock_path(out).write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "purpose": "fuse"})
    )
    fuse(project / "cube.zarr", out, tile=32, params=PARAMS, local_threads=1)
    assert not lock_path(out).exists()


def test_two_concurrent_fuse_processes(project: Path, tmp_path: Path) -> None:
    """One is refused (exit 2, naming the holder); the other's result equals a lone run."""
    gate = tmp_path / "second-run-done"  # the first run's tiles wait for it: no race on load
    env = hook_environment(
        tmp_path / "hook",
        SLOW_TILES,
        STFCUBE_TEST_TILE_SLEEP="0.1",
        STFCUBE_TEST_TILE_GATE=str(gate),
    )
    cube, out = project / "cube.zarr", project / "fused.zarr"
    stfcube = str(Path(sys.executable).with_name("stfcube"))
    cmd = [stfcube, "fuse", str(cube), str(out), "--tile", "16", "--workers", "1"]
    cmd += ["--threads-per-worker", "1", "--quiet", "-p", "max_search_distance=300.0"]
    first = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not lock_path(out).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    gate.touch()
    try:
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert second.returncode == 2, second.stderr
    message = " ".join(second.stderr.split())
    assert f"pid {first.pid}" in message and "is writing it" in message
    assert "Traceback" not in second.stderr
    fuse(cube, tmp_path / "lone.zarr", tile=16, params=PARAMS, local_threads=1)
    for name in ("fused", "quality", "tile_done"):
        np.testing.assert_array_equal(
            xr.open_zarr(out, consolidated=False)[name].values,
            xr.open_zarr(tmp_path / "lone.zarr", consolidated=False)[name].values,
        )
