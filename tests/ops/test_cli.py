"""The command line's failure contract, through the console-script entry point ``main``.

Usage errors and expected failures: one line on stderr, exit code 2, no traceback, and nothing
created or changed on disk (every file's sha256 before and after). Interrupts: exit code 130.
Internal errors: one line naming the exception and the log file that holds the full trace,
exit code 1.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from distributed import LocalCluster

import stfcube.pipeline
import stfcube.pipeline.commands.fuse as fuse_command
from helpers.cube_factory import block_mean, synthetic_scene, write_cube
from stfcube.pipeline.cli import main
from stfcube.pipeline.commands._console import console
from stfcube.pipeline.engine.cluster import ClusterSpec
from stfcube.pipeline.errors import InputError

DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]


@pytest.fixture(scope="module")
def cube_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64 x 64 one-band cube: fine on the first and last day, coarse daily, 32 px chunks."""
    truth = synthetic_scene((64, 64), 1, DAYS, seed=2)
    path = tmp_path_factory.mktemp("template") / "cube.zarr"
    return write_cube(path, {d: truth[d] for d in DAYS[::2]}, block_mean(truth, 16), chunk=32)


@pytest.fixture
def workdir(tmp_path: Path, cube_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a copy of the cube; crash logs go to its ``cache`` subfolder."""
    import shutil

    shutil.copytree(cube_template, tmp_path / "cube.zarr")
    monkeypatch.setenv("STFCUBE_CACHE", str(tmp_path / "cache"))
    return tmp_path


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root``: relative path -> sha256 (``dir`` for folders)."""
    return {
        str(p.relative_to(root)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def run_failing(args: list[str], capsys: pytest.CaptureFixture[str], code: int = 2) -> str:
    """Run ``stfcube ARGS``; check the exit code and that stderr is one line without a trace."""
    assert main(args) == code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def fuse_args(workdir: Path, *options: str) -> list[str]:
    return ["fuse", str(workdir / "cube.zarr"), str(workdir / "fused.zarr"), *options]


# ---------------------------------------------------------------------------------- usage


def test_version_prints_the_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"stfcube {stfcube.pipeline.__version__}"


def test_no_arguments_print_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "Usage" in out and "fuse" in out and "--version" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["fusee"], "No such command 'fusee'. Did you mean 'fuse'?"),
        (["fuse", "a.zarr", "b.zarr", "--tilee", "64"], "No such option: --tilee"),
        (["fuse"], "Missing argument"),
        (["--verison"], "No such option: --verison"),
        (["fuse", "a.zarr", "b.zarr", "--tile", "big"], "Invalid value for '--tile'"),
        (["fuse", "missing.zarr", "b.zarr"], "'missing.zarr' does not exist"),
        (["plan", "missing.yaml"], "'missing.yaml' does not exist"),
        (["submit", "--slurm", "x.yaml", "--jobs", "0"], "Invalid value for '--jobs'"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    line = run_failing(args, capsys)
    assert expected in line
    assert line.endswith("--help')")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------- fuse option values


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--tile", "0"], "'--tile': 0 px is below the minimum of 16"),
        (["--tile", "-1"], "'--tile': -1 px is below the minimum of 16"),
        (["--tile", "7"], "'--tile': 7 px is below the minimum of 16: smaller tiles cost more"),
        (["-p", "data_range=5"], "data_range=5"),
        (["-p", "max_search_distance=-3"], "max_search_distance must be a positive"),
        (["-p", "no_such=1"], "parameter(s) no_such"),
        (["-p", "just-a-word"], "--param expects KEY=VALUE, got 'just-a-word'"),
        (["--method", "nope"], "unknown fusion method 'nope'"),
        (["--tile", "32", "--region", "0:10,0:32"], "must fall on multiples of the tile size 32"),
        (["--tile", "32", "--region", "0:640,0:32"], "is empty or outside the image (64 x 64)"),
        (["--region", "rows"], "--region expects ROW0:ROW1,COL0:COL1, got 'rows'"),
        (["--memory-limit", "lots"], "'--memory-limit': 'lots' is not a memory size"),
        (["--min-pair-valid", "2"], "'--min-pair-valid'"),
        (["--min-pair-valid", "-0.5"], "'--min-pair-valid'"),
        (["--workers", "0"], "'--workers'"),
        (["--device", "tpu"], "'--device': 'tpu' is not a device; use cpu or gpu"),
        (["--scheduler", "nonsense"], "'nonsense' is not a scheduler address"),
        (["--date", "2024-05-02", "--all-coarse-dates"], "either --date or --all-coarse-dates"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_bad_fuse_options_are_refused_before_anything_is_written(
    options: list[str], expected: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(workdir)
    line = run_failing(fuse_args(workdir, *options), capsys)
    assert expected in line
    assert snapshot(workdir) == before


def test_gpu_without_cupy_is_refused(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    before = snapshot(workdir)
    line = run_failing(fuse_args(workdir, "--device", "gpu"), capsys)
    assert "--device gpu needs CuPy, which is not installed" in line
    assert snapshot(workdir) == before


def test_unreachable_scheduler_leaves_no_output_store(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(
        fuse_command, "ClusterSpec", functools.partial(ClusterSpec, connect_timeout="1s")
    )
    before = snapshot(workdir)
    line = run_failing(fuse_args(workdir, "--scheduler", f"tcp://127.0.0.1:{port}"), capsys)
    assert f"cannot reach the dask scheduler at tcp://127.0.0.1:{port}" in line
    assert snapshot(workdir) == before


def test_output_folder_that_is_not_a_store_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "fused.zarr").mkdir()
    (workdir / "fused.zarr" / "notes.txt").write_text("mine")
    before = snapshot(workdir)
    line = run_failing(fuse_args(workdir, "--tile", "32"), capsys)
    assert str(workdir / "fused.zarr") in line
    assert snapshot(workdir) == before


def test_an_input_that_is_not_a_cube_names_the_path(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workdir / ("a-folder-with-a-long-name-" * 4) / "not-a-cube.zarr"
    folder.mkdir(parents=True)
    before = snapshot(workdir)
    line = run_failing(["fuse", str(folder), str(workdir / "fused.zarr")], capsys)
    assert str(folder) in line  # whole, on one line: stderr is not a terminal, nothing wraps
    assert len(line) > 120
    assert snapshot(workdir) == before


def test_scheduler_run_fuses_on_that_cluster(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        args = fuse_args(
            workdir, "--tile", "32", "--quiet", "--scheduler", cluster.scheduler_address
        )
        assert main(args) == 0, capsys.readouterr().err
    fused = xr.open_zarr(workdir / "fused.zarr", consolidated=False)
    assert [str(t)[:10] for t in fused["time"].values] == [DAYS[1]]
    assert bool(fused["tile_done"].all())
    assert np.isfinite(fused["fused"].values).mean() > 0.95


# ------------------------------------------------------------------- failures while running


def fuse_raises(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make the engine's ``fuse`` raise ``error`` once the command has checked its options."""

    def failing_fuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("stfcube.pipeline.engine.run.fuse", failing_fuse)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            OSError(errno.EROFS, "Read-only file system", "fused.zarr/zarr.json"),
            "error: fused.zarr/zarr.json: Read-only file system",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "fused.zarr"),
            "error: fused.zarr: Permission denied",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "fused.zarr/fused/c/0/0/0/0"),
            "error: fused.zarr/fused/c/0/0/0/0: No space left on device",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "a.tmp", None, "fused.zarr"),
            "error: a.tmp -> fused.zarr: Invalid cross-device link",
        ),
        (
            InputError("cube.zarr", "variable 'fine' is missing"),
            "error: cube.zarr: variable 'fine' is missing",
        ),
    ],
    ids=["read-only", "permission", "disk-full", "rename", "input-error"],
)
def test_expected_failures_are_one_line_and_exit_2(
    error: Exception,
    expected: str,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fuse_raises(monkeypatch, error)
    assert run_failing(fuse_args(workdir), capsys) == expected
    assert not (workdir / "cache" / "logs").exists()


def test_interrupt_exits_130(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fuse_raises(monkeypatch, KeyboardInterrupt())
    assert run_failing(fuse_args(workdir), capsys, code=130) == "error: interrupted"


def test_internal_error_is_one_line_and_its_trace_goes_to_a_log(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fuse_raises(monkeypatch, RuntimeError("the kernel\nbroke"))
    line = run_failing(fuse_args(workdir), capsys, code=1)
    logs = list((workdir / "cache" / "logs").iterdir())
    assert len(logs) == 1
    assert line == f"error: internal error: RuntimeError: the kernel broke; full trace in {logs[0]}"
    text = logs[0].read_text()
    assert text.startswith(f"command: stfcube fuse {workdir / 'cube.zarr'}")
    assert "Traceback (most recent call last)" in text and "in failing_fuse" in text


def test_internal_error_log_falls_back_to_the_temporary_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile

    (workdir / "cache").write_text("a file where the cache folder should be")
    monkeypatch.setattr(tempfile, "tempdir", str(workdir / "tmp"))
    (workdir / "tmp").mkdir()
    fuse_raises(monkeypatch, ValueError("bug"))
    line = run_failing(fuse_args(workdir), capsys, code=1)
    (log,) = (workdir / "tmp").iterdir()
    assert line.endswith(f"full trace in {log}")


def test_command_output_is_not_wrapped_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    text = "x" * 50 + " " + "/a/long/path/" * 10
    console().print(text)
    console(stderr=True).print(text)
    captured = capsys.readouterr()
    assert captured.out == captured.err == text + "\n"


def test_dask_progress_counts_every_task_of_every_computation() -> None:
    """ingest and evaluate show one bar over all the dask computations they start."""
    import io

    import dask.array as da
    from rich.console import Console

    from stfcube.pipeline.commands._progress import dask_progress

    out = io.StringIO()
    screen = Console(file=out, force_terminal=True, color_system=None, width=100)
    with dask_progress("ingesting", screen):
        da.ones((8, 8), chunks=4).sum().compute()
        da.ones((8, 8), chunks=4).mean().compute()
    text = out.getvalue()
    assert "ingesting" in text
    done, total = text.rsplit("/", 1)[0].split()[-1], text.rsplit("/", 1)[1].split()[0]
    assert done == total and int(total) > 8  # both graphs counted, all done
    quiet = io.StringIO()
    with dask_progress("ingesting", Console(file=quiet, force_terminal=True), quiet=True):
        da.ones(4, chunks=2).sum().compute()
    assert "ingesting" not in quiet.getvalue()
