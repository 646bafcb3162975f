"""Dice-family losses for PyTorch: Dice, Jaccard, Tversky, generalised Dice, Dice + CE, Dice + focal, and the
focal, Lovász and clDice losses.

Every loss is a :class:`torch.nn.Module` with a functional twin (``DiceLoss`` / :func:`dice_loss`, ...) and
takes its statistics from :func:`segdice.stats.soft_stats`: one fused autograd node (activation, masking,
per-class sums) whose backward is analytic and in place, so forward + backward keep one extra tensor of the
logits' size and no one-hot target is ever built.

The focal, Lovász and clDice losses (at the end of the module) work on the probabilities themselves: a
focal weight per pixel, a sorted ranking of errors, soft skeletons; they keep the same settings style.

Conventions shared by every loss (see ``docs/losses.md`` for the long form):

* ``I``, ``P``, ``G`` are per-class sums over one group: an image (``per_image=True``) or the whole batch
  (``per_image=False``, the default, "batch Dice"); ``s`` is ``smooth``.
* A class absent from the target stays in the mean. Its Dice loss is ``P / (P + s)``: 0 when the
  prediction is empty too, close to 1 as soon as the model predicts it, so its gradient pushes the false
  positives down. If ``P + G + s == 0`` (possible only with ``smooth=0``) the ratio is defined as 1 (loss 0).
* ``class_weights`` has one entry per input channel (background included, also when
  ``include_background=False`` drops it), so one vector serves the Dice and the cross-entropy terms.
  The weighted mean is ``sum(w_c L_c) / sum(w_c)``; ``reduction="none"`` returns unweighted values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segdice._checks import (
    REDUCTIONS,
    SegDiceError,
    check_choice,
    check_distributed,
    check_include_background,
    check_mode,
    check_number,
    describe,
)
from segdice.stats import SoftStats, check_soft_inputs, pool_soft_stats, soft_stats

__all__ = [
    "ClDiceLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LovaszLoss",
    "TverskyLoss",
    "cldice_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "focal_loss",
    "generalized_dice_loss",
    "jaccard_loss",
    "lovasz_loss",
    "tversky_loss",
]

ClassWeights = Sequence[float] | Tensor | None

# ------------------------------------------------------------------------------------------------------
# shared argument handling
# ------------------------------------------------------------------------------------------------------


# One _validate_<loss>_args per loss: the module calls it in __init__ (errors at construction) and the
# function at every call (so a setting changed on the module after construction is checked too).


def _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed) -> str:
    """The checks of the arguments every loss shares; returns the mode."""
    mode = check_mode(mode)
    check_number("smooth", smooth, minimum=0.0)
    check_choice("reduction", reduction, REDUCTIONS)
    check_include_background(include_background, mode)
    check_distributed(distributed, per_image)
    return mode


def _validate_overlap_args(mode, *, smooth, reduction, include_background, per_image, distributed) -> str:
    """Dice and Jaccard losses: the shared arguments only."""
    return _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed)


def _validate_tversky_args(
    mode, *, alpha, beta, smooth, reduction, include_background, per_image, distributed
) -> str:
    check_number("alpha", alpha, minimum=0.0)
    check_number("beta", beta, minimum=0.0)
    return _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed)


def _validate_generalized_dice_args(
    mode, *, weight, smooth, reduction, include_background, per_image, distributed
) -> str:
    check_choice("weight", weight, _GDL_WEIGHTS)
    return _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed)


def _validate_dice_ce_args(
    mode, *, loss, from_logits, dice_weight, ce_weight, label_smoothing, smooth, reduction, include_background,
    per_image, distributed,
) -> str:  # fmt: skip
    """``loss``: the name the messages give (the function's or the module's)."""
    _check_compound(from_logits, reduction, loss)
    check_number("dice_weight", dice_weight, minimum=0.0)
    check_number("ce_weight", ce_weight, minimum=0.0)
    check_number("label_smoothing", label_smoothing, minimum=0.0, maximum=1.0, strict_max=True)
    if dice_weight == 0 and ce_weight == 0:
        raise SegDiceError("dice_weight and ce_weight: got both 0; expected at least one positive weight")
    return _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed)


def _validate_dice_focal_args(
    mode, *, loss, from_logits, gamma, alpha, dice_weight, focal_weight, smooth, reduction, include_background,
    per_image, distributed,
) -> str:  # fmt: skip
    """``loss``: the name the messages give. A multiclass ``alpha`` is checked against the input's channel
    count by :func:`_softmax_focal_alpha`, once the input is known."""
    _check_compound(from_logits, reduction, loss)
    check_number("gamma", gamma, minimum=0.0)
    check_number("dice_weight", dice_weight, minimum=0.0)
    check_number("focal_weight", focal_weight, minimum=0.0)
    if dice_weight == 0 and focal_weight == 0:
        raise SegDiceError("dice_weight and focal_weight: got both 0; expected at least one positive weight")
    mode = _validate_common_args(mode, smooth, reduction, include_background, per_image, distributed)
    if mode != "multiclass" and alpha is not None:
        if not isinstance(alpha, (int, float)):
            raise SegDiceError(f"alpha: got {alpha!r} in mode {mode!r}; expected a number in [0, 1] or None")
        check_number("alpha", alpha, minimum=0.0, maximum=1.0)
    return mode


def _weights(class_weights: ClassWeights, n_channels: int, like: Tensor) -> Tensor | None:
    """Validate ``class_weights`` (one per input channel) and return them as a float tensor on ``like``'s device."""
    if class_weights is None:
        return None
    w = torch.as_tensor(class_weights, dtype=torch.float32, device=like.device).detach()
    if w.ndim != 1 or w.numel() != n_channels:
        raise SegDiceError(
            f"class_weights: got {describe(w, values=False)}; expected {n_channels} weights, one per input "
            "channel (background included, also with include_background=False)"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise SegDiceError(
            f"class_weights: got {describe(w)}; expected finite non-negative weights with a positive sum"
        )
    return w


def _channels_stats(stats: SoftStats, include_background: bool) -> tuple[Tensor, Tensor, Tensor]:
    if include_background:
        return stats.tp, stats.pred, stats.target
    return stats.tp[..., 1:], stats.pred[..., 1:], stats.target[..., 1:]


def _smoothed_ratio(num: Tensor, den: Tensor, smooth: float, den_nonnegative: bool = False) -> Tensor:
    """``(num + s) / (den + s)``, with 0/0 defined as 1 (an empty class predicted empty is perfect).

    ``den_nonnegative``: ``den`` is a sum of non-negative terms (``P + G``), so with ``smooth > 0`` the
    denominator is positive and the guarded form reduces to the plain quotient (fewer autograd nodes).
    """
    if den_nonnegative and smooth > 0:
        return (num + smooth) / (den + smooth)
    den_s = den + smooth
    tiny = torch.finfo(den_s.dtype).tiny
    # `den_s <= 0`, not `not den_s > 0`: a NaN denominator (non-finite input) must stay NaN, never count as
    # the perfect 0/0 case.
    return torch.where(den_s <= 0, torch.ones_like(den_s), (num + smooth) / den_s.clamp_min(tiny))


def _dice_values(tp: Tensor, pred: Tensor, tgt: Tensor, smooth: float, log: bool) -> Tensor:
    """Per-class Dice loss ``1 - (2I + s) / (P + G + s)`` (``log``: ``-log`` of the ratio).

    With ``smooth > 0`` and no log it is formed as ``(P + G - 2I) / (P + G + s)``, the same number in
    four autograd nodes instead of six (and without the cancellation of ``1 - ratio`` near a perfect
    prediction).
    """
    if log or not smooth > 0:
        return _from_ratio(_smoothed_ratio(2.0 * tp, pred + tgt, smooth, den_nonnegative=True), log)
    total = pred + tgt
    return torch.sub(total, tp, alpha=2.0) / (total + smooth)


def _combined(first: Tensor, first_weight: float, second: Tensor, second_weight: float) -> Tensor:
    """``first_weight * first + second_weight * second`` (one node when ``first_weight`` is 1)."""
    if first_weight == 1:
        return torch.add(first, second, alpha=second_weight)
    return first_weight * first + second_weight * second


def _from_ratio(r: Tensor, log: bool) -> Tensor:
    if log:
        return -torch.log(r.clamp_min(torch.finfo(r.dtype).tiny))
    return 1.0 - r


def _reduce(values: Tensor, reduction: str, w: Tensor | None) -> Tensor:
    """Reduce per-(image,)class values ``[B, C]`` or ``[C]`` with the weighted class mean."""
    if reduction == "none":
        return values
    if w is None:
        return values.mean() if reduction == "mean" else values.sum()
    w = w.to(values.dtype)
    if reduction == "sum":
        return (values * w).sum()
    per_group = (values * w).sum(-1) / w.sum()
    return per_group.mean()


def _stats(input, target, mode, from_logits, squared, ignore_index, per_image, distributed, with_nll=False,
           **term):  # fmt: skip
    """(stats, pooled): ``[B, C]`` and the Dice term's statistics; pooled over the batch inside the kernel
    with ``per_image=False`` (then both are the ``[C]`` sums)."""
    stats = soft_stats(
        input, target, mode, from_logits=from_logits, squared=squared, ignore_index=ignore_index,
        per_image=per_image, distributed=distributed, with_nll=with_nll, **term,
    )  # fmt: skip
    return stats, stats


# ------------------------------------------------------------------------------------------------------
# Dice, Jaccard, Tversky
# ------------------------------------------------------------------------------------------------------


def _overlap_loss(
    kind: str,  # "dice", "jaccard" or "tversky"; mode already validated
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    from_logits: bool,
    smooth: float,
    squared: bool,
    per_image: bool,
    include_background: bool,
    ignore_index: int | None,
    class_weights: ClassWeights,
    log: bool,
    reduction: str,
    distributed: bool,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float | Sequence[float] | Tensor = 1.0,
) -> Tensor:
    _, pooled = _stats(input, target, mode, from_logits, squared, ignore_index, per_image, distributed)
    w = _weights(class_weights, input.shape[1], input)
    if w is not None and not include_background:
        w = w[1:]
    tp, pred, tgt = _channels_stats(pooled, include_background)
    if kind == "dice":
        values = _dice_values(tp, pred, tgt, smooth, log)
    elif kind == "jaccard":
        values = _from_ratio(_smoothed_ratio(tp, pred + tgt - tp, smooth), log)
    else:
        fp, fn = pred - tp, tgt - tp
        values = _from_ratio(_smoothed_ratio(tp, tp + alpha * fp + beta * fn, smooth), log)
        g = _gamma(gamma, tp.shape[-1], tp)
        if g is not None:
            # gamma per class, before the class mean (focal Tversky as in Abraham & Khan 2019)
            values = values.clamp_min(torch.finfo(values.dtype).tiny).pow(g)
    return _reduce(values, reduction, w)


def _gamma(gamma, n_classes: int, like: Tensor) -> Tensor | None:
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        check_number("gamma", gamma, minimum=0.0, strict_min=True)
        return None if gamma == 1 else torch.tensor(float(gamma), dtype=like.dtype, device=like.device)
    g = torch.as_tensor(gamma, dtype=like.dtype, device=like.device)
    if g.ndim != 1 or g.numel() != n_classes or not bool((g > 0).all()):
        raise SegDiceError(
            f"gamma: got {describe(g)}; expected a positive number or {n_classes} positive values, one per class "
            "kept (after include_background)"
        )
    return g


def dice_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    log: bool = False,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Soft Dice loss, per class ``1 - (2I + s) / (P + G + s)`` (``log=True``: ``-log`` of the ratio).

    Parameters
    ----------
    input
        Logits ``[B, C, *spatial]`` (probabilities with ``from_logits=False``), any float dtype.
    target
        Multiclass: integer labels ``[B, *spatial]`` / ``[B, 1, *spatial]`` or float one-hot/soft
        ``[B, C, *spatial]``; binary: ``[B, 1, *spatial]`` or ``[B, *spatial]``; multilabel:
        ``[B, C, *spatial]``; values in ``[0, 1]`` for binary/multilabel.
    mode
        ``"binary"`` (sigmoid, C = 1), ``"multiclass"`` (softmax, C >= 2) or ``"multilabel"`` (sigmoid).
    from_logits
        Apply the mode's activation; ``False`` expects probabilities in ``[0, 1]``.
    smooth
        ``s``, added to numerator and denominator.
    squared
        V-Net denominator ``sum(p**2) + sum(g**2)``.
    per_image
        ``False``: statistics pooled over the batch ("batch Dice"); ``True``: one value per image and class.
    include_background
        Multiclass only: ``False`` drops class 0 after the softmax over all classes.
    ignore_index
        Target value excluded from every sum (255 and -100 both work).
    class_weights
        One non-negative weight per input channel; the class mean becomes ``sum(w_c L_c) / sum(w_c)``.
    log
        Use ``-log((2I + s) / (P + G + s))``.
    reduction
        ``"mean"``, ``"sum"``, or ``"none"`` for the unweighted values ``[B, C]`` / ``[C]``.
    distributed
        Pool the batch statistics over all ``torch.distributed`` ranks (needs ``per_image=False``).

    Returns
    -------
    Tensor
        A scalar, or per-(image,)class values for ``reduction="none"``.

    Raises
    ------
    SegDiceError
        On bad arguments or inputs: wrong shapes, labels ``>= C``, one channel in multiclass mode,
        ``include_background=False`` outside multiclass, probabilities outside ``[0, 1]``.

    Notes
    -----
    Formulas: ``I = sum(p g)``, ``P = sum(p)``, ``G = sum(g)`` per class over an image (``per_image=True``)
    or the batch (``per_image=False``); float targets use ``I = (P + G - sum|p - g|) / 2``, which equals
    ``sum(p g)`` on 0/1 targets and is minimised at ``p = g`` on soft ones; ``squared=True`` uses
    ``sum(p**2)``, ``sum(g**2)`` and ``I = sum(p g)``. Statistics are summed in float32 for fp16/bf16 input.
    ``ignore_index`` pixels are removed from ``I``, ``P`` and ``G`` after the activation.

    Empty classes: a class absent from the target stays in the mean with loss ``P / (P + s)`` (0 when the
    prediction is empty too); ``smooth=0`` with ``P + G = 0`` gives loss 0, never NaN.

    Distributed (``distributed=True``, ``per_image=False``): the per-class sums are all-reduced over the
    ranks before the ratio is formed, so every rank returns the global-batch loss. The all-reduce's backward
    sums the incoming gradients over ranks, so a rank's logits gradient is ``world_size`` times its partial
    derivative of the global loss; after DDP averages parameter gradients over ranks, they equal the
    gradients of the global-batch loss computed in one process.

    Arguments of other libraries for the same number (``C`` channels; ``w`` class weights):

    | library | their call | ours |
    |---|---|---|
    | MONAI ``DiceLoss`` | ``softmax=True, to_onehot_y=True, batch=False`` | ``mode="multiclass", per_image=True`` |
    | MONAI | ``batch=True`` | ``per_image=False`` (our default) |
    | MONAI | ``sigmoid=True`` | ``mode="binary"``/``"multilabel"`` |
    | MONAI | ``smooth_nr=s, smooth_dr=s`` | ``smooth=s`` (both 1e-5 by default) |
    | MONAI | ``squared_pred=True`` | ``squared=True`` |
    | MONAI | ``jaccard=True`` (smoothing ``s``) | :class:`JaccardLoss` with ``smooth=s/2`` |
    | MONAI | ``weight=w`` (multiplies, then mean over C) | ``class_weights=w`` gives ``MONAI * C / sum(w)`` |
    | MONAI | ``soft_label=True`` | a float target (automatic) |
    | smp ``DiceLoss`` | ``mode, from_logits=True, smooth=0`` | ``per_image=False, smooth=0`` (smp zeroes absent classes; we keep their ``P/(P+s)`` loss) |
    | smp | ``classes=[...]`` | ``include_background`` / ``class_weights`` with zeros |
    | kornia ``dice_loss`` | ``average="macro"`` | ``per_image=True`` |
    | nnU-Net | ``MemoryEfficientSoftDiceLoss(batch_dice=True, do_bg=False)``, returns ``-dice`` | ``per_image=False, include_background=False`` minus 1 |
    | nnU-Net | ``DC_and_CE_loss`` | :class:`DiceCELoss` (+1 offset) |

    Examples
    --------
    >>> logits = torch.tensor([[[[3.0, -3.0]], [[-3.0, 3.0]]]])  # [1, 2, 1, 2]
    >>> labels = torch.tensor([[[0, 1]]])
    >>> round(dice_loss(logits, labels, "multiclass").item(), 4)
    0.0025
    >>> dice_loss(logits, labels, "multiclass", per_image=True, reduction="none").shape
    torch.Size([1, 2])
    """
    mode = _validate_overlap_args(
        mode, smooth=smooth, reduction=reduction, include_background=include_background, per_image=per_image,
        distributed=distributed,
    )  # fmt: skip
    return _overlap_loss(
        "dice", input, target, mode, from_logits=from_logits, smooth=smooth, squared=squared,
        per_image=per_image, include_background=include_background, ignore_index=ignore_index,
        class_weights=class_weights, log=log, reduction=reduction, distributed=distributed,
    )  # fmt: skip


def jaccard_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    log: bool = False,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Soft Jaccard (IoU) loss, per class ``1 - (I + s) / (P + G - I + s)``.

    Parameters
    ----------
    input, target, mode, from_logits, smooth, squared, per_image, include_background, ignore_index, \
class_weights, log, reduction, distributed
        As in :func:`dice_loss`; ``log=True`` gives ``-log((I + s) / (P + G - I + s))``.

    Returns
    -------
    Tensor
        A scalar, or per-(image,)class values for ``reduction="none"``.

    Raises
    ------
    SegDiceError
        As :func:`dice_loss`.

    Notes
    -----
    MONAI ``DiceLoss(jaccard=True, smooth_nr=s, smooth_dr=s)`` computes ``(2I + s) / (2(P + G - I) + s)``, which is
    ours with ``smooth=s/2`` and the settings of :func:`dice_loss`.

    Examples
    --------
    >>> probs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    >>> labels = torch.tensor([[[0, 1]]])
    >>> jaccard_loss(probs, labels, "multiclass", from_logits=False).item()
    0.0
    """
    mode = _validate_overlap_args(
        mode, smooth=smooth, reduction=reduction, include_background=include_background, per_image=per_image,
        distributed=distributed,
    )  # fmt: skip
    return _overlap_loss(
        "jaccard", input, target, mode, from_logits=from_logits, smooth=smooth, squared=squared,
        per_image=per_image, include_background=include_background, ignore_index=ignore_index,
        class_weights=class_weights, log=log, reduction=reduction, distributed=distributed,
    )  # fmt: skip


def tversky_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float | Sequence[float] = 1.0,
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    log: bool = False,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Tversky loss, per class ``(1 - (TP + s) / (TP + a FP + b FN + s)) ** gamma``.

    ``TP = I``, ``FP = P - I``, ``FN = G - I``: ``alpha`` weighs the false positives, ``beta`` the false
    negatives; ``alpha = beta = 0.5`` is the Dice loss, ``alpha = beta = 1`` the Jaccard loss. ``gamma`` is
    applied to each class before the class mean (focal Tversky); it may be one value per kept class.

    Parameters
    ----------
    input, target, mode, from_logits, smooth, squared, per_image, include_background, ignore_index, \
class_weights, log, reduction, distributed
        As in :func:`dice_loss`.
    alpha
        Weight of the false positives (``>= 0``).
    beta
        Weight of the false negatives (``>= 0``).
    gamma
        Focal exponent, ``> 0``: one number, or one per class kept.

    Returns
    -------
    Tensor
        A scalar, or per-(image,)class values for ``reduction="none"``.

    Raises
    ------
    SegDiceError
        As :func:`dice_loss`, and for a negative ``alpha``/``beta`` or a bad ``gamma``.

    Notes
    -----
    MONAI ``TverskyLoss(alpha=a, beta=b)`` (its alpha also weighs FP) equals ours with ``gamma=1`` and the
    settings of :func:`dice_loss`. SegLossOdyssey's ``FocalTversky_loss`` applies its exponent to the
    class-averaged loss instead; smp ``TverskyLoss(gamma=...)`` likewise.

    Examples
    --------
    >>> probs = torch.tensor([[[[0.8, 0.6]]]])  # binary, [1, 1, 1, 2]
    >>> mask = torch.tensor([[[[1.0, 0.0]]]])
    >>> fp_heavy = tversky_loss(probs, mask, "binary", from_logits=False, alpha=0.9, beta=0.1)
    >>> fn_heavy = tversky_loss(probs, mask, "binary", from_logits=False, alpha=0.1, beta=0.9)
    >>> bool(fp_heavy > fn_heavy)
    True
    """
    mode = _validate_tversky_args(
        mode, alpha=alpha, beta=beta, smooth=smooth, reduction=reduction, include_background=include_background,
        per_image=per_image, distributed=distributed,
    )  # fmt: skip
    return _overlap_loss(
        "tversky", input, target, mode, from_logits=from_logits, smooth=smooth, squared=squared,
        per_image=per_image, include_background=include_background, ignore_index=ignore_index,
        class_weights=class_weights, log=log, reduction=reduction, distributed=distributed,
        alpha=float(alpha), beta=float(beta), gamma=gamma,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------------
# Generalised Dice
# ------------------------------------------------------------------------------------------------------

_GDL_WEIGHTS = ("square", "simple", "uniform")


def generalized_dice_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    weight: str = "square",
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Generalised Dice loss ``1 - (2 sum_c w_c I_c + s) / (sum_c w_c (P_c + G_c) + s)`` per group.

    Weights ``w_c = 1 / G_c**2`` (``"square"``), ``1 / G_c`` (``"simple"``) or 1 (``"uniform"``), computed
    per group (image or batch) and detached.

    Parameters
    ----------
    input, target, mode, from_logits, smooth, squared, per_image, include_background, ignore_index, \
reduction, distributed
        As in :func:`dice_loss`; ``reduction="none"`` returns one value per image ``[B]`` (``per_image=True``)
        or a 0-d tensor.
    weight
        ``"square"``, ``"simple"`` or ``"uniform"``.
    class_weights
        Optional extra weights per input channel, multiplied into ``w_c``.

    Returns
    -------
    Tensor
        A scalar, ``[B]`` or 0-d for ``reduction="none"``.

    Raises
    ------
    SegDiceError
        As :func:`dice_loss`, and for an unknown ``weight``.

    Notes
    -----
    Empty-class rule: a class absent from the group's target (``G_c = 0``) gets the largest weight of the
    classes present in that group, so false positives on it are penalised like those on the rarest present
    class (never an inf or ``1e20`` weight). If no class is present, every weight is 1. The weights are then
    normalised to sum to 1 within the group; the ratio does not change, but ``smooth`` keeps the same scale
    as in :func:`dice_loss` (with raw ``1/G**2`` weights ``~1e-10``, a ``1e-5`` smoothing term would
    dominate the loss).

    MONAI ``GeneralizedDiceLoss(w_type="square", batch=not per_image)`` replaces infinite weights by the
    same maximum but does not normalise, so it equals ours exactly for ``smooth=0`` (``smooth_nr=
    smooth_dr=0`` there), when at least one class is present per group.

    Examples
    --------
    >>> probs = torch.tensor([[[[1.0, 0.0, 0.0]], [[0.0, 1.0, 1.0]]]])
    >>> labels = torch.tensor([[[0, 1, 1]]])
    >>> generalized_dice_loss(probs, labels, "multiclass", from_logits=False).item()
    0.0
    """
    mode = _validate_generalized_dice_args(
        mode, weight=weight, smooth=smooth, reduction=reduction, include_background=include_background,
        per_image=per_image, distributed=distributed,
    )  # fmt: skip
    _, pooled = _stats(input, target, mode, from_logits, squared, ignore_index, per_image, distributed)
    cw = _weights(class_weights, input.shape[1], input)
    if cw is not None and not include_background:
        cw = cw[1:]
    tp, pred, tgt = _channels_stats(pooled, include_background)
    w = _gdl_weights(tgt.detach(), weight)
    if cw is not None:
        w = w * cw.to(w.dtype)
        w = w / w.sum(-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    values = 1.0 - _smoothed_ratio(2.0 * (w * tp).sum(-1), (w * (pred + tgt)).sum(-1), smooth)
    if reduction == "none":
        return values
    return values.mean() if reduction == "mean" else values.sum()


def _gdl_weights(g: Tensor, kind: str) -> Tensor:
    present = g > 0
    if kind == "uniform":
        w = torch.ones_like(g)
    else:
        safe = torch.where(present, g, torch.ones_like(g))
        w = 1.0 / (safe * safe if kind == "square" else safe)
        w = torch.where(present, w, torch.zeros_like(w))
        w_max = w.amax(-1, keepdim=True)
        any_present = present.any(-1, keepdim=True)
        w = torch.where(present, w, w_max.expand_as(w))
        w = torch.where(any_present, w, torch.ones_like(w))
    return w / w.sum(-1, keepdim=True)


# ------------------------------------------------------------------------------------------------------
# compound losses
# ------------------------------------------------------------------------------------------------------


def _check_compound(from_logits: bool, reduction: str, loss: str) -> None:
    if not from_logits:
        raise SegDiceError(
            f"from_logits: got False for {loss}; expected True (its cross-entropy/focal term needs logits: "
            "log-probabilities recovered from probabilities lose precision; pass the network's logits)"
        )
    if reduction == "none":
        raise SegDiceError(
            f"reduction: got 'none' for {loss}; expected 'mean' or 'sum' (its two terms have different "
            "shapes; call dice_loss and the cross-entropy separately for unreduced values)"
        )


def dice_ce_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    label_smoothing: float = 0.0,
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    log: bool = False,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Dice + cross-entropy: ``dice_weight * dice_loss + ce_weight * CE``.

    Multiclass: the cross-entropy of the logits (softmax over all classes, whatever
    ``include_background``), weighted by ``class_weights`` as :func:`torch.nn.functional.cross_entropy`
    does (``sum_i w_{t_i} l_i / sum_i w_{t_i}``), with ``ignore_index`` and ``label_smoothing``.
    Binary/multilabel: binary cross-entropy with logits, mean over the kept elements (with class weights:
    ``sum_c w_c sum_i l_ci / sum_c w_c n_c``).

    Parameters
    ----------
    input, target, mode, from_logits, smooth, squared, per_image, include_background, ignore_index, \
class_weights, log, distributed
        As in :func:`dice_loss` (``from_logits`` must be True). ``per_image`` applies to the Dice term; the
        cross-entropy is always the mean over every kept pixel of the batch (and of all ranks with
        ``distributed=True``).
    dice_weight, ce_weight
        ``lambda_dice`` and ``lambda_ce``, non-negative, not both 0.
    label_smoothing
        In ``[0, 1)``, as in :func:`torch.nn.functional.cross_entropy`; binary/multilabel targets become
        ``g (1 - eps) + eps / 2``.
    reduction
        ``"mean"``; ``"sum"`` sums the Dice values over classes (and images) and the cross-entropy over
        pixels.

    Returns
    -------
    Tensor
        A scalar.

    Raises
    ------
    SegDiceError
        As :func:`dice_loss`, for ``from_logits=False`` and ``reduction="none"``.

    Notes
    -----
    With integer labels (multiclass) and with binary/multilabel targets, the cross-entropy, label smoothing
    included, is computed inside the Dice kernel from the same softmax or sigmoid, in log-sum-exp form
    (``-log p_t = logsumexp(z) - z_t``, exact for any logit gap, as :func:`torch.nn.functional.cross_entropy`),
    and its analytic gradient joins the same in-place backward: Dice + CE costs little more than Dice
    alone and keeps one extra logits-sized tensor. Float multiclass targets, and label smoothing with soft
    binary targets or ``ignore_index``, use a separate log-softmax / BCE pass.

    MONAI ``DiceCELoss(softmax=True, to_onehot_y=True, batch=not per_image, lambda_dice=a, lambda_ce=b)``
    equals ``dice_ce_loss(..., per_image=per_image, dice_weight=a, ce_weight=b)``; ``sigmoid=True`` with one
    channel equals ``mode="binary"``. With several channels MONAI applies a softmax cross-entropy even with
    ``sigmoid=True``; our ``"multilabel"`` uses the binary cross-entropy of each channel. nnU-Net's ``DC_and_CE_loss`` uses ``-dice`` and drops the
    background in the Dice term: ours with ``include_background=False`` is nnU-Net's value plus 1.

    Examples
    --------
    >>> logits = torch.tensor([[[[3.0, -3.0]], [[-3.0, 3.0]]]])
    >>> labels = torch.tensor([[[0, 1]]])
    >>> round(dice_ce_loss(logits, labels, "multiclass").item(), 4)
    0.0049
    """
    mode = _validate_dice_ce_args(
        mode, loss="dice_ce_loss", from_logits=from_logits, dice_weight=dice_weight, ce_weight=ce_weight,
        label_smoothing=label_smoothing, smooth=smooth, reduction=reduction, include_background=include_background,
        per_image=per_image, distributed=distributed,
    )  # fmt: skip
    return _dice_ce(
        input, target, mode, dice_weight=dice_weight, ce_weight=ce_weight, label_smoothing=label_smoothing,
        from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
        include_background=include_background, ignore_index=ignore_index, class_weights=class_weights, log=log,
        reduction=reduction, distributed=distributed,
    )  # fmt: skip


def _dice_ce(
    input, target, mode, *, dice_weight, ce_weight, label_smoothing, from_logits, smooth, squared, per_image,
    include_background, ignore_index, class_weights, log, reduction, distributed,
) -> Tensor:  # fmt: skip
    """:func:`dice_ce_loss` after its settings are validated (a module whose settings are unchanged calls it)."""
    # The kernels fuse the CE, label smoothing included, for integer multiclass labels (softmax), for
    # binary/multilabel targets (sigmoid) and, on small inputs, for one-hot/soft multiclass targets; nll is
    # None where they do not (large float multiclass targets; smoothing with soft targets or
    # ignore_index), and a separate pass computes it. soft_stats validates the tensors first.
    stats, pooled = _stats(
        input, target, mode, from_logits, squared, ignore_index, per_image, distributed, with_nll=True,
        label_smoothing=float(label_smoothing),
    )  # fmt: skip
    w_all = _weights(class_weights, input.shape[1], input)
    w_dice = w_all[1:] if (w_all is not None and not include_background) else w_all
    tp, pred, tgt = _channels_stats(pooled, include_background)
    dice = _reduce(_dice_values(tp, pred, tgt, smooth, log), reduction, w_dice)
    # A soft multiclass target's class-weighted CE is normalised by the pixel count (as in
    # F.cross_entropy), which the per-class sums cannot give: the separate pass.
    dense_weighted = w_all is not None and mode == "multiclass" and target.shape == input.shape
    if stats.nll is not None and not dense_weighted:
        batch = pooled if not per_image else pool_soft_stats(stats, distributed=False)
        ce = _fused_ce(batch, mode, w_all, reduction, _known_count(input, mode, ignore_index, distributed))
    else:
        ce = _separate_ce(input, target, mode, w_all, ignore_index, label_smoothing, reduction)
    return _combined(dice, dice_weight, ce, ce_weight)


def _known_count(input: Tensor, mode: str, ignore_index, distributed: bool) -> int | None:
    """The number of pixels (multiclass) or elements (binary/multilabel) a mean runs over, when no
    ``ignore_index`` can drop any and no other rank adds its own; ``None`` otherwise (then the statistics
    count them)."""
    if ignore_index is not None or distributed:
        return None
    return input.numel() // input.shape[1] if mode == "multiclass" else input.numel()


def _fused_ce(batch: SoftStats, mode: str, w: Tensor | None, reduction: str, known: int | None = None) -> Tensor:
    """The CE from the kernel's per-class sums; ``known``: the unweighted count, when no pixel is ignored."""
    nll = batch.nll
    if w is not None:
        nll = nll * w.to(nll.dtype)
    if reduction == "sum":
        return nll.sum()
    if w is None and known is not None:
        return nll.sum() / known
    if w is not None:
        # Multiclass: G_c counts the kept pixels of class c; binary/multilabel: n_valid the kept elements.
        total = ((batch.target if mode == "multiclass" else batch.n_valid) * w.to(nll.dtype)).sum()
    else:
        total = _kept_count(batch, mode)
    # Every pixel ignored: 0 rather than PyTorch's NaN, so a fully ignored batch cannot poison training.
    return torch.where(total > 0, nll.sum() / total.clamp_min(1e-30), torch.zeros_like(total))


def _upcast(x: Tensor) -> Tensor:
    """fp16/bf16 -> float32 for the log-probabilities; float32/float64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _separate_ce(input, target, mode, w, ignore_index, label_smoothing, reduction) -> Tensor:
    x = _upcast(input)
    if mode == "multiclass":
        c = x.shape[1]
        if not target.is_floating_point() and target.shape != input.shape:
            t = target.reshape(target.shape[0], *input.shape[2:]).long()
            ii = -100 if ignore_index is None else int(ignore_index)
            out = F.cross_entropy(
                x, t, weight=w, ignore_index=ii, label_smoothing=label_smoothing, reduction=reduction
            )
            return out
        g = target.to(x.dtype)
        valid = (target != ignore_index).all(1) if ignore_index is not None else None
        if valid is not None:
            g = g.masked_fill(~valid.unsqueeze(1), 0.0)
        g = g * (1.0 - label_smoothing) + label_smoothing / c
        logp = torch.log_softmax(x, 1)
        per_pixel = -(g * logp if w is None else g * logp * w.view(1, c, *([1] * (x.ndim - 2)))).sum(1)
        if valid is not None:
            per_pixel = per_pixel * valid
        if reduction == "sum":
            return per_pixel.sum()
        n = valid.sum() if valid is not None else torch.tensor(per_pixel.numel(), device=x.device)
        return per_pixel.sum() / n.clamp_min(1)
    g = target.reshape(input.shape).to(x.dtype)
    valid = target.reshape(input.shape) != ignore_index if ignore_index is not None else None
    if valid is not None:
        g = g.masked_fill(~valid, 0.0)
    g = g * (1.0 - label_smoothing) + label_smoothing / 2
    elem = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    weight = torch.ones_like(elem) if valid is None else valid.to(elem.dtype)
    if w is not None:
        weight = weight * w.view(1, -1, *([1] * (x.ndim - 2)))
    if reduction == "sum":
        return (elem * weight).sum()
    return (elem * weight).sum() / weight.sum().clamp_min(1e-30)


def dice_focal_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    dice_weight: float = 1.0,
    focal_weight: float = 1.0,
    from_logits: bool = True,
    smooth: float = 1e-5,
    squared: bool = False,
    per_image: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    log: bool = False,
    reduction: str = "mean",
    distributed: bool = False,
) -> Tensor:
    """Dice + focal: ``dice_weight * dice_loss + focal_weight * focal``.

    The focal term matches the mode. Multiclass (softmax): ``-alpha_c (1 - p_t)**gamma log p_t`` per pixel
    (soft targets: ``-sum_c alpha_c g_c (1 - p_c)**gamma log p_c``). Binary/multilabel (sigmoid, as
    Lin et al. and torchvision): ``BCE(z, g) (1 - p_t)**gamma``, ``p_t = p g + (1 - p)(1 - g)``, times
    ``alpha g + (1 - alpha)(1 - g)`` when ``alpha`` is given. The mean runs over the kept elements.

    Parameters
    ----------
    input, target, mode, from_logits, smooth, squared, per_image, include_background, ignore_index, \
class_weights, log, distributed
        As in :func:`dice_loss` (``from_logits`` must be True); ``class_weights`` weigh the Dice term.
    gamma
        Focusing exponent ``>= 0`` (0 gives the cross-entropy).
    alpha
        Binary/multilabel: the weight of the positives in ``[0, 1]``. Multiclass: one weight per class.
        ``None``: no weighting.
    dice_weight, focal_weight
        Non-negative, not both 0.
    reduction
        ``"mean"`` or ``"sum"``.

    Returns
    -------
    Tensor
        A scalar.

    Raises
    ------
    SegDiceError
        As :func:`dice_ce_loss`, and for a bad ``alpha``/``gamma``.

    Notes
    -----
    MONAI ``DiceFocalLoss`` applies its sigmoid focal loss also to softmax outputs; ours uses the softmax
    focal loss in multiclass mode. With integer multiclass labels, and with hard binary/multilabel targets
    (no ``ignore_index``, not ``squared``, float32/float64 logits; compiled: integer targets), the focal term is summed
    inside the Dice kernel from the same softmax or sigmoid (``log p_t`` in log-sum-exp form, exact for any
    logit) with an analytic gradient in the same in-place backward; otherwise a separate pass with ordinary
    autograd computes it.

    Examples
    --------
    >>> logits = torch.tensor([[[[3.0, -3.0]]]])  # binary [1, 1, 1, 2]
    >>> mask = torch.tensor([[[[1.0, 0.0]]]])
    >>> round(dice_focal_loss(logits, mask, "binary").item(), 4)
    0.0475
    """
    mode = _validate_dice_focal_args(
        mode, loss="dice_focal_loss", from_logits=from_logits, gamma=gamma, alpha=alpha, dice_weight=dice_weight,
        focal_weight=focal_weight, smooth=smooth, reduction=reduction, include_background=include_background,
        per_image=per_image, distributed=distributed,
    )  # fmt: skip
    return _dice_focal(
        input, target, mode, gamma=gamma, alpha=alpha, dice_weight=dice_weight, focal_weight=focal_weight,
        from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
        include_background=include_background, ignore_index=ignore_index, class_weights=class_weights, log=log,
        reduction=reduction, distributed=distributed,
    )  # fmt: skip


def _dice_focal(
    input, target, mode, *, gamma, alpha, dice_weight, focal_weight, from_logits, smooth, squared, per_image,
    include_background, ignore_index, class_weights, log, reduction, distributed,
) -> Tensor:  # fmt: skip
    """:func:`dice_focal_loss` after its settings are validated (a module whose settings are unchanged calls it)."""
    del from_logits  # validated True
    class_alpha = _softmax_focal_alpha(alpha, input) if mode == "multiclass" else None
    sigmoid_alpha = None if (mode == "multiclass" or alpha is None) else float(alpha)
    # One kernel call gives the Dice statistics and the focal sums from the same activation (multiclass:
    # per target class, alpha applied here; binary/multilabel: per channel, alpha inside the kernel); nll
    # is None where the kernel does not fuse the focal term, and a separate pass computes it.
    stats, pooled = _stats(
        input, target, mode, True, squared, ignore_index, per_image, distributed, with_nll=True,
        focal_gamma=float(gamma), focal_alpha=sigmoid_alpha,
    )  # fmt: skip
    w = _weights(class_weights, input.shape[1], input)
    if w is not None and not include_background:
        w = w[1:]
    tp, pred, tgt = _channels_stats(pooled, include_background)
    dice = _reduce(_dice_values(tp, pred, tgt, smooth, log), reduction, w)
    if stats.nll is not None:
        batch = pooled if not per_image else pool_soft_stats(stats, distributed=False)
        focal = _fused_focal(batch, mode, class_alpha, reduction, _known_count(input, mode, ignore_index, distributed))
    else:
        x = _upcast(input)
        if mode == "multiclass":
            per, valid = _softmax_focal(x, target, float(gamma), class_alpha, ignore_index)
        else:
            per, valid = _sigmoid_focal(x, target, float(gamma), sigmoid_alpha, ignore_index)
        focal = _kept_mean(per, valid, reduction)
    return _combined(dice, dice_weight, focal, focal_weight)


def _fused_focal(
    batch: SoftStats, mode: str, class_alpha: Tensor | None, reduction: str, known: int | None = None
) -> Tensor:
    """The focal term from the kernel's per-class sums: the mean (or sum) over the kept elements
    (``known`` of them when no pixel is ignored)."""
    total = batch.nll
    if class_alpha is not None:
        total = total * class_alpha.to(total.dtype)
    if reduction == "sum":
        return total.sum()
    if known is not None:
        return total.sum() / known
    return total.sum() / _kept_count(batch, mode).clamp_min(1)


def _kept_count(batch: SoftStats, mode: str) -> Tensor:
    """The number of kept pixels (multiclass) or elements (binary/multilabel) of pooled statistics ``[C]``.

    Multiclass ``n_valid`` repeats the pixel count in every class, whatever the target (labels, one-hot or
    soft); binary/multilabel counts per channel.
    """
    return batch.n_valid[0] if mode == "multiclass" else batch.n_valid.sum()


def _kept_mean(per: Tensor, valid: Tensor | None, reduction: str) -> Tensor:
    """The mean (or sum) of ``per`` over the kept elements (``valid``; None: all of them)."""
    if valid is not None:
        per = per * valid
    if reduction == "sum":
        return per.sum()
    n = valid.sum() if valid is not None else torch.tensor(per.numel(), device=per.device)
    return per.sum() / n.clamp_min(1)


def _softmax_focal_alpha(alpha, input) -> Tensor | None:
    """Multiclass ``alpha`` as a tensor of one non-negative weight per channel (checked before any work)."""
    if alpha is None or not isinstance(input, Tensor) or not input.is_floating_point() or input.ndim < 2:
        return None  # no weights, or an input that the Dice term's checks reject with their own message
    x = _upcast(input)
    c = x.shape[1]
    a = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    if a.ndim != 1 or a.numel() != c or bool((a < 0).any()):
        raise SegDiceError(
            f"alpha: got {describe(a)} in mode 'multiclass'; expected {c} non-negative weights, one per class"
        )
    return a


def _softmax_focal(
    x: Tensor, target: Tensor, gamma: float, a: Tensor | None, ignore_index
) -> tuple[Tensor, Tensor | None]:
    """Per-pixel softmax focal loss ``[B, 1, *spatial]`` and the kept-pixel mask (None: all kept)."""
    logp = torch.log_softmax(x, 1)
    if not target.is_floating_point() and target.shape != x.shape:
        t = target.reshape(x.shape[0], 1, *x.shape[2:]).long()
        valid = (t != ignore_index) if ignore_index is not None else None
        t_safe = t.masked_fill(~valid, 0) if valid is not None else t
        logpt = torch.gather(logp, 1, t_safe)
        per = -((1.0 - logpt.exp()).clamp_min(0).pow(gamma)) * logpt
        if a is not None:
            per = per * a[t_safe]
        return per, valid
    g = target.to(x.dtype)
    valid = (target != ignore_index).all(1, keepdim=True) if ignore_index is not None else None
    if valid is not None:
        g = g.masked_fill(~valid, 0.0)
    per = -(g * (1.0 - logp.exp()).clamp_min(0).pow(gamma) * logp)
    if a is not None:
        per = per * a.view(1, x.shape[1], *([1] * (x.ndim - 2)))
    return per.sum(1, keepdim=True), valid


def _sigmoid_focal(
    x: Tensor, target: Tensor, gamma: float, alpha: float | None, ignore_index
) -> tuple[Tensor, Tensor | None]:
    """Per-element sigmoid focal loss (Lin et al.) of the input's shape and the kept-element mask."""
    t = target.reshape(x.shape)
    valid = (t != ignore_index) if ignore_index is not None else None
    g = t.to(x.dtype) if valid is None else t.to(x.dtype).masked_fill(~valid, 0.0)
    bce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
    p = torch.sigmoid(x)
    # 1 - p_t: for a 0/1 (integer) target |g - p| in two ops; soft targets take the general form
    m = (1.0 - (p * g + (1.0 - p) * (1.0 - g))).clamp_min(0) if t.is_floating_point() else (g - p).abs()
    per = bce * (m * m if gamma == 2 else m.pow(gamma))
    if alpha is not None:
        per = per * (alpha * g + (1.0 - alpha) * (1.0 - g))
    return per, valid


# ------------------------------------------------------------------------------------------------------
# modules
# ------------------------------------------------------------------------------------------------------


class _LossModule(nn.Module):
    """A functional loss with its settings as plain attributes, which :meth:`forward` reads at every call.

    ``loss.smooth = 0.1`` therefore takes effect (and is validated by the function at the next call).
    ``class_weights`` is a buffer, so ``.to(device)`` moves it.
    """

    _fn: Callable[..., Tensor]  # the functional twin, set by each subclass
    # The twin's body after its settings checks, same arguments; None: forward always calls _fn.
    _checked_fn: Callable[..., Tensor] | None = None
    _settings: tuple[str, ...]  # the attributes forward passes to it, in repr order

    def __init__(self, mode: str, class_weights: ClassWeights = None, **settings: Any) -> None:
        self.__dict__["_settings_checked"] = False
        super().__init__()
        self.mode = check_mode(mode)
        if class_weights is not None:
            w = torch.as_tensor(class_weights, dtype=torch.float32)
            self.register_buffer("class_weights", w, persistent=False)
        else:
            self.class_weights = None
        for name, value in settings.items():
            setattr(self, name, value)
        self._settings = tuple(settings)

    def __setattr__(self, name: str, value: Any) -> None:
        # Any attribute set (a setting, the mode, a buffer) sends the next call through the checks again.
        self.__dict__["_settings_checked"] = False
        super().__setattr__(name, value)

    def _call(self, input: Tensor, target: Tensor, **extra: Any) -> Tensor:
        """The functional twin on the settings; its settings checks skipped while no attribute changed since
        they last passed (the tensors are checked at every call)."""
        cls = type(self)
        state = self.__dict__
        if state["_settings_checked"] and cls._checked_fn is not None:
            return cls._checked_fn(input, target, self.mode, **extra, **state["_checked_settings"])
        settings = {name: getattr(self, name) for name in self._settings}
        out = cls._fn(input, target, self.mode, **extra, **settings)
        state["_checked_settings"] = settings  # unchanged until the next attribute set clears the flag
        state["_settings_checked"] = True
        return out

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Compute the loss of ``input`` (logits ``[B, C, *spatial]``) against ``target``."""
        return self._call(input, target, class_weights=self.class_weights)

    def extra_repr(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._settings)
        return f"mode={self.mode!r}, {args}"


class DiceLoss(_LossModule):
    """Soft Dice loss as a module; see :func:`dice_loss` for the formula, arguments and peer mapping.

    Examples
    --------
    >>> loss = DiceLoss("multiclass", include_background=False)
    >>> logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    >>> labels = torch.randint(0, 3, (2, 8, 8))
    >>> loss(logits, labels).backward()
    >>> logits.grad.shape
    torch.Size([2, 3, 8, 8])
    """

    _fn = staticmethod(dice_loss)
    _checked_fn = staticmethod(partial(_overlap_loss, "dice"))

    def __init__(
        self,
        mode: str,
        *,
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        log: bool = False,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_overlap_args(
            mode, smooth=smooth, reduction=reduction, include_background=include_background, per_image=per_image,
            distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
            include_background=include_background, ignore_index=ignore_index, log=log, reduction=reduction,
            distributed=distributed,
        )  # fmt: skip


class JaccardLoss(_LossModule):
    """Soft Jaccard (IoU) loss as a module; see :func:`jaccard_loss`.

    Examples
    --------
    >>> JaccardLoss("binary")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)).item() > 0.99
    True
    """

    _fn = staticmethod(jaccard_loss)
    _checked_fn = staticmethod(partial(_overlap_loss, "jaccard"))

    def __init__(
        self,
        mode: str,
        *,
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        log: bool = False,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_overlap_args(
            mode, smooth=smooth, reduction=reduction, include_background=include_background, per_image=per_image,
            distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
            include_background=include_background, ignore_index=ignore_index, log=log, reduction=reduction,
            distributed=distributed,
        )  # fmt: skip


class TverskyLoss(_LossModule):
    """Tversky / focal Tversky loss as a module; see :func:`tversky_loss`.

    Examples
    --------
    >>> loss = TverskyLoss("multilabel", alpha=0.3, beta=0.7, gamma=0.75)
    >>> float(loss(torch.randn(2, 3, 8, 8), torch.randint(0, 2, (2, 3, 8, 8)))) > 0
    True
    """

    _fn = staticmethod(tversky_loss)
    _checked_fn = staticmethod(partial(_overlap_loss, "tversky"))

    def __init__(
        self,
        mode: str,
        *,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float | Sequence[float] = 1.0,
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        log: bool = False,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_tversky_args(
            mode, alpha=alpha, beta=beta, smooth=smooth, reduction=reduction, include_background=include_background,
            per_image=per_image, distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, alpha=alpha, beta=beta, gamma=gamma, from_logits=from_logits, smooth=smooth,
            squared=squared, per_image=per_image, include_background=include_background,
            ignore_index=ignore_index, log=log, reduction=reduction, distributed=distributed,
        )  # fmt: skip


class GeneralizedDiceLoss(_LossModule):
    """Generalised Dice loss as a module; see :func:`generalized_dice_loss` for the empty-class rule.

    Examples
    --------
    >>> loss = GeneralizedDiceLoss("multiclass", weight="square")
    >>> float(loss(torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8)))) > 0
    True
    """

    _fn = staticmethod(generalized_dice_loss)

    def __init__(
        self,
        mode: str,
        *,
        weight: str = "square",
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_generalized_dice_args(
            mode, weight=weight, smooth=smooth, reduction=reduction, include_background=include_background,
            per_image=per_image, distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, weight=weight, from_logits=from_logits, smooth=smooth, squared=squared,
            per_image=per_image, include_background=include_background, ignore_index=ignore_index,
            reduction=reduction, distributed=distributed,
        )  # fmt: skip


class DiceCELoss(_LossModule):
    """Dice + cross-entropy as a module; see :func:`dice_ce_loss` (the CE shares the Dice kernel's softmax).

    Examples
    --------
    >>> loss = DiceCELoss("multiclass", ignore_index=255)
    >>> labels = torch.randint(0, 3, (2, 8, 8))
    >>> labels[:, 0] = 255
    >>> float(loss(torch.randn(2, 3, 8, 8), labels)) > 0
    True
    """

    _fn = staticmethod(dice_ce_loss)
    _checked_fn = staticmethod(_dice_ce)

    def __init__(
        self,
        mode: str,
        *,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        label_smoothing: float = 0.0,
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        log: bool = False,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_dice_ce_args(
            mode, loss="DiceCELoss", from_logits=from_logits, dice_weight=dice_weight, ce_weight=ce_weight,
            label_smoothing=label_smoothing, smooth=smooth, reduction=reduction,
            include_background=include_background, per_image=per_image, distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, dice_weight=dice_weight, ce_weight=ce_weight, label_smoothing=label_smoothing,
            from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
            include_background=include_background, ignore_index=ignore_index, log=log, reduction=reduction,
            distributed=distributed,
        )  # fmt: skip


class DiceFocalLoss(_LossModule):
    """Dice + focal loss as a module; see :func:`dice_focal_loss`.

    Examples
    --------
    >>> loss = DiceFocalLoss("binary", gamma=2.0, alpha=0.25)
    >>> float(loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 1, 8, 8)))) > 0
    True
    """

    _fn = staticmethod(dice_focal_loss)
    _checked_fn = staticmethod(_dice_focal)

    def __init__(
        self,
        mode: str,
        *,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        dice_weight: float = 1.0,
        focal_weight: float = 1.0,
        from_logits: bool = True,
        smooth: float = 1e-5,
        squared: bool = False,
        per_image: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        log: bool = False,
        reduction: str = "mean",
        distributed: bool = False,
    ) -> None:
        _validate_dice_focal_args(
            mode, loss="DiceFocalLoss", from_logits=from_logits, gamma=gamma, alpha=alpha, dice_weight=dice_weight,
            focal_weight=focal_weight, smooth=smooth, reduction=reduction, include_background=include_background,
            per_image=per_image, distributed=distributed,
        )  # fmt: skip
        super().__init__(
            mode, class_weights, gamma=gamma, alpha=alpha, dice_weight=dice_weight, focal_weight=focal_weight,
            from_logits=from_logits, smooth=smooth, squared=squared, per_image=per_image,
            include_background=include_background, ignore_index=ignore_index, log=log, reduction=reduction,
            distributed=distributed,
        )  # fmt: skip


# ------------------------------------------------------------------------------------------------------
# focal, Lovász and clDice losses
# ------------------------------------------------------------------------------------------------------


def _nan_if_nonfinite(loss: Tensor, input: Tensor) -> Tensor:
    """``loss`` made NaN when ``input`` holds a NaN or an infinity (a hinge or a saturated probability can
    turn an infinite logit into a finite, even perfect, value). One detached reduction, no host sync."""
    total = input.detach().sum(dtype=torch.float64 if input.dtype == torch.float64 else torch.float32)
    return loss + total.mul_(0.0).to(loss.dtype)  # 0 * total: 0 if finite, NaN for NaN/inf (or an overflow)


def _check_loss_tensors(
    input: Tensor, target: Tensor, mode: str, ignore_index, from_logits: bool = True
) -> None:
    """The shared tensor checks, then the target's shape for the mode (these losses read it directly)."""
    check_soft_inputs(input, target, mode, from_logits=from_logits, ignore_index=ignore_index)
    b, c, spatial = input.shape[0], input.shape[1], tuple(input.shape[2:])
    if mode == "binary" and c != 1:
        raise SegDiceError(
            f"input: got {describe(input, values=False)} in mode 'binary'; expected one channel [B, 1, *spatial]"
        )
    if mode == "multiclass" and c < 2:
        raise SegDiceError(
            f"input: got {describe(input, values=False)} in mode 'multiclass'; expected C >= 2 channels"
        )
    shapes = {
        "binary": ((b, 1, *spatial), (b, *spatial)),
        "multilabel": ((b, c, *spatial),),
        "multiclass": ((b, *spatial), (b, 1, *spatial), (b, c, *spatial)),
    }[mode]
    if tuple(target.shape) not in shapes:
        expected = " or ".join(str(list(s)) for s in shapes)
        raise SegDiceError(
            f"target: got {describe(target, values=False)} for input of shape {tuple(input.shape)} in mode "
            f"{mode!r}; expected {expected}"
        )
    if mode == "multiclass" and target.is_floating_point() and tuple(target.shape) != (b, c, *spatial):
        raise SegDiceError(
            f"target: got {describe(target, values=False)} in mode 'multiclass'; expected integer class indices"
        )


