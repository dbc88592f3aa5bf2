"""Export of fused products: one COG per date and a STAC collection of the cube and the COGs."""

from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.export.run import ExportResult as ExportResult
    from stfcube.pipeline.export.run import export_cog as export_cog
    from stfcube.pipeline.export.run import export_stac as export_stac

#: COG compressions (light, so that the command line checks the option before heavy imports):
#: deflate (read everywhere) and zstd (faster to write and read).
COMPRESSIONS = ("deflate", "zstd")

__all__ = ["ExportResult", "export_cog", "export_stac"]
__getattr__ = lazy_exports(
    __name__,
    {name: "stfcube.pipeline.export.run" for name in __all__},
)
