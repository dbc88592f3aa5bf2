"""Scene stacks from the catalogs users use: STAC APIs, static catalogs and item files.

- :mod:`pipeline.catalogs.collections`: per-collection tables (bands, decoding, QA, dates).
- :mod:`pipeline.catalogs.qa`: QA layers to validity masks.
- :mod:`pipeline.catalogs.load`: finding items and loading them onto one grid (odc-stac).
- :mod:`pipeline.catalogs.ingest`: :func:`ingest_catalog`, items into a new cube or the images
  an existing cube lacks.
"""
