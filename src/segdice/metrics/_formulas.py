"""The overlap formulas shared by :mod:`~segdice.metrics.overlap` and :mod:`~segdice.metrics.streaming`.

Metric names, the averages over classes, and the ratio of each metric from the counts
``(tp, fp, fn, tn)`` with the empty-mask policy described in :mod:`segdice.metrics.overlap`.
"""

from __future__ import annotations

import torch

__all__ = ["AVERAGES", "METRICS", "class_average", "ratio_from_counts"]

#: Averages over classes understood by every overlap metric.
AVERAGES: tuple[str, ...] = ("none", "macro", "micro", "weighted")
#: Overlap metric names understood by :func:`~segdice.metrics.score_from_counts` and the streaming metrics.
METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "fbeta")


def ratio_from_counts(
    metric: str,
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    empty_value: float,
    beta: float,
) -> torch.Tensor:
    """One metric per class from the counts ``[..., C]``, with the empty-mask policy (float64).

    A ratio whose denominator is 0 gives 0; a class absent from target and prediction gives
    ``empty_value`` (for specificity also a class that covers every voxel in both).

    Examples
    --------
    >>> tp, fp, fn, tn = (torch.tensor(v) for v in ([3, 0], [1, 0], [1, 0], [5, 9]))
    >>> ratio_from_counts("dice", tp, fp, fn, tn, float("nan"), 1.0).tolist()
    [0.75, nan]
    """
    tp, fp, fn, tn = (t.to(torch.float64) for t in (tp, fp, fn, tn))
    if metric == "dice":
        num, den = 2 * tp, 2 * tp + fp + fn
    elif metric == "iou":
        num, den = tp, tp + fp + fn
    elif metric == "precision":
        num, den = tp, tp + fp
    elif metric == "recall":
        num, den = tp, tp + fn
    elif metric == "fbeta":
        b2 = beta * beta
        num, den = (1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp
    elif metric == "specificity":
        num, den = tn, tn + fp
    else:  # accuracy
        num, den = tp + tn, tp + fp + fn + tn
    defined = den > 0
    value = torch.where(defined, num / torch.where(defined, den, torch.ones_like(den)), torch.zeros_like(den))
    empty = (tp + fp + fn) == 0
    if metric == "specificity":
        empty |= (tn + fp + fn) == 0
    return value.masked_fill(empty, empty_value)


def class_average(
    metric: str,
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    empty_value: float,
    beta: float,
    average: str,
) -> torch.Tensor:
    """Average over the last (class) axis: ``[..., C]`` -> ``[...]``."""
    if average == "micro":
        pooled = [t.sum(-1, keepdim=True) for t in (tp, fp, fn, tn)]
        return ratio_from_counts(metric, *pooled, empty_value, beta)[..., 0]
    per_class = ratio_from_counts(metric, tp, fp, fn, tn, empty_value, beta)
    if average == "macro":
        return torch.nanmean(per_class, dim=-1)
    # weighted by the support, the target voxel count of each class; NaN classes carry no weight
    known = ~torch.isnan(per_class)
    weight = torch.where(known, (tp + fn).to(torch.float64), torch.zeros_like(per_class))
    total = weight.sum(-1)
    weighted = (torch.where(known, per_class, torch.zeros_like(per_class)) * weight).sum(-1)
    # Where every known class has zero support (only false positives on empty targets), the support weights
    # are all 0; the plain mean of the known classes keeps that false positive in the score instead of
    # dropping the image (as torchmetrics does). Nothing known at all stays NaN.
    plain = torch.nanmean(per_class, dim=-1)
    return torch.where(total > 0, weighted / torch.where(total > 0, total, 1.0), plain)
