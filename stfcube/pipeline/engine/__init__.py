"""The tiled, distributed, resumable fusion engine: planning, tile tasks, methods, cluster."""

from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.engine.methods.registry import available_methods as available_methods
    from stfcube.pipeline.engine.methods.registry import get_method as get_method
    from stfcube.pipeline.engine.planning import FusionPlan as FusionPlan
    from stfcube.pipeline.engine.planning import plan_fusion as plan_fusion
    from stfcube.pipeline.engine.run import FuseReport as FuseReport
    from stfcube.pipeline.engine.run import FusionSetup as FusionSetup
    from stfcube.pipeline.engine.run import fuse as fuse
    from stfcube.pipeline.engine.run import prepare_fusion as prepare_fusion
    from stfcube.pipeline.engine.run import run_fusion as run_fusion

_MODULES = {
    "FuseReport": "stfcube.pipeline.engine.run",
    "FusionSetup": "stfcube.pipeline.engine.run",
    "fuse": "stfcube.pipeline.engine.run",
    "prepare_fusion": "stfcube.pipeline.engine.run",
    "run_fusion": "stfcube.pipeline.engine.run",
    "FusionPlan": "stfcube.pipeline.engine.planning",
    "plan_fusion": "stfcube.pipeline.engine.planning",
    "get_method": "stfcube.pipeline.engine.methods.registry",
    "available_methods": "stfcube.pipeline.engine.methods.registry",
}
__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
