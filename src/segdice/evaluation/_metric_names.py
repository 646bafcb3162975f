"""The metric names of the evaluator, in a module that loads no torch: ``segdice evaluate --help`` lists them.

Built from the names of :mod:`segdice.metrics` (their one home), which resolves them without importing a
metric.
"""

from __future__ import annotations

from segdice.metrics import BOUNDARY_METRICS, METRICS

__all__ = ["ALL_METRICS", "BOUNDARY_METRICS", "DEFAULT_METRICS", "OVERLAP_METRICS"]

#: The overlap metrics a worker forms from one counting pass; F-beta is left out because the evaluator
#: takes no beta.
OVERLAP_METRICS: tuple[str, ...] = tuple(name for name in METRICS if name != "fbeta")
#: Every metric name :func:`segdice.evaluation.evaluate` accepts: the overlap metrics, then the boundary ones.
ALL_METRICS: tuple[str, ...] = OVERLAP_METRICS + BOUNDARY_METRICS
#: The metrics scored when none are named.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "hd95", "assd", "nsd")