def _index_labels(target: Tensor, input: Tensor, ignore_index) -> Tensor:
    """A multiclass index target as int64 ``[B, *spatial]``, its labels checked against ``C``."""
    c = input.shape[1]
    t = target.reshape(input.shape[0], *input.shape[2:]).long()
    kept = t if ignore_index is None else t[t != ignore_index]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= c):
        extra = f" besides ignore_index={ignore_index}" if ignore_index is not None else ""
        raise SegDiceError(
            f"target: got {describe(target)}{extra}; expected class indices in [0, {c - 1}] (input has C={c})"
        )
    return t


def _validate_focal_args(mode, *, gamma, alpha, reduction) -> str:
    mode = check_mode(mode)
    check_number("gamma", gamma, minimum=0.0)
    check_choice("reduction", reduction, REDUCTIONS)
    if mode != "multiclass" and alpha is not None:
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
            raise SegDiceError(f"alpha: got {alpha!r} in mode {mode!r}; expected a number in [0, 1] or None")
        check_number("alpha", alpha, minimum=0.0, maximum=1.0)
    return mode


def focal_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    ignore_index: int | None = None,
    class_weights: ClassWeights = None,
    reduction: str = "mean",
) -> Tensor:
    """Focal loss (Lin et al. 2017): the cross-entropy with easy pixels down-weighted by ``(1 - p_t)**gamma``.

    The same term :func:`dice_focal_loss` adds. Multiclass (softmax): ``-alpha_t (1 - p_t)**gamma log p_t``
    per pixel, ``p_t`` the probability of the target class (soft targets: ``-sum_c alpha_c g_c
    (1 - p_c)**gamma log p_c``). Binary/multilabel (sigmoid, as torchvision's ``sigmoid_focal_loss``):
    ``BCE(z, g) (1 - p_t)**gamma`` per element, ``p_t = p g + (1 - p)(1 - g)``, times
    ``alpha g + (1 - alpha)(1 - g)`` when ``alpha`` is given. ``gamma=0`` without ``alpha`` is the
    cross-entropy (multiclass) or the binary cross-entropy with logits.

    Parameters
    ----------
    input
        Logits ``[B, C, *spatial]`` (``C = 1`` for binary).
    target
        Multiclass: class indices ``[B, *spatial]`` / ``[B, 1, *spatial]`` or a float distribution
        ``[B, C, *spatial]``; binary/multilabel: ``{0, 1}`` (or soft ``[0, 1]``) of the input's shape
        (binary also ``[B, *spatial]``).
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    gamma
        Focusing exponent ``>= 0``.
    alpha
        Multiclass: one non-negative weight per class; binary/multilabel: the weight of the positives in
        ``[0, 1]``; ``None``: no weighting.
    ignore_index
        Target value whose pixels (elements) contribute nothing and are left out of the mean.
    class_weights
        One weight per input channel: multiclass pixels are weighted by their target class, sigmoid elements
        by their channel; the mean is then ``sum(w l) / sum(w)`` over the kept elements (for multiclass and
        ``gamma=0`` exactly :func:`torch.nn.functional.cross_entropy` with ``weight``).
    reduction
        ``"mean"`` (over the kept elements), ``"sum"``, or ``"none"``: the per-pixel loss
        ``[B, 1, *spatial]`` (multiclass) or per-element loss of the input's shape, 0 where ignored.

    Returns
    -------
    Tensor
        A scalar, or the unreduced loss. Every pixel ignored: 0 (``"mean"``), never NaN.

    Raises
    ------
    SegDiceError
        On a bad mode, shape, label, ``gamma``, ``alpha``, ``class_weights`` or ``reduction``.

    Notes
    -----
    With a reduced value, multiclass integer labels and (above 2**16 values) binary/multilabel integer
    masks without ``ignore_index`` take the fused kernels of :func:`segdice.stats.soft_stats`: one softmax
    or sigmoid, the sums in log-sum-exp form, an analytic backward in place, one logits-sized buffer.
    Other inputs use the per-pixel formula with ordinary autograd. Both give the same values.

    Examples
    --------
    >>> logits = torch.tensor([[[[2.0, -1.0]], [[-1.0, 2.0]]]])  # [1, 2, 1, 2]
    >>> labels = torch.tensor([[[0, 1]]])
    >>> ce = torch.nn.functional.cross_entropy(logits, labels)
    >>> bool(torch.isclose(focal_loss(logits, labels, "multiclass", gamma=0.0), ce))
    True
    >>> round(focal_loss(logits, labels, "multiclass").item(), 6)  # gamma=2: the easy pixels count less
    0.000109
    """
    mode = _validate_focal_args(mode, gamma=gamma, alpha=alpha, reduction=reduction)
    _check_loss_tensors(input, target, mode, ignore_index)
    x = _upcast(input)
    w = _weights(class_weights, x.shape[1], x)
    index_target = not target.is_floating_point() and tuple(target.shape) != tuple(x.shape)
    if mode == "multiclass" and index_target and reduction != "none":
        # The index kernel's focal sums per target class (one softmax, log p_t in log-sum-exp form, analytic
        # in-place backward: one logits-sized buffer); it checks the labels and poisons non-finite logits.
        class_alpha = _softmax_focal_alpha(alpha, x)
        st = soft_stats(
            input, target, mode, per_image=False, ignore_index=ignore_index, with_nll=True, focal_gamma=float(gamma)
        )
        total, n = st.nll, st.target  # per class: the focal sum and the kept pixels of that target class
        if class_alpha is not None:
            total = total * class_alpha.to(total.dtype)
        if w is not None:
            total, n = total * w.to(total.dtype), n * w.to(n.dtype)
        # every pixel ignored (or weighed 0): the total is 0 too, and the mean 0
        return total.sum() if reduction == "sum" else total.sum() / n.sum().clamp_min(1e-30)
    if mode == "multiclass":
        if index_target:
            target = _index_labels(target, x, ignore_index)
        per, valid = _softmax_focal(x, target, float(gamma), _softmax_focal_alpha(alpha, x), ignore_index)
        if w is not None and index_target:  # each pixel weighs as its target class
            t = target.reshape(per.shape)
            weight = w.to(per.dtype)[t if valid is None else t.masked_fill(~valid, 0)]
        elif w is not None:  # a distribution: the expected weight
            weight = (target.to(per.dtype) * w.to(per.dtype).view(1, -1, *([1] * (x.ndim - 2)))).sum(1, True)
        else:
            weight = None
    elif _takes_fused_sigmoid_focal(input, target, ignore_index, reduction):
        # The sigmoid_hard kernel's focal sums (one sigmoid, analytic in-place backward; it range-checks the
        # target and makes the sums NaN for non-finite logits): per channel, then the (weighted) mean.
        st = soft_stats(
            input, target, mode, per_image=False, with_nll=True, focal_gamma=float(gamma),
            focal_alpha=None if alpha is None else float(alpha),
        )  # fmt: skip
        total, n = (st.nll, st.n_valid) if w is None else (st.nll * w, st.n_valid * w)
        return total.sum() if reduction == "sum" else total.sum() / n.sum()
    else:
        t = target.reshape(x.shape)
        kept = t if ignore_index is None else t[t != ignore_index]
        if kept.numel():
            lo, hi = torch.aminmax(kept)
            if float(lo) < 0 or float(hi) > 1:
                extra = f" besides ignore_index={ignore_index}" if ignore_index is not None else ""
                raise SegDiceError(
                    f"target: got {describe(target)}{extra}; expected values in [0, 1] in mode {mode!r}"
                )
        per, valid = _sigmoid_focal(x, t, float(gamma), alpha, ignore_index)
        weight = None if w is None else w.to(per.dtype).view(1, -1, *([1] * (x.ndim - 2))).expand_as(per)
    if valid is None and weight is None and reduction != "none":
        return _nan_if_nonfinite(per.mean() if reduction == "mean" else per.sum(), input)
    if valid is not None:
        per = per * valid
        weight = None if weight is None else weight * valid
    if reduction == "none":
        return _nan_if_nonfinite(per, input)
    if weight is None:
        return _nan_if_nonfinite(_kept_mean(per, valid, reduction), input)
    per = per * weight
    if reduction == "sum":
        return _nan_if_nonfinite(per.sum(), input)
    total = weight.sum()
    mean = torch.where(total > 0, per.sum() / total.clamp_min(1e-30), torch.zeros_like(total))
    return _nan_if_nonfinite(mean, input)


