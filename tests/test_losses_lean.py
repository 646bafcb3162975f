"""The lean paths of the binary/multilabel loss terms and the small-input fast path, against references
written here.

* The sigmoid_hard kernel sums the BCE as ``sum relu(w) - sum log max(p, 1 - p)`` with ``w = x (1 - 2g)``
  and takes the logs of products of 64 values; checked against a float64 ``F.binary_cross_entropy_with_logits``
  and the textbook ``-g log p - (1 - g) log(1 - p)`` on inputs of many lengths (remainders of the groups).
* It flags non-finite logits from the term's sums instead of a separate pass: the input's sums of
  ``soft_stats`` (``tp``, ``pred``, ``nll``) must be NaN for a NaN, +inf or -inf logit at a positive or a
  negative pixel, small or large input, and the target's counts stay exact.
* The small-input path of the losses (fixed per-call costs cached per module) must give the values and
  gradients of the regular path and of the textbook formula, and refuse the same bad inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import segdice
from segdice.stats import soft_stats
from segdice.stats._kernels import LossTerm, sigmoid_hard_stats


def _textbook_bce_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum -g log p - (1 - g) log(1 - p)`` per (image, channel) in float64, ``p`` the sigmoid."""
    p = torch.sigmoid(x.double())
    g = g.double()
    return (-(g * torch.log(p)) - (1 - g) * torch.log1p(-p)).sum(-1)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    c=st.integers(1, 3),
    scale=st.sampled_from([0.5, 1.0, 3.0]),
    seed=st.integers(0, 999),
)
def test_bce_sums_match_the_textbook_formula(n, c, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, n, generator=gen, dtype=torch.float64) * scale
    g = torch.randint(0, 2, (2, c, n), generator=gen)
    nll = sigmoid_hard_stats(x, g, None, LossTerm(), False)[3]
    # (the textbook form itself loses digits once 1 - p rounds, so the logits stay moderate here)
    torch.testing.assert_close(nll, _textbook_bce_sum(x, g), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [63, 64, 65, 70_001, 200_000])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_float32_bce_sums_match_float64_torch(n, smoothing):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(3, 1, n, generator=gen) * 4
    g = torch.randint(0, 2, (3, 1, n), generator=gen)
    nll = sigmoid_hard_stats(x, g, None, LossTerm(smoothing), False)[3]
    gs = g.double() * (1 - smoothing) + smoothing / 2
    ref = F.binary_cross_entropy_with_logits(x.double(), gs, reduction="none").sum(-1)
    torch.testing.assert_close(nll.double(), ref, rtol=3e-6, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 1, 5, 7), (3, 1, 200, 150), (2, 2, 130, 130)])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("at_positive", [False, True])
