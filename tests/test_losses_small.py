"""The small-input paths of :mod:`segdice.stats._small` that the lean tests do not cover, against float64
textbook formulas written here, autograd's gradients of them, and the regular kernels on the same input
(``segdice.stats._small.SMALL_INPUT`` patched to 0):

* binary/multilabel with float (hard and soft), bool and uint8 targets, and half-precision logits;
* multiclass one-hot and soft targets (Dice, CE with label smoothing and class weights, focal with alpha);
* the label range check of the flat-index path (an out-of-range label must never alias another pixel);
* NaN/inf logits giving NaN, the same error messages as the regular path, and the loss modules' cached
  settings checks (a changed attribute is checked again).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import segdice

SMOOTH = 1e-5


def _regular(monkeypatch) -> None:
    monkeypatch.setattr("segdice.stats._small.SMALL_INPUT", 0)


def _weighted_mean(values: torch.Tensor, w) -> torch.Tensor:
    if w is None:
        return values.mean()
    w = torch.as_tensor(w, dtype=values.dtype)
    return ((values * w).sum(-1) / w.sum()).mean()


def _textbook_sigmoid(x, g, kind, kw):
    """Dice + BCE / focal on sigmoid probabilities, float64; soft targets take the semimetric I."""
    x, g = x.double(), g.double()
    p = torch.sigmoid(x)
    dims = (2, 3) if kw.get("per_image") else (0, 2, 3)
    soft = bool(((g > 0) & (g < 1)).any())
    big_p, big_g = p.sum(dims), g.sum(dims)
    inter = (big_p + big_g - (p - g).abs().sum(dims)) / 2 if soft else (p * g).sum(dims)
    dice = (1 - (2 * inter + SMOOTH) / (big_p + big_g + SMOOTH)).mean()
    if kind == "none":
        return dice
    eps = kw.get("label_smoothing", 0.0)
    gs = g * (1 - eps) + eps / 2
    bce = -(gs * F.logsigmoid(x) + (1 - gs) * F.logsigmoid(-x))
    if kind == "focal":
        p_t = p * g + (1 - p) * (1 - g)
        bce = bce * (1 - p_t) ** kw.get("gamma", 2.0)
        if kw.get("alpha") is not None:
            bce = bce * (kw["alpha"] * g + (1 - kw["alpha"]) * (1 - g))
    return dice + bce.mean()


def _textbook_softmax_dense(x, g, kind, kw):
    """Dice + CE / focal on softmax probabilities against a one-hot or soft target, float64."""
    x, g = x.double(), g.double()
    c = x.shape[1]
    logp = torch.log_softmax(x, 1)
    p = logp.exp()
    dims = (2, 3) if kw.get("per_image") else (0, 2, 3)
    soft = bool(((g > 0) & (g < 1)).any())
    if kw.get("squared"):
        big_p, big_g, inter = (p * p).sum(dims), (g * g).sum(dims), (p * g).sum(dims)
    else:
        big_p, big_g = p.sum(dims), g.sum(dims)
        inter = (big_p + big_g - (p - g).abs().sum(dims)) / 2 if soft else (p * g).sum(dims)
    values = 1 - (2 * inter + SMOOTH) / (big_p + big_g + SMOOTH)
    w = kw.get("class_weights")
    if kw.get("include_background", True):
        dice = _weighted_mean(values, w)
    else:
        dice = _weighted_mean(values[..., 1:], None if w is None else w[1:])
    if kind == "none":
        return dice
    wc = torch.ones(c, dtype=x.dtype) if w is None else torch.as_tensor(w, dtype=x.dtype)
    wc = wc.view(1, c, 1, 1)
    if kind == "ce":
        eps = kw.get("label_smoothing", 0.0)
        gs = g * (1 - eps) + eps / c
        per = -(gs * logp * wc).sum(1)  # F.cross_entropy with probabilities: the mean over pixels
    else:
        a = kw.get("alpha")
        ac = torch.ones(c, dtype=x.dtype) if a is None else torch.as_tensor(a, dtype=x.dtype)
        per = -(g * (1 - p) ** kw.get("gamma", 2.0) * logp * ac.view(1, c, 1, 1)).sum(1)
    return dice + per.mean()


def _textbook_index(x, t, kind, kw):
    """Dice + CE / focal on softmax probabilities against integer labels (no ignore_index), float64."""
    c = x.shape[1]
    g = F.one_hot(t, c).movedim(-1, 1).double()  # a reference may build the one-hot
    dice = _textbook_softmax_dense(x, g, "none", kw)
    if kind == "none":
        return dice
    logp = torch.log_softmax(x.double(), 1)
    log_pt = (logp * g).sum(1)
    w = kw.get("class_weights")
    wt = torch.ones_like(log_pt) if w is None else torch.as_tensor(w, dtype=torch.float64)[t]
    if kind == "ce":
        eps = kw.get("label_smoothing", 0.0)
        assert not (eps and w), "the reference covers smoothing or weights, not both"
        per = -(1 - eps) * log_pt * wt - eps / c * logp.sum(1)
        return dice + per.sum() / wt.sum()  # F.cross_entropy's weighted mean
    a = kw.get("alpha")
    at = torch.ones_like(log_pt) if a is None else torch.as_tensor(a, dtype=torch.float64)[t]
    per = -((1 - log_pt.exp()) ** kw.get("gamma", 2.0)) * log_pt * at
    return dice + per.mean()


def _loss(kind, mode, kw):
    cls = {"none": segdice.DiceLoss, "ce": segdice.DiceCELoss, "focal": segdice.DiceFocalLoss}[kind]
    return cls(mode, **kw)


def _value_and_grad(fn, x, t):
    leaf = x.detach().clone().requires_grad_(True)
    out = fn(leaf, t)
    (grad,) = torch.autograd.grad(out, leaf)
    return out.detach(), grad


def _sigmoid_case(mode, target, seed):
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64) * 2
    hard = torch.randint(0, 2, (2, c, 5, 6), generator=gen)
    if target == "soft":
        t = torch.rand(2, c, 5, 6, generator=gen, dtype=torch.float64)
        t[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    else:
        t = {"float": hard.double(), "float32": hard.float(), "bool": hard.bool(), "uint8": hard.to(torch.uint8)}[
            target
        ]
    return x, t


def _dense_case(target, seed, c=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64) * 2
    labels = torch.randint(0, c, (2, 5, 6), generator=gen)
    if target == "onehot":
        g = F.one_hot(labels, c).movedim(-1, 1).double()
    elif target == "onehot_int":
        g = F.one_hot(labels, c).movedim(-1, 1)
    else:
        g = torch.softmax(torch.randn(2, c, 5, 6, generator=gen, dtype=torch.float64), 1)
    return x, g, labels


def _check_against_both(loss, reference, x, t, monkeypatch, rtol_ref=1e-10):
    v_small, g_small = _value_and_grad(loss, x, t)
    v_ref, g_ref = _value_and_grad(reference, x, t)
    torch.testing.assert_close(v_small, v_ref, rtol=rtol_ref, atol=1e-12)
    torch.testing.assert_close(g_small, g_ref, rtol=rtol_ref * 10, atol=1e-12)
    _regular(monkeypatch)
    v_reg, g_reg = _value_and_grad(loss, x, t)
    torch.testing.assert_close(v_small, v_reg, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(g_small, g_reg, rtol=1e-9, atol=1e-13)


SIGMOID_CASES = [
    ("none", "binary", "float", {}),
    ("ce", "binary", "float", {}),
    ("focal", "binary", "float", {"alpha": 0.25}),
    ("none", "multilabel", "soft", {"per_image": True}),
    ("ce", "multilabel", "soft", {}),
    ("ce", "multilabel", "soft", {"label_smoothing": 0.1}),
    ("focal", "multilabel", "soft", {"gamma": 1.5}),
    ("ce", "binary", "bool", {"label_smoothing": 0.2}),
    ("focal", "multilabel", "uint8", {"gamma": 1.0, "alpha": 0.7, "per_image": True}),
    ("ce", "multilabel", "float32", {"per_image": True}),
]


@pytest.mark.parametrize("kind,mode,target,kw", SIGMOID_CASES)
def test_sigmoid_small_path_matches_textbook_and_regular_kernels(kind, mode, target, kw, monkeypatch):
    x, t = _sigmoid_case(mode, target, seed=7)
    loss = _loss(kind, mode, kw)
    _check_against_both(loss, lambda a, b: _textbook_sigmoid(a, b, kind, kw), x, t, monkeypatch)


DENSE_CASES = [
    ("none", "onehot", {}),
    ("none", "soft", {"per_image": True}),
    ("none", "onehot", {"squared": True}),
    ("none", "soft", {"squared": True, "include_background": False}),
    ("none", "onehot_int", {"class_weights": [1.0, 2.0, 0.5]}),
    ("ce", "onehot", {}),
    ("ce", "soft", {"label_smoothing": 0.2}),
    ("ce", "onehot", {"class_weights": [1.0, 2.0, 0.5], "per_image": True}),
    ("ce", "soft", {"class_weights": [0.25, 1.0, 3.0], "label_smoothing": 0.1}),  # float32-exact weights
    ("focal", "onehot", {"alpha": [0.2, 0.3, 0.5]}),
    ("focal", "soft", {"gamma": 1.0, "per_image": True}),
    ("focal", "onehot", {"gamma": 0.0}),
]


@pytest.mark.parametrize("kind,target,kw", DENSE_CASES)
def test_dense_multiclass_small_path_matches_textbook_and_regular_kernels(kind, target, kw, monkeypatch):
    x, g, _ = _dense_case(target, seed=8)
    loss = _loss(kind, "multiclass", kw)
    _check_against_both(loss, lambda a, b: _textbook_softmax_dense(a, b, kind, kw), x, g, monkeypatch)


INDEX_CASES = [
    ("none", {"per_image": True, "class_weights": [1.0, 0.5, 2.0]}),
    ("ce", {"class_weights": [1.0, 0.5, 2.0]}),
    ("ce", {"label_smoothing": 0.1, "per_image": True}),
    ("focal", {"alpha": [0.5, 0.2, 0.3], "gamma": 3.0}),
    ("none", {"include_background": False, "squared": True}),
]


@pytest.mark.parametrize("kind,kw", INDEX_CASES)
def test_index_small_path_matches_textbook_and_regular_kernels(kind, kw, monkeypatch):
    x, _, labels = _dense_case("onehot", seed=9)
    loss = _loss(kind, "multiclass", kw)
    _check_against_both(loss, lambda a, b: _textbook_index(a, b, kind, kw), x, labels, monkeypatch)


@pytest.mark.parametrize(
    "kind,mode,target,kw",
    [
        ("ce", "multilabel", "soft", {"label_smoothing": 0.1}),
        ("focal", "binary", "float", {"alpha": 0.25}),
        ("ce", "multiclass", "soft", {"label_smoothing": 0.2}),
        ("focal", "multiclass", "onehot", {"alpha": [0.2, 0.3, 0.5], "per_image": True}),
        ("none", "multiclass", "labels", {"per_image": True}),
    ],
)
def test_small_paths_gradcheck(kind, mode, target, kw):
    if mode == "multiclass":
        x, g, labels = _dense_case("soft" if target == "soft" else "onehot", seed=10)
        t = labels if target == "labels" else g
    else:
        x, t = _sigmoid_case(mode, target, seed=10)
    loss = _loss(kind, mode, kw)
    assert torch.autograd.gradcheck(lambda a: loss(a, t), (x.requires_grad_(True),))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "kind,mode,target",
    [
        ("none", "binary", "float"),
        ("ce", "binary", "bool"),
        ("focal", "multilabel", "soft"),
        ("none", "multiclass", "onehot"),
        ("ce", "multiclass", "soft"),
        ("focal", "multiclass", "onehot"),
        ("none", "multiclass", "labels"),
        ("ce", "multiclass", "labels"),
    ],
)
def test_small_paths_give_nan_for_non_finite_logits(kind, mode, target, value):
    if mode == "multiclass":
        x, g, labels = _dense_case("soft" if target == "soft" else "onehot", seed=11)
        t = labels if target == "labels" else g
    else:
        x, t = _sigmoid_case(mode, target, seed=11)
    x = x.float()
    t = t.float() if t.is_floating_point() else t
    for where in ((0, 0, 0, 0), (1, x.shape[1] - 1, 4, 5)):
        bad = x.clone()
        bad[where] = value
        out = _loss(kind, mode, {})(bad, t)
        assert torch.isnan(out), (where, out)
    stats = segdice.stats.soft_stats(bad, t, mode, with_nll=kind != "none", per_image=True)
    assert torch.isnan(stats.tp).all() and torch.isnan(stats.pred).all()
    assert torch.isfinite(stats.target).all() and torch.isfinite(stats.n_valid).all()


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 255, -100])
@pytest.mark.parametrize("bad", [3, 4, 7, -1])
def test_out_of_range_labels_are_refused_on_the_small_path(per_image, ignore_index, bad):
    """The flat indices b C N + t N + i would alias another image's pixel for a label >= C: refused."""
    x = torch.randn(2, 3, 4, 5)
    t = torch.randint(0, 3, (2, 4, 5))
    if ignore_index is not None:
        t[1, 0, :2] = ignore_index
    t[0, 3, 4] = bad
    with pytest.raises(segdice.SegDiceError, match=r"class indices in \[0, 2\]"):
        segdice.DiceCELoss("multiclass", per_image=per_image, ignore_index=ignore_index)(x, t)


