"""Small inputs: the statistics of the fused kernels in a few ordinary autograd ops.

On a small input (at most :data:`SMALL_INPUT` values) the fixed cost of a Python ``autograd.Function`` (its
``apply``, its Python backward, the slab and chunk machinery) is most of the call, while the memory it saves
is a few hundred KiB. There the same sums are formed by plain torch ops whose backward runs in the C++
autograd engine: the same formulas, so the same values and gradients to rounding (the tests pin both to
the regular kernels' float64 references).

Each op costs a few microseconds forward and again backward whatever its size, so the functions here count
ops: sums over the original dimensions (no reshape nodes), the pooled sums taken directly, one range check
read back from the device, and the non-finite flag (a NaN or infinite logit must give NaN sums, which a
saturating activation would hide) folded in by an ``add`` with ``alpha=0`` (``0 * NaN`` is NaN).

Only the cases whose derivative autograd gets right everywhere come here: a focal exponent in ``(0, 1)``
has an infinite derivative of ``(1 - p_t)**gamma`` at ``p_t = 1``, whose limit the regular kernels take.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from segdice.stats._kernels import LossTerm, without_autocast

__all__ = [
    "SMALL_INPUT",
    "small_dense_softmax_stats",
    "small_index_stats",
    "small_sigmoid_stats",
    "takes_small_path",
]

SMALL_INPUT = 1 << 16  # values of the logits at most; above it the fused kernels win on time or memory

Stats = tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor]


def takes_small_path(x: Tensor, term: LossTerm | None) -> bool:
    """Whether the logits ``x`` (and the loss term, if any) take the plain-autograd path."""
    if x.numel() > SMALL_INPUT or torch.compiler.is_compiling():
        return False
    return term is None or term.gamma is None or term.gamma == 0 or term.gamma >= 1


def _acc(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _focal_power(m: Tensor, gamma: float) -> Tensor:
    return m * m if gamma == 2 else (m if gamma == 1 else m.pow(gamma))


def _poisoned(flag: Tensor, *sums: Tensor) -> tuple[Tensor, ...]:
    """``sums`` plus ``0 * flag``: unchanged for a finite flag, NaN for a NaN or infinite one; one op each."""
    return tuple(torch.add(v, flag, alpha=0.0) for v in sums)


def _dims(x: Tensor, pool: bool) -> tuple[int, ...]:
    """The dimensions a per-(image,) channel sum runs over: spatial, and the batch when pooled."""
    spatial = tuple(range(2, x.ndim))
    return (0, *spatial) if pool else spatial


def small_sigmoid_stats(
    x: Tensor, t: Tensor, term: LossTerm | None, pool: bool, check: Callable[[float, float], None]
) -> Stats:
    """What the sigmoid kernels return for a small input, the non-finite flag applied.

    ``x [B, C, *spatial]`` logits of any float dtype (summed in float32, float64 for float64), ``t`` a
    target of the same shape: bool, integer or float. ``check(lo, hi)`` raises the caller's error for
    values outside ``[0, 1]`` (read back once, from the target's extremes). A float target with a value
    strictly between 0 and 1 is soft: the intersection takes the semimetric form
    ``(P + G - sum |p - g|) / 2`` and a loss term other than the plain BCE is left to the caller
    (``nll`` is ``None``). With ``term``: the BCE (label-smoothed) or the sigmoid focal term, per channel.
    """
    acc = _acc(x)
    with without_autocast(x):
        xa = x if x.dtype == acc else x.to(acc)
        g = t if t.dtype == acc else t.to(acc)
        soft = False
        if t.dtype != torch.bool:
            lo, hi = torch.aminmax(g)
            lo, hi = float(lo), float(hi)
            if not (lo >= 0.0 and hi <= 1.0):  # NaN fails too
                check(lo, hi)
        dims = _dims(x, pool)
        p = torch.sigmoid(xa)
        pred, tsum = p.sum(dims), g.sum(dims)
        if t.is_floating_point():
            # On [0, 1], sum(g) - sum(g * g) = sum(g (1 - g)) is 0 only for 0/1 values; both sums are exact
            # for them (a small input stays far below 2**24).
            soft = float(tsum.sum()) != float(torch.linalg.vecdot(g.reshape(-1), g.reshape(-1)))
        inter = 0.5 * (pred + tsum - (p - g).abs().sum(dims)) if soft else (p * g).sum(dims)
        n = math.prod(x.shape[2:]) * (x.shape[0] if pool else 1)
        count = torch.full(pred.shape, float(n), dtype=acc, device=x.device)
        if term is None:
            inter, pred = _poisoned(xa.detach().sum(), inter, pred)
            return inter, pred, tsum, torch.zeros_like(count), count
        if term.gamma is None:
            eps = term.label_smoothing
            gs = g * (1.0 - eps) + eps / 2 if eps > 0 else g
            nll = F.binary_cross_entropy_with_logits(xa, gs, reduction="none").sum(dims)
        elif soft:
            inter, pred = _poisoned(xa.detach().sum(), inter, pred)
            return inter, pred, tsum, None, count
        else:
            per = F.binary_cross_entropy_with_logits(xa, g, reduction="none")
            if term.gamma != 0:
                per = per * _focal_power((g - p).abs(), term.gamma)  # (1 - p_t)^gamma, 1 - p_t = |g - p|
            if term.alpha is not None:
                per = per * (g * (2.0 * term.alpha - 1.0) + (1.0 - term.alpha))
            nll = per.sum(dims)
        # The term's sum is NaN or inf exactly when a logit is (BCE is softplus(z) - g z): it is the flag.
        flag = nll.detach().sum() if nll.numel() > 1 else nll.detach().reshape(())
        if nll.numel() > 1:
            inter, pred, nll = _poisoned(flag, inter, pred, nll)
        else:
            inter, pred = _poisoned(flag, inter, pred)
        return inter, pred, tsum, nll, count


def small_index_stats(
    x: Tensor, t: Tensor, activation: str, *, squared: bool, ignore_index, with_nll: bool, term: LossTerm | None,
    pool: bool,
) -> Stats:  # fmt: skip
    """What :func:`~segdice.stats._kernels.index_stats` returns for a small input, the non-finite flag applied.

    ``x [B, C, N]`` (any float dtype, summed in float32/float64), ``t [B, N]`` int64 labels. Ignored pixels
    are counted into an extra column C that is dropped, and their probabilities are zeroed. Pooled, the
    per-class sums are scattered straight into ``[C]``.
    """
    b, c, n = x.shape
    acc = _acc(x)
    with without_autocast(x):
        xa = x if x.dtype == acc else x.to(acc)
        nll_live = with_nll and activation == "softmax"
        logp = torch.log_softmax(xa, 1) if nll_live else None
        # with the log-probabilities, the probabilities are their exp: one softmax pass
        softmax = (
            logp.exp() if logp is not None else torch.softmax(xa, 1) if activation == "softmax" else None
        )
        p = xa if softmax is None else softmax
        if ignore_index is not None:
            ignored = t == ignore_index
            valid = ~ignored
            t_safe, t_dump = t.masked_fill(ignored, 0), t.masked_fill(ignored, c)
            p = p * valid.unsqueeze(1).to(acc)
        else:
            valid, t_safe, t_dump = None, t, t
        if pool:
            slots, flat = torch.zeros(c + 1, dtype=acc, device=x.device), t_dump.reshape(-1)

            def by_class(values: Tensor) -> Tensor:
                return slots.scatter_add(0, flat, values.reshape(-1))[:c]

            count = torch.bincount(flat, minlength=c + 1)[:c].to(acc)
            if valid is None:
                n_valid = torch.full((c,), float(b * n), dtype=acc, device=x.device)
            else:
                n_valid = count.sum().expand(c)
            dims: tuple[int, ...] = (0, 2)
        else:
            slots = torch.zeros(b, c + 1, dtype=acc, device=x.device)

            def by_class(values: Tensor) -> Tensor:
                return slots.scatter_add(1, t_dump, values)[:, :c]

            count = by_class(torch.ones(1, 1, dtype=acc, device=x.device).expand(b, n))
            n_valid = count.sum(1, keepdim=True).expand(b, c)
            dims = (2,)

        if nll_live:
            log_pt = logp.gather(1, t_safe.unsqueeze(1)).squeeze(1)
            if valid is not None:
                log_pt = torch.where(valid, log_pt, 0.0)  # ignored pixels: p_t = 1, into the dropped column
            # p_t from its log: one gather fewer, whose backward would be a logits-sized scatter
            pt = log_pt.exp()
        else:
            pt = p.gather(1, t_safe.unsqueeze(1)).squeeze(1)
        inter = by_class(pt)
        pred = (p * p).sum(dims) if squared else p.sum(dims)
        flag = xa.detach().sum()
        if not nll_live:
            inter, pred = _poisoned(flag, inter, pred)
            return inter, pred, count, torch.zeros_like(count), n_valid
        term = term or LossTerm()
        if term.gamma is None:
            nll = -by_class(log_pt)
            eps = term.label_smoothing
            if eps > 0:
                neg_logp = -logp if valid is None else -(logp * valid.unsqueeze(1).to(acc))
                nll = (1.0 - eps) * nll + (eps / c) * neg_logp.sum(dims)
        elif term.gamma != 0:
            m = (1.0 - pt).clamp_min(0.0)
            nll = -by_class(_focal_power(m, term.gamma) * log_pt)
        else:
            nll = -by_class(log_pt)
        inter, pred, nll = _poisoned(flag, inter, pred, nll)
        return inter, pred, count, nll, n_valid


def small_dense_softmax_stats(
    x: Tensor, t: Tensor, *, squared: bool, soft: bool, with_nll: bool, term: LossTerm | None, pool: bool
) -> Stats:
    """What the dense kernel returns for softmax logits ``x [B, C, *spatial]`` and a one-hot or soft target
    of the same shape (no ``ignore_index``), the non-finite flag applied; ``t`` already checked.

    With ``with_nll`` it also sums the loss term per class, which the dense kernel leaves to the caller:
    the cross-entropy ``-sum_i g_ic log p_ic`` (label smoothing as :func:`torch.nn.functional.cross_entropy`
    with probabilities: ``(1 - eps) g + eps / C``) or the softmax focal term
    ``-sum_i g_ic (1 - p_ic)^gamma log p_ic``. ``soft``: the semimetric intersection (not with ``squared``).
    """
    acc = _acc(x)
    c = x.shape[1]
    with without_autocast(x):
        xa = x if x.dtype == acc else x.to(acc)
        g = t if t.dtype == acc else t.to(acc)
        logp = torch.log_softmax(xa, 1) if with_nll else None
        p = logp.exp() if logp is not None else torch.softmax(xa, 1)
        dims = _dims(x, pool)
        if squared:
            pred, tsum, inter = (p * p).sum(dims), (g * g).sum(dims), (p * g).sum(dims)
        else:
            pred, tsum = p.sum(dims), g.sum(dims)
            inter = 0.5 * (pred + tsum - (p - g).abs().sum(dims)) if soft else (p * g).sum(dims)
        n = math.prod(x.shape[2:]) * (x.shape[0] if pool else 1)
        count = torch.full(pred.shape, float(n), dtype=acc, device=x.device)
        flag = xa.detach().sum()
        if logp is None:
            inter, pred = _poisoned(flag, inter, pred)
            return inter, pred, tsum, torch.zeros_like(count), count
        term = term or LossTerm()
        if term.gamma is None:
            nll = -(g * logp).sum(dims)
            eps = term.label_smoothing
            if eps > 0:
                nll = (1.0 - eps) * nll - (eps / c) * logp.sum(dims)
        else:
            weighted = g if term.gamma == 0 else g * _focal_power((1.0 - p).clamp_min(0.0), term.gamma)
            nll = -(weighted * logp).sum(dims)
        inter, pred, nll = _poisoned(flag, inter, pred, nll)
        return inter, pred, tsum, nll, count
