"""Soft overlap statistics for the losses: validation, then dispatch to the fused kernels.

Per class ``c`` and reduction group (image or batch)::

    I = sum(p * g)      P = sum(p)      G = sum(g)        (squared=True: sum(p**2), sum(g**2))

The autograd kernels live in :mod:`segdice.stats._kernels`; this module checks the inputs, picks a kernel
and pools the result.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from segdice._checks import SegDiceError, check_distributed, check_ignore_index, check_mode, describe
from segdice.stats._kernels import (
    LossTerm,
    TracedBCESums,
    all_reduce_sum,
    dense_stats,
    index_stats,
    is_hard_target,
    sigmoid_hard_stats,
    traced_sigmoid_parts,
)
from segdice.stats._small import (
    small_dense_softmax_stats,
    small_index_stats,
    small_sigmoid_stats,
    takes_small_path,
)

__all__ = ["SoftStats", "check_soft_inputs", "pool_soft_stats", "soft_stats"]


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
        Per-class sums of a loss term (``with_nll=True`` only, zeros otherwise): multiclass, the sum of
        ``-log p_target`` over the pixels of each target class; binary/multilabel, the sum of the
        binary cross-entropy with logits over each channel. ``label_smoothing`` and ``focal_gamma`` of
        :func:`soft_stats` change the term; ``None`` where the kernel chosen for the target does not
        compute the term asked for (see :func:`soft_stats`), and the caller computes it separately.
    n_valid
        Number of elements counted (pixels not equal to ``ignore_index``), per image and channel.

    A NaN or infinite value anywhere in the input makes ``tp``, ``pred`` and ``nll`` NaN (a saturated
    activation would otherwise hide it); ``target`` and ``n_valid`` count the target and stay exact.
    """

    tp: Tensor
    pred: Tensor
    target: Tensor
    nll: Tensor | None
    n_valid: Tensor


def _is_compiling() -> bool:
    return bool(torch.compiler.is_compiling())


def _check_range(name: str, x: Tensor, lo_ok: float, hi_ok: float, ignore_index, expected: str) -> None:
    """Raise if values of ``x`` (ignoring ``ignore_index``) fall outside ``[lo_ok, hi_ok]``."""
    if _is_compiling() or x.numel() == 0:
        return  # data-dependent checks would break the graph; eager runs check them
    lo, hi = torch.aminmax(x.detach())
    _raise_out_of_range(name, x, lo, hi, lo_ok, hi_ok, ignore_index, expected)


def _raise_out_of_range(
    name: str, x: Tensor, lo: float | Tensor, hi: float | Tensor, lo_ok: float, hi_ok: float, ignore_index,
    expected: str,
) -> None:  # fmt: skip
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


@torch.library.custom_op("segdice::checked_binary_target", mutates_args=())
def _checked_binary_target(target: Tensor, mode: str) -> Tensor:
    """An integer binary/multilabel target as float16 (two bytes a value), checked to be 0/1.

    What a compiled loss calls: an opaque op runs eagerly inside the compiled graph, so the range check
    (data-dependent, a host read) still runs, and the copy is made by the eager conversion (inductor's
    own loop converts int64 value by value on x86 without AVX-512, several times slower). float16 keeps
    every integer outside [0, 1] outside it (large ones become inf), so the check reads the small copy,
    and the backward reads that copy instead of a float32 one saved from the forward.
    """
    half = target.to(torch.float16)
    if half.numel():
        lo, hi = torch.aminmax(half)
        _check_binary_range(target, mode, float(lo), float(hi))
    return half


@_checked_binary_target.register_fake
def _(target: Tensor, mode: str) -> Tensor:
    return torch.empty_like(target, dtype=torch.float16)


@torch.library.custom_op("segdice::checked_unit_target", mutates_args=())
def _checked_unit_target(target: Tensor, mode: str) -> Tensor:
    """A float binary/multilabel target checked to lie in [0, 1] (NaN fails): a zero-dim zero, which the
    compiled statistics add to their sums so that the check is neither dropped nor moved."""
    if target.numel():
        lo, hi = torch.aminmax(target)
        _check_binary_range(target, mode, float(lo), float(hi))
    return torch.zeros((), dtype=torch.float32, device=target.device)


