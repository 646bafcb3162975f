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

import functools
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
    """``sums`` plus ``0 * flag``: unchanged for a finite flag, NaN for a NaN or infinite one.

    Added in place into the values of the fresh sums (``.data``: no autograd node, the sums' own gradients
    stay as they are), one op each; ``0 * NaN`` is NaN.
    """
    for v in sums:
        v.data.add_(flag, alpha=0.0)
    return sums


def _read_pair(a: Tensor, b: Tensor) -> tuple[float, float]:
    """Two 0-dim tensors as Python numbers in one device read (two plain reads cost less on the CPU)."""
    if a.device.type == "cpu":
        return float(a), float(b)
    lo, hi = torch.stack((a, b)).tolist()
    return float(lo), float(hi)


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

    An integer or bool target is range-checked as it is, then converted once (a promoted integer operand
    would cost more in every product). The BCE is ``softplus(z) - g z`` per element, as the dense kernel
    forms it.
    """
    acc = _acc(x)
    with without_autocast(x):
        xa = x if x.dtype == acc else x.to(acc)
        g = t.to(acc) if t.is_floating_point() and t.dtype != acc else t
        if t.dtype != torch.bool:
            lo, hi = _read_pair(*torch.aminmax(g))
            if not (lo >= 0.0 and hi <= 1.0):  # NaN fails too
                check(lo, hi)
        if not t.is_floating_point():
            # A promoted integer operand costs more in each product (and its backward) than one conversion
            # (int64 via int32 and bool viewed as uint8: faster than a direct conversion; exact, the values
            # being checked 0/1 above).
            narrow = {torch.int64: torch.int32, torch.bool: torch.uint8}.get(g.dtype)
            g = (g if narrow is None else g.view(narrow) if g.dtype == torch.bool else g.to(narrow)).to(acc)
        # g is now of the accumulation dtype
        dims = _dims(x, pool)
        p = torch.sigmoid(xa)
        pred = p.sum(dims)
        tsum = g.sum(dims)
        # On [0, 1], sum(g) - sum(g * g) = sum(g (1 - g)) is 0 only for 0/1 values; both sums are exact
        # for them (a small input stays far below 2**24).
        soft = t.is_floating_point() and float(tsum.sum()) != float(torch.linalg.vecdot(g.reshape(-1), g.reshape(-1)))
        inter = 0.5 * (pred + tsum - (p - g).abs().sum(dims)) if soft else (p * g).sum(dims)
        n = math.prod(x.shape[2:]) * (x.shape[0] if pool else 1)
        count = torch.full(pred.shape, float(n), dtype=acc, device=x.device)
        if term is None:
            inter, pred = _poisoned(xa.detach().sum(), inter, pred)
            return inter, pred, tsum, torch.zeros_like(count), count
        if term.gamma is None:
            eps = term.label_smoothing
            gs = g * (1.0 - eps) + eps / 2 if eps > 0 else g
            nll = (F.softplus(xa) - xa * gs).sum(dims)
        elif soft:
            inter, pred = _poisoned(xa.detach().sum(), inter, pred)
            return inter, pred, tsum, None, count
        else:
            per = F.softplus(xa) - xa * g
            if term.gamma != 0:
                per = per * _focal_power((g - p).abs(), term.gamma)  # (1 - p_t)^gamma, 1 - p_t = |g - p|
            if term.alpha is not None:
                per = per * (g * (2.0 * term.alpha - 1.0) + (1.0 - term.alpha))
            nll = per.sum(dims)
        # The term's sum is NaN or inf exactly when a logit is (softplus(z) - g z is inf - inf or inf):
        # it is the flag.
        if nll.numel() > 1:
            inter, pred, nll = _poisoned(nll.detach().sum(), inter, pred, nll)
        else:
            inter, pred = _poisoned(nll.detach().reshape(()), inter, pred)
        return inter, pred, tsum, nll, count


@functools.lru_cache(maxsize=8)
def _offsets(b: int, stride: int, n: int, device: torch.device) -> Tensor:
    """``[B, N]`` int64: ``b * stride + i`` (pixel ``i`` of image ``b``); a constant per shape, kept."""
    rows = torch.arange(b, device=device).mul_(stride).unsqueeze(1)
    return rows + torch.arange(n, device=device) if n > 1 else rows


def small_index_stats(
    x: Tensor, t: Tensor, activation: str, *, squared: bool, ignore_index, with_nll: bool, term: LossTerm | None,
    pool: bool,
) -> Stats:  # fmt: skip
    """What :func:`~segdice.stats._kernels.index_stats` returns for a small input, the non-finite flag applied.

    ``x [B, C, *spatial]`` (any float dtype, summed in float32/float64; unflattened, so no reshape node),
    ``t [B, N]`` int64 labels, ``N`` the spatial size. Ignored pixels are counted into an extra column C
    that is dropped, and their probabilities are zeroed.

    The target-class values come from one ``index_select`` of the flat probabilities at ``b C N + t N + i``
    and are summed per class by one ``index_add``: both have cheap flat backwards (``gather``/``scatter_add``
    over a dimension cost twice as much), and no one-hot tensor is formed.
    """
    b, c = x.shape[:2]
    n = t.shape[1]
    spatial_dims = tuple(range(2, x.ndim))
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
            kept = valid.view(b, 1, *x.shape[2:]).to(acc)
            p = p * kept
            slots = c + 1  # column C collects the ignored pixels and is dropped
        else:
            valid, t_safe, t_dump, slots = None, t, t, c
        # A label outside [0, C) would alias another pixel's value in the flat indices: refused here (the
        # caller turns the RuntimeError into its message). bincount raises for a negative one, and its
        # length says the largest; with ignore_index a label C would hide in the dropped column.
        if valid is not None:
            lo, hi = _read_pair(*torch.aminmax(t_safe))
            if lo < 0 or hi >= c:
                raise RuntimeError("a class index out of range")
        labels = t_dump.reshape(-1)
        totals = torch.bincount(labels, minlength=slots)
        if totals.shape[0] > slots:
            raise RuntimeError("a class index out of range")
        at_target = torch.add(_offsets(b, c * n, n, x.device), t_safe, alpha=n).reshape(-1)
        if pool:
            by_slot = labels
            count = (totals if slots == c else totals[:c]).to(acc)
            dims: tuple[int, ...] = (0, *spatial_dims)
        else:
            by_slot = torch.add(_offsets(b, slots, 1, x.device), t_dump).reshape(-1)
            count = torch.bincount(by_slot, minlength=b * slots).view(b, slots)[:, :c].to(acc)
            dims = spatial_dims
        zeros = torch.zeros(slots if pool else b * slots, dtype=acc, device=x.device)

        def by_class(values: Tensor) -> Tensor:
            sums = zeros.index_add(0, by_slot, values)
            if not pool:
                sums = sums.view(b, slots)
            return sums if slots == c else sums[..., :c]

        if valid is None:
            n_valid = torch.full(count.shape, float(b * n if pool else n), dtype=acc, device=x.device)
        else:
            n_valid = count.sum(-1, keepdim=True).expand(count.shape)
        if nll_live:
            log_pt = logp.reshape(-1).index_select(0, at_target)
            if valid is not None:
                # ignored pixels: p_t = 1, into the dropped column
                log_pt = torch.where(valid.reshape(-1), log_pt, 0.0)
            # p_t from its log: one index_select fewer, whose backward would be a logits-sized index_add
            pt = log_pt.exp()
        else:
            pt = p.reshape(-1).index_select(0, at_target)
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
                neg_logp = -logp if valid is None else -(logp * kept)
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
