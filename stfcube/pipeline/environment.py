"""Process environment defaults: offline, quiet, every cache in one folder.

Several libraries of the stack read environment variables once, at import: Prefect creates
``PREFECT_HOME`` and may send telemetry, numba picks its threading layer and cache folder, CuPy
and matplotlib write caches into ``$HOME``, dask-jobqueue writes its config. The CLI, the flows,
``dev.py`` and the tests apply these defaults before those imports. Values already set in the
environment always win (a deployment's ``PREFECT_API_URL`` or ``PREFECT_HOME`` is kept).

This module imports nothing outside the standard library, so ``dev.py`` can use it before the
virtual environment exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$STFCUBE_CACHE``, or ``~/.cache/stfcube``."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("STFCUBE_CACHE", Path.home() / ".cache" / "stfcube"))


def runtime_defaults(cache: Path) -> dict[str, str]:
    """The default environment, with every cache under ``cache``.

    - Prefect: home under the cache, telemetry off (its temporary server otherwise contacts
      an outside host), a 120 s start-up timeout for the temporary server (its first start runs
      database migrations, slower than Prefect's 20 s default on a loaded machine), no UI.
    - numba: on-disk JIT cache (kernels compile once, not in every dask worker) and the
      ``omp`` threading layer, which is safe when dask threads call parallel kernels at once.
    - CuPy, matplotlib (headless ``Agg``), dask config: under the cache; dask.distributed
      logs warnings only (its per-worker start-up lines would drown the commands' output).
    - GDAL: a 256 MB block cache per process. Its default (5 % of the RAM) fills up as an
      ingest reads more of a large scene stack: peak memory then grows with the extent (a
      10000^2 ingest peaked at 1.86 GiB instead of 0.90 GiB, no faster), and on a large HPC
      node it is gigabytes per worker.
    """
    return {
        "STFCUBE_CACHE": str(cache),
        "PREFECT_HOME": str(cache / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "NUMBA_CACHE_DIR": str(cache / "numba"),
        "NUMBA_THREADING_LAYER": "omp",
        "CUPY_CACHE_DIR": str(cache / "cupy"),
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "MPLBACKEND": "Agg",
        "DASK_CONFIG": str(cache / "dask"),
        "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning",
        "GDAL_CACHEMAX": "256",
    }


def apply_runtime_defaults(cache: Path | None = None) -> None:
    """Set :func:`runtime_defaults` in ``os.environ`` where a variable is not set yet."""
    for key, value in runtime_defaults(cache or cache_dir()).items():
        os.environ.setdefault(key, value)
    try:  # Prefect creates its home without parents and warns on a fresh checkout's cache
        Path(os.environ["PREFECT_HOME"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass  # a read-only cache: Prefect says so itself