_FOCAL_FUSED_MIN = 1 << 16


def _takes_fused_sigmoid_focal(input: Tensor, target: Tensor, ignore_index, reduction: str) -> bool:
    """Whether the sigmoid focal loss comes from the sigmoid_hard kernel: an integer (hard) target, no
    ``ignore_index``, a reduced value, float32/float64 logits, eager mode (what that kernel takes), and an
    input above _FOCAL_FUSED_MIN values (below it the few plain ops of _sigmoid_focal cost less)."""
    return (
        input.numel() > _FOCAL_FUSED_MIN
        and reduction != "none"
        and ignore_index is None
        and not target.is_floating_point()
        and input.dtype in (torch.float32, torch.float64)
        and not torch.compiler.is_compiling()
    )


def _lovasz_gradient(fg_sorted: Tensor, gts: Tensor | None = None) -> Tensor:
    """The Lovász extension's weights along the last axis of targets sorted by decreasing error (Berman's
    Algorithm 1): the increments of ``1 - |G ∩ top-k| / |G ∪ top-k|`` over k.

    ``gts``: the foreground count ``|G|`` when ``fg_sorted`` holds only the first elements of the order (the
    rest sorting after them); by default its own sum.
    """
    if gts is None:
        gts = fg_sorted.sum(-1, keepdim=True)
    intersection = gts - fg_sorted.cumsum(-1)
    union = gts + (1.0 - fg_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat((jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]), -1)


