"""The tiled, distributed, resumable fusion engine: planning, tile tasks, methods, cluster."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.engine.methods.registry import available_methods as available_methods
    from pipeline.engine.methods.registry import get_method as get_method
    from pipeline.engine.planning import FusionPlan as FusionPlan
    from pipeline.engine.planning import plan_fusion as plan_fusion
    from pipeline.engine.run import FuseReport as FuseReport
    from pipeline.engine.run import FusionSetup as FusionSetup
    from pipeline.engine.run import fuse as fuse
    from pipeline.engine.run import prepare_fusion as prepare_fusion
    from pipeline.engine.run import run_fusion as run_fusion

_MODULES = {
    "FuseReport": "pipeline.engine.run",
    "FusionSetup": "pipeline.engine.run",
    "fuse": "pipeline.engine.run",
    "prepare_fusion": "pipeline.engine.run",
    "run_fusion": "pipeline.engine.run",
    "FusionPlan": "pipeline.engine.planning",
    "plan_fusion": "pipeline.engine.planning",
    "get_method": "pipeline.engine.methods.registry",
    "available_methods": "pipeline.engine.methods.registry",
}
__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
