"""Score folders of predicted masks against ground truth: pairing, workers, aggregation, reports.

Data flows one way: files -> :mod:`segdice.io` -> :mod:`segdice.metrics` (in worker processes, one
case at a time) -> rows streamed to ``per_case.csv`` -> statistics -> ``summary.json`` and
``report.html``. See :func:`evaluate`.
"""

from segdice.evaluation._options import ALL_METRICS, DEFAULT_METRICS
from segdice.evaluation._run import evaluate
from segdice.evaluation.result import EvaluationResult

__all__ = ["ALL_METRICS", "DEFAULT_METRICS", "EvaluationResult", "evaluate"]
