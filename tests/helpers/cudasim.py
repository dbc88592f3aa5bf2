"""Run a script under numba's CUDA simulator: it must be on before numba is imported, so the
script runs in a fresh interpreter with ``NUMBA_ENABLE_CUDASIM=1``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_simulated(script: str) -> Any:
    """Run ``script`` under the simulator; return the JSON it prints on its last line."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