def _lovasz_sorted_dot(errors: Tensor, fg: Tensor, valid: Tensor | None) -> Tensor:
    """``<sort(errors), lovasz_gradient(fg in that order)>`` per row of ``[..., N]``; ignored elements sort
    last with no weight (their error becomes -inf before sorting and 0 after)."""
    if valid is not None:
        errors = errors.masked_fill(~valid, -math.inf)
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    fg_sorted = torch.gather(fg, -1, perm)
    if valid is not None:
        kept = torch.gather(valid, -1, perm)
        fg_sorted = fg_sorted * kept
        errors_sorted = errors_sorted.masked_fill(~kept, 0.0)
    # the union counts the first element, so it is never 0 and the weights are finite
    return (errors_sorted * _lovasz_gradient(fg_sorted)).sum(-1)


def _validate_lovasz_args(mode, *, per_image, from_logits) -> str:
    mode = check_mode(mode)
    check_choice("per_image", per_image, (True, False))
    if not from_logits and mode != "multiclass":
        raise SegDiceError(
            f"from_logits: got False in mode {mode!r}; expected True (the Lovász hinge is defined on logits)"
        )
    return mode


def lovasz_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    per_image: bool = False,
    ignore_index: int | None = None,
    from_logits: bool = True,
) -> Tensor:
    """Lovász loss (Berman et al. 2018): the convex Lovász extension of the Jaccard loss, optimised directly.

    Binary/multilabel, the Lovász hinge: errors ``e_i = 1 - z_i s_i`` (``s_i = ±1`` the target sign, ``z``
    the logits), sorted decreasingly, ``loss = Σ_k relu(e_(k)) ΔJ_k`` with ``ΔJ_k`` the increments of the
    Jaccard loss of the ``k`` largest errors; every element of the group (image or batch, all channels
    together) forms one ranking. Multiclass, the Lovász-softmax: per class ``c`` present in the group's
    target, errors ``|1[t = c] - p_c|`` on the softmax, the same sorted sum, averaged over the present
    classes. These are smp's ``LovaszLoss`` values.

    Parameters
    ----------
    input
        Logits ``[B, C, *spatial]`` (multiclass with ``from_logits=False``: probabilities).
    target
        Binary/multilabel: ``{0, 1}`` of the input's shape (binary also ``[B, *spatial]``); multiclass:
        class indices ``[B, *spatial]`` or ``[B, 1, *spatial]``.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    per_image
        ``True``: one ranking per image, then the mean over images; ``False``: one over the whole batch.
    ignore_index
        Target value whose elements are left out of the ranking.
    from_logits
        Multiclass only may take probabilities (``False``).

    Returns
    -------
    Tensor
        A scalar. A group with every element ignored, or (multiclass) no class present, contributes 0.

    Raises
    ------
    SegDiceError
        On a bad mode, shape or label, a float multiclass target, or ``from_logits=False`` outside
        multiclass.

    Examples
    --------
    >>> logits = torch.tensor([[[[3.0, -3.0, 2.0]]]])  # [1, 1, 1, 3]
    >>> mask = torch.tensor([[[[1, 0, 1]]]])
    >>> lovasz_loss(logits, mask, "binary").item()  # every margin is >= 1: no hinge error
    0.0
    >>> round(lovasz_loss(-logits, mask, "binary").item(), 4)  # all wrong: errors 4, 4, 3
    3.6667
    """
    mode = _validate_lovasz_args(mode, per_image=per_image, from_logits=from_logits)
    _check_loss_tensors(input, target, mode, ignore_index, from_logits=from_logits)
    x = _upcast(input)
    b, c = x.shape[:2]
    if mode == "multiclass":
        if target.is_floating_point() or tuple(target.shape) == tuple(x.shape):
            raise SegDiceError(
                f"target: got {describe(target, values=False)}; expected class indices [B, *spatial] for the "
                "Lovász-softmax (it ranks the pixels of each class)"
            )
        t = _index_labels(target, x, ignore_index).reshape(b, -1)
        valid = None if ignore_index is None else t != ignore_index
        probs = torch.softmax(x, 1) if from_logits else x
        probs = probs.reshape(b, c, -1)
        if not per_image:  # one group: the batch
            probs, t = probs.transpose(0, 1).reshape(1, c, -1), t.reshape(1, -1)
            valid = None if valid is None else valid.reshape(1, -1)
        # One class at a time: the sort and its temporaries are [G, N] instead of [G, C, N] (half the peak
        # memory of sorting every class at once, for the same values).
        per_class, present = [], []
        for k in range(c):
            fg = (t == k).to(probs.dtype)  # [G, N]
            if valid is not None:
                fg = fg * valid
            per_class.append(_lovasz_sorted_dot((fg - probs[:, k]).abs(), fg, valid))
            present.append(fg.sum(-1) > 0)
        per_class_t, present_t = torch.stack(per_class, 1), torch.stack(present, 1)  # [G, C]
        per_group = (per_class_t * present_t).sum(-1) / present_t.sum(-1).clamp_min(1)
        return _nan_if_nonfinite(per_group.mean(), input)
    t = target.reshape(x.shape)
    valid = None if ignore_index is None else t != ignore_index
    kept_t = t if valid is None else t[valid]
    if kept_t.numel():
        lo, hi = torch.aminmax(kept_t)
        # an integer target in [0, 1] is 0/1; a float one must also be whole
        if float(lo) < 0 or float(hi) > 1 or (kept_t.is_floating_point() and bool((kept_t != kept_t.round()).any())):
            raise SegDiceError(f"target: got {describe(target)}; expected 0/1 values in mode {mode!r}")
    g = t.to(x.dtype) if valid is None else t.to(x.dtype).masked_fill(~valid, 0.0)
    groups = b if per_image else 1
    z, g = x.reshape(groups, -1), g.reshape(groups, -1)
    valid = None if valid is None else valid.reshape(groups, -1)
    errors = torch.addcmul(1.0 + z, z, g, value=-2.0)  # 1 - z s with the sign s = 2g - 1
    if groups == 1:
        return _nan_if_nonfinite(_lovasz_positive_dot(errors[0], g[0], None if valid is None else valid[0]), input)
    return _nan_if_nonfinite(_lovasz_sorted_dot(torch.relu(errors), g, valid).mean(), input)


