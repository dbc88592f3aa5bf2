"""Offline, quiet Prefect settings, applied before anything imports ``prefect``.

Prefect reads its settings (and creates ``PREFECT_HOME``) as soon as it is imported, so the
``flows`` package imports this module before any of its submodules (which import Prefect).
Values already in the environment win: a deployment that exports ``PREFECT_API_URL`` or its own
``PREFECT_HOME`` keeps them.

- ``PREFECT_HOME``: ``$STFCUBE_CACHE/prefect`` (default ``~/.cache/stfcube/prefect``), not
  ``~/.prefect``.
- Telemetry off (``PREFECT_SERVER_ANALYTICS_ENABLED=false``, ``DO_NOT_TRACK=1``): the temporary
  server otherwise contacts an outside host once per start.
- ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120``: the first start of the temporary
  server (database migrations) can exceed Prefect's 20 s default on a loaded machine.
"""

from __future__ import annotations

import os
from pathlib import Path


def offline_defaults(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment defaults that keep Prefect local, quiet and without telemetry."""
    environ = os.environ if environ is None else environ
    cache = Path(environ.get("STFCUBE_CACHE", Path.home() / ".cache" / "stfcube"))
    return {
        "PREFECT_HOME": str(cache / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_UI_ENABLED": "false",
    }


def apply_offline_defaults() -> None:
    """Set :func:`offline_defaults` in ``os.environ`` where a variable is not set yet."""
    for key, value in offline_defaults().items():
        os.environ.setdefault(key, value)


apply_offline_defaults()
