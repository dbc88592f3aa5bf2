"""Realistic synthetic sites: fine and coarse COGs, masks, daily truth and a STAC catalog.

Modules, in the order a site is made: ``constants`` (bands, grid, storage scale), ``noise``
(hash-based, seeded noise), ``scene`` (land cover, phenology, roads, river, flood; per-block
layers and reflectance), ``sensors`` (fine clouds and masks, coarse PSF, shift and noise),
``config`` (validated parameters), ``cog`` (streaming COG writers with overviews), ``stac`` and
``catalog`` (the STAC catalog and file layout) and ``site`` (:func:`simulate_site`, which
streams blocks of rows through all of them).
"""

from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.simulate.site import (
        SiteSummary as SiteSummary,
    )
    from stfcube.pipeline.simulate.site import (
        simulate_site as simulate_site,
    )

__all__ = [
    "SiteSummary",
    "simulate_site",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "stfcube.pipeline.simulate.site"))
