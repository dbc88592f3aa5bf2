"""Ingest: scene stacks (manifests, static STAC, STAC APIs) into one analysis-ready cube."""

from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.ingest.scenes import (
        IngestReport as IngestReport,
    )
    from stfcube.pipeline.ingest.scenes import (
        ingest as ingest,
    )
    from stfcube.pipeline.ingest.scenes import (
        load_source as load_source,
    )

__all__ = [
    "IngestReport",
    "ingest",
    "load_source",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "stfcube.pipeline.ingest.scenes"))