@_checked_unit_target.register_fake
def _(target: Tensor, mode: str) -> Tensor:
    return torch.zeros((), dtype=torch.float32, device=target.device)


def _check_soft_labels(target: Tensor, c: int, ignore_index) -> None:
    expected = f"class indices in [0, {c - 1}] (input has C={c} channels)"
    _check_range("target", target, 0, c - 1, ignore_index, expected)


def _distribution_tolerance(target: Tensor) -> float:
    """How far a dense multiclass target's channel sums may stray from 1 (its dtype's rounding over C)."""
    eps = torch.finfo(target.dtype).eps if target.is_floating_point() else 0.0
    return max(1e-3, 4 * target.shape[1] * eps)


def _check_distribution(target: Tensor, ignore_index) -> None:
    """Raise unless every kept pixel of a dense multiclass target sums to 1 over its channels.

    A softmax sums to 1, so a target that does not (all zeros, all ones) has no meaning for a multiclass
    loss; a pixel with a channel equal to ``ignore_index`` is left out.
    """
    if _is_compiling():
        return
    t = target.detach()
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    total = t.sum(1, dtype=acc)
    if ignore_index is not None:
        kept = ~(t == ignore_index).any(1)
        total = total[kept]
    if total.numel() == 0:
        return
    tol = _distribution_tolerance(t)
    lo, hi = torch.aminmax(total)
    if float(lo) < 1.0 - tol or float(hi) > 1.0 + tol:
        raise SegDiceError(
            f"target: got {describe(target, values=False)} whose channel sums per pixel lie in "
            f"[{float(lo):.6g}, {float(hi):.6g}]; expected a one-hot or soft target that sums to 1 over the "
            "C channels in mode 'multiclass' (a class distribution per pixel; use mode='multilabel' for "
            "independent channels)"
        )


Kernel = Literal["index", "dense", "sigmoid_hard"]
Activation = Literal["softmax", "sigmoid", "none"]


class _Plan(NamedTuple):
    """What :func:`soft_stats` runs: the reshaped tensors, the kernel and the activation it applies."""

    x: Tensor  # the input as [B, C, N]
    t: Tensor  # index kernel: int64 labels [B, N]; otherwise the target as [B, C, N]
    kernel: Kernel
    activation: Activation
    soft: bool  # a float target: the intersection takes the semimetric form


def _prepare(
    input: Tensor,
    target: Tensor,
    mode: str,
    from_logits: bool,
    ignore_index,
    allow_sigmoid_hard: bool = False,
) -> _Plan:
    """Validate and reshape the inputs and choose the kernel.

    ``allow_sigmoid_hard``: the caller may use the ``"sigmoid_hard"`` kernel (plain sums, no ignore_index);
    it is chosen for logits of the accumulation dtype against an integer target (range-checked inside the
    kernel, on its float copy) or a float target whose values are all 0/1.
    """
    mode = check_soft_inputs(input, target, mode, from_logits=from_logits, ignore_index=ignore_index)
    if mode == "multiclass":
        return _plan_multiclass(input, target, from_logits, ignore_index)
    return _plan_sigmoid(input, target, mode, from_logits, ignore_index, allow_sigmoid_hard)


def check_soft_inputs(
    input: Tensor, target: Tensor, mode: str, *, from_logits: bool = True, ignore_index=None
) -> str:
    """The checks every mode shares: types, dimensions, size, device, ``ignore_index``, probability range.

    :func:`soft_stats` runs them; a loss that reads ``input`` or ``target`` before calling it runs them first.

    Returns
    -------
    str
        The validated mode.

    Raises
    ------
    SegDiceError
        For a non-tensor, an input with fewer than 3 dimensions or no elements, a meta tensor, two devices,
        a bad ``ignore_index``, probabilities outside ``[0, 1]`` with ``from_logits=False``, or a dense
        multiclass target outside ``[0, 1]`` or not summing to 1 over the channels.

    Examples
    --------
    >>> check_soft_inputs(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), "multiclass")
    'multiclass'
    """
    mode = _check_tensors(input, target, mode, ignore_index)
    _check_values(input, target, mode, from_logits, ignore_index)
    return mode


