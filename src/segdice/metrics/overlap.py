"""Overlap metrics (Dice, IoU, precision, recall, specificity, accuracy, F-beta) from hard counts.

Every function counts once with :func:`segdice.stats.confusion` and forms its ratio from the counts
``(tp, fp, fn, tn)``; none of them compares voxels itself.

Empty-mask policy (the same in every function, per image and class, or per class when pooled):

1. The class is absent from both the target and the prediction (``tp + fp + fn == 0``): every metric
   gives ``empty_value`` (default NaN; 0 or 1 on request). For specificity the same holds when the
   class covers every voxel in both (``tn + fp + fn == 0``: there are no negatives to score).
2. Otherwise a ratio ``0 / 0`` gives 0, because one of the two sets it compares is not empty: precision
   when nothing is predicted but the target has the class (a miss), recall when the class is predicted
   but absent from the target (a false positive). Dice and IoU are then 0 from their formula, so a
   false positive on an empty target is always seen.

Averages: ``"none"`` keeps every class; ``"macro"`` is the NaN-ignoring mean over classes; ``"micro"``
pools the counts over classes first; ``"weighted"`` is the mean over classes weighted by the support
(target voxel count, ``tp + fn``) with NaN classes left out. With ``per_image=True`` an average is taken
per image first and then the NaN-ignoring mean over images.
"""

from __future__ import annotations

import numpy as np
import torch

from segdice._checks import check_choice, check_empty_value, check_number
from segdice.metrics._formulas import (
    AVERAGES,
    GDS_WEIGHTS,
    METRICS,
    class_average,
    generalized_dice_from_counts,
    ratio_from_counts,
)
from segdice.stats import confusion

__all__ = [
    "AVERAGES",
    "METRICS",
    "accuracy",
    "balanced_accuracy",
    "dice_score",
    "false_discovery_rate",
    "false_negative_rate",
    "false_omission_rate",
    "false_positive_rate",
    "fbeta_score",
    "fowlkes_mallows_index",
    "generalized_dice_score",
    "informedness",
    "iou_score",
    "markedness",
    "matthews_corrcoef",
    "negative_predictive_value",
    "precision",
    "prevalence_threshold",
    "recall",
    "relative_volume_difference",
    "score_from_counts",
    "sensitivity",
    "specificity",
    "volume_similarity",
]

Array = torch.Tensor | np.ndarray


def score_from_counts(
    metric: str,
    tp: torch.Tensor,
    fp: torch.Tensor,
    fn: torch.Tensor,
    tn: torch.Tensor,
    *,
    empty_value: float = float("nan"),
    average: str = "none",
    beta: float = 1.0,
) -> torch.Tensor:
    """Form an overlap metric from counts ``[..., C]``, with the empty-mask policy and an average.

    Parameters
    ----------
    metric
        ``"dice"``, ``"iou"``, ``"precision"``, ``"recall"``, ``"specificity"``, ``"accuracy"`` or
        ``"fbeta"``.
    tp, fp, fn, tn
        Counts with the classes on the last axis: ``[C]`` or ``[B, C]`` (as :func:`~segdice.stats.confusion`
        returns them).
    empty_value
        The value of a class absent from both target and prediction (NaN, 0 or 1).
    average
        ``"none"``, ``"macro"``, ``"micro"`` or ``"weighted"``; with a leading batch axis the per-image
        averages are then averaged over images, ignoring NaN.
    beta
        The F-beta weight of recall (only for ``metric="fbeta"``).

    Returns
    -------
    torch.Tensor
        float64: the input shape for ``average="none"``, else a 0-dim tensor.

    Raises
    ------
    SegDiceError
        For an unknown metric or average, or an invalid ``empty_value`` / ``beta``.

    Examples
    --------
    >>> import torch
    >>> tp, fp, fn, tn = (torch.tensor(v) for v in ([3, 0], [1, 2], [1, 0], [5, 8]))
    >>> score_from_counts("dice", tp, fp, fn, tn).tolist()
    [0.75, 0.0]
    >>> float(score_from_counts("dice", tp, fp, fn, tn, average="micro"))
    0.6
    """
    check_choice("metric", metric, METRICS)
    check_choice("average", average, AVERAGES)
    empty_value = check_empty_value(empty_value)
    check_number("beta", beta, minimum=0)
    if average == "none":
        return ratio_from_counts(metric, tp, fp, fn, tn, empty_value, beta)
    value = class_average(metric, tp, fp, fn, tn, empty_value, beta, average)
    if value.ndim:
        value = torch.nanmean(value, dim=0)
    return value


