"""Fused soft statistics: activation and per-class sums in one autograd node with an analytic gradient.

Why a custom ``autograd.Function``: a plain autograd graph of ``softmax -> one_hot -> mul -> sum`` keeps the
probabilities, the one-hot target and the products alive for backward (3-6x the logits' bytes). Here the
forward keeps exactly one logits-sized float tensor (the probabilities) and the backward turns that very
buffer into the gradient in place, so the gradient costs no new allocation.

Two kernels:

* :class:`_IndexStats`: multiclass with an integer label map (softmax or probabilities). ``G`` comes from a
  ``scatter_add`` of ones, ``I`` from gathering the probability of the target class and a ``scatter_add`` by
  class: no one-hot tensor ever exists. It can also return the per-class sums of ``-log p_target``, so the
  cross-entropy of :class:`~segdice.losses.DiceCELoss` shares the softmax and the backward pass.
* :class:`_DenseStats`: a target of the input's shape (binary/multilabel masks, one-hot or soft multiclass
  targets), processed in slabs so that temporaries stay a fraction of the logits.

Every sum accumulates in float32 (float64 for float64 input, which gradcheck uses), whatever the input dtype.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["all_reduce_sum", "dense_stats", "index_stats", "is_hard_target", "sigmoid_hard_stats"]

# Slabs per call in the dense kernel: temporaries stay near 1/_N_SLABS of the logits while Python overhead
# stays a handful of small-op launches per slab.
_N_SLABS = 8
_MIN_SLAB = 1 << 19  # below ~2 MiB per slab the launch overhead outweighs the memory saved
# The sigmoid_hard kernel converts integer targets into one reused slab buffer, so smaller slabs
# mean fewer fresh pages per call; its passes are few, so 1 MiB slabs still cost little in launches.
_MIN_SIGMOID_HARD_SLAB = 1 << 18


class _KernelCfg(NamedTuple):
    """The non-tensor arguments of a kernel call, kept on ``ctx`` for the backward."""

    activation: str  # "softmax", "sigmoid" or "none"
    squared: bool
    ignore_index: float | None
    with_nll: bool
    soft: bool = False  # dense kernel only: a float target takes the semimetric intersection


def _acc_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _softmax(x: Tensor, acc: torch.dtype) -> Tensor:
    """Probabilities over dim 1 in a fresh ``acc`` buffer (upcast before the exponentials)."""
    return torch.softmax(x, 1, dtype=acc)


def _activate(x: Tensor, activation: str, acc: torch.dtype) -> Tensor:
    if activation == "softmax":
        return _softmax(x, acc)
    if activation == "sigmoid":
        if x.dtype == acc:
            return torch.sigmoid(x)
        return x.to(acc, copy=True).sigmoid_()
    return x.to(acc, copy=True)


def _no_autocast(x: Tensor) -> AbstractContextManager:
    # Inside the kernels every op must run in the accumulation dtype; an outer autocast would otherwise
    # run the bmm of the backward in bf16/fp16. Entering a disabled autocast costs tens of microseconds,
    # so it is skipped when no autocast is active (always entered while compiling, where it is free).
    if torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
        return torch.autocast(device_type=x.device.type, enabled=False)
    return nullcontext()


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``sum(a * b, dim=2)`` for ``[B, C, N]`` tensors without a product temporary.

    A batched ``[1, N] @ [N, 1]`` product with the right-hand side a transposed row: BLAS dot speed and
    accuracy. (``einsum`` and a ``[N, 1]``-shaped right-hand side can fall onto a path 20-50x slower.)
    """
    bb, c, n = a.shape
    return torch.bmm(a.reshape(bb * c, 1, n), b.reshape(bb * c, 1, n).transpose(1, 2)).view(bb, c)


# --------------------------------------------------------------------------------------------------------
# multiclass, index target
# --------------------------------------------------------------------------------------------------------