def _check_tensors(input: Tensor, target: Tensor, mode: str, ignore_index) -> str:
    """The checks of :func:`check_soft_inputs` that read no values: types, dimensions, size, devices."""
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
    if input.numel() == 0:
        raise SegDiceError(
            f"input: got {describe(input, values=False)} with no elements; expected at least one image, one "
            "channel and one voxel (skip empty batches before the loss)"
        )
    device = input.device
    if device.type == "meta" or target.device != device:  # one comparison on the usual path
        for name, x in (("input", input), ("target", target)):
            if x.device.type == "meta":
                raise SegDiceError(
                    f"{name}: got {describe(x, values=False)} on the meta device; expected a tensor with data "
                    "(the loss checks values, which a meta tensor does not have)"
                )
        raise SegDiceError(f"target is on {target.device} but input is on {input.device}; expected one device")
    if ignore_index is not None:
        check_ignore_index(ignore_index)
    return mode


def _check_values(input: Tensor, target: Tensor, mode: str, from_logits: bool, ignore_index) -> None:
    """The value checks of :func:`check_soft_inputs`: a dense multiclass target, probabilities."""
    if mode == "multiclass" and tuple(target.shape) == tuple(input.shape) and input.ndim >= 3:
        _check_range("target", target, 0.0, 1.0, ignore_index, "one-hot or soft targets in [0, 1]")
        _check_distribution(target, ignore_index)
    if not from_logits:
        _check_range(
            "input",
            input,
            0.0,
            1.0,
            None,
            "probabilities in [0, 1] with from_logits=False (logits need from_logits=True)",
        )


def _small_dense_target(target: Tensor, acc: torch.dtype) -> tuple[Tensor, bool]:
    """A dense multiclass target of a small input as ``acc`` floats, checked as :func:`_check_values` does
    (values in [0, 1], channel sums 1), and whether it is soft (a value strictly between 0 and 1).

    The extremes come back in one read; on a failure the regular checks raise with their message.
    """
    g = target if target.dtype == acc else target.to(acc)
    t_acc = torch.float64 if target.dtype == torch.float64 else torch.float32
    total = g.sum(1) if g.dtype == t_acc else target.sum(1, dtype=t_acc)
    lo, hi = torch.aminmax(g)
    s_lo, s_hi = torch.aminmax(total)
    if target.is_floating_point():
        # On [0, 1], sum(g) = sum(g * g) only for 0/1 values; both exact for them on a small input.
        flat = g.reshape(-1)
        sq = torch.linalg.vecdot(flat, flat) - total.sum().to(acc)
        lo, hi, s_lo, s_hi, sq = torch.stack((lo, hi, s_lo.to(acc), s_hi.to(acc), sq)).tolist()
    else:
        lo, hi, s_lo, s_hi = torch.stack((lo, hi, s_lo.to(acc), s_hi.to(acc))).tolist()
        sq = 0.0
    tol = _distribution_tolerance(target)
    if not (lo >= 0.0 and hi <= 1.0 and s_lo >= 1.0 - tol and s_hi <= 1.0 + tol):
        _check_range("target", target, 0.0, 1.0, None, "one-hot or soft targets in [0, 1]")
        _check_distribution(target, None)
    return g, sq != 0.0


def _plan_multiclass(input: Tensor, target: Tensor, from_logits: bool, ignore_index) -> _Plan:
    """Multiclass: an integer index map takes the index kernel, a target of the input's shape the dense one."""
    b, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    x = input.reshape(b, c, -1)
    int_target = not target.is_floating_point()
    activation: Activation = "softmax" if from_logits else "none"
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
        return _Plan(x, t, "index", activation, False)
    if tuple(target.shape) == tuple(input.shape):  # range and distribution checked by check_soft_inputs
        return _Plan(x, target.reshape(b, c, -1), "dense", activation, not int_target)
    raise SegDiceError(
        f"target: got {describe(target, values=False)} for input of shape {tuple(input.shape)} in mode "
        f"'multiclass'; expected an integer index map {list(index_shapes[0])} or {list(index_shapes[1])}, "
        f"or a float one-hot/soft target {list(input.shape)}"
    )


