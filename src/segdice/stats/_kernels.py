"""Fused soft statistics: activation and per-class sums in one autograd node with an analytic gradient.

Why a custom ``autograd.Function``: a plain autograd graph of ``softmax -> one_hot -> mul -> sum`` keeps the
probabilities, the one-hot target and the products alive for backward (3-6x the logits' bytes). Here the
forward keeps exactly one logits-sized float tensor (the probabilities) and the backward turns that very
buffer into the gradient in place, so the gradient costs no new allocation.

Three kernels:

* :class:`_IndexStats`: multiclass with an integer label map (softmax or probabilities). ``G`` comes from a
  ``scatter_add`` of ones, ``I`` from gathering the probability of the target class and a ``scatter_add`` by
  class: no one-hot tensor ever exists. It can also return the per-class sums of a loss term at the target
  pixel (the cross-entropy ``-log p_t`` in log-sum-exp form, with label smoothing, or the focal term), so the
  second term of :class:`~segdice.losses.DiceCELoss` and :class:`~segdice.losses.DiceFocalLoss` shares the
  softmax and the backward pass.
* :class:`_SigmoidHardStats`: sigmoid against a hard 0/1 target without ``ignore_index``, the lean binary
  and multilabel path; it can add the BCE with logits or the sigmoid focal term the same way.
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

__all__ = [
    "LossTerm",
    "all_reduce_sum",
    "dense_stats",
    "index_stats",
    "is_hard_target",
    "sigmoid_hard_stats",
    "traced_sigmoid_parts",
    "without_autocast",
]

# Slabs per call in the dense kernel: temporaries stay near 1/_N_SLABS of the logits while Python overhead
# stays a handful of small-op launches per slab.
_N_SLABS = 8
_MIN_SLAB = 1 << 19  # below ~2 MiB per slab the launch overhead outweighs the memory saved
# The sigmoid_hard kernel converts integer targets into one reused slab buffer, so smaller slabs
# mean fewer fresh pages per call; its passes are few, so 1 MiB slabs still cost little in launches.
_MIN_SIGMOID_HARD_SLAB = 1 << 18
# The loss terms (cross-entropy, focal) chain several small ops per element; they run on chunks of this many
# values, so that their few temporaries stay in cache and far below the logits' size.
_CHUNK = 1 << 16
# Values of max(p, 1 - p) multiplied before one log in the sigmoid BCE sums (see _sum_log).
_LOG_GROUP = 64


def _chunk_size(numel: int) -> int:
    """Values per chunk: at least _CHUNK, and at most _N_SLABS chunks per tensor (each op is one launch, and
    on a shared machine one scheduler slice: their count matters as much as the cache)."""
    return max(_CHUNK, -(-numel // _N_SLABS))


class LossTerm(NamedTuple):
    """The loss term a kernel sums per class into its NLL output (``with_nll=True``)."""

    label_smoothing: float = 0.0  # cross-entropy: the target mixed with eps of the uniform distribution
    gamma: float | None = None  # None: cross-entropy; a number: the focal term with this exponent
    alpha: float | None = None  # sigmoid focal: the weight of the positives (multiclass: the caller's)


class _KernelCfg(NamedTuple):
    """The non-tensor arguments of a kernel call, kept on ``ctx`` for the backward."""

    activation: str  # "softmax", "sigmoid" or "none"
    squared: bool
    ignore_index: float | None
    with_nll: bool
    soft: bool = False  # dense kernel only: a float target takes the semimetric intersection
    term: LossTerm = LossTerm()  # index kernel: what NLL sums with with_nll
    pool: bool = False  # return the sums over the batch, [C]


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


def without_autocast(x: Tensor) -> AbstractContextManager:
    """A context in which no autocast is active on ``x``'s device (a no-op when none is)."""
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


def _pool(stats: tuple[Tensor, ...], pool: bool) -> tuple[Tensor, ...]:
    """``pool``: the ``[B, C]`` sums summed over the batch inside the node, ``[C]`` (no extra autograd nodes)."""
    return tuple(v.sum(0) for v in stats) if pool else stats


def _unpool(grads: tuple, b: int, pool: bool) -> tuple:
    """The incoming gradients of pooled ``[C]`` outputs as ``[B, C]`` (broadcast views)."""
    if not pool:
        return grads
    return tuple(None if g is None else g.unsqueeze(0).expand(b, -1) for g in grads)


# --------------------------------------------------------------------------------------------------------
# multiclass, index target
# --------------------------------------------------------------------------------------------------------
#
# With ``with_nll`` the kernel also returns per-class sums of a loss term at the target pixel, from the same
# softmax, its gradient joining the same in-place backward (``d log p_t / dz_c = [c == t] - p_c``):
#   cross-entropy   -log p_t, plus with label smoothing eps:  (1 - eps) (-log p_t) + eps / C sum_c -log p_c
#   focal           -(1 - p_t)^gamma log p_t
# ``log p_t`` is ``z_t - logsumexp(z)`` at every pixel, as in F.cross_entropy (see _log_target_prob).


def _index_nll_live(cfg: _KernelCfg) -> bool:
    return cfg.with_nll and cfg.activation == "softmax"


