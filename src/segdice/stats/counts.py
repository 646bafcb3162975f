"""Hard per-class counts for the metrics: ``TP, FP, FN, TN`` as int64, without one-hot tensors.

The multiclass confusion matrix comes from a single ``bincount(target * C + pred)``; the CPU engine that
counts it run by run lives in :mod:`segdice.stats._runs`.
"""

from __future__ import annotations

import numpy as np
import torch

from segdice._arrays import as_array, device_of, to_contiguous_numpy, to_torch
from segdice._checks import (
    SegDiceError,
    check_choice,
    check_finite,
    check_ignore_index,
    check_include_background,
    check_mode,
    check_number,
    describe,
)
from segdice.stats._runs import check_labels, count_label_maps

__all__ = ["MAX_INFERRED_CLASSES", "confusion"]

#: The most classes :func:`confusion` infers from the labels; larger label values need ``num_classes``.
MAX_INFERRED_CLASSES = 1 << 16

def _channel_argmax(scores: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """The index of the largest score over axis 1, the first one where several tie (as ``argmax``).

    On the CPU, ``torch.argmax(dim=1)`` walks the channel axis with a stride of a whole image per step and
    runs about 8x slower than one elementwise pass per channel over contiguous images (258 ms against 33 ms
    for [8, 4, 256, 256] on one thread); the strict ``>`` keeps the first of tied channels, as argmax does.
    """
    if isinstance(scores, torch.Tensor) and scores.device.type != "cpu":
        return scores.argmax(1)
    # Twin loops, not one through NumPy: NumPy has no bfloat16, so CPU tensors are arg-maxed in torch.
    if isinstance(scores, np.ndarray):
        best = scores[:, 0]
        index = np.zeros(best.shape, dtype=np.int64)
        for channel in range(1, scores.shape[1]):
            current = scores[:, channel]
            index[current > best] = channel
            best = np.maximum(best, current)
        return index
    best = scores[:, 0]
    index = torch.zeros(best.shape, dtype=torch.int64)
    for channel in range(1, scores.shape[1]):
        current = scores[:, channel]
        index.masked_fill_(current > best, channel)
        best = torch.maximum(best, current)
    return index


# --- hard counts (metrics) ----------------------------------------------------------------------
#
# Label maps are counted per class without ever forming a one-hot tensor or a [C, C] matrix per
# voxel. Only three per-class numbers are needed for every overlap metric: the target count G, the
# prediction count P and the diagonal TP (FP = P - TP, FN = G - TP, TN = N - TP - FP - FN).
#
# CPU path (segdice.stats._runs; NumPy, also for CPU torch tensors through a zero-copy view):
# segmentation maps are made of long constant runs, so the arrays are scanned in cache-sized chunks for
# the positions where the (target, prediction) pair changes, and only one element per run is counted,
# weighted by the run length. The scan is a few vectorised passes over data already in cache, so it costs
# a fraction of one `np.bincount` over every voxel (which is bound by a serial increment per voxel). A
# chunk whose labels change too often for runs to pay off (noise-like maps) falls back to a bincount of
# that chunk, so the total is never much worse than one bincount. Labels are validated on the run values
# (every voxel of a run has the run's value), which makes the range check almost free.
#
# CUDA path: torch.bincount over the flattened codes.


def _is_integral(x: torch.Tensor | np.ndarray) -> bool:
    if isinstance(x, torch.Tensor):
        return not (x.is_floating_point() or x.is_complex())
    return bool(np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_)


def _prepare_multiclass(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    num_classes: int | None,
    ignore_index: int | None,
) -> tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray, int | None]:
    """Bring pred and target to label maps of the same shape ``[B, *spatial]``."""
    if target.ndim < 2:
        raise SegDiceError(
            f"target: got {describe(target, values=False)}; expected a label map [B, *spatial] or "
            "[B, 1, *spatial]"
        )
    if not _is_integral(target):
        raise SegDiceError(
            f"target: got {describe(target)}; expected integer class indices (a label map); float "
            "labels are ambiguous, convert them with .long() / .astype(int) if they hold indices"
        )
    if target.ndim == pred.ndim + 1 and target.ndim >= 3 and target.shape[1] == 1:
        target = target[:, 0]
    if pred.ndim == target.ndim + 1 or (pred.ndim == target.ndim and pred.ndim >= 3 and target.shape[1] == 1):
        # pred has a channel axis: scores or one-hot [B, C, *spatial], or a label map [B, 1, *spatial]
        if pred.ndim == target.ndim:  # target [B, 1, *spatial] next to pred [B, C, *spatial]
            target = target[:, 0]
        if tuple(pred.shape[:1]) + tuple(pred.shape[2:]) != tuple(target.shape):
            raise SegDiceError(
                f"pred and target must have matching shapes: got pred {tuple(pred.shape)} ([B, C, *spatial]) "
                f"and target {tuple(target.shape)} ([B, *spatial])"
            )
        channels = pred.shape[1]
        if _is_integral(pred) and channels == 1:
            pred = pred[:, 0]
        else:
            if channels == 1:
                raise SegDiceError(
                    f"pred: got {describe(pred, values=False)}: scores with one channel cannot be arg-maxed "
                    "in mode='multiclass'; use mode='binary'"
                )
            if num_classes is not None and channels != num_classes:
                raise SegDiceError(
                    f"pred: got {describe(pred, values=False)} with {channels} channels; expected "
                    f"num_classes={num_classes} channels"
                )
            check_finite("pred", pred)
            num_classes = channels
            pred = _channel_argmax(pred)
    elif pred.ndim == target.ndim:
        if not _is_integral(pred):
            raise SegDiceError(
                f"pred: got {describe(pred)} with the shape of target; expected integer class indices "
                "(a label map) or float scores [B, C, *spatial]"
            )
        if tuple(pred.shape) != tuple(target.shape):
            raise SegDiceError(
                f"pred and target must have the same shape: got pred {tuple(pred.shape)} and "
                f"target {tuple(target.shape)}"
            )
        if pred.ndim >= 3 and pred.shape[1] == 1 and target.shape[1] == 1:
            pred, target = pred[:, 0], target[:, 0]
    else:
        raise SegDiceError(
            f"pred and target must have matching shapes: got pred {tuple(pred.shape)} and target "
            f"{tuple(target.shape)}; expected label maps [B, *spatial] or scores [B, C, *spatial] with "
            "a target [B, *spatial]"
        )
    if num_classes is not None:
        check_number("num_classes", num_classes, minimum=1, integer=True)
        num_classes = int(num_classes)
    return pred, target, num_classes