_LOVASZ_COMPACT_MIN = 1 << 16


def _lovasz_positive_dot(errors: Tensor, fg: Tensor, valid: Tensor | None) -> Tensor:
    """``<sort(relu(errors)), lovasz_gradient(fg in that order)>`` for one group ``[N]``, sorting only the
    positive errors.

    The others contribute ``relu(e) = 0`` with a zero derivative and sort after every positive one, and the
    weights of the positive ones depend on the rest only through the group's foreground count (each
    weight is an increment of the Jaccard loss of a top-k set). Ties may sort either way: a tied run's
    weights sum to the same increment. Most margins of a trained network exceed 1, so most errors are
    not positive and the sort, the costliest step, shrinks with them (above _LOVASZ_COMPACT_MIN values;
    below it the compaction costs more than it saves, and ignored elements sort last at 0 with fg 0).
    """
    gts = fg.sum()
    if errors.numel() > _LOVASZ_COMPACT_MIN:
        pos = errors > 0 if valid is None else (errors > 0) & valid
        errors, fg = torch.masked_select(errors, pos), torch.masked_select(fg, pos)
    else:  # small: compacting costs more than it saves; non-positive errors sort last at 0
        errors = torch.relu(errors) if valid is None else torch.relu(errors).masked_fill(~valid, 0.0)
    e_sorted, perm = torch.sort(errors, descending=True)
    return torch.dot(e_sorted, _lovasz_gradient(fg.gather(0, perm), gts))


