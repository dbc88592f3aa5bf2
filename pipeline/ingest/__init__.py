"""Ingest: scene stacks (manifests, static STAC, STAC APIs) into one analysis-ready cube."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.ingest.scenes import (
        IngestReport as IngestReport,
    )
    from pipeline.ingest.scenes import (
        ingest as ingest,
    )
    from pipeline.ingest.scenes import (
        load_source as load_source,
    )

__all__ = [
    "IngestReport",
    "ingest",
    "load_source",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "pipeline.ingest.scenes"))
