"""The compound losses (Dice + CE, Dice + focal) against float64 references written here with plain torch.

The cross-entropy, BCE and focal terms of :class:`~segdice.DiceCELoss` and :class:`~segdice.DiceFocalLoss` are
computed inside the fused statistics kernels, with analytic gradients. Every value and gradient here is
checked against an autograd graph of textbook formulas in float64 (``F.cross_entropy``,
``F.binary_cross_entropy_with_logits``, a focal loss written out below), against
``torch.autograd.gradcheck``, and under ``torch.autocast`` and ``torch.compile``; large logits (scaled by 50
and 1000) check the log-sum-exp form, where a probability underflows but its logarithm must not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from segdice import DiceCELoss, DiceFocalLoss, SegDiceError, dice_ce_loss, dice_focal_loss


@pytest.fixture(autouse=True)
def _fused_kernels_only(monkeypatch):
    """These tests are about the fused kernels: small inputs must not take the plain-autograd path
    (tests/test_losses_lean.py checks that path against the same references)."""
    monkeypatch.setattr("segdice.stats._small.SMALL_INPUT", 0)

# ---------------------------------------------------------------------------------------------------
# float64 references: plain torch formulas, differentiated by autograd
# ---------------------------------------------------------------------------------------------------


def _valid_and_onehot(x, t, mode, ignore_index):
    """(g, valid) as float64 tensors of x's shape; g is 0 where valid is 0."""
    c = x.shape[1]
    if mode == "multiclass":
        t = t.reshape(x.shape[0], *x.shape[2:]).long()
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = F.one_hot(torch.where(valid, t, 0), c).movedim(-1, 1).double()
        valid = valid.unsqueeze(1).expand_as(g)
    else:
        t = t.reshape(x.shape)
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = torch.where(valid, t.double(), 0.0)
    return g * valid, valid.double()


def ref_dice(x, t, mode, *, per_image=False, ignore_index=None, class_weights=None, include_background=True,
             smooth=1e-5, reduction="mean"):  # fmt: skip
    x = x.double()
    p = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
    g, valid = _valid_and_onehot(x, t, mode, ignore_index)
    p = p * valid
    dims = tuple(range(2, x.ndim)) if per_image else (0, *range(2, x.ndim))
    i, s = (p * g).sum(dims), (p + g).sum(dims)
    loss = 1 - (2 * i + smooth) / (s + smooth)
    w = torch.ones(x.shape[1], dtype=torch.float64) if class_weights is None else torch.tensor(class_weights).double()
    if not include_background:
        loss, w = loss[..., 1:], w[1:]
    if reduction == "sum":
        return (loss * w).sum()
    return ((loss * w).sum(-1) / w.sum()).mean()


def ref_ce(x, t, mode, *, ignore_index=None, class_weights=None, label_smoothing=0.0, reduction="mean"):
    x = x.double()
    w = None if class_weights is None else torch.tensor(class_weights).double()
    if mode == "multiclass":
        t = t.reshape(x.shape[0], *x.shape[2:]).long()
        ii = -100 if ignore_index is None else ignore_index
        return F.cross_entropy(x, t, weight=w, ignore_index=ii, label_smoothing=label_smoothing, reduction=reduction)
    g, valid = _valid_and_onehot(x, t, mode, ignore_index)
    g = g * (1 - label_smoothing) + label_smoothing / 2
    elem = F.binary_cross_entropy_with_logits(x, g, reduction="none") * valid
    cw = valid if w is None else valid * w.view(1, -1, *([1] * (x.ndim - 2)))
    if reduction == "sum":
        return (elem * cw).sum()
    return (elem * cw).sum() / cw.sum()


def ref_focal(x, t, mode, *, gamma=2.0, alpha=None, ignore_index=None, reduction="mean"):
    """Softmax focal ``-alpha_t (1 - p_t)^gamma log p_t`` (multiclass), torchvision's sigmoid focal otherwise."""
    x = x.double()
    if mode == "multiclass":
        t = t.reshape(x.shape[0], *x.shape[2:]).long()
        ii = -100 if ignore_index is None else ignore_index
        ce = F.cross_entropy(x, t, ignore_index=ii, reduction="none")  # -log p_t, exact for large logits
        pt = torch.exp(-ce)
        per = (1 - pt) ** gamma * ce
        valid = (t != ii).double()
        if alpha is not None:
            per = per * torch.tensor(alpha).double()[torch.where(t != ii, t, 0)]
    else:
        g, valid = _valid_and_onehot(x, t, mode, ignore_index)
        ce = F.binary_cross_entropy_with_logits(x, g, reduction="none")
        p = torch.sigmoid(x)
        pt = p * g + (1 - p) * (1 - g)
        per = ce * (1 - pt) ** gamma
        if alpha is not None:
            per = per * (alpha * g + (1 - alpha) * (1 - g))
    per = per * valid
    return per.sum() if reduction == "sum" else per.sum() / valid.sum()