def _score_arrays(
    name: str,
    pred: Array,
    target: Array,
    *,
    num_classes: int | None,
    mode: str,
    include_background: bool,
    ignore_index: int | None,
    empty_value: float,
    per_image: bool,
    average: str,
    beta: float = 1.0,
) -> torch.Tensor:
    check_choice("average", average, AVERAGES)
    empty_value = check_empty_value(empty_value)
    check_number("beta", beta, minimum=0)
    tp, fp, fn, tn = confusion(
        pred,
        target,
        num_classes,
        mode=mode,
        ignore_index=ignore_index,
        per_image=per_image,
        include_background=include_background,
    )
    return score_from_counts(name, tp, fp, fn, tn, empty_value=empty_value, average=average, beta=beta)


def dice_score(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Dice coefficient ``2 TP / (2 TP + FP + FN)`` per image and class, from one counting pass.

    Parameters
    ----------
    pred
        Hard prediction: a label map ``[B, *spatial]`` (multiclass), masks ``[B, C, *spatial]`` /
        ``[B, *spatial]`` (multilabel / binary), or float scores ``[B, C, *spatial]``, arg-maxed
        (multiclass) or thresholded at 0.5 (binary, multilabel). Torch tensor or NumPy array.
    target
        Label map ``[B, *spatial]`` / ``[B, 1, *spatial]`` (multiclass) or masks shaped like ``pred``.
    num_classes
        Number of classes; ``None`` infers it (score channels, or the largest label + 1).
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    include_background
        Multiclass only: ``False`` leaves class 0 out of the result and of the averages.
    ignore_index
        Target value whose voxels are excluded from every count (e.g. 255 or -100).
    empty_value
        Score of an (image, class) absent from both target and prediction: NaN (default, left out of
        averages), 0 or 1. A class predicted but absent from the target always scores 0.
    per_image
        ``True``: one score per image ``[B, C]``; ``False``: counts pooled over the batch, ``[C]``.
    average
        ``"none"``, ``"macro"`` (mean over classes), ``"micro"`` (counts pooled over classes) or
        ``"weighted"`` (mean weighted by the target voxel count); averages return a scalar, per image
        first when ``per_image=True``.

    Returns
    -------
    torch.Tensor
        float64 scores on the input's device: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        On mismatched shapes, float labels, out-of-range labels, NaN scores or an invalid option.

    Examples
    --------
    The reason segdice exists: on a mask with 0.1% foreground, predicting background everywhere
    scores an accuracy of 0.999 and a Dice of 0.

    >>> import torch
    >>> target = torch.zeros(1, 100, 100, dtype=torch.long)
    >>> target[0, :10, :1] = 1  # 10 foreground pixels of 10,000
    >>> pred = torch.zeros_like(target)
    >>> float(accuracy(pred, target, num_classes=2)[0, 1])
    0.999
    >>> float(dice_score(pred, target, num_classes=2)[0, 1])
    0.0
    """
    return _score_arrays(
        "dice",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def iou_score(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Intersection over union (Jaccard) ``TP / (TP + FP + FN)``; arguments as :func:`dice_score`.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import numpy as np
    >>> iou_score(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]), num_classes=2).tolist()
    [[0.5, 0.6666666666666666]]
    """
    return _score_arrays(
        "iou",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def precision(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Precision (positive predictive value) ``TP / (TP + FP)``; arguments as :func:`dice_score`.

    Nothing predicted while the target has the class gives 0 (a miss); absent from both gives
    ``empty_value``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> precision(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]), mode="binary").tolist()
    [[0.5]]
    """
    return _score_arrays(
        "precision",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def recall(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Recall (sensitivity) ``TP / (TP + FN)``; arguments as :func:`dice_score`.

    A class predicted but absent from the target gives 0 (a false positive); absent from both gives
    ``empty_value``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> recall(torch.tensor([[1, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0]]), mode="binary").tolist()
    [[0.5]]
    """
    return _score_arrays(
        "recall",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def specificity(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Specificity (true negative rate) ``TN / (TN + FP)``; arguments as :func:`dice_score`.

    A class absent from both target and prediction gives ``empty_value`` (as in every metric), and so
    does a class that covers every voxel in both (no negatives).

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> specificity(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]), mode="binary").tolist()
    [[0.6666666666666666]]
    """
    return _score_arrays(
        "specificity",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def accuracy(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Per-class voxel accuracy ``(TP + TN) / (TP + FP + FN + TN)``; arguments as :func:`dice_score`.

    For one class this is the fraction of (non-ignored) voxels on which target and prediction agree
    about that class, which is why it says 0.999 for a model that misses a 0.1% structure.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> accuracy(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]]), mode="binary").tolist()
    [[0.75]]
    """
    return _score_arrays(
        "accuracy",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def fbeta_score(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
    beta: float = 1.0,
) -> torch.Tensor:
    """F-beta score ``(1 + b²) TP / ((1 + b²) TP + b² FN + FP)``; ``beta=1`` is Dice.

    ``beta > 1`` weighs recall more, ``beta < 1`` precision (``beta=0`` is precision).

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.
    beta
        Non-negative weight of recall.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`, and for a negative or non-finite ``beta``.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 0, 0]])
    >>> fbeta_score(pred, target, mode="binary", beta=2.0).tolist()
    [[0.8333333333333334]]
    """
    return _score_arrays(
        "fbeta",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
        beta=beta,
    )


def sensitivity(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Sensitivity (true positive rate), the same value as :func:`recall`: ``TP / (TP + FN)``; arguments as :func:`dice_score`.

    A class predicted but absent from the target gives 0; absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"sensitivity"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(sensitivity(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.6667
    """
    return _score_arrays(
        "sensitivity",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def negative_predictive_value(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Negative predictive value: ``TN / (TN + FN)``; arguments as :func:`dice_score`.

    A class predicted on every voxel (no predicted negatives) gives 0 unless the target also covers every voxel, which gives ``empty_value`` (as for absent from both). Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"npv"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(negative_predictive_value(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.75
    """
    return _score_arrays(
        "npv",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def false_positive_rate(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """False positive rate (fall-out): ``FP / (FP + TN) = 1 − specificity``; arguments as :func:`dice_score`.

    The complement of :func:`specificity`: where specificity is ``0/0`` outside the empty cases, the rate is 1; ``empty_value`` where specificity is. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"fpr"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(false_positive_rate(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.4
    """
    return _score_arrays(
        "fpr",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def false_negative_rate(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """False negative rate (miss rate): ``FN / (FN + TP) = 1 − recall``; arguments as :func:`dice_score`.

    The complement of :func:`recall`: a class predicted on an empty target gives 1; absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"fnr"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(false_negative_rate(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.3333
    """
    return _score_arrays(
        "fnr",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def false_discovery_rate(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """False discovery rate: ``FP / (FP + TP) = 1 − precision``; arguments as :func:`dice_score`.

    The complement of :func:`precision`: nothing predicted while the target has the class gives 1; absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"fdr"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(false_discovery_rate(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.5
    """
    return _score_arrays(
        "fdr",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def false_omission_rate(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """False omission rate: ``FN / (FN + TN) = 1 − NPV``; arguments as :func:`dice_score`.

    The complement of :func:`negative_predictive_value`, with its empty cases. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"for"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(false_omission_rate(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.25
    """
    return _score_arrays(
        "for",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def balanced_accuracy(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Balanced accuracy, the mean of sensitivity and specificity: ``(TPR + TNR) / 2``; arguments as :func:`dice_score`.

    Sensitivity and specificity follow their own ``0/0`` rules; ``empty_value`` when the class is absent from both masks or covers every voxel in both. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"ba"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(balanced_accuracy(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.6333
    """
    return _score_arrays(
        "ba",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def matthews_corrcoef(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Matthews correlation coefficient, in [-1, 1]: ``(TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))``; arguments as :func:`dice_score`.

    A zero marginal (nothing predicted, an empty target, ...) gives 0 (no correlation; MONAI gives NaN); ``empty_value`` when the class is absent from both masks or covers every voxel in both. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"mcc"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(matthews_corrcoef(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.2582
    """
    return _score_arrays(
        "mcc",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def fowlkes_mallows_index(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Fowlkes-Mallows index, the geometric mean of precision and recall: ``sqrt(PPV · TPR)``; arguments as :func:`dice_score`.

    Precision and recall follow their ``0/0`` rules (a miss or a false positive on an empty target gives 0); absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"fmi"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(fowlkes_mallows_index(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.5774
    """
    return _score_arrays(
        "fmi",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def informedness(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Informedness (bookmaker informedness, Youden's J), in [-1, 1]: ``TPR + TNR − 1``; arguments as :func:`dice_score`.

    As :func:`balanced_accuracy`. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"bm"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(informedness(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.2667
    """
    return _score_arrays(
        "bm",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def markedness(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Markedness, in [-1, 1]: ``PPV + NPV − 1``; arguments as :func:`dice_score`.

    Precision and NPV follow their ``0/0`` rules; ``empty_value`` as for :func:`balanced_accuracy`. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"mk"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(markedness(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.25
    """
    return _score_arrays(
        "mk",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def prevalence_threshold(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Prevalence threshold (Balayla 2020), in [0, 1]: ``(sqrt(TPR·FPR) − FPR) / (TPR − FPR) = sqrt(FPR) / (sqrt(TPR) + sqrt(FPR))``; arguments as :func:`dice_score`.

    The simplified right-hand form is used, so ``TPR = FPR`` gives 0.5 where MONAI's form is ``0/0`` (NaN); ``TPR = FPR = 0`` gives 0; ``empty_value`` as for :func:`balanced_accuracy`. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"pt"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(prevalence_threshold(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.4365
    """
    return _score_arrays(
        "pt",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def volume_similarity(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Volume similarity, in [0, 1]: 1 when the two volumes are equal, wherever they are: ``1 − |FP − FN| / (2TP + FP + FN)``; arguments as :func:`dice_score`.

    A class predicted on an empty target gives 0; absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"vs"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(volume_similarity(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.8571
    """
    return _score_arrays(
        "vs",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def relative_volume_difference(
    pred: Array,
    target: Array,
    *,
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
    average: str = "none",
) -> torch.Tensor:
    """Relative volume difference, signed: positive for an over-segmentation: ``(|P| − |G|) / |G| = (FP − FN) / (TP + FN)``; arguments as :func:`dice_score`.

    A class predicted on an empty target gives ``+inf`` (an infinite relative excess, never 0); absent from both gives ``empty_value``. Evaluator and :class:`~segdice.metrics.SegmentationMetrics` key: ``"rvd"``.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index, empty_value, per_image, average
        As for :func:`dice_score`.

    Returns
    -------
    torch.Tensor
        float64 scores: ``[B, C]``, ``[C]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`.

    Examples
    --------
    >>> import torch
    >>> pred, target = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]]), torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1]])
    >>> round(float(relative_volume_difference(pred, target, mode="binary")), 4)  # TP=2, FP=2, FN=1, TN=3
    0.3333
    """
    return _score_arrays(
        "rvd",
        pred,
        target,
        num_classes=num_classes,
        mode=mode,
        include_background=include_background,
        ignore_index=ignore_index,
        empty_value=empty_value,
        per_image=per_image,
        average=average,
    )


def generalized_dice_score(
    pred: Array,
    target: Array,
    *,
    weight: str = "square",
    num_classes: int | None = None,
    mode: str = "multiclass",
    include_background: bool = True,
    ignore_index: int | None = None,
    empty_value: float = float("nan"),
    per_image: bool = True,
) -> torch.Tensor:
    """Generalized Dice score (Sudre et al. 2017): one class-weighted Dice over all classes.

    ``GDS = 2 Σ_c w_c TP_c / Σ_c w_c (2 TP_c + FP_c + FN_c)``, ``w_c = 1 / G_c²`` (``"square"``),
    ``1 / G_c`` (``"simple"``) or 1 (``"uniform"``), with ``G_c = TP_c + FN_c`` the target voxel count,
    from the same counting pass as :func:`dice_score`.

    Empty classes (MONAI's rule, the one :class:`~segdice.losses.GeneralizedDiceLoss` uses): a class absent
    from the target takes the largest weight of the present classes (so a false positive there still
    costs), every weight is 1 when the target is empty, and an image (or batch) where target and
    prediction are both empty gives ``empty_value``. MONAI gives 1.0 there, torchmetrics 0.0; torchmetrics
    also fills the weight of an absent class from other images of the batch, so it agrees with this
    function when every class is present in every image.

    Parameters
    ----------
    pred, target, num_classes, mode, include_background, ignore_index
        As for :func:`dice_score`.
    weight
        ``"square"``, ``"simple"`` or ``"uniform"`` (torchmetrics calls it ``"linear"``).
    empty_value
        The score of an image with nothing in target and prediction (NaN, 0 or 1).
    per_image
        ``True``: one score per image ``[B]``; ``False``: one score of the counts pooled over the batch.

    Returns
    -------
    torch.Tensor
        float64: ``[B]`` or a 0-dim tensor.

    Raises
    ------
    SegDiceError
        As for :func:`dice_score`, and for an unknown ``weight``.

    Examples
    --------
    >>> import torch
    >>> target = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1]])
    >>> pred = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1]])  # the small class half found
    >>> round(float(generalized_dice_score(pred, target, weight="uniform")[0]), 4)
    0.875
    >>> round(float(generalized_dice_score(pred, target)[0]), 4)  # 1/G² stresses the small class
    0.75
    """
    check_choice("weight", weight, GDS_WEIGHTS)
    empty_value = check_empty_value(empty_value)
    tp, fp, fn, _ = confusion(
        pred,
        target,
        num_classes,
        mode=mode,
        ignore_index=ignore_index,
        per_image=per_image,
        include_background=include_background,
    )
    return generalized_dice_from_counts(tp, fp, fn, weight, empty_value)
