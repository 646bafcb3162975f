"""Score folders of predicted masks against ground truth: pairing, workers, aggregation, reports.

Data flows one way: files -> :mod:`segdice.io` -> :mod:`segdice.metrics` (in worker processes, one
case at a time) -> rows streamed to ``per_case.csv`` -> statistics -> ``summary.json`` and
``report.html``. See :func:`evaluate`.

Every name is resolved on first use (PEP 562): the metric names (:data:`DEFAULT_METRICS`,
:data:`ALL_METRICS`) load no torch, so that ``segdice evaluate --help`` can show them at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segdice._lazy import lazy_attributes

if TYPE_CHECKING:  # the names below, for type checkers and the API reference
    from segdice.evaluation._metric_names import ALL_METRICS, DEFAULT_METRICS
    from segdice.evaluation._run import evaluate
    from segdice.evaluation.result import EvaluationResult

# Public name -> the module that defines it.
_NAMES: dict[str, str] = {
    "ALL_METRICS": "segdice.evaluation._metric_names",
    "DEFAULT_METRICS": "segdice.evaluation._metric_names",
    "EvaluationResult": "segdice.evaluation.result",
    "evaluate": "segdice.evaluation._run",
}
# Submodules reachable as attributes after a bare `import segdice.evaluation`.
_SUBMODULES = frozenset({"result"})

__all__ = ["ALL_METRICS", "DEFAULT_METRICS", "EvaluationResult", "evaluate"]


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, _SUBMODULES)
