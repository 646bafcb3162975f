"""The metric names of the evaluator, in a module that loads no torch: ``segdice evaluate --help`` lists them.

Built from the names of :mod:`segdice.metrics` (their one home), which resolves them without importing a
metric.
"""

from __future__ import annotations

from collections.abc import Sequence

from segdice.metrics import BOUNDARY_METRICS, METRICS

__all__ = [
    "ACROSS_LABEL_ITEM",
    "ACROSS_LABEL_METRICS",
    "ALL_METRICS",
    "BOUNDARY_METRICS",
    "DEFAULT_METRICS",
    "OVERLAP_METRICS",
    "item_metrics",
]

#: The overlap metrics a worker forms from one counting pass; F-beta is left out because the evaluator
#: takes no beta.
OVERLAP_METRICS: tuple[str, ...] = tuple(name for name in METRICS if name != "fbeta")
#: Metrics of every scored label of a case at once (one value per case, ``gds``: the generalized Dice):
#: they fill one more row per case, whose item is :data:`ACROSS_LABEL_ITEM`, and are empty on the others.
ACROSS_LABEL_METRICS: tuple[str, ...] = ("gds",)
#: The item (``per_case.csv``) and results key (``summary.json``) of that row.
ACROSS_LABEL_ITEM = "all"
#: Every metric name :func:`segdice.evaluation.evaluate` accepts: the overlap metrics, the across-label
#: ones, then the boundary ones.
ALL_METRICS: tuple[str, ...] = OVERLAP_METRICS + ACROSS_LABEL_METRICS + BOUNDARY_METRICS
#: The metrics scored when none are named.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "hd95", "assd", "nsd")


def item_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """The metrics of the per-label/region rows: all but :data:`ACROSS_LABEL_METRICS`.

    Examples
    --------
    >>> item_metrics(("dice", "gds", "hd95"))
    ('dice', 'hd95')
    """
    return tuple(m for m in metrics if m not in ACROSS_LABEL_METRICS)
