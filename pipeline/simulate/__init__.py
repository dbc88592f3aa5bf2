"""Realistic synthetic sites: fine and coarse COGs, masks, daily truth and a STAC catalog."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.simulate.site import (
        SiteSummary as SiteSummary,
    )
    from pipeline.simulate.site import (
        simulate_site as simulate_site,
    )

__all__ = [
    "SiteSummary",
    "simulate_site",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "pipeline.simulate.site"))
