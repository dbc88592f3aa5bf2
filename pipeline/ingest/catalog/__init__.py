"""Scene stacks from the catalogs users use: STAC APIs, static catalogs and item files.

- :mod:`pipeline.ingest.catalog.collections`: per-collection tables (bands, decoding, QA, dates).
- :mod:`pipeline.ingest.catalog.qa`: QA layers to validity masks.
- :mod:`pipeline.ingest.catalog.load`: finding items and loading them onto one grid (odc-stac).
- :mod:`pipeline.ingest.catalog.ingest`: :func:`ingest_catalog`, items into a new cube or the images
  an existing cube lacks.
"""