class _IndexStats(torch.autograd.Function):
    """(I, P, G, NLL, N) per image and class for ``x: [B, C, N]`` and an index map ``t: [B, N]`` (int64)."""

    @staticmethod
    def forward(ctx, x, t, activation, squared, ignore_index, with_nll):  # type: ignore[override]
        cfg = _KernelCfg(activation, squared, ignore_index, with_nll)
        with _no_autocast(x):
            acc = _acc_dtype(x)
            p, pt, t_safe, t_dump, ignored, stats = _index_forward(x, t, cfg, acc)
        ctx.save_for_backward(x, t)
        ctx.set_materialize_grads(False)  # unused outputs give None: their gradient terms are skipped
        ctx.cfg = cfg
        # Kept as attributes, not saved tensors: backward overwrites p in place (it becomes the gradient).
        ctx.p, ctx.pt, ctx.t_safe, ctx.t_dump, ctx.ignored = p, pt, t_safe, t_dump, ignored
        ctx.mark_non_differentiable(*_constant_outputs(stats, with_nll and activation == "softmax"))
        return stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_i, g_p, _g_g, g_n, _g_count):  # type: ignore[override]
        x, t = ctx.saved_tensors
        cfg = ctx.cfg
        activation, squared, _, with_nll, _ = cfg
        with _no_autocast(x):
            acc = _acc_dtype(x)
            if ctx.p is None:  # a second backward (retain_graph=True): the first one consumed the buffer
                p, pt, t_safe, t_dump, ignored, _ = _index_forward(x, t, cfg, acc)
                state = {"p": p, "pt": pt}
                del p, pt
            else:
                state = {"p": ctx.p, "pt": ctx.pt}
                t_safe, t_dump, ignored = ctx.t_safe, ctx.t_dump, ctx.ignored
                ctx.p = ctx.pt = None
            if not (with_nll and activation == "softmax"):
                g_n = None
            # The buffers travel in a dict that the callee empties, so they die as soon as they are used.
            grad = _index_backward(state, t_safe, t_dump, ignored, g_i, g_p, g_n, activation, squared)
        return grad.to(x.dtype), None, None, None, None, None


def _constant_outputs(stats, nll_is_live: bool) -> tuple[Tensor, ...]:
    # G and N never depend on the input; NLL only when it was asked for and has a gradient formula here.
    return (stats[2], stats[4]) if nll_is_live else (stats[2], stats[3], stats[4])


def _index_forward(x: Tensor, t: Tensor, cfg: _KernelCfg, acc: torch.dtype):
    activation, squared, ignore_index, with_nll, _ = cfg
    b, c, _ = x.shape
    p = _softmax(x, acc) if activation == "softmax" else x.to(acc, copy=True)
    if ignore_index is not None:
        ignored = t == ignore_index
        t_safe = t.masked_fill(ignored, 0)
        # Ignored pixels are counted into an extra column C that is dropped afterwards.
        t_dump = t.masked_fill(ignored, c)
        p.masked_fill_(ignored.unsqueeze(1), 0.0)
    else:
        ignored, t_safe, t_dump = None, t, t
    pred = torch.linalg.vector_norm(p, 2, dim=2).square() if squared else p.sum(2)
    pt = torch.gather(p, 1, t_safe.unsqueeze(1)).squeeze(1)
    inter = torch.zeros(b, c + 1, dtype=acc, device=x.device).scatter_add_(1, t_dump, pt)[:, :c]
    ones = torch.ones(1, 1, dtype=acc, device=x.device).expand_as(pt)
    count = torch.zeros(b, c + 1, dtype=acc, device=x.device).scatter_add_(1, t_dump, ones)[:, :c]
    if with_nll and activation == "softmax":
        # -log p_t from the gathered probability; clamped at the smallest normal float so that a pixel whose
        # p_t underflows (a logit gap above ~87) costs 87.3 instead of inf. The gradient is exact regardless.
        log_pt = pt.clamp_min(torch.finfo(acc).tiny).log_()  # ignored pixels land in the dropped column C
        nll = torch.zeros(b, c + 1, dtype=acc, device=x.device).scatter_add_(1, t_dump, log_pt)[:, :c].neg()
    else:
        nll = torch.zeros(b, c, dtype=acc, device=x.device)
    n_valid = count.sum(1, keepdim=True).expand(b, c).contiguous()
    stats = (inter.contiguous(), pred, count.contiguous(), nll.contiguous(), n_valid)
    return p, pt, t_safe, t_dump, ignored, stats


