"""Evaluation of fused stores against truth: metrics, tables, figures, reports."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.evaluate.run import (
        ComparisonReport as ComparisonReport,
    )
    from pipeline.evaluate.run import (
        EvaluationReport as EvaluationReport,
    )
    from pipeline.evaluate.run import (
        compare as compare,
    )
    from pipeline.evaluate.run import (
        evaluate as evaluate,
    )

__all__ = [
    "ComparisonReport",
    "EvaluationReport",
    "compare",
    "evaluate",
]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "pipeline.evaluate.run"))
