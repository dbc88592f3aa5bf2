"""The wheel installs one import package, ``stfcube``, with every module of the source tree and
the ``stfcube`` command (issue 19). ``python3 dev.py bench install`` installs it into a clean
virtual environment and runs the demo from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The project's wheel, built offline with the test environment's setuptools."""
    pytest.importorskip("setuptools", reason="the offline build needs setuptools in the venv")
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("stfcube-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_installs_only_the_stfcube_package(wheel: zipfile.ZipFile) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel.namelist()}
    dist_info = {name for name in top_level if name.endswith(".dist-info")}
    assert top_level - dist_info == {"stfcube"}


def test_the_wheel_holds_every_module_and_the_command(wheel: zipfile.ZipFile) -> None:
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "stfcube").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert modules <= set(wheel.namelist())
    (entry_points,) = (n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "stfcube = stfcube.pipeline.cli:main" in wheel.read(entry_points).decode()
