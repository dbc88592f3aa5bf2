"""Run the installed ``stfcube`` console script, as a user would, and read what it says."""

from __future__ import annotations

import os
import subprocess
import sys
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


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (including line wraps) made one space."""
    return " ".join(text.split())