def _gather_table(table: Tensor | None, index: Tensor, like: Tensor) -> Tensor | None:
    """``table[b, index[b, n]]`` with a zero column appended for the dump index C."""
    if table is None:
        return None
    ext = torch.cat([table.to(like.dtype), table.new_zeros(table.shape[0], 1, dtype=like.dtype)], 1)
    return torch.gather(ext, 1, index)


def _index_backward(state, t_safe, t_dump, ignored, g_i, g_p, g_n, activation, squared):
    p = state.pop("p")
    pt = state.pop("pt")
    q = g_p.to(p.dtype) if g_p is not None else None
    # r: the per-pixel term at the target channel, from I (= sum of p_t) and NLL (= -sum of log p_t).
    r = _gather_table(g_i, t_dump, p)
    if r is not None and activation == "softmax":
        r.mul_(pt)
    del pt
    if g_n is not None and activation == "softmax":
        e_t = _gather_table(g_n, t_dump, p)
        r = e_t.neg_() if r is None else r.sub_(e_t)
        del e_t
    if activation == "softmax":
        s = _softmax_shift(p, q, r, squared)
        # r is not kept: after _softmax_grad_, sum_c p_c (h_c - s) = sum_c p_c h_c - s = -r (softmax rows
        # sum to 1, ignored pixels are 0), so it is recovered from the gradient itself and never coexists
        # with the group buffer.
        has_r = r is not None
        del r
        grad = _softmax_grad_(p, q, s, squared)
        del s
        r = grad.sum(1).neg_() if has_r else None
    else:
        grad = _prob_grad_(p, q, ignored, squared)
    if r is not None:
        grad.scatter_add_(1, t_safe.unsqueeze(1), r.unsqueeze(1))
    return grad


def _softmax_shift(p: Tensor, q: Tensor | None, r: Tensor | None, squared: bool) -> Tensor:
    """``s = sum_c p_c h_c + r`` per pixel, ``[B, N]``, with ``h_c = q_c`` (or ``2 q_c p_c`` when squared)."""
    if q is not None and not squared:
        s = torch.bmm(q.unsqueeze(1), p) if r is None else torch.baddbmm(r.unsqueeze(1), q.unsqueeze(1), p)
        return s.squeeze(1)
    s = r.clone() if r is not None else torch.zeros_like(p[:, 0])
    if q is not None:
        sq = torch.empty_like(s)
        for k in range(p.shape[1]):
            torch.mul(p[:, k], p[:, k], out=sq)
            s.addcmul_(sq, q[:, k : k + 1], value=2.0)
    return s


