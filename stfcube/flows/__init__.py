"""Prefect flows (ingest, fuse, evaluate, update) that call the ``pipeline`` functions.

Importing this package first applies the offline runtime defaults
(:func:`stfcube.pipeline.environment.apply_runtime_defaults`), before Prefect is imported.
"""

from __future__ import annotations

from stfcube.pipeline.environment import apply_runtime_defaults

apply_runtime_defaults()

from stfcube.flows.evaluate import evaluate_flow  # noqa: E402
from stfcube.flows.fuse import fuse_flow  # noqa: E402
from stfcube.flows.ingest import ingest_flow  # noqa: E402
from stfcube.flows.update import UpdateReport, run_update, update_flow  # noqa: E402

__all__ = ["UpdateReport", "evaluate_flow", "fuse_flow", "ingest_flow", "run_update", "update_flow"]
