"""Evaluation of fused stores against truth: metrics, tables, figures, reports."""

from typing import TYPE_CHECKING

from pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from pipeline.evaluate.comparison import (
        ComparisonReport as ComparisonReport,
    )
    from pipeline.evaluate.comparison import (
        compare as compare,
    )
    from pipeline.evaluate.run import (
        EvaluationReport as EvaluationReport,
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
__getattr__ = lazy_exports(
    __name__,
    {
        "ComparisonReport": "pipeline.evaluate.comparison",
        "EvaluationReport": "pipeline.evaluate.run",
        "compare": "pipeline.evaluate.comparison",
        "evaluate": "pipeline.evaluate.run",
    },
)