def _infer_num_classes(
    pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, ignore: int | None
) -> int:
    def top(x: np.ndarray | torch.Tensor) -> int:
        if x.size == 0 if isinstance(x, np.ndarray) else x.numel() == 0:
            return 0
        if ignore is not None:
            keep = x != ignore
            if not bool(keep.any()):
                return 0
            x = x[keep]
        return int(x.max())

    return max(top(pred), top(target)) + 1


def _counts_torch(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same counts with torch.bincount, for accelerator tensors."""
    n_img, size = target.shape
    c = num_classes
    g, p = target.long(), pred.long()
    if ignore is not None:
        keep = g != ignore
        valid = keep.sum(1)
    else:
        keep = None
        valid = torch.full((n_img,), size, dtype=torch.int64, device=g.device)
    row = torch.arange(n_img, device=g.device).unsqueeze(1) * c
    gs, ps = g + row, p + row
    if keep is not None:
        gv, pv = g[keep], p[keep]
        gs, ps = gs[keep], ps[keep]
    else:
        gv, pv = g.reshape(-1), p.reshape(-1)
        gs, ps = gs.reshape(-1), ps.reshape(-1)
    if gv.numel():
        lo_hi = torch.stack([gv.min(), gv.max(), pv.min(), pv.max()]).tolist()
        check_labels("target", lo_hi[0], lo_hi[1], c)
        check_labels("pred", lo_hi[2], lo_hi[3], c)
    g_cnt = torch.bincount(gs, minlength=n_img * c)
    p_cnt = torch.bincount(ps, minlength=n_img * c)
    t_cnt = torch.bincount(gs[gv == pv], minlength=n_img * c)
    shape = (n_img, c)
    return g_cnt.view(shape), p_cnt.view(shape), t_cnt.view(shape), valid


def _prepare_masks(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    mode: str,
    num_classes: int | None,
    ignore: int | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary/multilabel: bring pred and target to ``[B, C, S]`` (pred bool, target as given)."""
    if mode == "binary":
        if num_classes not in (None, 1):
            raise SegDiceError(
                f"num_classes: got {num_classes!r}; mode='binary' has one class (use None or 1)"
            )
        if pred.ndim < 2 or target.ndim < 2:
            raise SegDiceError(
                f"pred and target: got pred {tuple(pred.shape)} and target {tuple(target.shape)}; expected "
                "masks [B, *spatial] or [B, 1, *spatial]"
            )
        if pred.ndim == target.ndim + 1 and pred.shape[1] == 1:
            pred = pred[:, 0]
        elif target.ndim == pred.ndim + 1 and target.shape[1] == 1:
            target = target[:, 0]
        if tuple(pred.shape) != tuple(target.shape):
            raise SegDiceError(
                f"pred and target must have the same shape: got pred {tuple(pred.shape)} and target "
                f"{tuple(target.shape)}"
            )
        pred, target = pred[:, None], target[:, None]
    else:
        if pred.ndim < 3 or tuple(pred.shape) != tuple(target.shape):
            raise SegDiceError(
                f"pred and target must have the same shape [B, C, *spatial] in mode='multilabel': got pred "
                f"{tuple(pred.shape)} and target {tuple(target.shape)}"
            )
        if num_classes is not None and pred.shape[1] != num_classes:
            raise SegDiceError(
                f"pred: got {describe(pred, values=False)} with {pred.shape[1]} channels; expected "
                f"num_classes={num_classes}"
            )
    p = to_torch(pred, device)
    g = to_torch(target, device)
    if g.is_floating_point():
        check_finite("target", g)
    p = _binarize_pred(p)
    b, c = g.shape[:2]
    size = int(np.prod(g.shape[2:]))
    return p.reshape(b, c, size), g.reshape(b, c, size)


def _binarize_pred(p: torch.Tensor) -> torch.Tensor:
    if p.dtype == torch.bool:
        return p
    if p.is_floating_point():
        check_finite("pred", p)
        if p.numel() and (float(p.min()) < 0 or float(p.max()) > 1):
            raise SegDiceError(
                f"pred: got {describe(p)}; expected probabilities in [0, 1] (thresholded at 0.5) or a mask; "
                "apply a sigmoid to logits first"
            )
        return p > 0.5
    if p.numel() and (int(p.min()) < 0 or int(p.max()) > 1):
        raise SegDiceError(f"pred: got {describe(p)}; expected a mask with values 0 and 1")
    return p.bool()


def _counts_masks(
    p: torch.Tensor, g: torch.Tensor, ignore: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (image, channel) G, P, TP and valid counts of masks ``[B, C, S]``."""
    if ignore is not None:
        keep = g != ignore
        gk = g[keep] if g.numel() else g
    else:
        keep = None
        gk = g
    if gk.numel() and bool(((gk != 0) & (gk != 1)).any()):
        lo, hi = float(gk.min()), float(gk.max())
        raise SegDiceError(
            f"target: got {describe(g, values=False)} with values in [{lo:.6g}, {hi:.6g}] (ignore_index "
            f"excluded); expected a mask with values 0 and 1"
        )
    pos = g == 1
    if keep is not None:
        pk = p & keep
        valid = keep.sum(-1)
    else:
        pk = p
        valid = torch.full(g.shape[:2], g.shape[-1], dtype=torch.int64, device=g.device)
    return pos.sum(-1), pk.sum(-1), (pk & pos).sum(-1), valid


def confusion(
    pred: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    num_classes: int | None = None,
    *,
    mode: str = "multiclass",
    ignore_index: int | None = None,
    per_image: bool = True,
    include_background: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard per-class counts ``(tp, fp, fn, tn)`` of a prediction against a target, in one pass.

    Parameters
    ----------
    pred
        ``mode="multiclass"``: a label map ``[B, *spatial]`` (or ``[B, 1, *spatial]``) of class indices,
        or scores / a one-hot ``[B, C, *spatial]``, arg-maxed over ``C``. ``"binary"``: a mask
        ``[B, *spatial]`` or ``[B, 1, *spatial]``; ``"multilabel"``: masks ``[B, C, *spatial]``. Float
        masks are probabilities, thresholded at 0.5. A torch tensor (any device) or a NumPy array.
    target
        ``"multiclass"``: an integer label map ``[B, *spatial]`` or ``[B, 1, *spatial]``; otherwise a mask
        of the shape of ``pred`` with values 0 and 1 (and ``ignore_index``).
    num_classes
        Number of classes ``C``. ``None``: the channel count of scores, else the largest label + 1
        (binary: 1; multilabel: the channel count). A largest label of ``MAX_INFERRED_CLASSES`` (65536) or
        more raises instead of allocating counts for every class below it: give ``num_classes``.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    ignore_index
        Target value whose voxels are left out of every count (tp, fp, fn and tn), e.g. 255 or -100.
    per_image
        ``True``: counts per image ``[B, C]``; ``False``: summed over the batch ``[C]``.
    include_background
        Multiclass only: ``False`` drops class 0 from the output (after counting, so a voxel of class
        1 predicted as background is still a false negative of class 1).

    Returns
    -------
    tuple of torch.Tensor
        ``(tp, fp, fn, tn)``, int64 tensors of shape ``[B, C]`` or ``[C]`` on the device of the input
        (CPU for NumPy input).

    Raises
    ------
    SegDiceError
        On mismatched shapes, float labels, labels outside ``[0, num_classes)`` other than
        ``ignore_index``, mask values other than 0/1, NaN scores or an invalid option.

    Examples
    --------
    >>> import torch
    >>> target = torch.tensor([[0, 1, 1, 2]])
    >>> pred = torch.tensor([[0, 1, 2, 2]])
    >>> tp, fp, fn, tn = confusion(pred, target, 3)
    >>> tp.tolist(), fp.tolist(), fn.tolist(), tn.tolist()
    ([[1, 1, 1]], [[0, 0, 1]], [[0, 1, 0]], [[3, 2, 2]])
    """
    mode = check_mode(mode)
    pred = as_array("pred", pred)
    target = as_array("target", target)
    ignore = check_ignore_index(ignore_index)
    check_choice("per_image", per_image, (True, False))
    check_choice("include_background", include_background, (True, False))
    device = device_of(pred, target)
    check_include_background(include_background, mode)
    if mode == "multiclass":
        pred, target, num_classes = _prepare_multiclass(pred, target, num_classes, ignore)
        if num_classes is None:
            num_classes = _infer_num_classes(pred, target, ignore)
            num_classes = max(num_classes, 1)
            if num_classes > MAX_INFERRED_CLASSES:
                # a stray label (2**31, a float cast) would allocate counts for every class below it
                raise SegDiceError(
                    f"num_classes: got None and the largest label is {num_classes - 1}; expected num_classes "
                    f"given explicitly for labels above {MAX_INFERRED_CLASSES - 1} (inferring it would "
                    f"allocate counts for {num_classes} classes; pred: {describe(pred, values=True)}; "
                    f"target: {describe(target, values=True)})"
                )
        b, size = target.shape[0], int(np.prod(target.shape[1:]))
        try:
            if device.type == "cpu":
                p_np, g_np = (
                    to_contiguous_numpy(pred).reshape(b, size),
                    to_contiguous_numpy(target).reshape(b, size),
                )
                g_c, p_c, t_c, valid = (
                    torch.from_numpy(a) for a in count_label_maps(p_np, g_np, num_classes, ignore)
                )
            else:
                g_c, p_c, t_c, valid = _counts_torch(
                    to_torch(pred).reshape(b, size), to_torch(target).reshape(b, size), num_classes, ignore
                )
        except SegDiceError as exc:  # out-of-range labels: add what the arrays are
            raise SegDiceError(
                f"{exc} (pred: {describe(pred, values=False)}; target: {describe(target, values=False)})"
            ) from None
        valid = valid.unsqueeze(1)
    else:
        p, g = _prepare_masks(pred, target, mode, num_classes, ignore, device)
        g_c, p_c, t_c, valid = _counts_masks(p, g, ignore)
    tp = t_c
    fp = p_c - t_c
    fn = g_c - t_c
    tn = valid - tp - fp - fn
    if not include_background:
        tp, fp, fn, tn = tp[:, 1:], fp[:, 1:], fn[:, 1:], tn[:, 1:]
    if not per_image:
        tp, fp, fn, tn = tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)
    return tp, fp, fn, tn