def _sigmoid_target(input: Tensor, target: Tensor, mode: str) -> Tensor:
    """Binary and multilabel: the target with the input's shape (a binary ``[B, *spatial]`` gains its channel)."""
    b, c = input.shape[:2]
    if mode == "binary" and c != 1:
        raise SegDiceError(
            f"input: got {describe(input, values=False)} in mode 'binary'; expected one channel [B, 1, *spatial] "
            "(use mode='multiclass' or 'multilabel' for several channels)"
        )
    if target.shape == input.shape:
        return target
    spatial = tuple(input.shape[2:])
    if mode == "binary" and tuple(target.shape) == (b, *spatial):
        return target.unsqueeze(1)
    expected = f"{list(input.shape)}" + (f" or {[b, *spatial]}" if mode == "binary" else "")
    raise SegDiceError(
        f"target: got {describe(target, values=False)} for input of shape {tuple(input.shape)} in mode "
        f"{mode!r}; expected {expected}"
    )


def _plan_sigmoid(
    input: Tensor, target: Tensor, mode: str, from_logits: bool, ignore_index, allow_sigmoid_hard: bool
) -> _Plan:
    """Binary and multilabel: the dense kernel, or the sigmoid_hard kernel for hard targets when allowed."""
    b, c = input.shape[:2]
    x = input.reshape(b, c, -1)
    int_target = not target.is_floating_point()
    target = _sigmoid_target(input, target, mode)
    t = target.reshape(b, c, -1)
    sigmoid_hard = allow_sigmoid_hard and _sigmoid_hard_logits(x, from_logits)
    if sigmoid_hard and int_target:
        return _Plan(x, t, "sigmoid_hard", "sigmoid", False)
    _check_range("target", target, 0.0, 1.0, ignore_index, f"values in [0, 1] in mode {mode!r}")
    if sigmoid_hard and t.dtype == x.dtype and is_hard_target(t):
        return _Plan(x, t, "sigmoid_hard", "sigmoid", False)
    return _Plan(x, t, "dense", "sigmoid" if from_logits else "none", not int_target)


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
    label_smoothing: float = 0.0,
    focal_gamma: float | None = None,
    focal_alpha: float | None = None,
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
        Also return the per-class loss sums (``nll``) the compound losses use, computed from the same
        activation and differentiated in the same backward: the cross-entropy by default (multiclass:
        ``-log p_t = logsumexp(z) - z_t`` per pixel, exact for any logit gap; binary/multilabel: the BCE
        with logits). Fused for integer multiclass labels (softmax) and for binary/multilabel targets;
        ``nll`` is ``None`` for float multiclass targets, and for ``label_smoothing``/``focal_gamma`` with
        a soft target, ``ignore_index``, ``squared``, half-precision logits or, under ``torch.compile``, a
        float binary/multilabel target (whether it is 0/1 is not known while tracing). Small inputs (at most
        65536 logits, from logits, no ``ignore_index``, not compiled) take plain autograd ops that fuse
        more: the term for one-hot/soft multiclass targets (``-sum_i g_ic log p_ic`` per class, focal
        ``-sum_i g_ic (1 - p_ic)^gamma log p_ic``) and for half-precision binary/multilabel logits, and
        label smoothing with a soft binary/multilabel target; such a target still leaves the focal term
        to the caller (``None``).
    label_smoothing
        With ``with_nll``: the cross-entropy against the target mixed with ``label_smoothing`` of the
        uniform distribution, as :func:`torch.nn.functional.cross_entropy` defines it (multiclass, per
        class ``c``: ``(1 - eps) sum_{t_i = c} -log p_ic + eps / C sum_i -log p_ic``); binary/multilabel:
        the BCE against ``g (1 - eps) + eps / 2``.
    focal_gamma
        With ``with_nll``: ``nll`` holds the focal term instead of the cross-entropy. Multiclass:
        ``-(1 - p_t)^gamma log p_t`` summed per target class; binary/multilabel (torchvision's sigmoid
        focal loss): ``BCE (1 - p_t)^gamma`` with ``p_t = p g + (1 - p)(1 - g)``, summed per channel.
    focal_alpha
        Binary/multilabel focal only: weigh each element by ``alpha g + (1 - alpha)(1 - g)``.

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
    check_distributed(distributed, per_image)
    term = LossTerm(float(label_smoothing), focal_gamma, focal_alpha) if with_nll else None
    # Pooled over the batch inside the kernel (no autograd nodes for it); across ranks by pool_soft_stats.
    pool = not per_image and not distributed
    if from_logits and ignore_index is None and isinstance(input, Tensor) and takes_small_path(input, term):
        out = _small_stats(input, target, mode, squared, with_nll, term, pool)
        if out is not None:
            stats = SoftStats(*out)
            return pool_soft_stats(stats, distributed=True) if distributed else stats
    run = _kernel_stats
    if _is_compiling() and not _traceable(input, target, mode, from_logits, squared, ignore_index):
        if (term is None or term.gamma is None) and _traceable_float_target(
            input, target, mode, from_logits, squared, ignore_index
        ):
            stats = SoftStats(*_traced_float_target_stats(input, target, mode, term, pool))
            return pool_soft_stats(stats, distributed=True) if distributed else stats
        run = _eager_kernel_stats
    stats = run(input, target, mode, from_logits, squared, ignore_index, with_nll, term, pool)
    if distributed:
        stats = pool_soft_stats(stats, distributed=True)
    return stats


