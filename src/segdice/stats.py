"""The one core of segdice: per-class overlap statistics, soft and hard, without one-hot tensors.

Losses and metrics never compute overlap on their own; they ask this module.

Soft statistics (differentiable, for losses), per class ``c`` and reduction group (image or batch)::

    I = sum(p * g)      P = sum(p)      G = sum(g)        (squared=True: sum(p**2), sum(g**2))

Hard counts (for metrics): ``TP, FP, FN, TN`` per class as int64, the multiclass confusion matrix from a
single ``bincount(target * C + pred)``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from segdice import _soft
from segdice._checks import (
    SegDiceError,
    check_choice,
    check_finite,
    check_mode,
    check_number,
    describe,
)

# --- soft statistics (losses) -------------------------------------------------------------------
# The autograd kernels live in segdice._soft; this section validates and dispatches.


class SoftStats(NamedTuple):
    """Differentiable per-class statistics, float32 (float64 for float64 input).

    Each field has shape ``[B, C]`` (``per_image=True``) or ``[C]`` (pooled over the batch).

    Attributes
    ----------
    tp
        ``I``: ``sum(p * g)``; for float targets the semimetric form ``(sum p + sum g - sum |p - g|) / 2``
        (equal to ``sum(p * g)`` on 0/1 targets, minimised at ``p = g`` on soft ones).
    pred
        ``P = sum(p)`` (``sum(p**2)`` with ``squared=True``).
    target
        ``G = sum(g)`` (``sum(g**2)`` with ``squared=True``); for index targets, the pixel count per class.
    nll
        Sum of the cross-entropy per class (``with_nll=True`` only, zeros otherwise): multiclass, the sum of
        ``-log p_target`` over the pixels of each target class; binary/multilabel, the sum of the
        binary cross-entropy with logits over each channel.
    n_valid
        Number of elements counted (pixels not equal to ``ignore_index``), per image and channel.
    """

    tp: Tensor
    pred: Tensor
    target: Tensor
    nll: Tensor
    n_valid: Tensor


def _is_compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _check_range(name: str, x: Tensor, lo_ok: float, hi_ok: float, ignore_index, expected: str) -> None:
    """Raise if values of ``x`` (ignoring ``ignore_index``) fall outside ``[lo_ok, hi_ok]``."""
    if _is_compiling() or x.numel() == 0:
        return  # data-dependent checks would break the graph; eager runs check them
    lo, hi = torch.aminmax(x.detach())
    _raise_out_of_range(name, x, lo, hi, lo_ok, hi_ok, ignore_index, expected)


def _raise_out_of_range(name, x, lo, hi, lo_ok, hi_ok, ignore_index, expected) -> None:
    """Raise unless ``[lo, hi]`` (the extremes of ``x``) lies in ``[lo_ok, hi_ok]``."""
    if lo_ok <= float(lo) and float(hi) <= hi_ok:
        return
    if ignore_index is not None:
        kept = x.detach()[x.detach() != ignore_index]
        if kept.numel() == 0:
            return
        lo, hi = torch.aminmax(kept)
        if lo_ok <= float(lo) and float(hi) <= hi_ok:
            return
    extra = f" besides ignore_index={ignore_index}" if ignore_index is not None else ""
    raise SegDiceError(
        f"{name}: got {describe(x, values=False)} with values in [{float(lo):.6g}, {float(hi):.6g}]{extra}; "
        f"expected {expected}"
    )


def _check_binary_range(target: Tensor, mode: str, lo: float, hi: float) -> None:
    # Called by the sigmoid_hard kernel with the extremes of its float copy of an integer target.
    _raise_out_of_range("target", target, lo, hi, 0.0, 1.0, None, f"values in [0, 1] in mode {mode!r}")


def _check_soft_labels(target: Tensor, c: int, ignore_index) -> None:
    expected = f"class indices in [0, {c - 1}] (input has C={c} channels)"
    _check_range("target", target, 0, c - 1, ignore_index, expected)


def _prepare(input: Tensor, target: Tensor, mode: str, from_logits: bool, ignore_index, lean: bool = False):
    """Validate and reshape; return (x [B, C, N], t, kernel, activation, soft).

    ``lean``: the caller may use the ``"sigmoid_hard"`` kernel (plain sums, no ignore_index); it is chosen
    for logits of the accumulation dtype against an integer target (range-checked inside the kernel, on its
    float copy) or a float target whose values are all 0/1.
    """
    mode = check_mode(mode)
    if not isinstance(input, torch.Tensor) or not input.is_floating_point():
        raise SegDiceError(
            f"input: got {describe(input, values=False)}; expected a floating-point tensor [B, C, *spatial]"
        )
    if not isinstance(target, torch.Tensor):
        raise SegDiceError(f"target: got {describe(target, values=False)}; expected a torch tensor")
    if input.ndim < 3:
        raise SegDiceError(
            f"input: got {describe(input, values=False)}; expected [B, C, *spatial] with at least one spatial dim"
        )
    if target.device != input.device:
        raise SegDiceError(
            f"target is on {target.device} but input is on {input.device}; expected one device"
        )
    if ignore_index is not None:
        check_number("ignore_index", ignore_index, integer=True)
    b, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    if not from_logits:
        _check_range(
            "input",
            input,
            0.0,
            1.0,
            None,
            "probabilities in [0, 1] with from_logits=False (logits need from_logits=True)",
        )
    x = input.reshape(b, c, -1)
    int_target = not target.is_floating_point()
    if mode == "multiclass":
        if c < 2:
            raise SegDiceError(
                f"input: got {describe(input, values=False)} in mode 'multiclass'; a softmax over one channel "
                "is constant 1: expected C >= 2 channels, or mode='binary' for one foreground channel"
            )
        index_shapes = ((b, *spatial), (b, 1, *spatial))
        if int_target and tuple(target.shape) in index_shapes and tuple(target.shape) != tuple(input.shape):
            if target.dtype == torch.bool:
                target = target.to(torch.int64)
            if target.device.type != "cpu":
                # On CPU the kernel's gather raises on a bad label and soft_stats turns that into this check;
                # on accelerators an out-of-range gather is a fatal device assert, so check first.
                _check_soft_labels(target, c, ignore_index)
            t = target.reshape(b, -1).to(torch.int64)
            return x, t, "index", "softmax" if from_logits else "none", False
        if tuple(target.shape) == tuple(input.shape):
            _check_range("target", target, 0.0, 1.0, ignore_index, "one-hot or soft targets in [0, 1]")
            return x, target.reshape(b, c, -1), "dense", "softmax" if from_logits else "none", not int_target
        raise SegDiceError(
            f"target: got {describe(target, values=False)} for input of shape {tuple(input.shape)} in mode "
            f"'multiclass'; expected an integer index map {list(index_shapes[0])} or {list(index_shapes[1])}, "
            f"or a float one-hot/soft target {list(input.shape)}"
        )
    if mode == "binary" and c != 1:
        raise SegDiceError(
            f"input: got {describe(input, values=False)} in mode 'binary'; expected one channel [B, 1, *spatial] "
            "(use mode='multiclass' or 'multilabel' for several channels)"
        )
    if mode == "binary" and tuple(target.shape) == (b, *spatial):
        target = target.unsqueeze(1)
    if tuple(target.shape) != tuple(input.shape):
        expected = f"{list(input.shape)}" + (f" or {[b, *spatial]}" if mode == "binary" else "")
        raise SegDiceError(
            f"target: got {describe(target, values=False)} for input of shape {tuple(input.shape)} in mode "
            f"{mode!r}; expected {expected}"
        )
    t = target.reshape(b, c, -1)
    lean = lean and from_logits and x.dtype in (torch.float32, torch.float64) and not _is_compiling()
    if lean and int_target:
        return x, t, "sigmoid_hard", "sigmoid", False
    _check_range("target", target, 0.0, 1.0, ignore_index, f"values in [0, 1] in mode {mode!r}")
    if lean and t.dtype == x.dtype and _soft.is_hard_target(t):
        return x, t, "sigmoid_hard", "sigmoid", False
    return x, t, "dense", "sigmoid" if from_logits else "none", not int_target


def soft_stats(
    input: Tensor,
    target: Tensor,
    mode: str,
    *,
    from_logits: bool = True,
    squared: bool = False,
    ignore_index: int | None = None,
    per_image: bool = True,
    distributed: bool = False,
    with_nll: bool = False,
) -> SoftStats:
    """Per-class soft overlap statistics ``I, P, G`` of predictions against a target, differentiable.

    One fused autograd node applies the activation (softmax for ``"multiclass"``, sigmoid otherwise, none
    with ``from_logits=False``), masks ``ignore_index`` pixels out of every sum and computes the sums; its
    backward is analytic and writes the gradient into the buffer of the probabilities, so forward + backward
    keep one logits-sized tensor alive. Index targets never become one-hot tensors.

    Parameters
    ----------
    input
        Logits (or probabilities with ``from_logits=False``) ``[B, C, *spatial]``, any float dtype.
    target
        Multiclass: an integer index map ``[B, *spatial]`` or ``[B, 1, *spatial]``, or a float one-hot/soft
        target ``[B, C, *spatial]``. Binary: ``[B, 1, *spatial]`` or ``[B, *spatial]`` in ``[0, 1]``.
        Multilabel: ``[B, C, *spatial]`` in ``[0, 1]``. Integer targets are hard, float targets soft.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
    from_logits
        Apply the mode's activation first.
    squared
        Use ``sum(p**2)`` and ``sum(g**2)`` for ``P`` and ``G`` (V-Net form); ``I = sum(p * g)``.
    ignore_index
        Target value whose elements are left out of every sum, after the activation. For dense targets an
        element is ignored where the target equals it (set every channel of a pixel to ignore the pixel).
    per_image
        ``True``: shapes ``[B, C]``; ``False``: summed over the batch, ``[C]``.
    distributed
        With ``per_image=False``, sum the statistics over all ``torch.distributed`` ranks (differentiable).
    with_nll
        Also return the per-class cross-entropy sums (``nll``) the compound losses use.

    Returns
    -------
    SoftStats
        ``(tp, pred, target, nll, n_valid)``, float32 whatever the input dtype (float64 for float64 input).

    Raises
    ------
    SegDiceError
        On a bad mode, shape, label range, value range, or ``distributed`` without a process group.

    Examples
    --------
    >>> logits = torch.tensor([[[[4.0, -4.0]], [[-4.0, 4.0]]]])  # [B=1, C=2, 1, 2]
    >>> labels = torch.tensor([[[0, 1]]])
    >>> st = soft_stats(logits, labels, "multiclass")
    >>> [round(v, 4) for v in st.tp[0].tolist()], st.target[0].tolist()
    ([0.9997, 0.9997], [1.0, 1.0])
    """
    if distributed and per_image:
        raise SegDiceError(
            "distributed: got True with per_image=True; expected per_image=False (pooling statistics over ranks "
            "is the global batch Dice; per-image scores need no communication)"
        )
    lean = not squared and ignore_index is None and not with_nll
    x, t, kernel, activation, soft = _prepare(input, target, mode, from_logits, ignore_index, lean)
    if kernel == "sigmoid_hard":
        check = None if t.is_floating_point() else partial(_check_binary_range, target, mode)
        out = _soft.sigmoid_hard_stats(x, t, check)
    elif kernel == "index":
        try:
            out = _soft.index_stats(
                x, t, activation, squared=bool(squared), ignore_index=ignore_index, with_nll=with_nll
            )
        except RuntimeError:
            _check_soft_labels(target, x.shape[1], ignore_index)  # a label out of range: say which
            raise
    else:
        out = _soft.dense_stats(
            x, t, activation, squared=bool(squared), ignore_index=ignore_index, with_nll=with_nll, soft=soft
        )
    stats = SoftStats(*out)
    if not per_image:
        stats = pool_soft_stats(stats, distributed=distributed)
    return stats


def pool_soft_stats(stats: SoftStats, *, distributed: bool = False) -> SoftStats:
    """Sum ``[B, C]`` statistics over the batch (and over ranks with ``distributed=True``) to ``[C]``.

    Parameters
    ----------
    stats
        Per-image statistics from :func:`soft_stats` with ``per_image=True``.
    distributed
        Also sum over every rank of the default ``torch.distributed`` process group, in one all-reduce whose
        backward sums the gradients over ranks (see the losses' Notes on DDP).

    Returns
    -------
    SoftStats
        The same fields with shape ``[C]``.

    Raises
    ------
    SegDiceError
        If ``distributed=True`` and no process group is initialised.

    Examples
    --------
    >>> st = SoftStats(*(torch.ones(2, 3) for _ in range(5)))
    >>> pool_soft_stats(st).tp.tolist()
    [2.0, 2.0, 2.0]
    """
    stacked = torch.stack(tuple(stats)).sum(1)  # [5, C]
    if distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise SegDiceError(
                "distributed: got True but torch.distributed has no initialised process group; expected "
                "torch.distributed.init_process_group(...) before the loss is called"
            )
        stacked = _soft.all_reduce_sum(stacked)
    return SoftStats(*stacked.unbind(0))


# --- hard counts (metrics) ----------------------------------------------------------------------
#
# Label maps are counted per class without ever forming a one-hot tensor or a [C, C] matrix per
# voxel. Only three per-class numbers are needed for every overlap metric: the target count G, the
# prediction count P and the diagonal TP (FP = P - TP, FN = G - TP, TN = N - TP - FP - FN).
#
# CPU path (NumPy, also for CPU torch tensors through a zero-copy view): segmentation maps are made
# of long constant runs, so the arrays are scanned in cache-sized chunks for the positions where the
# (target, prediction) pair changes, and only one element per run is counted, weighted by the run
# length. The scan is a few vectorised passes over data already in cache, so it costs a fraction of
# one `np.bincount` over every voxel (which is bound by a serial increment per voxel). A chunk whose
# labels change too often for runs to pay off (noise-like maps) falls back to a bincount of that
# chunk, so the total is never much worse than one bincount. Labels are validated on the run values
# (every voxel of a run has the run's value), which makes the range check almost free.
#
# CUDA path: torch.bincount over the flattened codes.

_CHUNK = 1 << 16  # voxels per chunk: two int64 chunks stay within L2/L3
_DENSE_FRACTION = 12  # a chunk with more than chunk/12 runs is counted densely
_PROBE = 4096  # voxels at the head of a chunk looked at first...
_PROBE_FRACTION = 16  # ...and a chunk whose head changes labels more often than 1 in 16 is counted densely


def _is_integral(x: torch.Tensor | np.ndarray) -> bool:
    if isinstance(x, torch.Tensor):
        return not (x.is_floating_point() or x.is_complex())
    return bool(np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_)


def _is_float(x: torch.Tensor | np.ndarray) -> bool:
    if isinstance(x, torch.Tensor):
        return x.is_floating_point()
    return bool(np.issubdtype(x.dtype, np.floating))


def _as_array(name: str, x: object) -> torch.Tensor | np.ndarray:
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if (isinstance(x, torch.Tensor) and x.is_complex()) or (
            isinstance(x, np.ndarray) and x.dtype.kind == "c"
        ):
            raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected real or integer values")
        if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
            raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected a numeric array")
        return x
    raise SegDiceError(f"{name}: got {describe(x)}; expected a torch.Tensor or a numpy.ndarray")


def _to_torch(x: torch.Tensor | np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t if device is None else t.to(device)


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bool:
            x = x.view(torch.uint8)
        elif x.dtype in (torch.uint16, torch.uint32, torch.uint64):
            x = x.to(torch.int64)
        return x.contiguous().numpy()
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    return np.ascontiguousarray(x)


def _device_of(*xs: object) -> torch.device:
    devices = {x.device for x in xs if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise SegDiceError(f"pred and target must be on the same device: got {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")


def _check_ignore_index(ignore_index: object) -> int | None:
    if ignore_index is None:
        return None
    check_number("ignore_index", ignore_index, integer=True)
    return int(ignore_index)


def _check_labels(name: str, lo: int, hi: int, num_classes: int) -> None:
    """Raise if the non-ignored labels ``[lo, hi]`` of ``name`` leave ``[0, num_classes)``."""
    if lo < 0 or hi >= num_classes:
        allowed = " or ignore_index" if name == "target" else " (where the target is not ignore_index)"
        raise SegDiceError(
            f"{name}: label values must be in [0, {num_classes - 1}]{allowed} for num_classes={num_classes}; "
            f"got values in [{lo}, {hi}]"
        )


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
            pred = pred.argmax(1) if isinstance(pred, torch.Tensor) else np.argmax(pred, axis=1)
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


def _counts_numpy(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-image G, P, TP ``[B, C]`` and valid-voxel counts ``[B]`` of two label maps ``[B, S]``."""
    n_img, size = target.shape
    c = num_classes
    gf, pf = target.reshape(-1), pred.reshape(-1)
    total = gf.size
    # Run starts and lengths of sparse chunks, and per-chunk dense counts, gathered then counted once.
    run_g: list[np.ndarray] = []
    run_p: list[np.ndarray] = []
    run_pos: list[np.ndarray] = []
    run_len: list[np.ndarray] = []
    g_cnt = np.zeros(n_img * c, np.int64)
    p_cnt = np.zeros(n_img * c, np.int64)
    t_cnt = np.zeros(n_img * c, np.int64)
    ignored = np.zeros(n_img, np.int64)
    # the change mask is padded to whole 8-byte words: non-zero words are found 8 voxels at a time
    changed = np.zeros(_CHUNK + 8, np.bool_)
    scratch = np.empty(_CHUNK, np.bool_)
    skip = 0  # chunks left to count densely without probing for runs (after a noise-like chunk)
    backoff = 1
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        gc, pc = gf[start:stop], pf[start:stop]
        k = stop - start
        if skip:
            skip -= 1
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            continue
        # a cheap look at the head of the chunk: clearly noise-like chunks skip the full scan
        head = min(k, _PROBE)
        n_head = int(np.count_nonzero((gc[1:head] != gc[: head - 1]) | (pc[1:head] != pc[: head - 1])))
        if n_head * _PROBE_FRACTION > head:
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            skip, backoff = backoff, min(2 * backoff, 64)
            continue
        n_words = -(-(k - 1) // 8)
        chg, tmp = changed[: k - 1], scratch[: k - 1]
        np.not_equal(gc[1:], gc[:-1], out=chg)
        np.not_equal(pc[1:], pc[:-1], out=tmp)
        chg |= tmp
        changed[k - 1 : n_words * 8] = False
        # an image boundary inside the chunk always starts a new run
        next_image = (start // size + 1) * size
        if next_image < stop:
            chg[next_image - start - 1 :: size] = True
        words = np.flatnonzero(changed[: n_words * 8].view(np.uint64))
        rows = cols = None
        if words.size * 2 <= n_words:
            flat = np.flatnonzero(changed[: n_words * 8].reshape(-1, 8)[words])
            rows, cols = flat >> 3, flat & 7
        if rows is None or rows.size * _DENSE_FRACTION > k:
            # noise-like: runs do not pay off; count densely and probe again later
            _dense_chunk(gc, pc, start, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
            skip, backoff = backoff, min(2 * backoff, 64)
            continue
        backoff = 1
        starts = np.empty(rows.size + 1, np.int64)
        starts[0] = 0
        np.multiply(words[rows], 8, out=starts[1:])
        starts[1:] += cols
        starts[1:] += 1
        lengths = np.empty_like(starts)
        np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
        lengths[-1] = k - starts[-1]
        run_len.append(lengths)
        run_g.append(gc[starts])
        run_p.append(pc[starts])
        starts += start
        run_pos.append(starts)
    if run_len:
        _count_runs(run_g, run_p, run_len, run_pos, size, c, ignore, g_cnt, p_cnt, t_cnt, ignored)
    valid = np.full(n_img, size, np.int64) - ignored
    shape = (n_img, c)
    return g_cnt.reshape(shape), p_cnt.reshape(shape), t_cnt.reshape(shape), valid


def _count_runs(
    run_g: list[np.ndarray],
    run_p: list[np.ndarray],
    run_len: list[np.ndarray],
    run_pos: list[np.ndarray],
    size: int,
    c: int,
    ignore: int | None,
    g_cnt: np.ndarray,
    p_cnt: np.ndarray,
    t_cnt: np.ndarray,
    ignored: np.ndarray,
) -> None:
    """Validate the run values and add the runs, weighted by their lengths, to the counts."""
    n_img = ignored.size
    rg = np.concatenate(run_g).astype(np.int64, copy=False)
    rp = np.concatenate(run_p).astype(np.int64, copy=False)
    rl = np.concatenate(run_len)
    rb = np.concatenate(run_pos) // size if n_img > 1 else None
    if ignore is not None:
        drop = rg == ignore
        if drop.any():
            if rb is None:
                ignored[0] += int(rl[drop].sum())
            else:
                ignored += np.bincount(rb[drop], weights=rl[drop], minlength=n_img).astype(np.int64)
            keep = ~drop
            rg, rp, rl = rg[keep], rp[keep], rl[keep]
            rb = None if rb is None else rb[keep]
    if rg.size == 0:
        return
    _check_labels("target", int(rg.min()), int(rg.max()), c)
    _check_labels("pred", int(rp.min()), int(rp.max()), c)
    # bincount weights are float64: exact, since run lengths and their sums stay far below 2**53
    if n_img * c * c <= max(4 * rg.size, 1 << 16):
        # one weighted bincount of the pair code gives every [image, target, pred] count
        code = rg * c + rp
        if rb is not None:
            code += rb * (c * c)
        m = np.bincount(code, weights=rl, minlength=n_img * c * c).astype(np.int64).reshape(n_img, c, c)
        g_cnt += m.sum(2).reshape(-1)
        p_cnt += m.sum(1).reshape(-1)
        t_cnt += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many images x classes: three marginal bincounts instead of the pair matrix
        row = rb * c if rb is not None else 0
        g_cnt += np.bincount(rg + row, weights=rl, minlength=n_img * c).astype(np.int64)
        p_cnt += np.bincount(rp + row, weights=rl, minlength=n_img * c).astype(np.int64)
        eq = rg == rp
        t_idx = rg[eq] + (row[eq] if rb is not None else 0)
        t_cnt += np.bincount(t_idx, weights=rl[eq], minlength=n_img * c).astype(np.int64)


def _check_chunk_labels(name: str, x: np.ndarray, c: int) -> None:
    """Range check with one pass: viewed as unsigned, negative labels become huge."""
    top = int(x.view(x.dtype.str.replace("i", "u")).max()) if x.dtype.kind == "i" else int(x.max())
    if top >= c:
        _check_labels(name, int(x.min()), int(x.max()), c)


def _dense_chunk(
    gc: np.ndarray,
    pc: np.ndarray,
    start: int,
    size: int,
    c: int,
    ignore: int | None,
    g_cnt: np.ndarray,
    p_cnt: np.ndarray,
    t_cnt: np.ndarray,
    ignored: np.ndarray,
) -> None:
    """Count one chunk voxel by voxel (for noise-like chunks where runs do not pay off)."""
    first_b = start // size
    local_b = None
    if (start + gc.size - 1) // size != first_b:  # the chunk spans several images
        local_b = (np.arange(start, start + gc.size) // size) - first_b
    if ignore is not None:
        keep = gc != ignore
        n_drop = gc.size - int(np.count_nonzero(keep))
        if n_drop:
            if local_b is None:
                ignored[first_b] += n_drop
            else:
                ignored[first_b:] += np.bincount(local_b[~keep], minlength=ignored.size - first_b)
                local_b = local_b[keep]
            gc, pc = gc[keep], pc[keep]
    if gc.size == 0:
        return
    _check_chunk_labels("target", gc, c)
    _check_chunk_labels("pred", pc, c)
    n_local = 1 if local_b is None else int(local_b[-1]) + 1
    lo, hi = first_b * c, (first_b + n_local) * c
    n_codes = n_local * c * c
    if n_codes <= 4 * gc.size:
        # one bincount of the pair code gives the whole [image, target, pred] matrix of the chunk; the
        # code is built in intp, the dtype np.bincount counts in: a narrower code would only be cast
        # back to intp inside bincount, an extra copy that costs more than it saves
        code = gc.astype(np.intp)
        if local_b is not None:
            np.add(code, local_b * c, out=code, casting="unsafe")
        code *= c
        np.add(code, pc, out=code, casting="unsafe")
        m = np.bincount(code, minlength=n_codes).reshape(n_local, c, c)
        g_cnt[lo:hi] += m.sum(2).reshape(-1)
        p_cnt[lo:hi] += m.sum(1).reshape(-1)
        t_cnt[lo:hi] += np.diagonal(m, axis1=1, axis2=2).reshape(-1)
    else:  # many classes: the pair matrix would dwarf the chunk, count the three marginals instead
        g64 = gc.astype(np.int64)
        if local_b is not None:
            g64 += local_b * c
        p64 = pc.astype(np.int64) + (g64 - gc)  # the same image offset
        g_cnt[lo:hi] += np.bincount(g64, minlength=n_local * c)
        p_cnt[lo:hi] += np.bincount(p64, minlength=n_local * c)
        t_cnt[lo:hi] += np.bincount(g64[gc == pc], minlength=n_local * c)


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
        _check_labels("target", lo_hi[0], lo_hi[1], c)
        _check_labels("pred", lo_hi[2], lo_hi[3], c)
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
    p = _to_torch(pred, device)
    g = _to_torch(target, device)
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
        (binary: 1; multilabel: the channel count).
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
    pred = _as_array("pred", pred)
    target = _as_array("target", target)
    ignore = _check_ignore_index(ignore_index)
    check_choice("per_image", per_image, (True, False))
    check_choice("include_background", include_background, (True, False))
    device = _device_of(pred, target)
    if mode != "multiclass" and not include_background:
        raise SegDiceError(
            f"include_background=False: only meaningful in mode='multiclass' (class 0 is background); "
            f"got mode={mode!r}"
        )
    if mode == "multiclass":
        pred, target, num_classes = _prepare_multiclass(pred, target, num_classes, ignore)
        if num_classes is None:
            num_classes = _infer_num_classes(pred, target, ignore)
            num_classes = max(num_classes, 1)
        b, size = target.shape[0], int(np.prod(target.shape[1:]))
        try:
            if device.type == "cpu":
                p_np, g_np = _to_numpy(pred).reshape(b, size), _to_numpy(target).reshape(b, size)
                g_c, p_c, t_c, valid = (
                    torch.from_numpy(a) for a in _counts_numpy(p_np, g_np, num_classes, ignore)
                )
            else:
                g_c, p_c, t_c, valid = _counts_torch(
                    _to_torch(pred).reshape(b, size), _to_torch(target).reshape(b, size), num_classes, ignore
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
