"""Prefect flows (ingest, fuse, evaluate, update) that call the ``pipeline`` functions."""