def _value_and_grad(fn, x):
    leaf = x.detach().clone().requires_grad_(True)
    out = fn(leaf)
    (grad,) = torch.autograd.grad(out, leaf)
    return out.detach(), grad


def _assert_matches(ours, ref, x, *, rtol=None, atol=None):
    """Value and gradient of ``ours(x)`` against ``ref(x.double())``."""
    v, g = _value_and_grad(ours, x)
    v_ref, g_ref = _value_and_grad(ref, x.double())
    assert torch.isfinite(v)
    kw = {} if rtol is None else {"rtol": rtol, "atol": atol}
    torch.testing.assert_close(v.double(), v_ref, **kw)
    torch.testing.assert_close(g.double(), g_ref, **kw)


def make(mode, b=2, c=3, spatial=(6, 7), *, seed=0, dtype=torch.float64, scale=2.0, target="int"):
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else c
    x = torch.randn(b, c, *spatial, generator=gen, dtype=torch.float64).mul(scale).to(dtype)
    if mode == "multiclass":
        t = torch.randint(0, c, (b, *spatial), generator=gen)
    else:
        t = torch.randint(0, 2, (b, c, *spatial), generator=gen)
        if target == "float":
            t = t.to(dtype)
    return x, t


def _tol(dtype, scale):
    if dtype == torch.float64:
        return {}
    # float32: sums of ~100 terms of size ~scale; the reference runs on the same float32 values in float64.
    return {"rtol": 2e-5, "atol": 2e-6 * max(1.0, scale)}


# ---------------------------------------------------------------------------------------------------
# Dice + cross-entropy
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 50.0, 1000.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ignore", [None, 255])
def test_dice_ce_multiclass_large_logits_match_cross_entropy(scale, dtype, ignore):
    """A pixel whose target probability underflows costs its full ``logsumexp(z) - z_t``, not 87.3."""
    x, t = make("multiclass", c=4, seed=1, dtype=dtype, scale=scale)
    if ignore is not None:
        t[:, 0] = ignore

    def ref(v):
        return ref_dice(v, t, "multiclass", ignore_index=ignore) + ref_ce(v, t, "multiclass", ignore_index=ignore)

    _assert_matches(lambda v: dice_ce_loss(v, t, "multiclass", ignore_index=ignore), ref, x, **_tol(dtype, scale))