def _soft_erode(x: Tensor) -> Tensor:
    """Soft erosion: the minimum over the face neighbours and the voxel (a cross), by min-pooling per axis."""
    nd = x.ndim - 2
    pool = F.max_pool2d if nd == 2 else F.max_pool3d
    out = None
    for axis in range(nd):
        kernel = tuple(3 if a == axis else 1 for a in range(nd))
        padding = tuple(1 if a == axis else 0 for a in range(nd))
        eroded = -pool(-x, kernel, 1, padding)
        out = eroded if out is None else torch.minimum(out, eroded)
    return out


def _soft_dilate(x: Tensor) -> Tensor:
    """Soft dilation: the maximum over the full 3**n neighbourhood."""
    pool = F.max_pool2d if x.ndim == 4 else F.max_pool3d
    return pool(x, 3, 1, 1)


def _soft_skeleton(x: Tensor, iterations: int) -> Tensor:
    """Soft skeleton (Shit et al. 2021): what each soft opening removes, accumulated over ``iterations``
    erosions; ``x`` in [0, 1], ``[B, C, *spatial]`` 2-D or 3-D."""
    skeleton = torch.relu(x - _soft_dilate(_soft_erode(x)))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = torch.relu(x - _soft_dilate(_soft_erode(x)))
        skeleton = skeleton + torch.relu(delta - skeleton * delta)
    return skeleton