def _kernel_stats(
    input: Tensor, target: Tensor, mode: str, from_logits: bool, squared: bool, ignore_index, with_nll: bool,
    term: LossTerm | None, pool: bool,
) -> SoftStats:
    """:func:`soft_stats` by the fused kernels (and the small index path with ``ignore_index``), before any
    pooling over ranks."""
    allow_sigmoid_hard = _allows_sigmoid_hard(squared, ignore_index)
    x, t, kernel, activation, soft = _prepare(
        input, target, mode, from_logits, ignore_index, allow_sigmoid_hard
    )
    fused = True
    small = kernel == "index" and takes_small_path(x, term)  # ignore_index or probabilities
    if kernel == "sigmoid_hard":
        check = None if t.is_floating_point() else partial(_check_binary_range, target, mode)
        if check is not None and _is_compiling():
            t, check = _checked_binary_target(target, mode).reshape(t.shape), None
        out = sigmoid_hard_stats(x, t, check, term, pool)  # small inputs took _small_stats
    elif kernel == "index":
        fused = activation == "softmax"
        try:
            out = (small_index_stats if small else index_stats)(
                x, t, activation, squared=bool(squared), ignore_index=ignore_index, with_nll=with_nll and fused,
                term=term, pool=pool,
            )  # fmt: skip
        except RuntimeError:
            _check_soft_labels(target, x.shape[1], ignore_index)  # a label out of range: say which
            raise
    else:
        # The dense kernel fuses the plain BCE with logits only.
        fused = activation == "sigmoid" and term in (None, LossTerm())
        out = dense_stats(
            x, t, activation, squared=bool(squared), ignore_index=ignore_index, with_nll=with_nll and fused,
            soft=soft, pool=pool,
        )  # fmt: skip
    stats = SoftStats(*out)
    if not small and (kernel != "sigmoid_hard" or (term is None and not _is_compiling())):
        # The sigmoid_hard kernel with a loss term, or traced, flags non-finite logits itself; the small
        # paths fold the flag into their sums.
        stats = _poison_if_nonfinite(stats, input, with_nll)
    if with_nll and not fused:
        stats = stats._replace(nll=None)
    return stats