def test_dice_ce_on_logits_times_50_is_the_true_value():
    """The case of the issue: float32 logits scaled by 50; the cross-entropy far exceeds 87.3 per pixel."""
    x, t = make("multiclass", b=2, c=4, spatial=(16, 16), seed=2, dtype=torch.float32, scale=50.0)
    got = dice_ce_loss(x, t, "multiclass").item()
    want = (ref_dice(x, t, "multiclass") + ref_ce(x, t, "multiclass")).item()
    assert got == pytest.approx(want, rel=1e-5)
    assert F.cross_entropy(x.double(), t, reduction="none").max() > 150  # the case really underflows


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 3.0, 2.0]])
@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("per_image", [False, True])
def test_dice_ce_multiclass_label_smoothing_weights_ignore(smoothing, weights, ignore, per_image):
    x, t = make("multiclass", c=4, seed=3)
    if ignore is not None:
        t[0, :2] = ignore
    kw = {"ignore_index": ignore, "class_weights": weights}

    def ours(v):
        return dice_ce_loss(v, t, "multiclass", label_smoothing=smoothing, per_image=per_image,
                            dice_weight=0.7, ce_weight=1.3, **kw)  # fmt: skip

    def ref(v):
        return 0.7 * ref_dice(v, t, "multiclass", per_image=per_image, **kw) + 1.3 * ref_ce(
            v, t, "multiclass", label_smoothing=smoothing, **kw
        )

    _assert_matches(ours, ref, x)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_dice_ce_label_smoothing_with_large_logits(scale):
    x, t = make("multiclass", c=3, seed=4, dtype=torch.float32, scale=scale)
    _assert_matches(
        lambda v: dice_ce_loss(v, t, "multiclass", label_smoothing=0.2),
        lambda v: ref_dice(v, t, "multiclass") + ref_ce(v, t, "multiclass", label_smoothing=0.2),
        x,
        **_tol(torch.float32, scale),
    )


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("bg", [True, False])
def test_dice_ce_multiclass_reduction_and_background(reduction, bg):
    x, t = make("multiclass", c=3, seed=5)
    _assert_matches(
        lambda v: dice_ce_loss(v, t, "multiclass", reduction=reduction, include_background=bg, label_smoothing=0.1),
        lambda v: ref_dice(v, t, "multiclass", reduction=reduction, include_background=bg)
        + ref_ce(v, t, "multiclass", reduction=reduction, label_smoothing=0.1),
        x,
    )


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("target", ["int", "float"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [2.0, 50.0, 1000.0])
def test_dice_ce_sigmoid_matches_bce_with_logits(mode, target, dtype, scale):
    x, t = make(mode, seed=6, dtype=dtype, scale=scale, target=target)
    _assert_matches(
        lambda v: dice_ce_loss(v, t, mode),
        lambda v: ref_dice(v, t, mode) + ref_ce(v, t, mode),
        x,
        **_tol(dtype, scale),
    )


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dice_ce_sigmoid_smoothing_weights_per_image(mode, smoothing, per_image, reduction):
    x, t = make(mode, c=3, seed=7)
    w = [0.5, 2.0, 1.0] if mode == "multilabel" else None
    kw = {"class_weights": w, "reduction": reduction}

    def ours(v):
        return dice_ce_loss(v, t, mode, label_smoothing=smoothing, per_image=per_image, ce_weight=0.6, **kw)

    def ref(v):
        return ref_dice(v, t, mode, per_image=per_image, **kw) + 0.6 * ref_ce(v, t, mode, label_smoothing=smoothing, **kw)

    _assert_matches(ours, ref, x)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_dice_ce_sigmoid_with_ignore_index(mode):
    x, t = make(mode, c=2, seed=8)
    t[:, :, 0] = 255
    _assert_matches(
        lambda v: dice_ce_loss(v, t, mode, ignore_index=255, label_smoothing=0.1),
        lambda v: ref_dice(v, t, mode, ignore_index=255) + ref_ce(v, t, mode, ignore_index=255, label_smoothing=0.1),
        x,
    )


# ---------------------------------------------------------------------------------------------------
# Dice + focal
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.5])
@pytest.mark.parametrize("alpha", [None, [0.2, 0.3, 0.5, 1.0]])
@pytest.mark.parametrize("ignore", [None, 255])
@pytest.mark.parametrize("per_image", [False, True])
def test_dice_focal_multiclass_matches_written_out_focal(gamma, alpha, ignore, per_image):
    x, t = make("multiclass", c=4, seed=9)
    if ignore is not None:
        t[1, 3:] = ignore
    kw = {"gamma": gamma, "alpha": alpha, "ignore_index": ignore}

    def ours(v):
        return dice_focal_loss(v, t, "multiclass", per_image=per_image, focal_weight=0.5, **kw)

    def ref(v):
        dice = ref_dice(v, t, "multiclass", per_image=per_image, ignore_index=ignore)
        return dice + 0.5 * ref_focal(v, t, "multiclass", **kw)

    _assert_matches(ours, ref, x)