class _IndexStats(torch.autograd.Function):
    """(I, P, G, NLL, N) per image and class for ``x: [B, C, N]`` and an index map ``t: [B, N]`` (int64)."""

    @staticmethod
    def forward(ctx, x, t, cfg):  # type: ignore[override]
        with without_autocast(x):
            state, stats = _index_forward(x, t, cfg, _acc_dtype(x))
            stats = _pool(stats, cfg.pool)
        ctx.save_for_backward(x, t)
        ctx.set_materialize_grads(False)  # unused outputs give None: their gradient terms are skipped
        ctx.cfg = cfg
        # Kept as an attribute, not saved tensors: backward overwrites p in place (it becomes the gradient).
        ctx.state = state
        ctx.mark_non_differentiable(*_constant_outputs(stats, _index_nll_live(cfg)))
        return stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_i, g_p, _g_g, g_n, _g_count):  # type: ignore[override]
        x, t = ctx.saved_tensors
        cfg = ctx.cfg
        g_i, g_p, g_n = _unpool((g_i, g_p, g_n), x.shape[0], cfg.pool)
        with without_autocast(x):
            state = ctx.state
            ctx.state = None
            if state is None:  # a second backward (retain_graph=True): the first one consumed the buffers
                state, _ = _index_forward(x, t, cfg, _acc_dtype(x))
            # The buffers travel in a dict that the callee empties, so they die as soon as they are used.
            grad = _index_backward(state, g_i, g_p, g_n if _index_nll_live(cfg) else None, cfg)
        return grad.to(x.dtype), None, None


def _constant_outputs(stats, nll_is_live: bool) -> tuple[Tensor, ...]:
    # G and N never depend on the input; NLL only when it was asked for and has a gradient formula here.
    return (stats[2], stats[4]) if nll_is_live else (stats[2], stats[3], stats[4])


