"""Prefect flows (ingest, fuse, evaluate, update) that call the ``pipeline`` functions.

Importing this package first applies offline Prefect defaults (:mod:`flows._env`).
"""

from __future__ import annotations

import flows._env  # noqa: F401  (Prefect settings before prefect is imported)
from flows.evaluate import evaluate_flow
from flows.fuse import fuse_flow
from flows.ingest import ingest_flow
from flows.update import UpdateReport, run_update, update_flow

__all__ = ["UpdateReport", "evaluate_flow", "fuse_flow", "ingest_flow", "run_update", "update_flow"]
