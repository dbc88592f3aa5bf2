"""The tiled, distributed, resumable fusion engine: planning, tile tasks, methods, cluster."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.engine.run import (
        FuseReport as FuseReport,
    )
    from pipeline.engine.run import (
        FusionPlan as FusionPlan,
    )
    from pipeline.engine.run import (
        FusionSetup as FusionSetup,
    )
    from pipeline.engine.run import (
        fuse as fuse,
    )
    from pipeline.engine.run import (
        plan_fusion as plan_fusion,
    )
    from pipeline.engine.run import (
        prepare_fusion as prepare_fusion,
    )
    from pipeline.engine.run import (
        run_fusion as run_fusion,
    )

__all__ = [
    "FuseReport",
    "FusionPlan",
    "FusionSetup",
    "fuse",
    "plan_fusion",
    "prepare_fusion",
    "run_fusion",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "pipeline.engine.run"))