# Under torch.compile the sigmoid kernel with an integer target is traced (as whole-tensor expressions,
# see _kernels._traced_hard_forward), and so is a float binary/multilabel target without a focal term
# (_traced_float_target_stats); the rest runs eagerly as a whole. The index kernel keeps its buffers in a dict the tracer cannot follow,
# so it ran eagerly between compiled pieces anyway, at a peak of 2.2-2.5x the logits; a float binary target
# traced through the dense kernel peaked at 3x. Run eagerly as a whole, both keep their 1.25-1.5x and their
# data-dependent choices (range checks, the 0/1 test of a float mask), at the same speed or better.
_eager_kernel_stats = torch.compiler.disable(_kernel_stats)


def _traceable(input, target, mode: str, from_logits: bool, squared: bool, ignore_index) -> bool:
    """Whether the plan is the sigmoid kernel with an integer target (what :func:`_plan_sigmoid` chooses for
    binary/multilabel logits of the accumulation dtype, no ``ignore_index``, not ``squared``)."""
    return _sigmoid_plan_traceable(input, target, mode, from_logits, squared, ignore_index) and (
        not target.is_floating_point()
    )


def _traceable_float_target(input, target, mode: str, from_logits: bool, squared: bool, ignore_index) -> bool:
    """Whether a compiled call without a focal term may take :func:`_traced_float_target_stats`: the plan of
    :func:`_traceable` with a float target instead of an integer one. (With a focal term the eager kernels
    stay faster: the soft focal term through autograd costs more than the graph break.)"""
    return _sigmoid_plan_traceable(input, target, mode, from_logits, squared, ignore_index) and (
        target.is_floating_point()
    )


def _sigmoid_plan_traceable(input, target, mode: str, from_logits: bool, squared: bool, ignore_index) -> bool:
    """Binary/multilabel logits of the accumulation dtype against a tensor target, no ``ignore_index``, not
    ``squared``: the conditions both traced sigmoid plans share."""
    return (
        check_mode(mode) != "multiclass" and _allows_sigmoid_hard(squared, ignore_index)
        and isinstance(input, Tensor) and _sigmoid_hard_logits(input, from_logits)
        and isinstance(target, Tensor)
    )  # fmt: skip


def _traced_float_target_stats(input: Tensor, target: Tensor, mode: str, term: LossTerm | None, pool: bool):
    """Compiled, a float binary/multilabel target, ``term`` None or the (label-smoothed) BCE: the statistics
    as plain whole-tensor ops that inductor fuses, differentiated by autograd.

    Whether the target is 0/1 is not known while tracing, so this is the form for a soft target, which
    equals the hard one on 0/1 values: the semimetric intersection ``(P + G - sum |p - g|) / 2`` and the
    BCE ``softplus(x) - x g'`` (``g'`` label-smoothed, the gradient written out by
    :class:`~segdice.stats._kernels.TracedBCESums`). The sums share one ``exp(-|x|)`` as the traced sigmoid
    kernel's do (see :mod:`segdice.stats._kernels`); the [0, 1] check runs in an opaque op.
    """
    mode = _check_tensors(input, target, mode, None)
    b, c = input.shape[:2]
    x = input.reshape(b, c, -1)
    t = _sigmoid_target(input, target, mode).reshape(b, c, -1)
    g = t.to(x.dtype) + _checked_unit_target(target, mode).to(x.dtype)
    n = x.shape[2]
    _, _, p = traced_sigmoid_parts(x)
    pred, tsum = p.sum(2), g.sum(2)
    inter = 0.5 * (pred + tsum - (p - g).abs().sum(2))
    count = torch.full((b, c), float(n), dtype=x.dtype, device=x.device)
    if term is None:
        nll = torch.zeros_like(pred)
        flag = x.detach().sum(2).sum().mul(0.0)
    else:
        eps = term.label_smoothing
        nll = TracedBCESums.apply(x, g * (1.0 - eps) + eps / 2 if eps > 0 else g)
        flag = nll.sum().mul(0.0)  # NaN exactly when a logit is not finite (softplus(x) - x g)
        nll = nll + flag
    inter, pred = inter + flag, pred + flag
    stats = (inter, pred, tsum, nll, count)
    return tuple(v.sum(0) for v in stats) if pool else stats