def _class_sums(values: Tensor, t_dump: Tensor, c: int) -> Tensor:
    """``[B, C]`` sums of per-pixel ``values [B, N]`` by target class; column C (ignored pixels) is dropped."""
    b = values.shape[0]
    # Rows padded to whole 64-byte cache lines: threads scattering into adjacent rows of a [B, C + 1] table
    # would share lines, and that false sharing made the scatter 2-4x slower on 2 threads than on 1.
    out = torch.zeros(b, -(-(c + 1) // 16) * 16, dtype=values.dtype, device=values.device)
    return out.scatter_add_(1, t_dump, values)[:, :c].contiguous()


def _index_forward(x, t, cfg: _KernelCfg, acc):
    b, c, _ = x.shape
    p = _softmax(x, acc) if cfg.activation == "softmax" else x.to(acc, copy=True)
    if cfg.ignore_index is not None:
        ignored = t == cfg.ignore_index
        t_safe = t.masked_fill(ignored, 0)
        # Ignored pixels are counted into an extra column C that is dropped afterwards.
        t_dump = t.masked_fill(ignored, c)
        p.masked_fill_(ignored.unsqueeze(1), 0.0)
    else:
        ignored, t_safe, t_dump = None, t, t
    pred = torch.linalg.vector_norm(p, 2, dim=2).square() if cfg.squared else p.sum(2)
    pt = torch.gather(p, 1, t_safe.unsqueeze(1)).squeeze(1)
    inter = _class_sums(pt, t_dump, c)
    ones = torch.ones(1, 1, dtype=acc, device=x.device).expand_as(pt)
    count = _class_sums(ones, t_dump, c)
    state = {"p": p, "pt": pt, "log_pt": None, "t_safe": t_safe, "t_dump": t_dump, "ignored": ignored}
    if _index_nll_live(cfg):
        nll = _index_loss_sums(x, state, cfg.term, acc)
    else:
        nll = torch.zeros(b, c, dtype=acc, device=x.device)
    n_valid = count.sum(1, keepdim=True).expand(b, c).contiguous()
    return state, (inter, pred, count, nll, n_valid)


def _index_loss_sums(x: Tensor, state: dict, term: LossTerm, acc) -> Tensor:
    """Per-class sums of the loss term; leaves in ``state`` what the backward needs (p_t, or log p_t for focal)."""
    c = x.shape[1]
    pt, t_safe, t_dump, ignored = state["pt"], state["t_safe"], state["t_dump"], state["ignored"]
    if ignored is not None:
        # p_t = 1 at ignored pixels: log p_t = 0 and no focal weight, so they add nothing (their I and counts
        # went to column C already).
        pt.masked_fill_(ignored, 1.0)
    log_pt = _log_target_prob(x, state["p"], pt, t_safe, ignored, acc)
    if term.gamma is None:
        nll = _class_sums(log_pt, t_dump, c).neg_()
        eps = term.label_smoothing
        if eps > 0:
            nll.mul_(1.0 - eps).add_(_neg_log_prob_sums(x, log_pt, t_safe, ignored, acc), alpha=eps / c)
        return nll  # the backward needs p_t only (the CE gradient is p - onehot)
    # focal: -(1 - p_t)^gamma log p_t, formed in p_t's buffer; the backward keeps log p_t (p_t = exp of it)
    state["log_pt"], state["pt"] = log_pt, None
    m = _focal_weight_(pt.neg_().add_(1.0).clamp_min_(0.0), term.gamma)
    return _class_sums(m.mul_(log_pt), t_dump, c).neg_()


def _focal_weight_(m: Tensor, gamma: float) -> Tensor:
    """``m <- m ** gamma`` in place (``m = 1 - p_t >= 0``), with the common exponents as products."""
    if gamma == 0:
        return m.fill_(1.0)
    if gamma == 2:
        return m.mul_(m)
    return m if gamma == 1 else m.pow_(gamma)


def _log_target_prob(x: Tensor, p: Tensor, pt: Tensor, t_safe: Tensor, ignored, acc) -> Tensor:
    """``log p_t = z_t - logsumexp(z)`` per pixel, ``[B, N]``, exact also where ``p_t`` underflows.

    Where ``p_t`` is a normal float, ``log(p_t)`` is that value to within rounding. A smaller ``p_t`` (a
    logit gap above ~87 in float32) has lost its digits, and those pixels are recomputed from the logits.
    Finding them needs a host read; where that is not wanted (compiling, accelerators) every pixel takes
    the exact form ``z_t - max(z) + log(max_c p_c)``, since ``max_c p_c = 1 / sum_c exp(z_c - max(z))``.
    """
    if torch.compiler.is_compiling() or x.device.type != "cpu":
        zt = torch.gather(x, 1, t_safe.unsqueeze(1)).squeeze(1).to(acc)
        log_pt = zt.sub_(x.amax(1).to(acc)).add_(p.amax(1).log_())
        return log_pt.masked_fill_(ignored, 0.0) if ignored is not None else log_pt
    log_pt = torch.log(pt)
    tiny = torch.finfo(acc).tiny
    if pt.numel() and float(pt.amin()) < tiny:
        bad = torch.nonzero(pt < tiny, as_tuple=True)
        xs = x[bad[0], :, bad[1]].to(acc)  # [K, C]: the logits of the underflowed pixels
        log_pt[bad] = xs.gather(1, t_safe[bad].unsqueeze(1)).squeeze(1) - torch.logsumexp(xs, 1)
    return log_pt


def _neg_log_prob_sums(x: Tensor, log_pt: Tensor, t_safe: Tensor, ignored, acc) -> Tensor:
    """``[B, C]``: ``sum_i -log p_ic`` over the kept pixels, the label-smoothing term.

    ``-log p_ic = lse_i - z_ic`` with ``lse_i = z_t - log p_t``: one gather and a row sum of the logits, no
    logits-sized temporary.
    """
    lse = torch.gather(x, 1, t_safe.unsqueeze(1)).squeeze(1).to(acc).sub_(log_pt)
    if ignored is None:
        return lse.sum(1, keepdim=True) - x.sum(2, dtype=acc)
    lse.masked_fill_(ignored, 0.0)
    kept = (~ignored).to(acc)
    if x.dtype == acc:
        zsum = torch.bmm(x, kept.unsqueeze(2)).squeeze(2)
    else:
        zsum = torch.stack([(x[:, k].to(acc) * kept).sum(1) for k in range(x.shape[1])], 1)
    return lse.sum(1, keepdim=True) - zsum


def _pixel_chunks(b: int, n: int) -> list[slice]:
    """Pixel ranges of about ``_chunk_size`` values of a ``[B, N]`` map: per-pixel temporaries stay small."""
    step = max(1, _chunk_size(b * n) // max(b, 1))
    return [slice(j, min(j + step, n)) for j in range(0, n, step)] or [slice(0, n)]


def _ext_table(table: Tensor | None, like: Tensor) -> Tensor | None:
    """``[B, C + 1]``: the per-class table with a zero column for the dump index C."""
    if table is None:
        return None
    return torch.cat([table.to(like.dtype), table.new_zeros(table.shape[0], 1, dtype=like.dtype)], 1)


def _target_coefficient(state: dict, g_i, g_n, cfg: _KernelCfg) -> Tensor | None:
    """``r [B, N]``: the gradient term at the target channel, per pixel, written into the kept buffer.

    Softmax: ``r = a_t p_t + e_t dL/dlog p_t`` with ``a = dL/dI``, ``e = dL/dNLL`` per class (CE:
    ``dL/dlog p_t = -(1 - eps)``; focal: ``gamma p_t (1 - p_t)^(gamma - 1) log p_t - (1 - p_t)^gamma``).
    Probabilities given: ``r = a_t``. Chunk by chunk, the temporaries in one reused scratch buffer.
    """
    pt, log_pt, t_dump = state.pop("pt"), state.pop("log_pt"), state["t_dump"]
    if g_i is None and g_n is None:
        return None
    out = pt if pt is not None else log_pt
    b, n = out.shape
    a_ext, e_ext = _ext_table(g_i, out), _ext_table(g_n, out)
    focal = log_pt is not None
    chunks = _pixel_chunks(b, n)
    width = chunks[0].stop - chunks[0].start
    scratch = torch.empty(5 if focal else 2, b * width, dtype=out.dtype, device=out.device)
    for ns in chunks:
        w = [row[: b * (ns.stop - ns.start)].view(b, -1) for row in scratch]
        tc = t_dump[:, ns]
        a_t = torch.gather(a_ext, 1, tc, out=w[0]) if a_ext is not None else None
        e_t = torch.gather(e_ext, 1, tc, out=w[1]) if e_ext is not None else None
        oc = out[:, ns]
        if focal:  # oc holds log p_t; it becomes r
            ptc = torch.exp(oc, out=w[2])
            if e_t is None:
                oc.zero_()
            else:
                _focal_dlogp_(oc, ptc, cfg.term.gamma, w[3], w[4]).mul_(e_t)
            if a_t is not None:
                oc.addcmul_(a_t, ptc)
            continue
        if a_t is None:
            oc.zero_()
        elif cfg.activation == "softmax":
            oc.mul_(a_t)
        else:
            oc.copy_(a_t)
        if e_t is not None:
            oc.sub_(e_t, alpha=1.0 - cfg.term.label_smoothing)
    return out


def _focal_dlogp_(log_pt: Tensor, pt: Tensor, gamma: float, m: Tensor, w: Tensor) -> Tensor:
    """``log_pt <-`` d/dlog p_t of ``-(1 - p_t)^gamma log p_t`` = ``gamma p_t m^(gamma - 1) log p_t - m^gamma``.

    ``m = 1 - p_t``; ``m`` and ``w`` are scratch of the same shape. At ``p_t = 1`` the first term is taken at
    its limit 0 (``m^(gamma - 1) log p_t ~ -m^gamma``), so ``0 < gamma < 1`` gives 0 there, not NaN.
    """
    if gamma == 0:
        return log_pt.fill_(-1.0)
    torch.neg(pt, out=m).add_(1.0).clamp_min_(0.0)
    log_pt.mul_(pt).mul_(gamma)
    if gamma == 1:
        return log_pt.sub_(m)
    mg1 = m if gamma == 2 else torch.pow(m, gamma - 1, out=w)
    if gamma < 1:
        mg1.masked_fill_(m == 0, 0.0)
    return log_pt.mul_(mg1).addcmul_(mg1, m, value=-1.0)  # - m^(gamma - 1) m = - m^gamma


def _index_backward(state: dict, g_i, g_p, g_n, cfg: _KernelCfg) -> Tensor:
    t_safe, ignored = state["t_safe"], state["ignored"]
    r = _target_coefficient(state, g_i, g_n, cfg)
    p = state.pop("p")
    c = p.shape[1]
    q = g_p.to(p.dtype) if g_p is not None else None
    if cfg.activation != "softmax":
        grad = _prob_grad_(p, q, ignored, cfg.squared)
    else:
        s = _softmax_shift(p, q, r, cfg.squared)
        # Label smoothing: d/dz_k of eps/C sum_c e_c (lse - z_c) = E p_k - eps/C e_k with E = eps/C sum_c e_c;
        # E p_k joins p_k (h_k - s) through s, the constant -eps/C e_k is the offset of _softmax_grad_.
        offset = None
        if g_n is not None and cfg.term.gamma is None and cfg.term.label_smoothing > 0:
            offset = g_n.to(p.dtype) * (cfg.term.label_smoothing / c)
            s.sub_(offset.sum(1, keepdim=True))
        # r is not kept: after _softmax_grad_, sum_c grad_c = sum_c p_c h_c - s (- sum of the offsets, which
        # E cancels) = -r (softmax rows sum to 1, ignored pixels are 0), so it is recovered from the gradient
        # itself and never coexists with the group buffer.
        has_r = r is not None
        del r
        grad = _softmax_grad_(p, q, s, cfg.squared, offset)
        del s
        if offset is not None and ignored is not None:
            grad.masked_fill_(ignored.unsqueeze(1), 0.0)
        r = grad.sum(1).neg_() if has_r else None
    if r is not None:
        grad.scatter_add_(1, t_safe.unsqueeze(1), r.unsqueeze(1))
    return grad


def _softmax_shift(p: Tensor, q: Tensor | None, r: Tensor | None, squared: bool) -> Tensor:
    """``s = sum_c p_c h_c + r`` per pixel, ``[B, N]``, with ``h_c = q_c`` (or ``2 q_c p_c`` when squared).

    ``r`` may be overwritten (it becomes ``s``).
    """
    if q is not None and not squared:
        if r is None:
            return torch.bmm(q.unsqueeze(1), p).squeeze(1)
        return r.unsqueeze(1).baddbmm_(q.unsqueeze(1), p).squeeze(1)
    s = r if r is not None else torch.zeros_like(p[:, 0])
    if q is not None:
        sq = torch.empty_like(s)
        for k in range(p.shape[1]):
            torch.mul(p[:, k], p[:, k], out=sq)
            s.addcmul_(sq, q[:, k : k + 1], value=2.0)
    return s


def _softmax_grad_(p: Tensor, q: Tensor | None, s: Tensor, squared: bool, offset: Tensor | None = None) -> Tensor:
    """Overwrite the softmax probabilities ``p`` with ``p_c * (h_c - s) - offset_c``: the gradient less its target term.

    The softmax gradient is ``d/dz_c = p_c * (h_c - s) + [c == t] * r``; the caller adds the last term.
    One channel at a time through one ``[B, N]`` buffer (``h_c - s``): a bigger buffer of several channels
    costs more fresh pages than it saves in launches.
    """
    c = p.shape[1]
    buf = torch.neg(s) if q is None else torch.empty_like(s)  # without q, h_c - s = -s for every channel
    for k in range(c):
        pk = p[:, k]
        if q is not None:
            qk = q[:, k : k + 1]
            if squared:
                torch.mul(pk, 2.0 * qk, out=buf).sub_(s)
            else:
                torch.sub(qk, s, out=buf)
        if offset is None:
            pk.mul_(buf)
        else:
            torch.addcmul(offset[:, k : k + 1].neg(), pk, buf, out=pk)
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
    term: LossTerm | None = None,
    pool: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL, N_valid), each ``[B, C]`` (``[C]`` with ``pool``), for ``x [B, C, N]`` and labels ``t [B, N]``.

    With ``with_nll``, NLL holds the per-class sums of ``term`` (the cross-entropy by default) over the pixels
    of each target class.
    """
    cfg = _KernelCfg(activation, squared, ignore_index, with_nll, term=term or LossTerm(), pool=pool)
    return _IndexStats.apply(x, t, cfg)


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
    def forward(ctx, x, t, activation, squared, ignore_index, with_nll, soft, pool):  # type: ignore[override]
        cfg = _KernelCfg(activation, squared, ignore_index, with_nll, soft, pool=pool)
        with without_autocast(x):
            acc = _acc_dtype(x)
            p = _activate(x, activation, acc)
            stats = _pool(_dense_forward(x, t, p, cfg, acc), pool)
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
        g_i, g_p, g_n = _unpool((g_i, g_p, g_n), x.shape[0], cfg.pool)
        with without_autocast(x):
            acc = _acc_dtype(x)
            p = ctx.p
            if p is None:  # second backward through a retained graph
                p = _activate(x, cfg.activation, acc)
                _dense_forward(x, t, p, cfg, acc)
            ctx.p = None
            grad = _dense_backward(x, t, p, cfg, g_i, g_p, g_n, acc)
        return grad.to(x.dtype), None, None, None, None, None, None, None


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
    activation, squared, ignore_index, with_nll, soft = cfg[:5]
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
    activation, squared, ignore_index, _, soft = cfg[:5]
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
    pool: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL, N_valid), each ``[B, C]`` (``[C]`` with ``pool``), for ``x, t: [B, C, N]``."""
    return _DenseStats.apply(x, t, activation, squared, ignore_index, with_nll, soft, pool)


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
#
# With a loss term (BCE or sigmoid focal) the NLL output holds its per-channel sums, and its gradient
# e * dT/dx (e = dL/dNLL) joins the same backward, slab by slab. For a hard target every quantity comes
# from p and x without another exponential: with w = x (1 - 2g) and m = |g - p| = 1 - p_t = sigmoid(w),
#   BCE         = softplus(w) = relu(w) - log max(p, 1 - p)   (max(p, 1 - p) = sigmoid(|x|) lies in [1/2, 1])
#                 = -log p_t, finite for any logit; its sum takes one log per 64 values (_sum_log)
#   focal       = alpha_t m^gamma BCE                dT/dx = (1 - 2g) alpha_t m^gamma (m + gamma (1 - m) BCE)
# (1 - 2g) alpha_t is (1 - alpha) - g, and 1 - 2g without alpha. m and log max(p, 1 - p) carry an absolute
# error of one rounding of 1 (p's), so a term below ~1e-7 (float32) is only known to that absolute accuracy.
# w is NaN wherever x is not finite (0 * inf), so the term's sums also say whether the logits are finite.


def _sigmoid_grad_(p: Tensor, grad: Tensor) -> Tensor:
    """``p <- grad * p * (1 - p)`` in place: the sigmoid derivative from the stored probabilities."""
    return torch.ops.aten.sigmoid_backward.grad_input(grad, p, grad_input=p)


def _float_slabs(t: Tensor, like: Tensor, *, split: bool = False, min_slab: int = _MIN_SIGMOID_HARD_SLAB):
    """Yield ``(slab index, target slab as like's dtype)``.

    A target of ``like``'s dtype comes whole unless ``split`` (then as slab views, never copied). Any other
    dtype is converted slab by slab into one reused buffer: each pass then touches one slab's worth of
    fresh memory, not the whole tensor's (page faults on fresh memory cost more than the conversion).
    """
    b, c, n = like.shape
    if t.dtype == like.dtype and not split:
        yield (slice(0, b), slice(0, n)), t
        return
    slabs = _slabs(b, c, n, min_slab=min_slab)
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


def _chunks(bs: slice, ns: slice, c: int, size: int) -> list[tuple[slice, slice]]:
    """Split the slab ``[bs, :, ns]`` into pieces of at most ``size`` values (absolute indices)."""
    sb, sn = bs.stop - bs.start, ns.stop - ns.start
    if sb * c * sn <= size:
        return [(bs, ns)]
    if c * sn <= size:
        step = size // (c * sn)
        return [(slice(i, min(i + step, bs.stop)), ns) for i in range(bs.start, bs.stop, step)]
    step = max(1, size // c)
    return [(slice(i, i + 1), slice(j, min(j + step, ns.stop))) for i in range(bs.start, bs.stop)
            for j in range(ns.start, ns.stop, step)]  # fmt: skip


class _Scratch:
    """Reused chunk-sized temporaries: views of one buffer, so each pass faults its pages only once."""

    def __init__(self, like: Tensor, n: int = 2) -> None:
        self.size = min(_chunk_size(like.numel()), like.numel())
        self.buf = torch.empty(n, self.size, dtype=like.dtype, device=like.device)

    def views(self, like: Tensor) -> tuple[Tensor, ...]:
        k = like.numel()
        return tuple(row[:k].view(like.shape) for row in self.buf)


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
    """(I, P, G, NLL, N) per image and channel for logits ``x [B, C, N]`` (float32/64), target 0/1."""

    @staticmethod
    def forward(ctx, x, t, check, term, pool):  # type: ignore[override]
        traced = torch.compiler.is_compiling()
        with without_autocast(x):
            p = torch.sigmoid(x)
            if traced:
                stats = _traced_hard_forward(x, t.to(p.dtype), term)
                p = None  # inductor recomputes the sigmoid in the backward's fused loop
            elif x.numel() <= _CHUNK:
                # Small input: the fixed cost of the slab machinery dominates, so the target's float copy is
                # made once and kept for the backward (at most _CHUNK values, far below one logits tensor).
                g = t if t.dtype == p.dtype else t.to(p.dtype)
                stats = _small_hard_forward(x, p, g, check if g is not t else None, term)
                t = g
            else:
                stats = _hard_forward(x, p, t, check, term)
            if term is not None:
                _flag_nonfinite_(stats)
            stats = _pool(stats, pool)
        ctx.save_for_backward(x, t)
        ctx.set_materialize_grads(False)
        ctx.p, ctx.term, ctx.pool = p, term, pool
        ctx.mark_non_differentiable(*_constant_outputs(stats, term is not None))
        return stats

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_i, g_p, _g_g, g_n, _g_count):  # type: ignore[override]
        x, t = ctx.saved_tensors
        g_i, g_p, g_n = _unpool((g_i, g_p, g_n), x.shape[0], ctx.pool)
        with without_autocast(x):
            p = ctx.p if ctx.p is not None else torch.sigmoid(x)  # None: a second backward, or traced
            ctx.p = None
            if torch.compiler.is_compiling():
                return _traced_hard_backward(x, p, t.to(p.dtype), g_i, g_p, g_n, ctx.term), None, None, None, None
            if ctx.term is None or g_n is None:
                grad = _hard_backward(p, t, g_i, g_p)
            else:
                grad = _hard_backward_with_term(x, p, t, g_i, g_p, g_n, ctx.term)
        return grad, None, None, None, None


def _flag_nonfinite_(stats: tuple[Tensor, ...]) -> None:
    """I, P and NLL made NaN in place when the loss-term sums are not finite (G and N count the target).

    The term's sums are NaN exactly when a logit is NaN or infinite (see _sigmoid_term_sums), or inf when
    they overflow: either way the statistics must not look finite. This replaces the caller's separate
    detached pass over the logits.
    """
    flag = stats[3].sum().mul_(0.0)  # 0 if finite, NaN otherwise
    for v in (stats[0], stats[1], stats[3]):
        v.add_(flag)


def _small_hard_forward(x: Tensor, p: Tensor, g: Tensor, check, term: LossTerm | None):
    """The sums of a small input in a handful of whole-tensor ops, ``g`` already of ``p``'s dtype."""
    b, c, n = p.shape
    if check is not None and g.numel():
        lo, hi = torch.aminmax(g)
        check(float(lo), float(hi))
    if term is None:
        nll = torch.zeros(b, c, dtype=p.dtype, device=p.device)
    else:
        nll = _sigmoid_term_sums(x, p, g, term, torch.empty_like(p), torch.empty_like(p))
    count = torch.full((b, c), float(n), dtype=p.dtype, device=p.device)
    return _rowdot(p, g), p.sum(2), g.sum(2), nll, count


# Under torch.compile the same node is traced into inductor's graph, where the chunking, the in-place
# buffer reuse, the bmm dots and the grouped logs above would each stay a separate kernel (and the
# host reads cannot run): there the sums and the gradient are written as whole-tensor elementwise
# expressions and reductions that inductor fuses into one loop each way, recomputing p from x. The
# caller hands an integer target over as float16 (soft._checked_binary_target), and that small copy is
# what the backward reads.
# Inductor on CPU stores an exp, log or sigmoid with more than one user to memory, in a loop of its own,
# unless its loop nest matches the row sums' [B*C, N]; a contiguous elementwise op is flattened to one
# loop over B*C*N and so is not fused into them. The forward therefore reads the logits through a
# row-broadcast zero (``x + 0 * x[..., :1]``, NaN for a whole row with a non-finite first logit, which
# the sums then show anyway), and the one exp(-|x|) that every sum shares stays in their loop.


def traced_sigmoid_parts(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(e, r, p)`` of logits ``x [B, C, N]`` for traced code: ``e = exp(-|x|)``, ``r = sigmoid(|x|) =
    max(p, 1 - p)`` and ``p = sigmoid(x)``, all from the one exp, read through the row-broadcast zero
    described above."""
    xz = x + x.detach()[..., :1] * 0.0
    e = torch.exp(-xz.abs())
    r = torch.reciprocal(e + 1.0)
    return e, r, torch.where(xz >= 0, r, e * r)


def _traced_hard_forward(x: Tensor, g: Tensor, term: LossTerm | None):
    """The five sums of :class:`_SigmoidHardStats` as plain whole-tensor ops, ``g`` 0/1 of ``x``'s dtype.

    With no ``term``, I and P carry the non-finite flag of :func:`_flag_nonfinite_` themselves, from
    ``0 * sum x`` (the caller's detached pass over the logits, here in the loop of the other sums).
    """
    b, c, n = x.shape
    count = torch.full((b, c), float(n), dtype=x.dtype, device=x.device)
    e, r, p = traced_sigmoid_parts(x)
    inter, pred, tsum = (p * g).sum(2), p.sum(2), g.sum(2)
    if term is None:
        flag = x.detach().sum(2).sum().mul(0.0)
        return inter + flag, pred + flag, tsum, torch.zeros_like(tsum), count
    # NaN wherever x is not finite (x (1 - 2g) would keep -inf for g = 1, and the sums would look finite)
    w = torch.addcmul(x, g, x, value=-2.0)
    if term.gamma is None:
        # sum softplus(w) - eps / 2 sum w, softplus(w) = relu(w) - log sigmoid(|x|), the logs as in _sum_log
        eps = term.label_smoothing
        per = torch.relu(w) - (eps / 2) * w if eps > 0 else torch.relu(w)
        return inter, pred, tsum, per.sum(2) - _traced_sum_log_sigmoid_abs(x), count
    per = torch.relu(w) - torch.log(r)  # the BCE, softplus(w), with |w| = |x|
    if term.gamma != 0:
        per = per * torch.where(w >= 0, r, e * r).pow(term.gamma)  # m = 1 - p_t = sigmoid(w)
    if term.alpha is not None:
        per = per * (g * (2.0 * term.alpha - 1.0) + (1.0 - term.alpha))
    return inter, pred, tsum, per.sum(2), count


def _traced_sum_log_sigmoid_abs(x: Tensor) -> Tensor:
    """:func:`_sum_log` of ``sigmoid(|x|) = max(p, 1 - p)``: one log per _LOG_GROUP values (a log costs about
    two sigmoids in inductor's loops), in a loop of its own (the groups make another loop nest)."""
    b, c, n = x.shape
    k = n - n % _LOG_GROUP
    total = torch.sigmoid(x[..., :k].abs()).reshape(b, c, k // _LOG_GROUP, _LOG_GROUP).prod(3).log().sum(2)
    return total + torch.sigmoid(x[..., k:].abs()).log().sum(2) if k < n else total


class TracedBCESums(torch.autograd.Function):
    """Per-row sums ``sum_n softplus(x) - x g`` of ``x, g [B, C, N]``, for code that torch.compile traces.

    The forward takes the logs one per _LOG_GROUP values (:func:`_traced_sum_log_sigmoid_abs`); autograd
    through that product would run a cumulative product backward, so the gradient is written out:
    ``grad * (sigmoid(x) - g)``. ``g`` (a float target, possibly soft or label-smoothed) gets none.
    """

    @staticmethod
    def forward(ctx, x, g):  # type: ignore[override]
        ctx.save_for_backward(x, g)
        return (torch.relu(x) - x * g).sum(2) - _traced_sum_log_sigmoid_abs(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, g = ctx.saved_tensors
        return grad.unsqueeze(2) * (torch.sigmoid(x) - g), None


def _traced_bce(x: Tensor, p: Tensor, g: Tensor) -> Tensor:
    """``BCE = softplus(w) = relu(w) - log max(p, 1 - p)`` with ``w = x - 2 g x``, NaN where ``x`` is not
    finite."""
    w = torch.addcmul(x, g, x, value=-2.0)
    return torch.relu(w) - torch.log(torch.maximum(p, 1.0 - p))


def _traced_hard_backward(x, p, g, g_i, g_p, g_n, term: LossTerm | None) -> Tensor:
    """``p (1 - p) (q + a g) + e dT/dx`` as one whole-tensor expression (see _sigmoid_term_grad)."""
    h = g_i.to(p.dtype).unsqueeze(2) * g if g_i is not None else None  # q + a g
    if g_p is not None:
        q = g_p.to(p.dtype).unsqueeze(2)
        h = q if h is None else h + q
    grad = p * (1.0 - p) * h if h is not None else torch.zeros_like(p)
    if term is None or g_n is None:
        return grad
    d = p - g  # (1 - 2g) m, with m = |d| = 1 - p_t
    if term.gamma is None:
        eps = term.label_smoothing
        dt = d + eps * g - eps / 2 if eps > 0 else d  # p - g', g' = (1 - eps) g + eps / 2
    else:
        gamma = term.gamma
        if gamma == 0:
            dt = d
        else:
            # d m^(gamma - 1) (m + gamma (1 - m) BCE), m^(gamma - 1) -> 0 as m -> 0 for gamma < 1
            m = d.abs()
            dt = d * (m + gamma * (1.0 - m) * _traced_bce(x, p, g))
            if gamma == 2:
                dt = dt * m
            elif gamma != 1:
                dt = dt * torch.where(m > 0, m.pow(gamma - 1), 0.0)
        if term.alpha is not None:
            dt = dt * (g * (2.0 * term.alpha - 1.0) + (1.0 - term.alpha))
    return grad + g_n.to(p.dtype).unsqueeze(2) * dt


def _hard_forward(x: Tensor, p: Tensor, t: Tensor, check, term: LossTerm | None):
    b, c, n = p.shape
    pred = p.sum(2)
    nll = torch.zeros(b, c, dtype=p.dtype, device=p.device)
    if t.dtype == p.dtype and term is None:  # one pass, no copy
        inter, tsum = _rowdot(p, t), t.sum(2)
    else:
        inter = torch.zeros(b, c, dtype=p.dtype, device=p.device)
        tsum = torch.zeros(b, c, dtype=p.dtype, device=p.device)
        scratch = _Scratch(p) if term is not None else None
        extremes = []
        # With a term, slabs as small as its chunks: the integer target's float copy stays 1/8 of the logits.
        min_slab = scratch.size if scratch is not None else _MIN_SIGMOID_HARD_SLAB
        for (bs, ns), g in _float_slabs(t, p, split=term is not None, min_slab=min_slab):
            if check is not None and g.numel():
                extremes.append(torch.aminmax(g))
            pb = p[bs, :, ns]
            tsum[bs].add_(g.sum(2))  # in place on the row view: no index_put copy
            inter[bs].add_(_rowdot(pb, g))
            if scratch is not None:
                for cb, cn in _chunks(bs, ns, c, scratch.size):
                    gb, gn = slice(cb.start - bs.start, cb.stop - bs.start), slice(cn.start - ns.start, cn.stop - ns.start)
                    pc, gc = p[cb, :, cn], g[gb, :, gn]
                    nll[cb].add_(_sigmoid_term_sums(x[cb, :, cn], pc, gc, term, *scratch.views(pc)))
        if extremes:
            check(min(float(lo) for lo, _ in extremes), max(float(hi) for _, hi in extremes))
    count = torch.full((b, c), float(n), dtype=p.dtype, device=p.device)
    return inter, pred, tsum, nll, count


def _max_prob_into(p: Tensor, out: Tensor) -> Tensor:
    """``out <- max(p, 1 - p) = sigmoid(|x|)``, in ``[1/2, 1]``, from the stored ``p = sigmoid(x)``."""
    return torch.sub(p, 0.5, out=out).abs_().add_(0.5)


def _sum_log(a: Tensor) -> Tensor:
    """``[b, C]`` sums over the last dim of ``log a`` for ``a`` in ``[1/2, 1]``, one log per _LOG_GROUP values.

    A log costs as much as twenty multiplications here, and a product of _LOG_GROUP values of ``[1/2, 1]``
    stays a normal float (``>= 2**-64``), so the sum is the log of products, exact to a few roundings of 1
    per group (each ``a`` is itself known to one rounding of 1).
    """
    b, c, n = a.shape
    k = n - n % _LOG_GROUP
    total = a[..., :k].reshape(b, c, k // _LOG_GROUP, _LOG_GROUP).prod(3).log_().sum(2)
    return total.add_(a[..., k:].log().sum(2)) if k < n else total


def _bce_into(x: Tensor, p: Tensor, g: Tensor, w0: Tensor, out: Tensor) -> Tensor:
    """``out <- BCE = softplus(w) = relu(w) - log max(p, 1 - p)`` with ``w = x (1 - 2g)``; uses ``w0``.

    ``w`` is NaN wherever ``x`` is not finite (``0 * inf``), so the BCE is too.
    """
    torch.addcmul(x, g, x, value=-2.0, out=out).clamp_min_(0.0)
    return out.sub_(_max_prob_into(p, w0).log_())


def _sigmoid_term_sums(x: Tensor, p: Tensor, g: Tensor, term: LossTerm, w0: Tensor, w1: Tensor) -> Tensor:
    """``[b, C]`` sums of the BCE (label-smoothed) or of the sigmoid focal term over one slab.

    Every sum runs through ``w = x (1 - 2g)`` (BCE ``= softplus(w)`` for a hard target) with plain
    elementwise ops and sums, so it is NaN whenever ``x`` holds a NaN or an infinity: the caller's
    non-finite flag costs no pass of its own.
    """
    if term.gamma is None:
        # BCE against g' = (1 - eps) g + eps / 2 on a hard g: softplus(w) - eps / 2 w, summed as
        # sum relu(w) - sum log max(p, 1 - p) - eps / 2 sum w
        eps = term.label_smoothing
        w = torch.addcmul(x, g, x, value=-2.0, out=w1)
        w_sum = w.sum(2) if eps > 0 else None
        out = w.clamp_min_(0.0).sum(2).sub_(_sum_log(_max_prob_into(p, w0)))
        return out.sub_(w_sum, alpha=eps / 2) if w_sum is not None else out
    bce = _bce_into(x, p, g, w0, w1)
    if term.gamma != 0:
        m = torch.sub(g, p, out=w0).abs_()  # 1 - p_t
        bce.mul_(_focal_weight_(m, term.gamma))  # an elementwise product keeps a NaN (a dot could skip it)
    if term.alpha is None:
        return bce.sum(2)
    # alpha_t = (1 - alpha) + (2 alpha - 1) g
    return (1.0 - term.alpha) * bce.sum(2) + (2.0 * term.alpha - 1.0) * _rowdot(bce, g)


def _sigmoid_term_grad(x: Tensor, p: Tensor, g: Tensor, term: LossTerm, w0: Tensor, w1: Tensor, w2: Tensor) -> Tensor:
    """``dT/dx`` per element of one chunk, into ``w1`` (``p`` still holds the probabilities)."""
    if term.gamma is None:  # p - g' = p - (1 - eps) g - eps / 2
        out = torch.sub(p, g, alpha=1.0 - term.label_smoothing, out=w1)
        return out.sub_(term.label_smoothing / 2) if term.label_smoothing > 0 else out
    gamma = term.gamma
    if gamma == 0:
        out = torch.sub(p, g, out=w1)  # (1 - 2g) m = p - g
    else:
        # (1 - 2g) m^gamma (m + gamma (1 - m) BCE) = d m^(gamma - 1) (m + gamma (1 - m) BCE), d = p - g, m = |d|
        bce = _bce_into(x, p, g, w0, w1)
        d = torch.sub(p, g, out=w2)
        m = torch.abs(d, out=w0)
        out = torch.add(m, bce.addcmul_(bce, m, value=-1.0), alpha=gamma, out=bce)
        if gamma != 1:
            if gamma != 2:
                lim = m == 0
                m.pow_(gamma - 1)
                if gamma < 1:
                    m.masked_fill_(lim, 0.0)  # d m^(gamma - 1) -> 0 as m -> 0
            out.mul_(m)
        out.mul_(d)
    if term.alpha is None:
        return out
    alpha_t = torch.mul(g, 2.0 * term.alpha - 1.0, out=w0).add_(1.0 - term.alpha)
    return out.mul_(alpha_t)


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


def _hard_backward_with_term(x, p, t, g_i, g_p, g_n, term: LossTerm) -> Tensor:
    """``p (1 - p) (q + a g) + e dT/dx`` slab by slab, into ``p``."""
    a = g_i.to(p.dtype).unsqueeze(2) if g_i is not None else None
    q = g_p.to(p.dtype).unsqueeze(2) if g_p is not None else None
    e = g_n.to(p.dtype).unsqueeze(2)
    scratch = _Scratch(p, 3)
    c = p.shape[1]
    for (bs, ns), g in _float_slabs(t, p, split=True, min_slab=scratch.size):
        for cb, cn in _chunks(bs, ns, c, scratch.size):
            pc = p[cb, :, cn]
            gc = g[cb.start - bs.start : cb.stop - bs.start, :, cn.start - ns.start : cn.stop - ns.start]
            w0, w1, w2 = scratch.views(pc)
            dt = _sigmoid_term_grad(x[cb, :, cn], pc, gc, term, w0, w1, w2)  # e dT/dx is added in one addcmul_
            if a is None and q is None:
                torch.mul(dt, e[cb], out=pc)
                continue
            if a is None:
                h = q[cb].expand_as(pc)
            elif q is None:
                h = torch.mul(gc, a[cb], out=w0)
            else:
                h = torch.addcmul(q[cb], gc, a[cb], out=w0)
            _sigmoid_grad_(pc, h).addcmul_(dt, e[cb])
    return p


def sigmoid_hard_stats(
    x: Tensor, t: Tensor, check=None, term: LossTerm | None = None, pool: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(I, P, G, NLL, N_valid), each ``[B, C]``, for logits ``x [B, C, N]`` and a 0/1 target ``t``.

    ``x`` must be float32 or float64 (the accumulation dtype); ``t`` has ``x``'s shape, either of ``x``'s
    dtype with values known to be 0/1, or any integer dtype. ``check(lo, hi)``, if given, receives the
    target's minimum and maximum (as Python floats) before the forward returns. With ``term``, NLL holds
    the per-channel sums of that loss term (BCE with logits, or the sigmoid focal term), else zeros.
    ``pool``: each output summed over the batch, ``[C]``.
    """
    return _SigmoidHardStats.apply(x, t, check, term, pool)


def is_hard_target(t: Tensor) -> bool:
    """Whether every value of a float target ``t [B, C, N]`` already checked to lie in [0, 1] is 0 or 1.

    On [0, 1], ``sum(t) - sum(t * t) = sum(t (1 - t)) >= 0``, with equality only for 0/1 values; both sums
    are exact for 0/1 values while they stay below 2**24 in float32. A soft value can go unseen only when its
    ``t (1 - t)`` is below the sums' rounding, and then ``sum(p t)`` differs from the semimetric
    ``(sum p + sum t - sum |p - t|) / 2`` by at most that amount.
    """
    if torch.compiler.is_compiling() or t.numel() == 0:
        return False
    with without_autocast(t):  # an outer autocast would run the bmm of _rowdot in bf16/fp16: never equal
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
