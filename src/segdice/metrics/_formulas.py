"""The overlap formulas shared by :mod:`~segdice.metrics.overlap` and :mod:`~segdice.metrics.streaming`.

Metric names, the averages over classes, and the ratio of each metric from the counts
``(tp, fp, fn, tn)`` with the empty-mask policy described in :mod:`segdice.metrics.overlap`.
"""

from __future__ import annotations

import math

import torch

from segdice.metrics._names import METRICS

__all__ = [
    "AVERAGES",
    "GDS_WEIGHTS",
    "METRICS",
    "class_average",
    "generalized_dice_from_counts",
    "ratio_from_counts",
]

#: Averages over classes understood by every overlap metric.
AVERAGES: tuple[str, ...] = ("none", "macro", "micro", "weighted")
#: Weightings of the generalized Dice score (and loss): ``1/G²``, ``1/G``, or 1 per class.
GDS_WEIGHTS: tuple[str, ...] = ("square", "simple", "uniform")

# Metrics built on the negatives (tn): like specificity, they are `empty_value` also where the class covers
# every voxel in both masks (tn + fp + fn == 0: there are no negatives to score).
_NEGATIVE_BASED = frozenset({"specificity", "npv", "fpr", "for", "ba", "bm", "mk", "mcc", "pt"})


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0 (the segdice 0/0 rule outside the both-empty case)."""
    defined = den > 0
    return torch.where(defined, num / torch.where(defined, den, torch.ones_like(den)), torch.zeros_like(den))


def _value(metric: str, tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, tn: torch.Tensor, beta: float):
    if metric == "dice":
        return _ratio(2 * tp, 2 * tp + fp + fn)
    if metric == "iou":
        return _ratio(tp, tp + fp + fn)
    if metric == "fbeta":
        b2 = beta * beta
        return _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    if metric == "accuracy":
        return _ratio(tp + tn, tp + fp + fn + tn)
    if metric in ("recall", "sensitivity"):
        return _ratio(tp, tp + fn)
    if metric == "precision":
        return _ratio(tp, tp + fp)
    if metric == "specificity":
        return _ratio(tn, tn + fp)
    if metric == "npv":
        return _ratio(tn, tn + fn)
    # error rates are the complements of their ratios, so the 0/0 rule gives them their worst value, 1
    complement = {"fnr": "recall", "fdr": "precision", "fpr": "specificity", "for": "npv"}
    if metric in complement:
        return 1.0 - _value(complement[metric], tp, fp, fn, tn, beta)
    tpr, tnr = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    if metric == "ba":
        return (tpr + tnr) / 2
    if metric == "bm":
        return tpr + tnr - 1.0
    ppv, npv = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    if metric == "mk":
        return ppv + npv - 1.0
    if metric == "fmi":
        return torch.sqrt(ppv * tpr)
    if metric == "mcc":
        return _ratio(tp * tn - fp * fn, torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    if metric == "pt":
        # (sqrt(tpr·fpr) − fpr) / (tpr − fpr) simplified by sqrt(tpr) − sqrt(fpr): defined also at tpr = fpr
        root_tpr, root_fpr = torch.sqrt(tpr), torch.sqrt(1.0 - tnr)
        return _ratio(root_fpr, root_tpr + root_fpr)
    if metric == "vs":
        return 1.0 - _ratio((fp - fn).abs(), 2 * tp + fp + fn)
    # rvd: (|P| - |G|) / |G|, signed; a prediction on an empty target is an infinite relative excess
    g = tp + fn
    return torch.where(
        g > 0, (fp - fn) / torch.where(g > 0, g, torch.ones_like(g)), torch.full_like(g, math.inf)
    )


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

    A ratio whose denominator is 0 gives 0 (an error rate, its complement: 1); a class absent from target
    and prediction gives ``empty_value`` (for the metrics built on the negatives also a class that covers
    every voxel in both). ``rvd`` of a prediction on an empty target is ``+inf``.

    Examples
    --------
    >>> tp, fp, fn, tn = (torch.tensor(v) for v in ([3, 0], [1, 0], [1, 0], [5, 9]))
    >>> ratio_from_counts("dice", tp, fp, fn, tn, float("nan"), 1.0).tolist()
    [0.75, nan]
    """
    tp, fp, fn, tn = (t.to(torch.float64) for t in (tp, fp, fn, tn))
    value = _value(metric, tp, fp, fn, tn, beta)
    empty = (tp + fp + fn) == 0
    if metric in _NEGATIVE_BASED:
        empty |= (tn + fp + fn) == 0
    return value.masked_fill(empty, empty_value)


def generalized_dice_from_counts(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, weight: str, empty_value: float
) -> torch.Tensor:
    """The generalized Dice score over the last (class) axis: ``[..., C]`` -> ``[...]`` (float64).

    ``GDS = 2 Σ_c w_c TP_c / Σ_c w_c (2 TP_c + FP_c + FN_c)`` with ``w_c = 1/G_c²`` (square), ``1/G_c``
    (simple) or 1 (uniform), ``G_c = TP_c + FN_c``. A class absent from the target takes the largest weight
    of the present classes of its group (MONAI's rule: a false positive there still counts), every weight is
    1 when no class is present, and a group with nothing in target and prediction gives ``empty_value``.

    Examples
    --------
    >>> tp, fp, fn = torch.tensor([[8, 1]]), torch.tensor([[1, 0]]), torch.tensor([[0, 1]])
    >>> round(float(generalized_dice_from_counts(tp, fp, fn, "uniform", float("nan"))[0]), 4)
    0.9
    """
    tp, fp, fn = (t.to(torch.float64) for t in (tp, fp, fn))
    g = tp + fn
    present = g > 0
    if weight == "uniform":
        w = torch.ones_like(g)
    else:
        safe = torch.where(present, g, torch.ones_like(g))
        w = torch.where(present, 1.0 / (safe * safe if weight == "square" else safe), torch.zeros_like(g))
        w = torch.where(present, w, w.amax(-1, keepdim=True).expand_as(w))
        w = torch.where(present.any(-1, keepdim=True), w, torch.ones_like(w))
    num = 2.0 * (w * tp).sum(-1)
    den = (w * (2 * tp + fp + fn)).sum(-1)
    return _ratio(num, den).masked_fill(den == 0, empty_value)


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
