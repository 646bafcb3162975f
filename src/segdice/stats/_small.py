"""Small inputs: the statistics of the fused kernels in a few ordinary autograd ops.

On a small input (at most :data:`SMALL_INPUT` values) the fixed cost of a Python ``autograd.Function`` (its
``apply``, its Python backward, the slab and chunk machinery) is most of the call, while the memory it saves
is a few hundred KiB. There the same sums are formed by plain torch ops whose backward runs in the C++
autograd engine: the same formulas, so the same values and gradients to rounding (the tests pin both to
the regular kernels' float64 references).

Only the cases whose derivative autograd gets right everywhere come here: a focal exponent in ``(0, 1)``
has an infinite derivative of ``(1 - p_t)**gamma`` at ``p_t = 1``, whose limit the regular kernels take.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segdice.stats._kernels import LossTerm, without_autocast

__all__ = ["SMALL_INPUT", "small_index_stats", "small_sigmoid_hard_stats", "takes_small_path"]

SMALL_INPUT = 1 << 16  # values of the logits at most; above it the fused kernels win on time or memory


def takes_small_path(x: Tensor, term: LossTerm | None) -> bool:
    """Whether the logits ``x [B, C, N]`` (and the loss term, if any) take the plain-autograd path."""
    if x.numel() > SMALL_INPUT or torch.compiler.is_compiling():
        return False
    return term is None or term.gamma is None or term.gamma == 0 or term.gamma >= 1


def _acc(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _focal_power(m: Tensor, gamma: float) -> Tensor:
    return m * m if gamma == 2 else (m if gamma == 1 else m.pow(gamma))


def small_sigmoid_hard_stats(
    x: Tensor, t: Tensor, check, term: LossTerm | None, pool: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """What :func:`~segdice.stats._kernels.sigmoid_hard_stats` returns, for a small input.

    ``x [B, C, N]`` float32/float64 logits, ``t`` a 0/1 target of its shape (``check(lo, hi)`` validates an
    integer one). With ``term``: the BCE (label-smoothed) or the sigmoid focal term, per channel.
    """
    b, c, n = x.shape
    with without_autocast(x):
        g = t if t.dtype == x.dtype else t.to(x.dtype)
        if check is not None:
            lo, hi = torch.aminmax(g)
            check(float(lo), float(hi))
        dims = (0, 2) if pool else (2,)
        p = torch.sigmoid(x)
        inter, pred, tsum = (p * g).sum(dims), p.sum(dims), g.sum(dims)
        shape = (c,) if pool else (b, c)
        count = torch.full(shape, float(n * b if pool else n), dtype=x.dtype, device=x.device)
        if term is None:
            return inter, pred, tsum, torch.zeros(shape, dtype=x.dtype, device=x.device), count
        if term.gamma is None:
            eps = term.label_smoothing
            gs = g * (1.0 - eps) + eps / 2 if eps > 0 else g
            nll = F.binary_cross_entropy_with_logits(x, gs, reduction="none").sum(dims)
            return inter, pred, tsum, nll, count
        per = F.binary_cross_entropy_with_logits(x, g, reduction="none")
        if term.gamma != 0:
            per = per * _focal_power((g - p).abs(), term.gamma)  # (1 - p_t)^gamma, 1 - p_t = |g - p|
        if term.alpha is not None:
            per = per * (g * (2.0 * term.alpha - 1.0) + (1.0 - term.alpha))
        return inter, pred, tsum, per.sum(dims), count


def small_index_stats(
    x: Tensor, t: Tensor, activation: str, *, squared: bool, ignore_index, with_nll: bool, term: LossTerm | None,
    pool: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # fmt: skip
    """What :func:`~segdice.stats._kernels.index_stats` returns, for a small input.

    ``x [B, C, N]`` (any float dtype, summed in float32/float64), ``t [B, N]`` int64 labels. Ignored pixels
    are counted into an extra column C that is dropped, and their probabilities are zeroed.
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
        zeros = torch.zeros(b, c + 1, dtype=acc, device=x.device)

        def by_class(values: Tensor) -> Tensor:
            return zeros.scatter_add(1, t_dump, values)[:, :c]

        if nll_live:
            log_pt = logp.gather(1, t_safe.unsqueeze(1)).squeeze(1)
            if valid is not None:
                log_pt = torch.where(valid, log_pt, 0.0)  # ignored pixels: p_t = 1, into the dropped column
            # p_t from its log: one gather fewer, whose backward would be a logits-sized scatter
            pt = log_pt.exp()
        else:
            pt = p.gather(1, t_safe.unsqueeze(1)).squeeze(1)
        inter = by_class(pt)
        pred = (p * p).sum(2) if squared else p.sum(2)
        count = by_class(torch.ones(1, 1, dtype=acc, device=x.device).expand(b, n))
        if nll_live:
            term = term or LossTerm()
            if term.gamma is None:
                nll = -by_class(log_pt)
                eps = term.label_smoothing
                if eps > 0:
                    neg_logp = -logp if valid is None else -(logp * valid.unsqueeze(1).to(acc))
                    nll = (1.0 - eps) * nll + (eps / c) * neg_logp.sum(2)
            else:
                m = (1.0 - pt).clamp_min(0.0)
                nll = (
                    -by_class(_focal_power(m, term.gamma) * log_pt) if term.gamma != 0 else -by_class(log_pt)
                )
        else:
            nll = torch.zeros(b, c, dtype=acc, device=x.device)
        n_valid = count.sum(1, keepdim=True).expand(b, c)
        stats = (inter, pred, count, nll, n_valid)
        return tuple(v.sum(0) for v in stats) if pool else stats
