"""Defaults shared by the CLI's option signatures and the modules that use them.

This module imports nothing: the command modules read these values when ``stfcube`` starts
(typer builds ``--help`` from the signatures), while the modules that do the work, and their
heavy dependencies (xarray, dask, rasterio, ...), are imported only when a command runs.
"""

from __future__ import annotations

#: Default spatial chunk of a cube (pixels).
DEFAULT_CHUNK = 512
#: Ways to put coarse images on the fine grid (``average`` equals ``nearest`` for nested grids).
RESAMPLING_METHODS = ("average", "nearest", "bilinear", "cubic")
#: Bands of the synthetic sites (``stfcube simulate``), Landsat-like.
SIMULATED_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir1", "swir2")