def _softmax_grad_(p: Tensor, q: Tensor | None, s: Tensor, squared: bool) -> Tensor:
    """Overwrite the softmax probabilities ``p`` with ``p_c * (h_c - s)``: the gradient less its target term.

    The softmax gradient is ``d/dz_c = p_c * (h_c - s) + [c == t] * r``; the caller adds the last term.
    Two channel groups (C >= 4): each op is a parallel region, and their count dominates when other
    processes contend for the cores; the buffer stays at most half the logits.
    """
    c = p.shape[1]
    gsize = -(-c // 2) if c >= 4 else 1
    s3 = s.unsqueeze(1)
    buf = torch.empty(p.shape[0], gsize, p.shape[2], dtype=p.dtype, device=p.device)
    for k0 in range(0, c, gsize):
        pg = p[:, k0 : k0 + gsize]
        bg = buf[:, : pg.shape[1]]
        qg = q[:, k0 : k0 + gsize].unsqueeze(2) if q is not None else None
        if qg is None:
            torch.neg(s3.expand_as(bg), out=bg)
        elif squared:
            torch.mul(pg, 2.0 * qg, out=bg).sub_(s3)
        else:
            torch.sub(qg, s3, out=bg)
        pg.mul_(bg)
    return p


def _prob_grad_(p: Tensor, q: Tensor | None, ignored: Tensor | None, squared: bool) -> Tensor:
    """Probabilities given: overwrite ``p`` with ``d/dp_c = h_c``, zero at ignored pixels (no target term)."""
    if q is None:
        p.zero_()
    elif squared:
        p.mul_(2.0 * q.unsqueeze(2))
    else:
        p.copy_(q.unsqueeze(2).expand_as(p))
    if ignored is not None:
        p.masked_fill_(ignored.unsqueeze(1), 0.0)
    return p


def index_stats(
    x: Tensor,
    t: Tensor,
    activation: str,
    *,
    squared: bool = False,
    ignore_index: int | None = None,
    with_nll: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL, N_valid), each ``[B, C]``, for logits/probabilities ``x [B, C, N]`` and labels ``t [B, N]``."""
    return _IndexStats.apply(x, t, activation, squared, ignore_index, with_nll)


# --------------------------------------------------------------------------------------------------------
# dense target (same shape as the input)
# --------------------------------------------------------------------------------------------------------


def _slabs(b: int, c: int, n: int, min_slab: int = _MIN_SLAB) -> list[tuple[slice, slice]]:
    """Split [B, C, N] into at most _N_SLABS pieces of at least min_slab elements: batch first, then voxels."""
    n_slabs = max(1, min(_N_SLABS, (b * c * n) // min_slab))
    if n_slabs == 1:
        return [(slice(0, b), slice(0, n))]
    if b >= n_slabs:
        step = math.ceil(b / n_slabs)
        return [(slice(i, min(i + step, b)), slice(0, n)) for i in range(0, b, step)]
    per_image = math.ceil(n_slabs / b)
    step = max(1, math.ceil(n / per_image))
    return [(slice(i, i + 1), slice(j, min(j + step, n))) for i in range(b) for j in range(0, n, step)]


class _DenseStats(torch.autograd.Function):
    """(I, P, G, NLL, N) per image and channel for ``x, t: [B, C, N]``; soft targets use the semimetric I."""

    @staticmethod
    def forward(ctx, x, t, activation, squared, ignore_index, with_nll, soft):  # type: ignore[override]
        cfg = _KernelCfg(activation, squared, ignore_index, with_nll, soft)
        with _no_autocast(x):
            acc = _acc_dtype(x)
            p = _activate(x, activation, acc)
            stats = _dense_forward(x, t, p, cfg, acc)
        ctx.save_for_backward(x, t)
        ctx.set_materialize_grads(False)
        ctx.cfg = cfg
        ctx.p = p
        ctx.mark_non_differentiable(*_constant_outputs(stats, with_nll and activation == "sigmoid"))
        return stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_i, g_p, _g_g, g_n, _g_count):  # type: ignore[override]
        x, t = ctx.saved_tensors
        cfg = ctx.cfg
        with _no_autocast(x):
            acc = _acc_dtype(x)
            p = ctx.p
            if p is None:  # second backward through a retained graph
                p = _activate(x, cfg.activation, acc)
                _dense_forward(x, t, p, cfg, acc)
            ctx.p = None
            grad = _dense_backward(x, t, p, cfg, g_i, g_p, g_n, acc)
        return grad.to(x.dtype), None, None, None, None, None, None


def _target_slab(t: Tensor, bs: slice, ns: slice, ignore_index, acc) -> tuple[Tensor, Tensor | None, bool]:
    """(g, valid, owned): the slab as ``acc`` floats; ``owned`` says g is a fresh copy we may overwrite."""
    raw = t[bs, :, ns]
    g = raw.to(acc)
    owned = g.data_ptr() != raw.data_ptr()
    if ignore_index is None:
        return g, None, owned
    valid = raw != ignore_index
    return g.masked_fill(~valid, 0.0), valid, True  # out of place: g may be the caller's own target


def _dense_forward(x: Tensor, t: Tensor, p: Tensor, cfg: _KernelCfg, acc: torch.dtype):
    activation, squared, ignore_index, with_nll, soft = cfg
    b, c, n = x.shape
    inter, pred, tsum, nll, count = (torch.zeros(b, c, dtype=acc, device=x.device) for _ in range(5))
    for bs, ns in _slabs(b, c, n):
        g, valid, owned = _target_slab(t, bs, ns, ignore_index, acc)
        pb = p[bs, :, ns]
        if valid is not None:
            pb.masked_fill_(~valid, 0.0)
            count[bs] += valid.sum(2, dtype=acc)
        else:
            count[bs] += pb.shape[2]
        if with_nll and activation == "sigmoid":
            # BCE with logits, per element: softplus(z) - g z (g is 0 at ignored elements); one temporary.
            z = x[bs, :, ns]
            bce = torch.nn.functional.softplus(z.to(acc))
            bce.addcmul_(z, g, value=-1.0)
            if valid is not None:
                bce.masked_fill_(~valid, 0.0)
            nll[bs] += bce.sum(2)
            del z, bce
        if squared:
            pred[bs] += torch.linalg.vecdot(pb, pb)
            tsum[bs] += torch.linalg.vecdot(g, g)
            inter[bs] += torch.linalg.vecdot(pb, g)
        else:
            p1, g1 = pb.sum(2), g.sum(2)
            pred[bs] += p1
            tsum[bs] += g1
            if soft:
                # TP = (sum p + sum g - sum |p - g|) / 2: minimised at p = g for soft targets.
                inter[bs] += 0.5 * (p1 + g1 - (pb - g).abs_().sum(2))
            elif owned:
                inter[bs] += g.mul_(pb).sum(2)  # our own copy of an integer target: no temporary
            else:
                inter[bs] += torch.linalg.vecdot(pb, g)
        del g, valid, pb  # before the next slab's copy is made, so two slabs never coexist
    return inter, pred, tsum, nll, count


def _dense_backward(
    x: Tensor, t: Tensor, p: Tensor, cfg: _KernelCfg, g_i: Tensor | None, g_p: Tensor | None, g_n: Tensor | None,
    acc: torch.dtype,
) -> Tensor:  # fmt: skip
    activation, squared, ignore_index, _, soft = cfg
    b, c, n = x.shape
    a = g_i.to(acc).unsqueeze(2) if g_i is not None else None
    q = g_p.to(acc).unsqueeze(2) if g_p is not None else None
    e = g_n.to(acc).unsqueeze(2) if (g_n is not None and activation == "sigmoid") else None
    for bs, ns in _slabs(b, c, n):
        g, valid, owned = _target_slab(t, bs, ns, ignore_index, acc)
        pb = p[bs, :, ns]
        # h = dL/dp for this slab. Ignored elements have p = 0 and g = 0.
        ab = a[bs] if a is not None else None
        qb = q[bs] if q is not None else None
        bce = (pb - g).mul_(e[bs]) if e is not None else None
        if ab is not None and soft and not squared:
            # d TP / dp = (1 - sign(p - g)) / 2
            h = (pb - g).sign_().mul_(-0.5 * ab).add_(0.5 * ab)
        elif ab is not None and qb is not None and not squared:
            # h = q + a g in one op, into g itself when g is our own copy (integer targets)
            h = torch.addcmul(qb, g, ab, out=g) if owned else torch.addcmul(qb, g, ab)
            qb = None
        elif ab is not None:
            h = g.mul_(ab) if owned else g * ab
        else:
            h = torch.zeros_like(pb)
        if qb is not None:
            if squared:
                h.addcmul_(pb, qb.expand_as(pb), value=2.0)
            else:
                h.add_(qb)
        if activation == "sigmoid":
            pb.addcmul_(pb, pb, value=-1.0).mul_(h)  # p (1 - p) h, in place
            if bce is not None:
                pb.add_(bce)
        elif activation == "softmax":
            s = torch.linalg.vecdot(pb, h, dim=1).unsqueeze(1)
            pb.mul_(h.sub_(s))
        else:
            if valid is not None:
                h.masked_fill_(~valid, 0.0)
            pb.copy_(h)
        del g, h, pb, bce, valid  # before the next slab's copy is made, so two slabs never coexist
    return p


def dense_stats(
    x: Tensor,
    t: Tensor,
    activation: str,
    *,
    squared: bool = False,
    ignore_index: float | None = None,
    with_nll: bool = False,
    soft: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL, N_valid), each ``[B, C]``, for ``x, t: [B, C, N]``."""
    return _DenseStats.apply(x, t, activation, squared, ignore_index, with_nll, soft)


# --------------------------------------------------------------------------------------------------------
# sigmoid against a hard 0/1 target (binary/multilabel Dice): the sigmoid_hard kernel
# --------------------------------------------------------------------------------------------------------
#
# Per element the gradient is sigma'(x) (q + a g) with q = dL/dP, a = dL/dI per (image, channel). The dense
# kernel above builds that from per-slab temporaries; here the work is a few fused passes:
#   forward   p = sigmoid(x) (the one kept buffer), P = sum p, G = sum g, I = sum(p * g) by _rowdot (bmm)
#   backward  p <- q p (1 - p) (aten's sigmoid_backward, in place), then p <- p + (a / q) p g (addcmul_)
# A float target costs no temporary at all; an integer target is converted slab by slab (a mixed-dtype
# op would convert the whole tensor in a hidden temporary), so the peak stays ~1.5x the logits.
# The backward's scalar form needs a / q to be one number: the usual case (per_image=False, one channel).
# Otherwise (per-image or per-channel coefficients, q = 0, accelerators, torch.compile) it forms
# h = q + a g slab by slab and applies sigmoid_backward(h, p): one more temporary, no host sync.


def _sigmoid_grad_(p: Tensor, grad: Tensor) -> Tensor:
    """``p <- grad * p * (1 - p)`` in place: the sigmoid derivative from the stored probabilities."""
    return torch.ops.aten.sigmoid_backward.grad_input(grad, p, grad_input=p)


def _float_slabs(t: Tensor, like: Tensor, *, split: bool = False):
    """Yield ``(slab index, target slab as like's dtype)``.

    A target of ``like``'s dtype comes whole unless ``split`` (then as slab views, never copied). Any other
    dtype is converted slab by slab into one reused buffer: each pass then touches one slab's worth of
    fresh memory, not the whole tensor's (page faults on fresh memory cost more than the conversion).
    """
    b, c, n = like.shape
    if t.dtype == like.dtype and not split:
        yield (slice(0, b), slice(0, n)), t
        return
    slabs = _slabs(b, c, n, min_slab=_MIN_SIGMOID_HARD_SLAB)
    if t.dtype == like.dtype:
        for bs, ns in slabs:
            yield (bs, ns), t[bs, :, ns]
        return
    sizes = [(bs.stop - bs.start, ns.stop - ns.start) for bs, ns in slabs]
    buf = torch.empty(max(sb * sn for sb, sn in sizes) * c, dtype=like.dtype, device=like.device)
    for (bs, ns), (sb, sn) in zip(slabs, sizes, strict=True):
        g = buf[: sb * c * sn].view(sb, c, sn)
        g.copy_(t[bs, :, ns])
        yield (bs, ns), g


def _uniform_ratio(a: Tensor, q: Tensor) -> float | None:
    """``a / q`` as one Python number when it is the same for every (image, channel), else None."""
    if a.device.type != "cpu" or torch.compiler.is_compiling():
        return None  # a host read would stall an accelerator's queue or break the compiled graph
    qs, as_ = q.reshape(-1).tolist(), a.reshape(-1).tolist()
    if not qs or any(v == 0.0 for v in qs):
        return None
    ratios = {av / qv for av, qv in zip(as_, qs, strict=True)}
    if len(ratios) != 1:
        return None
    r = ratios.pop()
    return r if math.isfinite(r) else None


class _SigmoidHardStats(torch.autograd.Function):
    """(I, P, G, NLL = 0, N) per image and channel for logits ``x [B, C, N]`` (float32/64), target 0/1."""

    @staticmethod
    def forward(ctx, x, t, check):  # type: ignore[override]
        with _no_autocast(x):
            p = torch.sigmoid(x)
            stats = _hard_forward(p, t, check)
        ctx.save_for_backward(x, t)
        ctx.set_materialize_grads(False)
        ctx.p = p
        ctx.mark_non_differentiable(stats[2], stats[3], stats[4])
        return stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_i, g_p, _g_g, _g_n, _g_count):  # type: ignore[override]
        x, t = ctx.saved_tensors
        with _no_autocast(x):
            p = ctx.p if ctx.p is not None else torch.sigmoid(x)  # None: a second backward
            ctx.p = None
            grad = _hard_backward(p, t, g_i, g_p)
        return grad, None, None


