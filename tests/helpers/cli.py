"""Run the installed ``stfcube`` console script, as a user would, and read what it says."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path


def run_stfcube(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``stfcube ARGS...`` in a subprocess (the venv's console script); never raises on failure."""
    stfcube = Path(sys.executable).with_name("stfcube")
    return subprocess.run(
        [str(stfcube), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "1000"},  # messages on one line, paths whole
    )


def run_stfcube_in_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``stfcube ARGS...`` through the console script's ``main`` in this process: the same exit
    code and output as :func:`run_stfcube` without a new interpreter's imports (~4 s each)."""
    from stfcube.pipeline.cli import main

    argv = list(map(str, args))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return subprocess.CompletedProcess(["stfcube", *argv], code, out.getvalue(), err.getvalue())


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (including line wraps) made one space."""
    return " ".join(text.split())