# The harmonic mean's denominator constant of clDice (MONAI's and the paper code's `smooth`).
_CLDICE_EPS = 1e-4


def _validate_cldice_args(
    mode, *, iterations, alpha, smooth, reduction, include_background, per_image
) -> str:
    mode = check_mode(mode)
    check_number("iterations", iterations, minimum=0, integer=True)
    check_number("alpha", alpha, minimum=0.0, maximum=1.0)
    check_number("smooth", smooth, minimum=0.0)
    check_choice("reduction", reduction, REDUCTIONS)
    check_include_background(include_background, mode)
    check_choice("per_image", per_image, (True, False))
    return mode


def cldice_loss(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    iterations: int = 3,
    alpha: float = 0.5,
    smooth: float = 1.0,
    from_logits: bool = True,
    include_background: bool = True,
    per_image: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """Dice + soft clDice loss (Shit et al. 2021) for tubular structures: ``(1-α)·Dice + α·(1 − clDice)``.

    Soft skeletons ``S`` come from ``iterations`` soft erosions (min-pooling over the face neighbours) and
    openings (dilation by max-pooling over ``3**n``). Per image (all kept channels together):
    ``Tprec = (Σ S(p)·g + s) / (Σ S(p) + s)``, ``Tsens = (Σ S(g)·p + s) / (Σ S(g) + s)``,
    ``clDice = 2 Tprec Tsens / (Tprec + Tsens + 1e-4)``. The Dice term is :func:`dice_loss` with
    ``smooth=s`` per image and class (``per_image=False``: pooled over the batch). ``alpha=1`` is the
    clDice term alone. These equal MONAI's ``SoftDiceclDiceLoss`` / ``SoftclDiceLoss`` (``iter_``,
    ``smooth_nr = smooth_dr = s``).

    Parameters
    ----------
    input
        Logits ``[B, C, *spatial]``, 2-D or 3-D (probabilities with ``from_logits=False``).
    target
        Binary/multilabel: ``{0, 1}`` of the input's shape (binary also ``[B, *spatial]``); multiclass:
        class indices ``[B, *spatial]`` / ``[B, 1, *spatial]`` or a one-hot/soft ``[B, C, *spatial]``.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    iterations
        Soft erosions of the skeleton, an integer ``>= 0`` (about the largest radius to thin).
    alpha
        The weight of the clDice term in ``[0, 1]``.
    smooth
        ``s`` of both terms, ``>= 0``.
    from_logits
        Apply the softmax (multiclass) or sigmoid first.
    include_background
        Multiclass only: ``False`` drops channel 0 from both terms.
    per_image
        The Dice term per image (default, as MONAI) or pooled over the batch; clDice is always per image.
    reduction
        ``"mean"``, ``"sum"`` (over images) or ``"none"`` (per-image values ``[B]``; needs
        ``per_image=True``).

    Returns
    -------
    Tensor
        A scalar, or ``[B]``.

    Raises
    ------
    SegDiceError
        On a bad mode, shape, label or setting, or input that is not 2-D/3-D.

    Notes
    -----
    Multiclass targets become one-hot tensors for the skeleton of each class: this loss needs the
    target's skeleton, which the fused statistics of the other losses cannot give.

    Empty and degenerate cases, per image (all kept channels together for the clDice term, per class for
    the Dice term), with ``P``, ``G`` the sums of prediction and target and ``s = smooth > 0``:

    * both empty: ``Tprec = Tsens = 1`` and the Dice term is 0, so the loss is ``α · 1e-4 / (2 + 1e-4)``
      (about ``5e-5 α``), the value of a perfect prediction too (the ``1e-4`` of the clDice ratio);
    * empty target, non-empty prediction: ``Tsens = 1``, ``Tprec = s / (Σ S(p) + s)`` and the Dice term is
      ``P / (P + s)``: the loss tends to 1 as the false positive grows;
    * empty prediction, non-empty target: the mirror image, ``Tprec = 1``, ``Tsens = s / (Σ S(g) + s)``,
      Dice term ``G / (G + s)``;
    * ``smooth=0``: each of the three cases above is ``0 / 0`` in ``Tprec`` or ``Tsens``, and the loss is
      NaN (give ``smooth > 0`` when images can be empty); otherwise the value is finite.

    Examples
    --------
    >>> target = torch.zeros(1, 1, 9, 9); target[0, 0, 4, 1:8] = 1  # a thin vessel
    >>> good, bad = (target * 20 - 10), torch.full_like(target, -10.0)
    >>> cldice_loss(good, target, "binary").item() < 0.05 < cldice_loss(bad, target, "binary").item()
    True
    """
    mode = _validate_cldice_args(
        mode, iterations=iterations, alpha=alpha, smooth=smooth, reduction=reduction,
        include_background=include_background, per_image=per_image,
    )  # fmt: skip
    _check_loss_tensors(input, target, mode, None, from_logits=from_logits)
    if input.ndim not in (4, 5):
        raise SegDiceError(
            f"input: got {describe(input, values=False)}; clDice needs 2-D or 3-D images [B, C, H, W(, D)]"
        )
    if reduction == "none" and not per_image:
        raise SegDiceError(
            "reduction: got 'none' with per_image=False; expected per_image=True for [B] values"
        )
    x = _upcast(input)
    c = x.shape[1]
    if mode == "multiclass":
        p = torch.softmax(x, 1) if from_logits else x
        if tuple(target.shape) == tuple(x.shape):
            g = target.to(p.dtype)
        else:
            g = F.one_hot(_index_labels(target, x, None), c).movedim(-1, 1).to(p.dtype)
        if not include_background:
            p, g = p[:, 1:], g[:, 1:]
    else:
        p = torch.sigmoid(x) if from_logits else x
        g = target.reshape(x.shape).to(p.dtype)
        if g.numel() and (float(g.min()) < 0 or float(g.max()) > 1):
            raise SegDiceError(f"target: got {describe(target)}; expected values in [0, 1] in mode {mode!r}")
    iterations = int(iterations)
    skel_p, skel_g = _soft_skeleton(p, iterations), _soft_skeleton(g, iterations)
    dims = tuple(range(1, p.ndim))
    t_prec = ((skel_p * g).sum(dims) + smooth) / (skel_p.sum(dims) + smooth)
    t_sens = ((skel_g * p).sum(dims) + smooth) / (skel_g.sum(dims) + smooth)
    cl = 1.0 - 2.0 * t_prec * t_sens / (t_prec + t_sens + _CLDICE_EPS)  # [B]
    spatial = tuple(range(2, p.ndim))
    inter, card = (p * g).sum(spatial), (p + g).sum(spatial)  # [B, C]
    if not per_image:
        inter, card = inter.sum(0), card.sum(0)
    dice = 1.0 - _smoothed_ratio(2.0 * inter, card, smooth, den_nonnegative=True)
    if reduction == "none":
        values = (1.0 - alpha) * dice.mean(-1) + alpha * cl
    elif reduction == "sum":
        values = (1.0 - alpha) * dice.sum() + alpha * cl.sum()
    else:
        values = (1.0 - alpha) * dice.mean() + alpha * cl.mean()
    return _nan_if_nonfinite(values, input)


class FocalLoss(_LossModule):
    """Focal loss as a module; see :func:`focal_loss`.

    Examples
    --------
    >>> loss = FocalLoss("binary", gamma=2.0, alpha=0.25)
    >>> float(loss(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 1, 8, 8)))) > 0
    True
    """

    _fn = staticmethod(focal_loss)

    def __init__(
        self,
        mode: str,
        *,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        ignore_index: int | None = None,
        class_weights: ClassWeights = None,
        reduction: str = "mean",
    ) -> None:
        _validate_focal_args(mode, gamma=gamma, alpha=alpha, reduction=reduction)
        super().__init__(
            mode, class_weights, gamma=gamma, alpha=alpha, ignore_index=ignore_index, reduction=reduction
        )


class _UnweightedLossModule(_LossModule):
    """A loss module whose function takes no ``class_weights``."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Compute the loss of ``input`` (logits ``[B, C, *spatial]``) against ``target``."""
        return self._call(input, target)


class LovaszLoss(_UnweightedLossModule):
    """Lovász loss as a module (smp's ``LovaszLoss``); see :func:`lovasz_loss`.

    Examples
    --------
    >>> loss = LovaszLoss("multiclass", per_image=True)
    >>> float(loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))) > 0
    True
    """

    _fn = staticmethod(lovasz_loss)

    def __init__(
        self, mode: str, *, per_image: bool = False, ignore_index: int | None = None, from_logits: bool = True
    ) -> None:
        _validate_lovasz_args(mode, per_image=per_image, from_logits=from_logits)
        super().__init__(mode, None, per_image=per_image, ignore_index=ignore_index, from_logits=from_logits)


class ClDiceLoss(_UnweightedLossModule):
    """Dice + soft clDice loss as a module (MONAI's ``SoftDiceclDiceLoss``); see :func:`cldice_loss`.

    Examples
    --------
    >>> loss = ClDiceLoss("binary", iterations=3, alpha=0.5)
    >>> float(loss(torch.randn(2, 1, 16, 16), torch.randint(0, 2, (2, 1, 16, 16)))) > 0
    True
    """

    _fn = staticmethod(cldice_loss)

    def __init__(
        self,
        mode: str,
        *,
        iterations: int = 3,
        alpha: float = 0.5,
        smooth: float = 1.0,
        from_logits: bool = True,
        include_background: bool = True,
        per_image: bool = True,
        reduction: str = "mean",
    ) -> None:
        _validate_cldice_args(
            mode, iterations=iterations, alpha=alpha, smooth=smooth, reduction=reduction,
            include_background=include_background, per_image=per_image,
        )  # fmt: skip
        super().__init__(
            mode, None, iterations=iterations, alpha=alpha, smooth=smooth, from_logits=from_logits,
            include_background=include_background, per_image=per_image, reduction=reduction,
        )  # fmt: skip