def _hard_forward(p: Tensor, t: Tensor, check):
    b, c, n = p.shape
    pred = p.sum(2)
    if t.dtype == p.dtype:  # one pass, no copy
        inter, tsum = _rowdot(p, t), t.sum(2)
    else:
        inter = torch.zeros(b, c, dtype=p.dtype, device=p.device)
        tsum = torch.zeros(b, c, dtype=p.dtype, device=p.device)
        extremes = []
        for (bs, ns), g in _float_slabs(t, p):
            if check is not None and g.numel():
                extremes.append(torch.aminmax(g))
            tsum[bs] += g.sum(2)
            inter[bs] += _rowdot(p[bs, :, ns], g)
        if extremes:
            check(min(float(lo) for lo, _ in extremes), max(float(hi) for _, hi in extremes))
    nll = torch.zeros(b, c, dtype=p.dtype, device=p.device)
    count = torch.full((b, c), float(n), dtype=p.dtype, device=p.device)
    return inter, pred, tsum, nll, count


def _hard_backward(p: Tensor, t: Tensor, g_i: Tensor | None, g_p: Tensor | None) -> Tensor:
    a = g_i.to(p.dtype).unsqueeze(2) if g_i is not None else None
    q = g_p.to(p.dtype).unsqueeze(2) if g_p is not None else None
    if a is None:
        return _sigmoid_grad_(p, q.expand_as(p)) if q is not None else p.zero_()
    ratio = _uniform_ratio(a, q) if q is not None else None
    if ratio is not None:
        # q p (1 - p) + (a / q) [q p (1 - p)] g = p (1 - p) (q + a g)
        _sigmoid_grad_(p, q.expand_as(p))
        for (bs, ns), g in _float_slabs(t, p):
            pb = p[bs, :, ns]
            pb.addcmul_(pb, g, value=ratio)
            del g
        return p
    for (bs, ns), g in _float_slabs(t, p, split=True):
        pb = p[bs, :, ns]
        # h = q + a g, into the conversion buffer when there is one, else a slab-sized temporary
        h = g * a[bs] if t.dtype == p.dtype else g.mul_(a[bs])
        if q is not None:
            h.add_(q[bs])
        _sigmoid_grad_(pb, h)
        del g, h
    return p


