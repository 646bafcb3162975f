"""The metric names of :mod:`segdice.metrics`, in a module that imports nothing.

They are read by the metrics themselves (:mod:`~segdice.metrics._formulas`, :mod:`~segdice.metrics.surface`)
and, through ``segdice.metrics.METRICS`` and ``segdice.metrics.BOUNDARY_METRICS``, by the evaluator and
the command line, whose ``--help`` lists them without importing torch.
"""

from __future__ import annotations

__all__ = ["BOUNDARY_METRICS", "METRICS"]

#: Overlap metric names understood by :func:`~segdice.metrics.score_from_counts`, the streaming metrics and
#: the evaluator: the classic ratios, then the confusion family under its evaluator keys (DESIGN §5).
METRICS: tuple[str, ...] = (
    "dice", "iou", "precision", "recall", "specificity", "accuracy", "fbeta",
    "sensitivity", "npv", "fpr", "fnr", "fdr", "for", "ba", "mcc", "fmi", "bm", "mk", "pt", "vs", "rvd",
)  # fmt: skip

#: Metric names understood by :func:`~segdice.metrics.boundary_metrics` (besides ``"hd<p>"`` for any
#: percentile ``p``).
BOUNDARY_METRICS: tuple[str, ...] = ("hd", "hd95", "assd", "masd", "nsd", "biou", "cldice")