@pytest.mark.parametrize(
    "mode,target",
    [
        ("binary", torch.full((2, 1, 4, 4), 2.0)),
        ("binary", torch.full((2, 1, 4, 4), -1)),
        ("multilabel", torch.full((2, 3, 4, 4), math.nan)),
        ("multiclass", torch.full((2, 3, 4, 4), 0.5)),  # channels sum to 1.5
        ("multiclass", torch.full((2, 3, 4, 4), -0.5)),
        ("multiclass", torch.zeros(2, 3, 4, 4)),
    ],
)
def test_small_path_refuses_bad_targets_with_the_regular_message(mode, target, monkeypatch):
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 4, 4)
    with pytest.raises(segdice.SegDiceError) as small:
        segdice.DiceCELoss(mode)(x, target)
    _regular(monkeypatch)
    with pytest.raises(segdice.SegDiceError) as regular:
        segdice.DiceCELoss(mode)(x, target)
    assert str(small.value) == str(regular.value)


@pytest.mark.parametrize("bad", [[1.0, 2.0], "logits", None])
@pytest.mark.parametrize("fn", [segdice.dice_loss, segdice.dice_ce_loss, segdice.dice_focal_loss])
def test_a_non_tensor_input_is_refused_before_the_small_path_reads_it(bad, fn):
    with pytest.raises(segdice.SegDiceError, match="input: got"):
        fn(bad, torch.zeros(2, 1, 4, 4), "binary")


