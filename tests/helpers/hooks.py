"""Hooks that every process of a CLI run imports (a ``sitecustomize`` on ``PYTHONPATH``): slow
tiles, or a SIGKILL at an exact write, for the tests of killed and concurrent runs."""

from __future__ import annotations

import os
from pathlib import Path

#: Each tile task sleeps first, so a run is killed, or a second run started, part-way. With
#: ``STFCUBE_TEST_TILE_GATE`` set to a path, tasks also wait (up to 120 s) until it exists.
SLOW_TILES = """
import os
import time
import stfcube.pipeline.engine.tasks as _tasks

_original = _tasks.run_tile


def run_tile(task):
    gate, deadline = os.environ.get("STFCUBE_TEST_TILE_GATE"), time.monotonic() + 120
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(float(os.environ.get("STFCUBE_TEST_TILE_SLEEP", "0.2")))
    return _original(task)


_tasks.run_tile = run_tile
"""

#: The process kills itself (SIGKILL) at the N-th write of a Zarr key matching a pattern.
KILL_AT_WRITE = """
import os
import re
import signal

import zarr.storage

_set = zarr.storage.LocalStore.set
_pattern = re.compile(os.environ["STFCUBE_TEST_KILL_KEY"])
_at = int(os.environ["STFCUBE_TEST_KILL_AT"])
_seen = 0


async def set(self, key, value):
    global _seen
    if _pattern.search(key):
        _seen += 1
        if _seen == _at:
            os.kill(os.getpid(), signal.SIGKILL)
    return await _set(self, key, value)


zarr.storage.LocalStore.set = set
"""


def hook_environment(folder: Path, source: str, **variables: str) -> dict[str, str]:
    """This process's environment with ``source`` installed as the ``sitecustomize`` of every
    Python process started with it (written to ``folder``), plus ``variables``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(source)
    path = f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    return {**os.environ, "PYTHONPATH": path, **variables}