def _allows_sigmoid_hard(squared: bool, ignore_index) -> bool:
    """The sigmoid_hard kernel forms plain sums: no ``squared`` form, no ``ignore_index``."""
    return not squared and ignore_index is None


def _sigmoid_hard_logits(x: Tensor, from_logits: bool) -> bool:
    """The sigmoid_hard kernel applies the sigmoid to logits of the accumulation dtype (float32/float64)."""
    return from_logits and x.dtype in (torch.float32, torch.float64)


def _small_stats(
    input: Tensor, target: Tensor, mode: str, squared: bool, with_nll: bool, term: LossTerm | None, pool: bool
) -> tuple | None:
    """The statistics of a small input from logits without ``ignore_index`` by the plain-autograd paths of
    :mod:`segdice.stats._small`, validated as :func:`_prepare` does; ``None`` for the cases they leave to
    the regular path (which then validates and refuses bad input with its own messages)."""
    mode = _check_tensors(input, target, mode, None)
    c = input.shape[1]
    if mode != "multiclass":
        if squared:
            return None
        check = partial(_check_binary_range, target, mode)
        return small_sigmoid_stats(input, _sigmoid_target(input, target, mode), term, pool, check)
    if c < 2:
        return None
    if target.shape != input.shape:
        b = input.shape[0]
        spatial = input.shape[2:]
        if target.is_floating_point() or tuple(target.shape) not in ((b, *spatial), (b, 1, *spatial)):
            return None
        t = target.reshape(b, -1)
        if t.dtype != torch.int64:
            t = t.to(torch.int64)
        if t.device.type != "cpu":
            _check_soft_labels(target, c, None)  # an out-of-range gather is a fatal device assert there
        try:
            return small_index_stats(
                input, t, "softmax", squared=bool(squared), ignore_index=None,
                with_nll=with_nll, term=term, pool=pool,
            )  # fmt: skip
        except RuntimeError:
            _check_soft_labels(target, c, None)  # a label out of range: say which
            raise
    acc = torch.float64 if input.dtype == torch.float64 else torch.float32
    g, soft = _small_dense_target(target, acc)
    return small_dense_softmax_stats(
        input, g, squared=bool(squared), soft=soft, with_nll=with_nll, term=term, pool=pool
    )


def _poison_if_nonfinite(stats: SoftStats, input: Tensor, with_nll: bool) -> SoftStats:
    """The sums of the input (``tp``, ``pred`` and, with ``with_nll``, ``nll``) become NaN when ``input``
    holds a NaN or an infinity, anywhere.

    A sigmoid or softmax saturates an infinite logit into a finite probability, and a NaN can vanish in a
    0/0 rule downstream; either way a diverged network would get a finite, even perfect, loss. One detached
    reduction (no temporary, no host sync, no gradient) finds them; the flag is added to the sums. ``target``
    and ``n_valid`` count the target only and stay exact: every loss reads ``tp``, ``pred`` or ``nll``.
    """
    # 0 * total: 0 for a finite total, NaN for a NaN or infinite one (an overflowing sum counts as infinite).
    flag = input.detach().sum(dtype=stats.tp.dtype).mul_(0.0)
    nll = stats.nll + flag if with_nll and stats.nll is not None else stats.nll
    return stats._replace(tp=stats.tp + flag, pred=stats.pred + flag, nll=nll)


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
    fields = tuple(v for v in stats if v is not None)
    stacked = torch.stack(fields).sum(1)  # [5, C] (4 without nll)
    if distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise SegDiceError(
                "distributed: got True but torch.distributed has no initialised process group; expected "
                "torch.distributed.init_process_group(...) before the loss is called"
            )
        stacked = all_reduce_sum(stacked)
    pooled = list(stacked.unbind(0))
    if stats.nll is None:
        pooled.insert(3, None)
    return SoftStats(*pooled)
