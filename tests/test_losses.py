"""segdice.losses against naive references written here (one-hot, loops, float64) and their properties."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given

import segdice
from segdice import (
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    SegDiceError,
    TverskyLoss,
    dice_ce_loss,
    dice_focal_loss,
    dice_loss,
    generalized_dice_loss,
    jaccard_loss,
    tversky_loss,
)

# ---------------------------------------------------------------------------------------------------
# naive reference: explicit probabilities and one-hot targets, a Python loop over groups and classes
# ---------------------------------------------------------------------------------------------------


def ref_probs_and_target(x, target, mode, ignore_index=None):
    x = x.detach().double()
    c = x.shape[1]
    p = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
    if mode == "multiclass" and not target.is_floating_point() and target.shape != x.shape:
        t = target.reshape(x.shape[0], *x.shape[2:]).long()
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = F.one_hot(torch.where(valid, t, 0), c).movedim(-1, 1).double()
        valid = valid.unsqueeze(1).expand_as(g).clone()
        soft = False
    else:
        t = target.reshape(x.shape)
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = t.double()
        soft = t.is_floating_point()
    g = torch.where(valid, g, 0.0)
    p = torch.where(valid, p, 0.0)
    return p, g, valid, soft


def ref_per_class(x, target, mode, kind="dice", *, smooth=1e-5, per_image=False, include_background=True,
                  ignore_index=None, squared=False, alpha=0.5, beta=0.5, gamma=1.0, log=False):  # fmt: skip
    p, g, _, soft = ref_probs_and_target(x, target, mode, ignore_index)
    groups = [(slice(i, i + 1),) for i in range(x.shape[0])] if per_image else [(slice(None),)]
    out = []
    for grp in groups:
        row = []
        for c in range(0 if include_background else 1, x.shape[1]):
            pc, gc = p[grp][:, c], g[grp][:, c]
            if squared:
                i, pp, gg = float((pc * gc).sum()), float((pc**2).sum()), float((gc**2).sum())
            else:
                pp, gg = float(pc.sum()), float(gc.sum())
                i = 0.5 * (pp + gg - float((pc - gc).abs().sum())) if soft else float((pc * gc).sum())
            if kind == "dice":
                r = (2 * i + smooth) / (pp + gg + smooth)
            elif kind == "jaccard":
                r = (i + smooth) / (pp + gg - i + smooth)
            else:
                r = (i + smooth) / (i + alpha * (pp - i) + beta * (gg - i) + smooth)
            v = -math.log(r) if log else 1 - r
            gm = gamma[c - (0 if include_background else 1)] if isinstance(gamma, list) else gamma
            row.append(v if gm == 1 else max(v, 0.0) ** gm)
        out.append(row)
    t = torch.tensor(out, dtype=torch.float64)
    return t if per_image else t[0]


def make(mode, b=2, c=3, spatial=(5, 6), *, kind="index", seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else c
    x = (torch.randn(b, c, *spatial, generator=gen, dtype=dtype) * 2).requires_grad_(True)
    if mode == "multiclass" and kind == "index":
        t = torch.randint(0, c, (b, *spatial), generator=gen)
    elif kind == "soft":
        t = torch.rand(b, c, *spatial, generator=gen, dtype=dtype)
    elif mode == "multiclass":
        t = F.one_hot(torch.randint(0, c, (b, *spatial), generator=gen), c).movedim(-1, 1).to(dtype)
    else:
        t = torch.randint(0, 2, (b, c, *spatial), generator=gen)
    return x, t


MODE_KINDS = [("multiclass", "index"), ("multiclass", "hard"), ("binary", "hard"), ("binary", "soft"),
              ("multilabel", "hard"), ("multilabel", "soft")]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# values against the reference
# ---------------------------------------------------------------------------------------------------


@given(
    mk=st.sampled_from(MODE_KINDS),
    kind=st.sampled_from(["dice", "jaccard", "tversky"]),
    per_image=st.booleans(),
    squared=st.booleans(),
    log=st.booleans(),
    bg=st.booleans(),
    ignore=st.sampled_from([None, 255, -100]),
    spatial=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seed=st.integers(0, 1000),
)
def test_overlap_losses_match_reference(mk, kind, per_image, squared, log, bg, ignore, spatial, seed):
    mode, tkind = mk
    if mode != "multiclass":
        bg = True
    x, t = make(mode, spatial=tuple(spatial), kind=tkind, seed=seed)
    if ignore is not None:
        pixel = (torch.arange(x[:, :1].numel()) % 3 == 0).reshape(x[:, :1].shape)  # every third pixel
        mask = pixel[:, 0] if t.ndim == x.ndim - 1 else pixel.expand_as(t)
        t = torch.where(mask, torch.full_like(t, ignore), t)
    kwargs = {
        "per_image": per_image,
        "squared": squared,
        "log": log,
        "include_background": bg,
        "ignore_index": ignore,
    }
    extra = {"alpha": 0.3, "beta": 0.8} if kind == "tversky" else {}
    fn = {"dice": dice_loss, "jaccard": jaccard_loss, "tversky": tversky_loss}[kind]
    got = fn(x, t, mode, reduction="none", **kwargs, **extra)
    want = ref_per_class(x, t, mode, kind, **kwargs, **extra)
    torch.testing.assert_close(got.detach(), want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fn(x, t, mode, **kwargs, **extra).detach(), want.mean(), rtol=1e-9, atol=1e-9)


def test_class_weights_give_the_weighted_class_mean():
    x, t = make("multiclass", c=4)
    w = [0.0, 1.0, 2.0, 5.0]
    per_class = ref_per_class(x, t, "multiclass", per_image=True)
    want = ((per_class * torch.tensor(w, dtype=torch.float64)).sum(1) / sum(w)).mean()
    got = dice_loss(x, t, "multiclass", per_image=True, class_weights=w)
    torch.testing.assert_close(got.detach(), want)
    # without background the weight vector still has one entry per channel; w[0] is dropped with it
    no_bg = ref_per_class(x, t, "multiclass", include_background=False)
    got = dice_loss(x, t, "multiclass", include_background=False, class_weights=w)
    torch.testing.assert_close(got.detach(), (no_bg * torch.tensor(w[1:], dtype=torch.float64)).sum() / 8)
    got_sum = dice_loss(x, t, "multiclass", include_background=False, class_weights=w, reduction="sum")
    torch.testing.assert_close(got_sum.detach(), (no_bg * torch.tensor(w[1:], dtype=torch.float64)).sum())


def test_tversky_gamma_per_class_is_applied_before_the_mean():
    x, t = make("multilabel", kind="soft", c=3)
    gammas = [0.5, 1.0, 2.0]
    want = ref_per_class(x, t, "multilabel", "tversky", alpha=0.7, beta=0.3, gamma=gammas)
    got = tversky_loss(x, t, "multilabel", alpha=0.7, beta=0.3, gamma=gammas, reduction="none")
    torch.testing.assert_close(got.detach(), want)
    mean_then_pow = ref_per_class(x, t, "multilabel", "tversky", alpha=0.7, beta=0.3).mean() ** 2
    assert not torch.isclose(tversky_loss(x, t, "multilabel", alpha=0.7, beta=0.3, gamma=2.0), mean_then_pow)


def test_tversky_alpha_weighs_false_positives_and_beta_false_negatives():
    probs = torch.tensor([[[[0.9, 0.8, 0.0, 0.0]]]], dtype=torch.float64)  # 1 TP-ish, 1 FP, 0 FN
    mask = torch.tensor([[[[1.0, 0.0, 0.0, 0.0]]]], dtype=torch.float64)
    base = {"from_logits": False, "smooth": 0.0}
    fp_heavy = tversky_loss(probs, mask, "binary", alpha=0.9, beta=0.1, **base)
    fn_heavy = tversky_loss(probs, mask, "binary", alpha=0.1, beta=0.9, **base)
    # only false positives (0.8) and a small false negative (0.1): alpha must matter more
    tp, fp, fn = 0.9, 0.8, 0.1
    assert fp_heavy.item() == pytest.approx(1 - tp / (tp + 0.9 * fp + 0.1 * fn))
    assert fn_heavy.item() == pytest.approx(1 - tp / (tp + 0.1 * fp + 0.9 * fn))
    assert fp_heavy > fn_heavy


def test_tversky_special_cases_equal_dice_and_jaccard():
    x, t = make("multiclass", c=4, seed=3)
    # (I + s) / ((P + G) / 2 + s) = (2I + 2s) / (P + G + 2s): Dice with twice the smoothing
    torch.testing.assert_close(tversky_loss(x, t, "multiclass"), dice_loss(x, t, "multiclass", smooth=2e-5))
    torch.testing.assert_close(
        tversky_loss(x, t, "multiclass", alpha=1.0, beta=1.0), jaccard_loss(x, t, "multiclass")
    )


def ref_gdl(x, t, mode, weight, per_image, smooth, include_background=True):
    p, g, _, _ = ref_probs_and_target(x, t, mode)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    dims = tuple(range(2, x.ndim))
    if not per_image:
        dims = (0, *dims)
    i, pp, gg = (p * g).sum(dims), p.sum(dims), g.sum(dims)
    rows = [(i, pp, gg)] if not per_image else list(zip(i, pp, gg, strict=True))
    out = []
    for ii, pr, gr in rows:
        w = []
        for gc in gr.tolist():
            w.append(None if gc == 0 else {"square": 1 / gc**2, "simple": 1 / gc, "uniform": 1.0}[weight])
        present = [v for v in w if v is not None]
        w = [1.0] * len(w) if not present else [v if v is not None else max(present) for v in w]
        w = torch.tensor(w, dtype=torch.float64)
        w = w / w.sum()
        out.append(1 - (2 * (w * ii).sum() + smooth) / ((w * (pr + gr)).sum() + smooth))
    return torch.stack(out)


@pytest.mark.parametrize("weight", ["square", "simple", "uniform"])
@pytest.mark.parametrize("per_image", [True, False])
def test_generalized_dice_matches_reference_with_an_absent_class(weight, per_image):
    x, t = make("multiclass", b=3, c=4, seed=5)
    t = t.clone()
    t[0][t[0] == 2] = 1  # class 2 absent from image 0
    got = generalized_dice_loss(x, t, "multiclass", weight=weight, per_image=per_image, reduction="none")
    want = ref_gdl(x, t, "multiclass", weight, per_image, 1e-5)
    torch.testing.assert_close(got.detach(), want.reshape(got.shape))
    assert torch.isfinite(got).all()


def test_generalized_dice_with_no_class_present_uses_uniform_weights():
    probs = torch.full((1, 1, 4, 4), 0.25, dtype=torch.float64)
    empty = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    got = generalized_dice_loss(probs, empty, "binary", from_logits=False)
    assert got.item() == pytest.approx(1 - 1e-5 / (4 + 1e-5))


# ---------------------------------------------------------------------------------------------------
# compound losses
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255, -100])
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 3.0]])
def test_dice_ce_equals_dice_plus_torch_cross_entropy(per_image, ignore, weights):
    x, t = make("multiclass", b=3, c=3, seed=7)
    if ignore is not None:
        t = t.clone()
        t[:, 0] = ignore
    got = dice_ce_loss(x, t, "multiclass", per_image=per_image, ignore_index=ignore, class_weights=weights,
                       dice_weight=0.7, ce_weight=1.3)  # fmt: skip
    dice = ref_per_class(x, t, "multiclass", per_image=per_image, ignore_index=ignore)
    if weights is not None:
        w = torch.tensor(weights, dtype=torch.float64)
        dice = (dice * w).sum(-1) / w.sum()
    ce = F.cross_entropy(x.detach(), t, weight=None if weights is None else torch.tensor(weights).double(),
                         ignore_index=-100 if ignore is None else ignore)  # fmt: skip
    torch.testing.assert_close(got.detach(), 0.7 * dice.mean() + 1.3 * ce)


@pytest.mark.parametrize("mode,kind", [("binary", "hard"), ("multilabel", "soft"), ("multilabel", "hard")])
def test_dice_ce_binary_multilabel_uses_bce_with_logits(mode, kind):
    x, t = make(mode, kind=kind, seed=8)
    got = dice_ce_loss(x, t, mode)
    want = ref_per_class(x, t, mode).mean() + F.binary_cross_entropy_with_logits(x.detach(), t.double())
    torch.testing.assert_close(got.detach(), want)


def test_dice_ce_label_smoothing_and_soft_targets_use_the_separate_path():
    x, t = make("multiclass", c=4, seed=9)
    got = dice_ce_loss(x, t, "multiclass", label_smoothing=0.1, ignore_index=None)
    want = ref_per_class(x, t, "multiclass").mean() + F.cross_entropy(x.detach(), t, label_smoothing=0.1)
    torch.testing.assert_close(got.detach(), want)
    xs, ts = make("multiclass", c=4, kind="soft", seed=9)
    ts = ts / ts.sum(1, keepdim=True)
    got = dice_ce_loss(xs, ts, "multiclass")
    want = ref_per_class(xs, ts, "multiclass").mean() + F.cross_entropy(xs.detach(), ts)
    torch.testing.assert_close(got.detach(), want)


def ref_focal(x, t, mode, gamma, alpha):
    x = x.detach().double()
    if mode == "multiclass":
        logp = torch.log_softmax(x, 1)
        lp = torch.gather(logp, 1, t.unsqueeze(1)).squeeze(1)
        a = 1.0 if alpha is None else torch.tensor(alpha, dtype=torch.float64)[t]
        return (-a * (1 - lp.exp()) ** gamma * lp).mean()
    p = torch.sigmoid(x)
    g = t.double()
    loss = -(g * torch.log(p) + (1 - g) * torch.log(1 - p))
    pt = p * g + (1 - p) * (1 - g)
    a = 1.0 if alpha is None else alpha * g + (1 - alpha) * (1 - g)
    return (a * loss * (1 - pt) ** gamma).mean()


@pytest.mark.parametrize(
    "mode,kind,alpha",
    [
        ("multiclass", "index", None),
        ("multiclass", "index", [0.2, 0.3, 0.5]),
        ("binary", "hard", 0.25),
        ("multilabel", "soft", None),
    ],
)
def test_dice_focal_matches_reference(mode, kind, alpha):
    x, t = make(mode, kind=kind, seed=10)
    got = dice_focal_loss(x, t, mode, gamma=2.0, alpha=alpha, focal_weight=0.5)
    want = ref_per_class(x, t, mode).mean() + 0.5 * ref_focal(x, t, mode, 2.0, alpha)
    torch.testing.assert_close(got.detach(), want)


# ---------------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------------

ALL_LOSSES = [dice_loss, jaccard_loss, tversky_loss, generalized_dice_loss, dice_ce_loss, dice_focal_loss]


@pytest.mark.parametrize("fn", ALL_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("mode,kind", MODE_KINDS)
def test_gradcheck_every_loss_and_mode(fn, mode, kind):
    x, t = make(mode, b=2, c=3, spatial=(3, 3), kind=kind, seed=11)
    extra = {"alpha": 0.3, "beta": 0.7, "gamma": 1.5} if fn is tversky_loss else {}
    assert torch.autograd.gradcheck(lambda inp: fn(inp, t, mode, per_image=True, **extra), (x,))
    assert torch.autograd.gradcheck(lambda inp: fn(inp, t, mode, ignore_index=255, **extra), (x,))


def test_gradient_matches_autograd_through_the_naive_formula():
    x, t = make("multiclass", b=2, c=4, spatial=(6, 6), seed=12)
    dice_loss(x, t, "multiclass", include_background=False, squared=True).backward()
    ours = x.grad.clone()
    x.grad = None
    p = torch.softmax(x, 1)[:, 1:]
    g = F.one_hot(t, 4).movedim(-1, 1)[:, 1:].double()
    i, d = (p * g).sum((0, 2, 3)), (p * p).sum((0, 2, 3)) + (g * g).sum((0, 2, 3))
    (1 - (2 * i + 1e-5) / (d + 1e-5)).mean().backward()
    torch.testing.assert_close(ours, x.grad)


# ---------------------------------------------------------------------------------------------------
# ignore_index, empty classes, soft labels, per_image
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("mode,kind", MODE_KINDS)
@pytest.mark.parametrize("ignore", [255, -100])
def test_ignore_index_equals_cropping_the_ignored_pixels(fn, mode, kind, ignore):
    """Ignoring the last two columns gives the loss of the tensor without them: value and gradient."""
    x, t = make(mode, b=2, c=3, spatial=(4, 7), kind=kind, seed=13)
    t_ign = t.clone()
    if mode == "multiclass" and kind == "index":
        t_ign[..., 5:] = ignore
    else:
        t_ign[..., 5:] = ignore  # every channel of those pixels
    extra = {"alpha": 0.3, "beta": 0.7} if fn is tversky_loss else {}
    got = fn(x, t_ign, mode, ignore_index=ignore, **extra)
    (g_got,) = torch.autograd.grad(got, x)
    x_crop = x.detach()[..., :5].clone().requires_grad_(True)
    want = fn(x_crop, t[..., :5], mode, **extra)
    (g_want,) = torch.autograd.grad(want, x_crop)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got[..., :5], g_want)
    assert (g_got[..., 5:] == 0).all()


@pytest.mark.parametrize(
    "fn", [dice_loss, jaccard_loss, tversky_loss, generalized_dice_loss], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("smooth", [1e-5, 0.0])
def test_empty_target_and_empty_prediction_give_zero(fn, per_image, smooth):
    empty = torch.zeros(2, 1, 5, 5)
    assert fn(empty, empty, "binary", from_logits=False, per_image=per_image, smooth=smooth).item() == 0.0
    probs = torch.zeros(2, 3, 5, 5)
    probs[:, 0] = 1.0  # everything background, classes 1 and 2 absent and not predicted
    labels = torch.zeros(2, 5, 5, dtype=torch.long)
    got = fn(probs, labels, "multiclass", from_logits=False, per_image=per_image, smooth=smooth)
    assert got.item() == 0.0


def test_absent_class_with_predicted_mass_costs_p_over_p_plus_s():
    probs = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    probs[:, 0] = 1.0
    probs[0, :, 0, 0] = torch.tensor([0.99, 0.01], dtype=torch.float64)  # P_1 = 0.01, class 1 absent
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    got = dice_loss(probs, labels, "multiclass", from_logits=False, reduction="none")
    assert got[1].item() == pytest.approx(0.01 / (0.01 + 1e-5))
    # with strongly negative logits the absent class costs ~0 and its gradient is finite
    logits = torch.full((1, 2, 4, 4), -20.0, dtype=torch.float64)
    logits[:, 0] = 20.0
    logits.requires_grad_(True)
    loss = dice_loss(logits, labels, "multiclass")
    loss.backward()
    assert loss.item() < 1e-5 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("mode", ["binary", "multilabel", "multiclass"])
def test_soft_labels_are_minimised_at_p_equal_g(mode):
    gen = torch.Generator().manual_seed(14)
    c = 1 if mode == "binary" else 3
    g = torch.rand(2, c, 6, 6, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    if mode == "multiclass":
        g = g / g.sum(1, keepdim=True)
    logits = torch.zeros(2, c, 6, 6, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        dice_loss(logits, g, mode, per_image=True).backward()
        opt.step()
    p = torch.softmax(logits, 1) if mode == "multiclass" else torch.sigmoid(logits)
    assert (p - g).abs().max().item() < 0.02
    # the classic sum(p g) form would push p to 0/1 instead: it is not minimised at p = g
    assert dice_loss(g, g, mode, from_logits=False, per_image=True).item() < 1e-6


def test_per_image_true_is_the_mean_of_single_image_losses():
    x, t = make("multiclass", b=3, seed=15)
    each = torch.stack([dice_loss(x[i : i + 1], t[i : i + 1], "multiclass") for i in range(3)])
    torch.testing.assert_close(dice_loss(x, t, "multiclass", per_image=True), each.mean())
    assert not torch.isclose(dice_loss(x, t, "multiclass", per_image=False), each.mean())


@given(perm_seed=st.integers(0, 100))
def test_batch_order_does_not_change_the_loss(perm_seed):
    x, t = make("multiclass", b=4, seed=16)
    perm = torch.randperm(4, generator=torch.Generator().manual_seed(perm_seed))
    for per_image in (True, False):
        a = dice_ce_loss(x, t, "multiclass", per_image=per_image)
        b = dice_ce_loss(x[perm], t[perm], "multiclass", per_image=per_image)
        torch.testing.assert_close(a, b)


def test_loss_is_bounded_in_zero_one():
    x, t = make("multiclass", b=2, c=5, seed=17)
    for fn in (dice_loss, jaccard_loss, tversky_loss, generalized_dice_loss):
        v = fn(x * 10, t, "multiclass", per_image=True, reduction="none")
        assert ((v >= 0) & (v <= 1)).all()


# ---------------------------------------------------------------------------------------------------
# precision, compile, modules
# ---------------------------------------------------------------------------------------------------


def test_bf16_autocast_3d_volume_gives_finite_loss_close_to_float32():
    gen = torch.Generator().manual_seed(18)
    conv = torch.nn.Conv3d(2, 4, 3, padding=1)
    vol = torch.randn(2, 2, 20, 20, 20, generator=gen)
    t = torch.randint(0, 4, (2, 20, 20, 20), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(vol)
        assert logits.dtype == torch.bfloat16
        loss = DiceCELoss("multiclass")(logits, t)
    loss.backward()
    ref = DiceCELoss("multiclass")(logits.detach().float(), t)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert all(torch.isfinite(p.grad).all() for p in conv.parameters())


def test_fp16_logits_do_not_overflow():
    x = torch.zeros(1, 1, 300, 300, dtype=torch.float16, requires_grad=True)  # 90000 voxels > fp16 max
    t = torch.ones(1, 1, 300, 300, dtype=torch.long)
    loss = dice_loss(x, t, "binary")
    loss.backward()
    assert loss.item() == pytest.approx(1 - (2 * 45000 + 1e-5) / (45000 + 90000 + 1e-5), rel=1e-6)
    assert torch.isfinite(x.grad.float()).all() and x.grad.dtype == torch.float16


@pytest.mark.slow
@pytest.mark.parametrize("mode,kind", [("multiclass", "index"), ("binary", "hard")])
def test_runs_under_torch_compile(mode, kind):
    x, t = make(mode, b=2, c=3, spatial=(8, 8), kind=kind, seed=19, dtype=torch.float32)
    fn = torch.compile(lambda a, b: dice_ce_loss(a, b, mode), backend="aot_eager", fullgraph=False)
    got = fn(x, t)
    (g_got,) = torch.autograd.grad(got, x)
    want = dice_ce_loss(x, t, mode)
    (g_want,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)


@pytest.mark.slow
def test_runs_under_torch_compile_inductor():
    x, t = make("multiclass", b=2, c=3, spatial=(8, 8), seed=20, dtype=torch.float32)
    fn = torch.compile(lambda a, b: dice_loss(a, b, "multiclass"))
    got = fn(x, t)
    (g_got,) = torch.autograd.grad(got, x)
    want = dice_loss(x, t, "multiclass")
    (g_want,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, t = make("multiclass", b=2, c=4, spatial=(16, 16), seed=21, dtype=torch.float32)
    for fn in (dice_loss, dice_ce_loss):
        cpu = fn(x, t, "multiclass", ignore_index=255)
        xc = x.detach().cuda().requires_grad_(True)
        gpu = fn(xc, t.cuda(), "multiclass", ignore_index=255)
        gpu.backward()
        (g_cpu,) = torch.autograd.grad(cpu, x)
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(xc.grad.cpu(), g_cpu, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "cls,fn,kwargs",
    [
        (DiceLoss, dice_loss, {"log": True}),
        (JaccardLoss, jaccard_loss, {"squared": True}),
        (TverskyLoss, tversky_loss, {"alpha": 0.2, "beta": 0.8, "gamma": 0.75}),
        (GeneralizedDiceLoss, generalized_dice_loss, {"weight": "simple"}),
        (DiceCELoss, dice_ce_loss, {"ce_weight": 0.5}),
        (DiceFocalLoss, dice_focal_loss, {"gamma": 1.0}),
    ],
)
def test_modules_equal_their_functional_twins(cls, fn, kwargs):
    x, t = make("multiclass", b=2, c=3, seed=22)
    w = [1.0, 2.0, 3.0]
    module = cls("multiclass", class_weights=w, per_image=True, **kwargs)
    torch.testing.assert_close(
        module(x, t), fn(x, t, "multiclass", class_weights=w, per_image=True, **kwargs)
    )
    assert isinstance(module, torch.nn.Module) and "multiclass" in repr(module)
    assert getattr(segdice, cls.__name__) is cls and getattr(segdice, fn.__name__) is fn


@pytest.mark.parametrize(
    "cls,fn",
    [
        (DiceLoss, dice_loss),
        (JaccardLoss, jaccard_loss),
        (TverskyLoss, tversky_loss),
        (GeneralizedDiceLoss, generalized_dice_loss),
        (DiceCELoss, dice_ce_loss),
        (DiceFocalLoss, dice_focal_loss),
    ],
)
def test_settings_assigned_after_construction_take_effect(cls, fn):
    """kornia/MONAI style: a setting is a plain attribute that forward reads at every call."""
    x, t = make("multiclass", b=2, c=3, seed=23)
    module = cls("multiclass")
    before = module(x, t)
    module.smooth = 100.0
    module.per_image = True
    after = module(x, t)
    expected = fn(x, t, "multiclass", smooth=100.0, per_image=True)
    torch.testing.assert_close(after, expected)
    assert not torch.allclose(before, after)  # the assignment changed the number
    assert "smooth=100.0" in repr(module) and "per_image=True" in repr(module)
    module.smooth = -1.0  # validated by the function at the next call
    with pytest.raises(SegDiceError, match="smooth"):
        module(x, t)


def test_dice_loss_setting_matches_the_hand_computed_value():
    # one image, two pixels, probabilities given: I = [0.8, 0.6], P = [1.2, 0.8], G = [1, 1]
    p = torch.tensor([[[[0.8, 0.4]], [[0.2, 0.6]]]])
    t = torch.tensor([[[0, 1]]])
    loss = DiceLoss("multiclass", from_logits=False)
    loss.smooth = 1.0
    expected = ((1 - (2 * 0.8 + 1) / (1.2 + 1 + 1)) + (1 - (2 * 0.6 + 1) / (0.8 + 1 + 1))) / 2
    assert loss(p, t).item() == pytest.approx(expected, rel=1e-6)


def test_module_repr_lists_its_settings_in_signature_order():
    assert repr(DiceLoss("multiclass")) == (
        "DiceLoss(mode='multiclass', from_logits=True, smooth=1e-05, squared=False, per_image=False, "
        "include_background=True, ignore_index=None, log=False, reduction='mean', distributed=False)"
    )


def test_dice_focal_alpha_is_checked_before_any_work():
    x, t = make("multiclass", b=2, c=3, seed=24)
    with pytest.raises(
        SegDiceError, match=r"alpha: got a tensor of shape \(2,\).*expected 3 non-negative weights"
    ):
        dice_focal_loss(x, t, "multiclass", alpha=[0.5, 0.5])
    with pytest.raises(SegDiceError, match=r"alpha: got 1.5; expected a value <= 1"):
        DiceFocalLoss("binary", alpha=1.5)  # at construction, not at the first forward
    with pytest.raises(
        SegDiceError, match=r"alpha: got \[0.5\] in mode 'binary'; expected a number in \[0, 1\]"
    ):
        dice_focal_loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), "binary", alpha=[0.5])


# ---------------------------------------------------------------------------------------------------
# errors: silent no-ops become SegDiceError
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda: DiceLoss("binary", include_background=False), ["include_background", "binary"]),
        (lambda: DiceLoss("multilabel", include_background=False), ["include_background"]),
        (lambda: DiceLoss("multiclass", reduction="avg"), ["reduction", "'avg'"]),
        (lambda: DiceLoss("multiclass", smooth=-1.0), ["smooth", ">= 0"]),
        (lambda: DiceLoss("multiclass", per_image=True, distributed=True), ["distributed", "per_image"]),
        (lambda: DiceCELoss("multiclass", from_logits=False), ["from_logits", "logits"]),
        (lambda: DiceCELoss("multiclass", reduction="none"), ["reduction", "'none'"]),
        (lambda: GeneralizedDiceLoss("multiclass", weight="cube"), ["weight", "'cube'"]),
        (lambda: TverskyLoss("binary", alpha=-0.1), ["alpha"]),
        (
            lambda: dice_loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), "multiclass"),
            ["C >= 2", "binary"],
        ),
        (
            lambda: dice_loss(torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), 3), "multiclass"),
            ["[0, 2]", "C=3"],
        ),
        (
            lambda: dice_loss(
                torch.randn(2, 3, 4, 4) * 5,
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                from_logits=False,
            ),
            ["from_logits", "[0, 1]"],
        ),
        (
            lambda: dice_loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), "multiclass"),
            ["target", "(2, 4, 5)"],
        ),
        (
            lambda: dice_loss(torch.randn(2, 3, 4, 4), torch.zeros(3), "multiclass", class_weights=[1, 2]),
            ["target"],
        ),
        (
            lambda: dice_loss(
                torch.randn(2, 3, 4, 4),
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                class_weights=[1, 2],
            ),
            ["class_weights", "3 weights"],
        ),
        (
            lambda: dice_loss(
                torch.randn(2, 3, 4, 4),
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                class_weights=[1, -2, 1],
            ),
            ["class_weights", "non-negative"],
        ),
        (
            lambda: tversky_loss(
                torch.randn(2, 3, 4, 4),
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                gamma=[1.0, 2.0],
            ),
            ["gamma", "3"],
        ),
        (
            lambda: dice_loss(
                torch.randn(2, 3, 4, 4),
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                distributed=True,
            ),
            ["distributed", "process group"],
        ),
        (
            lambda: dice_focal_loss(torch.randn(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), "binary", alpha=[0.1]),
            ["alpha"],
        ),
        (
            lambda: dice_ce_loss(
                torch.randn(2, 3, 4, 4),
                torch.zeros(2, 4, 4, dtype=torch.long),
                "multiclass",
                dice_weight=0,
                ce_weight=0,
            ),
            ["dice_weight", "ce_weight"],
        ),
    ],
)
def test_bad_arguments_raise_segdice_error(call, words):
    with pytest.raises(SegDiceError) as info:
        call()
    for w in words:
        assert w in str(info.value)