@pytest.mark.parametrize("term", ["ce", "ce-smooth", "focal", "focal-alpha"])
@pytest.mark.parametrize("tdtype", [torch.int64, torch.float32])
def test_nonfinite_logit_makes_the_input_sums_nan(shape, bad, at_positive, term, tdtype):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(*shape, generator=gen)
    t = torch.randint(0, 2, shape, generator=gen)
    idx = int(torch.nonzero(t.view(-1) == int(at_positive))[len(t.view(-1)) // 5])
    x.view(-1)[idx] = bad
    kw = {
        "ce": {},
        "ce-smooth": {"label_smoothing": 0.1},
        "focal": {"focal_gamma": 2.0},
        "focal-alpha": {"focal_gamma": 0.5, "focal_alpha": 0.25},
    }[term]
    mode = "binary" if shape[1] == 1 else "multilabel"
    stats = soft_stats(x, t.to(tdtype), mode, with_nll=True, per_image=True, **kw)
    for name in ("tp", "pred", "nll"):  # the sums of the input; target and n_valid count the target
        assert torch.isnan(getattr(stats, name)).all(), (name, stats)
    clean = soft_stats(torch.zeros_like(x), t.to(tdtype), mode, with_nll=True, per_image=True, **kw)
    torch.testing.assert_close(stats.target, clean.target)
    torch.testing.assert_close(stats.n_valid, clean.n_valid)


# ---------------------------------------------------------------------------------------------------
# the small-input path: plain autograd ops for inputs of at most SMALL_INPUT values
# ---------------------------------------------------------------------------------------------------


def _textbook_loss(x, t, mode, kind, kw):
    """Dice (batch or per image) + CE / BCE / focal from the textbook formulas, float64, by autograd."""
    x = x.double()
    c = x.shape[1]
    ignore = kw.get("ignore_index")
    if mode == "multiclass":
        valid = torch.ones_like(t, dtype=torch.bool) if ignore is None else t != ignore
        onehot = F.one_hot(torch.where(valid, t, 0), c).movedim(-1, 1).double() * valid.unsqueeze(1)
        logp = torch.log_softmax(x, 1)
        p = logp.exp() * valid.unsqueeze(1)
        g = onehot
    else:
        valid = torch.ones_like(t, dtype=torch.bool)
        p = torch.sigmoid(x)
        g = t.double()
    dims = tuple(range(2, x.ndim)) if kw.get("per_image") else (0, *range(2, x.ndim))
    dice = 1 - (2 * (p * g).sum(dims) + 1e-5) / ((p + g).sum(dims) + 1e-5)
    dice = dice.mean()
    eps, gamma = kw.get("label_smoothing", 0.0), kw.get("gamma", 2.0)
    if mode == "multiclass":
        log_pt = (logp * g).sum(1)  # 0 at ignored pixels
        if kind == "ce":
            per = -(1 - eps) * log_pt - eps / c * (logp * valid.unsqueeze(1)).sum(1)
        elif kind == "focal":
            per = -((1 - log_pt.exp()) ** gamma) * log_pt
        else:
            return dice
        return dice + per.sum() / valid.sum()
    if kind == "none":
        return dice
    gs = g * (1 - eps) + eps / 2
    bce = -(gs * F.logsigmoid(x) + (1 - gs) * F.logsigmoid(-x))  # -g log p - (1 - g) log(1 - p)
    if kind == "focal":
        p_t = p * g + (1 - p) * (1 - g)
        bce = bce * (1 - p_t) ** gamma
        if kw.get("alpha") is not None:
            bce = bce * (kw["alpha"] * g + (1 - kw["alpha"]) * (1 - g))
    return dice + bce.mean()


SMALL_CASES = [
    ("none", "binary", {}),
    ("none", "multilabel", {"per_image": True}),
    ("none", "multiclass", {}),
    ("none", "multiclass", {"ignore_index": 255, "per_image": True}),
    ("ce", "binary", {}),
    ("ce", "multilabel", {"label_smoothing": 0.1, "per_image": True}),
    ("ce", "multiclass", {}),
    ("ce", "multiclass", {"label_smoothing": 0.2, "ignore_index": 255}),
    ("focal", "binary", {"alpha": 0.25}),
    ("focal", "multilabel", {"gamma": 1.0, "per_image": True}),
    ("focal", "multiclass", {"gamma": 3.0}),
    ("focal", "multiclass", {"ignore_index": 255, "per_image": True}),
]


def _loss_fn(kind, mode, kw):
    cls = {"none": segdice.DiceLoss, "ce": segdice.DiceCELoss, "focal": segdice.DiceFocalLoss}[kind]
    return cls(mode, **kw)


def _small_case(mode, seed, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64) * scale
    if mode == "multiclass":
        t = torch.randint(0, c, (2, 5, 6), generator=gen)
    else:
        t = torch.randint(0, 2, (2, c, 5, 6), generator=gen)
    return x, t


def _value_and_grad(fn, x, t):
    leaf = x.detach().clone().requires_grad_(True)
    out = fn(leaf, t)
    (grad,) = torch.autograd.grad(out, leaf)
    return out.detach(), grad


@pytest.mark.parametrize("kind,mode,kw", SMALL_CASES)
def test_small_path_matches_the_textbook_formula_and_the_fused_kernels(kind, mode, kw, monkeypatch):
    x, t = _small_case(mode, seed=3)
    if "ignore_index" in kw:
        t.view(-1)[::4] = kw["ignore_index"]
    loss = _loss_fn(kind, mode, kw)
    v_small, g_small = _value_and_grad(loss, x, t)
    v_ref, g_ref = _value_and_grad(lambda a, b: _textbook_loss(a, b, mode, kind, kw), x, t)
    torch.testing.assert_close(v_small, v_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_small, g_ref, rtol=1e-9, atol=1e-12)
    monkeypatch.setattr("segdice.stats._small.SMALL_INPUT", 0)  # the regular fused kernels
    v_fused, g_fused = _value_and_grad(loss, x, t)
    torch.testing.assert_close(v_small, v_fused, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_small, g_fused, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind,mode,kw", SMALL_CASES[::2])
def test_small_path_gradcheck(kind, mode, kw):
    x, t = _small_case(mode, seed=4)
    if "ignore_index" in kw:
        t.view(-1)[::4] = kw["ignore_index"]
    loss = _loss_fn(kind, mode, kw)
    assert torch.autograd.gradcheck(lambda a: loss(a, t), (x.requires_grad_(True),))


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_small_path_float32_and_large_logits_match_float64(mode):
    x, t = _small_case(mode, seed=5, scale=60.0)  # probabilities underflow; their logs must not
    for kind in ("ce", "focal"):
        loss = _loss_fn(kind, mode, {})
        v32, g32 = _value_and_grad(loss, x.float(), t)
        v_ref, g_ref = _value_and_grad(lambda a, b, k=kind: _textbook_loss(a, b, mode, k, {}), x, t)
        torch.testing.assert_close(v32.double(), v_ref, rtol=2e-5, atol=1e-4)
        torch.testing.assert_close(g32.double(), g_ref, rtol=1e-4, atol=1e-6)


def test_small_path_refuses_the_same_bad_inputs():
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(segdice.SegDiceError, match="target"):
        segdice.DiceLoss("binary")(x, torch.full((2, 1, 4, 4), 2))
    with pytest.raises(segdice.SegDiceError, match="class indices"):
        segdice.DiceCELoss("multiclass")(torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), 3))
    with pytest.raises(segdice.SegDiceError, match="class indices"):
        segdice.DiceFocalLoss("multiclass")(torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), -1))
    y = torch.randn(2, 3, 4, 4)
    y[0, 1, 2, 2] = math.inf
    assert torch.isnan(segdice.DiceLoss("multiclass")(y, torch.randint(0, 3, (2, 4, 4))))
    assert torch.isnan(segdice.DiceCELoss("binary")(x.masked_fill(x > 1, -math.inf), torch.ones(2, 1, 4, 4)))


