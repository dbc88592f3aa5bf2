"""Evaluation of fused stores against truth: metrics, tables, figures, reports."""

from typing import TYPE_CHECKING

from stfcube.pipeline._lazy import lazy_exports

if TYPE_CHECKING:
    from stfcube.pipeline.evaluate.comparison import (
        ComparisonReport as ComparisonReport,
    )
    from stfcube.pipeline.evaluate.comparison import (
        compare as compare,
    )
    from stfcube.pipeline.evaluate.run import (
        EvaluationReport as EvaluationReport,
    )
    from stfcube.pipeline.evaluate.run import (
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
        "ComparisonReport": "stfcube.pipeline.evaluate.comparison",
        "EvaluationReport": "stfcube.pipeline.evaluate.run",
        "compare": "stfcube.pipeline.evaluate.comparison",
        "evaluate": "stfcube.pipeline.evaluate.run",
    },
)