def test_half_precision_logits_take_the_small_path_in_float32(monkeypatch):
    x, t = _sigmoid_case("multilabel", "float", seed=12)
    xh = x.to(torch.bfloat16)
    for kind in ("ce", "focal"):
        loss = _loss(kind, "multilabel", {"label_smoothing": 0.1} if kind == "ce" else {})
        v, g = _value_and_grad(loss, xh, t.float())
        assert v.dtype == torch.float32 and g.dtype == torch.bfloat16
        ref = _textbook_sigmoid(xh.double(), t, kind, {"label_smoothing": 0.1} if kind == "ce" else {})
        torch.testing.assert_close(v.double(), ref, rtol=1e-5, atol=1e-6)


def test_autocast_bf16_small_dense_multiclass_matches_float32():
    x, g, _ = _dense_case("onehot", seed=13)
    conv = torch.nn.Conv2d(3, 3, 1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        conv.bias.zero_()
    conv = conv.float()
    loss = segdice.DiceCELoss("multiclass")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(x.float())
        assert logits.dtype == torch.bfloat16
        v = loss(logits, g.float())
    ref = _textbook_softmax_dense(logits.detach().double(), g, "ce", {})
    assert v.dtype == torch.float32
    torch.testing.assert_close(v.double(), ref, rtol=1e-5, atol=1e-6)


def test_a_changed_setting_is_checked_and_used_again():
    x, t = _sigmoid_case("binary", "float", seed=14)
    loss = segdice.DiceCELoss("binary")
    first = loss(x, t)
    torch.testing.assert_close(first, segdice.dice_ce_loss(x, t, "binary"))
    loss.smooth = 0.5
    torch.testing.assert_close(loss(x, t), segdice.dice_ce_loss(x, t, "binary", smooth=0.5))
    loss.ce_weight = -1.0
    with pytest.raises(segdice.SegDiceError, match="ce_weight"):
        loss(x, t)
    with pytest.raises(segdice.SegDiceError, match="ce_weight"):
        loss(x, t)  # still refused: a failed check is never cached
    loss.ce_weight = 0.5
    torch.testing.assert_close(loss(x, t), segdice.dice_ce_loss(x, t, "binary", smooth=0.5, ce_weight=0.5))
    loss.mode = "multiclass"  # one channel: refused by the multiclass checks
    with pytest.raises(segdice.SegDiceError, match="multiclass"):
        loss(x, t)
    focal = segdice.DiceFocalLoss("binary")
    focal(x, t)
    focal.alpha = [0.1, 0.9]
    with pytest.raises(segdice.SegDiceError, match="alpha"):
        focal(x, t)


@pytest.mark.parametrize("layout", ["volume", "channels_last", "permuted"])
@pytest.mark.parametrize("kind", ["none", "ce", "focal"])
def test_index_small_path_on_volumes_and_strided_logits(layout, kind):
    """The flat indices b C N + t N + i follow the logical order of any layout, and of 3-D volumes."""
    gen = torch.Generator().manual_seed(15)
    if layout == "volume":
        x = torch.randn(2, 3, 3, 4, 5, generator=gen, dtype=torch.float64)
        t = torch.randint(0, 3, (2, 3, 4, 5), generator=gen)
    else:
        x = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
        t = torch.randint(0, 3, (2, 4, 5), generator=gen)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, spatial dims swapped in memory
    loss = _loss(kind, "multiclass", {"per_image": True})
    leaf = x.detach().clone().requires_grad_(True)
    v = loss(leaf, t)
    (g,) = torch.autograd.grad(v, leaf)
    ref_leaf = x.detach().contiguous().clone().requires_grad_(True)
    c = x.shape[1]
    onehot = F.one_hot(t, c).movedim(-1, 1).double()
    logp = torch.log_softmax(ref_leaf, 1)
    p = logp.exp()
    dims = tuple(range(2, x.ndim))
    ref = (1 - (2 * (p * onehot).sum(dims) + SMOOTH) / ((p + onehot).sum(dims) + SMOOTH)).mean()
    log_pt = (logp * onehot).sum(1)
    if kind == "ce":
        ref = ref - log_pt.mean()
    elif kind == "focal":
        ref = ref - ((1 - log_pt.exp()) ** 2 * log_pt).mean()
    (g_ref,) = torch.autograd.grad(ref, ref_leaf)
    torch.testing.assert_close(v, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-12)
