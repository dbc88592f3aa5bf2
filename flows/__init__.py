"""Prefect flows (ingest, fuse, evaluate, update) that call the ``pipeline`` functions.

Importing this package first applies the offline runtime defaults
(:func:`pipeline.environment.apply_runtime_defaults`), before Prefect is imported.
"""

from __future__ import annotations

from pipeline.environment import apply_runtime_defaults

apply_runtime_defaults()

from flows.evaluate import evaluate_flow  # noqa: E402
from flows.fuse import fuse_flow  # noqa: E402
from flows.ingest import ingest_flow  # noqa: E402
from flows.update import UpdateReport, run_update, update_flow  # noqa: E402

__all__ = ["UpdateReport", "evaluate_flow", "fuse_flow", "ingest_flow", "run_update", "update_flow"]
