"""Scene stacks from the catalogs users use: STAC APIs, static catalogs and item files.

- :mod:`stfcube.pipeline.ingest.catalog.collections`: per-collection tables (bands, decoding, QA,
  dates).
- :mod:`stfcube.pipeline.ingest.catalog.qa`: QA layers to validity masks.
- :mod:`stfcube.pipeline.ingest.catalog.find`: finding items (STAC API, static catalog, item files).
- :mod:`stfcube.pipeline.ingest.catalog.prepare`: normalising items (assets keyed by band, metadata
  completed) and checking their assets.
- :mod:`stfcube.pipeline.ingest.catalog.grids`: the fine grid of a region and its native coarse
  grid.
- :mod:`stfcube.pipeline.ingest.catalog.load`: loading items onto one grid (odc-stac), decoded and
  masked.
- :mod:`stfcube.pipeline.ingest.catalog.ingest`: :func:`ingest_catalog`, items into a new cube or
  the images
  an existing cube lacks.
"""