# ---------------------------------------------------------------------------------------------------
# binary Lovász hinge: the positive errors alone are sorted (compacted above 2**16 values)
# ---------------------------------------------------------------------------------------------------


def _textbook_lovasz_hinge(x, t, ignore_index=None):
    """Berman et al.'s Algorithm 1 over the whole batch, float64: every kept error sorted, relu applied."""
    z, g = x.double().reshape(-1), t.reshape(-1)
    if ignore_index is not None:
        z, g = z[g != ignore_index], g[g != ignore_index]
    g = g.double()
    errors = 1 - z * (2 * g - 1)
    e_sorted, perm = torch.sort(errors, descending=True)
    gt = g[perm]
    gts = gt.sum()
    jaccard = 1 - (gts - gt.cumsum(0)) / (gts + (1 - gt).cumsum(0))
    grad = torch.cat((jaccard[:1], jaccard[1:] - jaccard[:-1]))
    return (torch.relu(e_sorted) * grad).sum()


@pytest.mark.parametrize("shape", [(2, 1, 9, 11), (1, 1, 300, 300), (2, 1, 200, 200)])
@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("margin", [0.0, 3.0])
def test_binary_lovasz_matches_berman_algorithm(shape, ignore, margin):
    gen = torch.Generator().manual_seed(11)
    t = torch.randint(0, 2, shape, generator=gen)
    # margin 3: most elements classified with a margin > 1 (no hinge error), as late in training
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) + margin * (2 * t - 1)).requires_grad_(True)
    if ignore is not None:
        t.view(-1)[::6] = ignore
    ours = segdice.lovasz_loss(x, t, "binary", ignore_index=ignore)
    (g_ours,) = torch.autograd.grad(ours, x)
    leaf = x.detach().clone().requires_grad_(True)
    ref = _textbook_lovasz_hinge(leaf, t, ignore)
    (g_ref,) = torch.autograd.grad(ref, leaf)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# FocalLoss on the sigmoid_hard kernel (integer targets above 2**16 values)
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode,kw",
    [
        ("binary", {}),
        ("binary", {"gamma": 0.5, "alpha": 0.25, "reduction": "sum"}),
        ("multilabel", {"gamma": 3.0, "class_weights": [1.0, 3.0]}),
        ("multilabel", {"gamma": 0.0, "alpha": 0.7}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_focal_loss_on_the_fused_kernel_matches_the_textbook_formula(mode, kw, dtype):
    c = 1 if mode == "binary" else 2
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(2, c, 190, 180, generator=gen, dtype=torch.float64) * 3
    t = torch.randint(0, 2, x.shape, generator=gen)
    gamma, alpha = kw.get("gamma", 2.0), kw.get("alpha")

    def textbook(v):
        p, g = torch.sigmoid(v), t.double()
        bce = -(g * F.logsigmoid(v) + (1 - g) * F.logsigmoid(-v))
        per = bce * (1 - (p * g + (1 - p) * (1 - g))) ** gamma
        if alpha is not None:
            per = per * (alpha * g + (1 - alpha) * (1 - g))
        w = (
            torch.ones(c, dtype=torch.float64)
            if "class_weights" not in kw
            else torch.tensor(kw["class_weights"])
        )
        w = w.double().view(1, c, 1, 1).expand_as(per)
        return (per * w).sum() if kw.get("reduction") == "sum" else (per * w).sum() / w.sum()

    v, g = _value_and_grad(lambda a, b: segdice.FocalLoss(mode, **kw)(a, b), x.to(dtype), t)
    v_ref, g_ref = _value_and_grad(lambda a, b: textbook(a), x, t)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 2e-5, "atol": 1e-7}
    torch.testing.assert_close(v.double(), v_ref, **tol)
    torch.testing.assert_close(g.double(), g_ref, **tol)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"gamma": 0.5, "alpha": [0.2, 0.3, 0.5], "ignore_index": 255},
        {"gamma": 3.0, "class_weights": [1.0, 2.0, 0.5], "reduction": "sum"},
        {"gamma": 0.0, "class_weights": [0.5, 1.0, 2.0], "ignore_index": -100},
    ],
)
@pytest.mark.parametrize("spatial", [(5, 6), (150, 160)])  # the small path and the index kernel
def test_multiclass_focal_loss_matches_the_textbook_formula(kw, spatial):
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(2, 3, *spatial, generator=gen, dtype=torch.float64) * 3
    t = torch.randint(0, 3, (2, *spatial), generator=gen)
    ignore = kw.get("ignore_index")
    if ignore is not None:
        t.view(-1)[::7] = ignore
    gamma, alpha, cw = kw.get("gamma", 2.0), kw.get("alpha"), kw.get("class_weights")

    def textbook(v):
        valid = torch.ones_like(t, dtype=torch.bool) if ignore is None else t != ignore
        ts = torch.where(valid, t, 0)
        log_pt = torch.log_softmax(v, 1).gather(1, ts.unsqueeze(1)).squeeze(1)
        per = -((1 - log_pt.exp()) ** gamma) * log_pt
        if alpha is not None:
            per = per * torch.tensor(alpha, dtype=torch.float64)[ts]
        wt = torch.ones_like(per) if cw is None else torch.tensor(cw, dtype=torch.float64)[ts]
        per, wt = per * wt * valid, wt * valid
        return per.sum() if kw.get("reduction") == "sum" else per.sum() / wt.sum()

    v, g = _value_and_grad(lambda a, b: segdice.FocalLoss("multiclass", **kw)(a, b), x, t)
    v_ref, g_ref = _value_and_grad(lambda a, b: textbook(a), x, t)
    torch.testing.assert_close(v, v_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind,mode,kw", SMALL_CASES[4::2])
@pytest.mark.parametrize("logits", ["fp32", "bf16"])
def test_small_path_under_bf16_autocast_matches_float64(kind, mode, kw, logits):
    """Inside autocast the small path still sums in float32 (bf16 logits are upcast first)."""
    x, t = _small_case(mode, seed=6)
    if "ignore_index" in kw:
        t.view(-1)[::4] = kw["ignore_index"]
    x = x.to(torch.bfloat16) if logits == "bf16" else x.float()
    loss = _loss_fn(kind, mode, kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v, g = _value_and_grad(loss, x, t)
    v_ref, g_ref = _value_and_grad(lambda a, b: _textbook_loss(a, b, mode, kind, kw), x.double(), t)
    assert v.dtype == torch.float32
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    tol = {"rtol": 1e-2, "atol": 1e-4} if logits == "bf16" else {"rtol": 1e-4, "atol": 1e-7}
    torch.testing.assert_close(g.double(), g_ref, **tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_float_mask_stays_hard_under_autocast(dtype):
    """Under autocast the 0/1 test of a float mask must not run its dot product in half precision (which
    would send the mask to the dense kernel and the focal term to a separate pass)."""
    from segdice.stats._kernels import is_hard_target

    t = torch.randint(0, 2, (2, 1, 300, 300)).float()
    with torch.autocast("cpu", dtype=dtype):
        assert is_hard_target(t.reshape(2, 1, -1))
    assert not is_hard_target(torch.full((2, 1, 9), 0.5))