def sigmoid_hard_stats(x: Tensor, t: Tensor, check=None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL = 0, N_valid), each ``[B, C]``, for logits ``x [B, C, N]`` and a 0/1 target ``t``.

    ``x`` must be float32 or float64 (the accumulation dtype); ``t`` has ``x``'s shape, either of ``x``'s
    dtype with values known to be 0/1, or any integer dtype. ``check(lo, hi)``, if given, receives the
    target's minimum and maximum (as Python floats) before the forward returns.
    """
    return _SigmoidHardStats.apply(x, t, check)


def is_hard_target(t: Tensor) -> bool:
    """Whether every value of a float target ``t [B, C, N]`` already checked to lie in [0, 1] is 0 or 1.

    On [0, 1], ``sum(t) - sum(t * t) = sum(t (1 - t)) >= 0``, with equality only for 0/1 values; both sums
    are exact for 0/1 values while they stay below 2**24 in float32. A soft value can go unseen only when its
    ``t (1 - t)`` is below the sums' rounding, and then ``sum(p t)`` differs from the semimetric
    ``(sum p + sum t - sum |p - t|) / 2`` by at most that amount.
    """
    if torch.compiler.is_compiling() or t.numel() == 0:
        return False
    tsum = t.sum(2)
    if t.dtype == torch.float32 and float(tsum.max()) >= 2.0**24:
        return False
    return torch.equal(tsum, _rowdot(t, t))


# --------------------------------------------------------------------------------------------------------
# torch.distributed
# --------------------------------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the backward sums the incoming gradients over ranks too.

    Every rank computes the same global loss from the same pooled statistics, so each incoming gradient is
    the same and the backward sum gives ``world_size x`` the partial derivative: after DDP averages the
    parameter gradients over ranks, they equal those of the global-batch loss in one process.
    """

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        import torch.distributed as dist

        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        import torch.distributed as dist

        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def all_reduce_sum(x: Tensor) -> Tensor:
    """Differentiable sum of ``x`` over all ranks of the default process group."""
    return _AllReduceSum.apply(x)