@pytest.mark.parametrize("scale", [50.0, 1000.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_dice_focal_multiclass_large_logits(scale, dtype, gamma):
    x, t = make("multiclass", c=4, seed=10, dtype=dtype, scale=scale)
    _assert_matches(
        lambda v: dice_focal_loss(v, t, "multiclass", gamma=gamma),
        lambda v: ref_dice(v, t, "multiclass") + ref_focal(v, t, "multiclass", gamma=gamma),
        x,
        **_tol(dtype, scale),
    )


def test_dice_focal_with_gamma_zero_is_dice_ce():
    x, t = make("multiclass", c=3, seed=11)
    torch.testing.assert_close(dice_focal_loss(x, t, "multiclass", gamma=0.0), dice_ce_loss(x, t, "multiclass"))
    xb, tb = make("binary", seed=11)
    torch.testing.assert_close(dice_focal_loss(xb, tb, "binary", gamma=0.0), dice_ce_loss(xb, tb, "binary"))


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("target", ["int", "float"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dice_focal_sigmoid_matches_written_out_focal(mode, target, gamma, alpha, reduction):
    x, t = make(mode, c=3, seed=12, target=target)
    kw = {"gamma": gamma, "alpha": alpha, "reduction": reduction}
    _assert_matches(
        lambda v: dice_focal_loss(v, t, mode, dice_weight=0.4, **kw),
        lambda v: 0.4 * ref_dice(v, t, mode, reduction=reduction) + ref_focal(v, t, mode, **kw),
        x,
    )


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("scale", [50.0, 1000.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dice_focal_sigmoid_large_logits(mode, scale, dtype):
    x, t = make(mode, c=2, seed=13, dtype=dtype, scale=scale)
    _assert_matches(
        lambda v: dice_focal_loss(v, t, mode, alpha=0.25, per_image=True),
        lambda v: ref_dice(v, t, mode, per_image=True) + ref_focal(v, t, mode, alpha=0.25),
        x,
        **_tol(dtype, scale),
    )


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_dice_focal_sigmoid_with_ignore_index(mode):
    x, t = make(mode, c=2, seed=14)
    t[:, :, 1] = 255
    _assert_matches(
        lambda v: dice_focal_loss(v, t, mode, ignore_index=255, alpha=0.3),
        lambda v: ref_dice(v, t, mode, ignore_index=255) + ref_focal(v, t, mode, alpha=0.3, ignore_index=255),
        x,
    )


# ---------------------------------------------------------------------------------------------------
# gradcheck of every fused path (float64)
# ---------------------------------------------------------------------------------------------------

FUSED_PATHS = [
    ("ce", "multiclass", "int", {}),
    ("ce", "multiclass", "int", {"label_smoothing": 0.2, "class_weights": [1.0, 2.0, 0.5], "ignore_index": 255}),
    ("ce", "multiclass", "int", {"label_smoothing": 0.1, "per_image": True, "include_background": False}),
    ("ce", "binary", "int", {}),
    ("ce", "binary", "float", {"label_smoothing": 0.1, "per_image": True}),
    ("ce", "multilabel", "int", {"class_weights": [1.0, 2.0, 0.5], "reduction": "sum"}),
    ("focal", "multiclass", "int", {}),
    ("focal", "multiclass", "int", {"gamma": 0.5, "alpha": [0.2, 0.3, 0.5], "ignore_index": 255}),
    ("focal", "multiclass", "int", {"gamma": 3.0, "per_image": True, "reduction": "sum"}),
    ("focal", "binary", "int", {"alpha": 0.25}),
    ("focal", "binary", "float", {"gamma": 0.5, "per_image": True}),
    ("focal", "multilabel", "int", {"gamma": 1.0, "alpha": 0.7, "reduction": "sum"}),
    ("focal", "multilabel", "float", {"gamma": 0.0}),
]


def _fused_fn(kind, mode, t, kw):
    fn = dice_ce_loss if kind == "ce" else dice_focal_loss
    return lambda v: fn(v, t, mode, **kw)


@pytest.mark.parametrize("kind,mode,target,kw", FUSED_PATHS)
def test_gradcheck_fused_paths(kind, mode, target, kw):
    x, t = make(mode, b=2, c=3, spatial=(3, 4), seed=15, target=target)
    if "ignore_index" in kw:
        t = t.clone()
        t.view(-1)[::5] = kw["ignore_index"]
    fn = _fused_fn(kind, mode, t, kw)
    assert torch.autograd.gradcheck(fn, (x.requires_grad_(True),))


@pytest.mark.parametrize("kind,mode,target,kw", FUSED_PATHS[:1] + FUSED_PATHS[3:4] + FUSED_PATHS[7:8] + FUSED_PATHS[9:10])
def test_second_backward_through_a_retained_graph_is_identical(kind, mode, target, kw):
    x, t = make(mode, seed=16, target=target, dtype=torch.float32)
    if "ignore_index" in kw:
        t.view(-1)[::5] = kw["ignore_index"]
    leaf = x.requires_grad_(True)
    loss = _fused_fn(kind, mode, t, kw)(leaf)
    (g1,) = torch.autograd.grad(loss, leaf, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, leaf)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize("kind,mode,target,kw", FUSED_PATHS)
def test_target_is_never_modified(kind, mode, target, kw):
    x, t = make(mode, seed=17, target=target, dtype=torch.float32)
    before = t.clone()
    _fused_fn(kind, mode, t, kw)(x.requires_grad_(True)).backward()
    assert torch.equal(t, before)


# ---------------------------------------------------------------------------------------------------
# autocast, compile, modules
# ---------------------------------------------------------------------------------------------------

AUTOCAST_CASES = [
    ("ce", "multiclass", {}),
    ("ce", "multiclass", {"label_smoothing": 0.1}),
    ("ce", "binary", {}),
    ("focal", "multiclass", {"alpha": [0.2, 0.3, 0.5]}),
    ("focal", "binary", {"alpha": 0.25}),
    ("focal", "multilabel", {}),
]


@pytest.mark.parametrize("kind,mode,kw", AUTOCAST_CASES)
@pytest.mark.parametrize("logits", ["bf16", "float32"])
def test_bf16_autocast_matches_the_float64_reference(kind, mode, kw, logits):
    """Under autocast the sums still run in float32: bf16 logits (a conv's output) or float32 ones."""
    x, t = make(mode, b=2, c=3, spatial=(8, 8), seed=18, dtype=torch.float32)
    leaf = (x.bfloat16() if logits == "bf16" else x).requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inp = leaf * 1.0  # an op under autocast; bf16 stays bf16, float32 stays float32
        loss = _fused_fn(kind, mode, t, kw)(inp)
    assert loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss, leaf)
    assert grad.dtype == leaf.dtype
    ref_fn = ref_ce if kind == "ce" else ref_focal

    def ref(v):
        return ref_dice(v, t, mode) + ref_fn(v, t, mode, **kw)

    v_ref, g_ref = _value_and_grad(ref, leaf.detach().double())
    torch.testing.assert_close(loss.detach().double(), v_ref, rtol=1e-5, atol=1e-6)
    # The gradient is returned in the logits' dtype: bf16 rounding (8 bits) for bf16 logits.
    tol = {"rtol": 1e-2, "atol": 1e-4} if logits == "bf16" else {"rtol": 1e-5, "atol": 1e-7}
    torch.testing.assert_close(grad.double(), g_ref, **tol)


COMPILE_CASES = [
    ("ce", "multiclass", "int", {"label_smoothing": 0.1}),
    ("ce", "binary", "int", {}),
    ("focal", "multiclass", "int", {"alpha": [0.2, 0.3, 0.5]}),
    ("focal", "binary", "float", {"alpha": 0.25}),
]


def _check_compiled(kind, mode, target, kw, backend):
    x, t = make(mode, b=2, c=3, spatial=(8, 8), seed=19, target=target, dtype=torch.float32)
    fn = _fused_fn(kind, mode, t, kw)
    compiled = torch.compile(fn, backend=backend, fullgraph=False)
    v, g = _value_and_grad(compiled, x)
    ref_fn = ref_ce if kind == "ce" else ref_focal
    v_ref, g_ref = _value_and_grad(lambda u: ref_dice(u, t, mode) + ref_fn(u, t, mode, **kw), x.double())
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,target,kw", COMPILE_CASES[0::2])
def test_runs_under_torch_compile_aot_eager(kind, mode, target, kw):
    """The fused index kernel (cross-entropy with smoothing, focal) traced by dynamo."""
    torch._dynamo.reset()
    _check_compiled(kind, mode, target, kw, "aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,target,kw", COMPILE_CASES[1::2])
def test_runs_under_torch_compile_aot_eager_sigmoid(kind, mode, target, kw):
    torch._dynamo.reset()
    _check_compiled(kind, mode, target, kw, "aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,target,kw", COMPILE_CASES[:1] + COMPILE_CASES[3:])
def test_runs_under_torch_compile_inductor(kind, mode, target, kw):
    torch._dynamo.reset()
    _check_compiled(kind, mode, target, kw, "inductor")


def test_modules_read_their_settings_and_match_the_functions():
    x, t = make("multiclass", c=3, seed=20)
    ce = DiceCELoss("multiclass", label_smoothing=0.1, ignore_index=255)
    focal = DiceFocalLoss("multiclass", gamma=1.5, alpha=[0.2, 0.3, 0.5])
    torch.testing.assert_close(ce(x, t), dice_ce_loss(x, t, "multiclass", label_smoothing=0.1, ignore_index=255))
    torch.testing.assert_close(
        focal(x, t), dice_focal_loss(x, t, "multiclass", gamma=1.5, alpha=[0.2, 0.3, 0.5])
    )
    xb, tb = make("binary", seed=20)
    module = DiceFocalLoss("binary", alpha=0.25)
    first = module(xb, tb)
    torch.testing.assert_close(first, dice_focal_loss(xb, tb, "binary", alpha=0.25))


# ---------------------------------------------------------------------------------------------------
# memory: one extra logits-sized tensor (measured in a fresh process, not timed)
# ---------------------------------------------------------------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import segdice
    torch.set_num_threads(1)
    def rss(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    gen = torch.Generator().manual_seed(0)
    out = []
    for name, mode, shape, kw in [
        ("ce", "multiclass", (8, 4, 128, 128), {}),
        ("ce", "multiclass", (8, 4, 128, 128), {"label_smoothing": 0.1}),
        ("focal", "multiclass", (8, 4, 128, 128), {}),
        ("ce", "binary", (16, 1, 128, 128), {}),
        ("focal", "binary", (16, 1, 128, 128), {"alpha": 0.25}),
    ]:
        x = torch.randn(*shape, generator=gen).requires_grad_(True)
        if mode == "multiclass":
            t = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
        else:
            t = torch.randint(0, 2, shape, generator=gen)
        cls = segdice.DiceCELoss if name == "ce" else segdice.DiceFocalLoss
        loss = cls(mode, **kw)
        loss(x, t).backward(); x.grad = None
        open("/proc/self/clear_refs", "w").write("5")
        base = rss("VmRSS")
        loss(x, t).backward()
        out.append((rss("VmHWM") - base) / (x.numel() * 4))
        del x, t
    print(" ".join(f"{v:.3f}" for v in out))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset")
def test_fused_losses_peak_memory_stays_under_two_logits():
    """Peak RSS rise of forward + backward (gradient included), fresh process, 64 KiB mmap threshold."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    ratios = [float(v) for v in out.stdout.split()]
    assert len(ratios) == 5 and max(ratios) < 2.0, ratios


@pytest.mark.parametrize("kind,mode,target,kw", FUSED_PATHS[::3])
def test_a_nan_logit_gives_a_nan_loss(kind, mode, target, kw):
    x, t = make(mode, seed=21, target=target, dtype=torch.float32)
    if "ignore_index" in kw:
        t.view(-1)[1::5] = kw["ignore_index"]
    x.view(-1)[0] = float("nan")
    assert torch.isnan(_fused_fn(kind, mode, t, kw)(x))


@pytest.mark.parametrize(
    "kind,mode,kw",
    [
        ("ce", "multiclass", {"label_smoothing": 0.1, "ignore_index": 255, "class_weights": [1.0, 2.0, 0.5]}),
        ("focal", "multiclass", {"gamma": 0.5, "alpha": [0.2, 0.3, 0.5], "per_image": True}),
        ("ce", "binary", {"label_smoothing": 0.1}),
        ("focal", "multilabel", {"alpha": 0.25, "per_image": True}),
    ],
)
def test_inputs_larger_than_one_chunk_match_the_reference(kind, mode, kw):
    """Several slabs and chunks (the kernels work in pieces of 2**16 values): the pieces must add up."""
    x, t = make(mode, b=3, c=3 if mode != "binary" else 1, spatial=(150, 170), seed=22)
    if "ignore_index" in kw:
        t.view(-1)[::7] = kw["ignore_index"]
    per_image = kw.get("per_image", False)
    ignore = kw.get("ignore_index")
    weights = kw.get("class_weights")
    ref_term = ref_ce if kind == "ce" else ref_focal
    term_kw = {k: v for k, v in kw.items() if k not in ("per_image",)}

    def ref(v):
        return ref_dice(v, t, mode, per_image=per_image, ignore_index=ignore, class_weights=weights) + ref_term(
            v, t, mode, **term_kw
        )

    _assert_matches(_fused_fn(kind, mode, t, kw), ref, x)


TRACED_SIGMOID_CASES = [
    ("ce", "binary", "int", {}),
    ("ce", "multilabel", "int", {"label_smoothing": 0.1}),
    ("focal", "binary", "int", {"gamma": 0.5, "alpha": 0.25}),
    ("focal", "multilabel", "int", {"gamma": 1.0}),
    ("focal", "binary", "int", {"gamma": 0.0}),
    ("ce", "binary", "float", {}),  # a float mask: the eager kernels inside the compiled code
    ("focal", "multilabel", "float", {}),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,target,kw", TRACED_SIGMOID_CASES)
def test_sigmoid_kernels_traced_whole_under_torch_compile(kind, mode, target, kw):
    """Compiled, binary/multilabel losses with integer targets trace in one graph (fullgraph: no break), the
    fused sigmoid kernel as whole-tensor expressions; float masks run the eager kernels inside the compiled
    code. Values and gradients are the float64 reference's, and a non-finite logit still gives a NaN loss."""
    torch._dynamo.reset()
    x, t = make(mode, b=2, c=3, spatial=(8, 8), seed=23, target=target, dtype=torch.float32)
    fn = _fused_fn(kind, mode, t, kw)
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=target == "int")
    v, g = _value_and_grad(compiled, x)
    ref_fn = ref_ce if kind == "ce" else ref_focal
    v_ref, g_ref = _value_and_grad(lambda u: ref_dice(u, t, mode) + ref_fn(u, t, mode, **kw), x.double())
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-7)
    bad = x.detach().clone()
    bad.view(-1)[3] = float("inf")
    assert torch.isnan(compiled(bad))


INDUCTOR_SIGMOID_CASES = [
    ("dice", "binary", {}),
    ("ce", "multilabel", {"label_smoothing": 0.1}),
    ("focal", "binary", {"alpha": 0.25}),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,kw", INDUCTOR_SIGMOID_CASES)
def test_sigmoid_kernel_compiled_by_inductor_matches_the_float64_reference(kind, mode, kw):
    """Inductor itself (the traced sums share one exp(-|x|) and group their logs): Dice alone, the smoothed
    BCE and the alpha-weighted focal term give the float64 reference's values and gradients on ordinary
    and on 50x logits; an infinite logit still gives NaN (Dice alone now flags it in the traced sums)."""
    from segdice import dice_loss

    torch._dynamo.reset()
    fn = {"dice": dice_loss, "ce": dice_ce_loss, "focal": dice_focal_loss}[kind]
    term = {"dice": None, "ce": ref_ce, "focal": ref_focal}[kind]
    compiled = torch.compile(fn, backend="inductor", dynamic=False)
    for scale in (2.0, 50.0):
        x, t = make(mode, b=2, c=3, spatial=(8, 8), seed=31, target="int", dtype=torch.float32, scale=scale)

        def ref(u, t=t):
            return ref_dice(u, t, mode) + (term(u, t, mode, **kw) if term else 0.0)

        _assert_compiled_matches(compiled, t, mode, kw, ref, x, float("inf"))


def _assert_compiled_matches(compiled, t, mode, kw, ref, x, nonfinite):
    """``compiled(x, t, mode, **kw)``: value and gradient against ``ref(x.double())`` (the float64 tolerances
    of this file), and NaN once one logit is ``nonfinite``."""
    v, g = _value_and_grad(lambda u: compiled(u, t, mode, **kw), x)
    v_ref, g_ref = _value_and_grad(ref, x.double())
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-7)
    bad = x.detach().clone()
    bad.view(-1)[3] = nonfinite
    assert torch.isnan(compiled(bad, t, mode, **kw))


@pytest.mark.slow
@pytest.mark.parametrize("value", [2, -1, 256, 257])
def test_a_compiled_integer_binary_target_out_of_range_is_refused_by_name(value):
    """Compiled, the 0/1 check of an integer binary/multilabel target still runs (inside an opaque op, on
    its float16 copy): 2 and -1, and 256 and 257, which a one-byte copy would wrap to 0 and 1."""
    torch._dynamo.reset()
    x, t = make("binary", b=2, spatial=(8, 8), seed=37, target="int", dtype=torch.float32)
    compiled = torch.compile(dice_ce_loss, backend="aot_eager", fullgraph=True)
    assert torch.isfinite(compiled(x, t, "binary"))
    bad = t.clone()
    bad.view(-1)[7] = value
    with pytest.raises(SegDiceError, match=r"target: .*expected values in \[0, 1\] in mode 'binary'"):
        compiled(x, bad, "binary")


def _ref_dice_semimetric(x, t, mode, *, per_image=False, smooth=1e-5):
    """Soft Dice with the semimetric intersection ``(p + g - |p - g|) / 2`` per element (= ``p g`` on 0/1)."""
    p = torch.sigmoid(x.double())
    g = t.double().reshape(x.shape)
    dims = tuple(range(2, x.ndim)) if per_image else (0, *range(2, x.ndim))
    i = (0.5 * (p + g - (p - g).abs())).sum(dims)
    loss = 1 - (2 * i + smooth) / ((p + g).sum(dims) + smooth)
    return loss.mean()


FLOAT_TARGET_CASES = [
    ("ce", "binary", "hard", {}),
    ("ce", "multilabel", "soft", {"label_smoothing": 0.1}),
    ("dice", "binary", "soft", {"per_image": True}),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,target,kw", FLOAT_TARGET_CASES)
def test_compiled_float_targets_trace_and_match_the_float64_reference(kind, mode, target, kw):
    """Compiled, a float binary/multilabel target (without a focal term) is traced too, in the form for soft
    targets: the semimetric intersection and the BCE against the (smoothed) target, whose values and
    gradients match the float64 reference on a 0/1 mask and on a soft target; a non-finite logit gives NaN."""
    from segdice import dice_loss

    torch._dynamo.reset()
    x, t = make(mode, b=2, c=3, spatial=(8, 8), seed=41, target="int", dtype=torch.float32)
    t = t.float() if target == "hard" else torch.rand(t.shape, generator=torch.Generator().manual_seed(5))
    fn = dice_ce_loss if kind == "ce" else dice_loss
    compiled = torch.compile(fn, backend="inductor", dynamic=False, fullgraph=True)

    def ref(u):
        per_image = kw.get("per_image", False)
        dice = _ref_dice_semimetric(u, t, mode, per_image=per_image)
        return dice + ref_ce(u, t, mode, label_smoothing=kw.get("label_smoothing", 0.0)) if kind == "ce" else dice

    _assert_compiled_matches(compiled, t, mode, kw, ref, x, float("-inf"))


@pytest.mark.slow
@pytest.mark.parametrize("value", [1.5, -0.25, float("nan")])
def test_a_compiled_float_binary_target_out_of_range_is_refused_by_name(value):
    torch._dynamo.reset()
    x, t = make("binary", b=2, spatial=(8, 8), seed=43, target="int", dtype=torch.float32)
    compiled = torch.compile(dice_ce_loss, backend="aot_eager", fullgraph=True)
    bad = t.float()
    bad.view(-1)[9] = value
    with pytest.raises(SegDiceError, match=r"target: .*expected values in \[0, 1\] in mode 'binary'"):
        compiled(x, bad, "binary")


@pytest.mark.slow
def test_compiled_multiclass_losses_run_the_eager_kernel_with_its_checks():
    """Compiled, the multiclass statistics run eagerly as a whole (their buffers cannot be traced): the same
    values as the reference, and the label check still names a bad label instead of a raw RuntimeError."""
    torch._dynamo.reset()
    x, t = make("multiclass", b=2, c=3, spatial=(8, 8), seed=29, target="int", dtype=torch.float32)
    compiled = torch.compile(_fused_fn("focal", "multiclass", t, {}), backend="aot_eager")
    v, g = _value_and_grad(compiled, x)
    v_ref, g_ref = _value_and_grad(lambda u: ref_dice(u, t, "multiclass") + ref_focal(u, t, "multiclass"), x.double())
    torch.testing.assert_close(v.double(), v_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.double(), g_ref, rtol=1e-4, atol=1e-7)
    bad = t.clone()
    bad[0, 0, 0] = 3
    with pytest.raises(SegDiceError, match=r"class indices in \[0, 2\]"):
        torch.compile(lambda v: dice_ce_loss(v, bad, "multiclass"), backend="aot_eager")(x)
