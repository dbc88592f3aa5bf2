"""One check for inputs that must be refused: by the API and by the CLI, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.checksums import file_checksums
from helpers.cli import one_line, run_stfcube_in_process
from stfcube.pipeline.errors import InputError
from stfcube.pipeline.ingest import ingest


def assert_ingest_refuses(source: Path, cube: Path, problem: str, named: str, root: Path) -> None:
    """``ingest`` and ``stfcube ingest`` of ``source`` into ``cube`` both refuse it.

    The API raises one :class:`InputError` stating ``problem`` and naming ``named``; the CLI's
    ``main`` (in this process: the console script's own process is tested elsewhere) prints the
    same on stderr and exits 2 without a traceback; no file under ``root`` is
    created, removed or changed (sha256).
    """
    before = file_checksums(root)
    with pytest.raises(InputError) as info:
        ingest(source, cube, chunk=16)
    message = str(info.value)
    assert problem in message and named in message, message
    assert file_checksums(root) == before
    result = run_stfcube_in_process("ingest", source, cube, "--chunk", "16")
    assert result.returncode == 2, result.stderr
    printed = one_line(result.stderr)
    assert problem in printed and named in printed, printed
    assert "Traceback" not in result.stderr
    assert file_checksums(root) == before
