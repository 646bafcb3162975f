"""Reproduce MONAI's loss values and gradients to 1e-6 with the documented equivalent arguments."""

from __future__ import annotations

import warnings

import pytest
import torch

from segdice import dice_ce_loss, dice_loss, generalized_dice_loss, jaccard_loss, tversky_loss

monai_losses = pytest.importorskip("monai.losses")

TOL = {"rtol": 0, "atol": 1e-6}


def value_and_grad(fn, x, *args):
    x = x.detach().clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = fn(x, *args)
    v.backward()
    return v.detach(), x.grad


def assert_same(ours, theirs, x, t_ours, t_theirs):
    v1, g1 = value_and_grad(ours, x, t_ours)
    v2, g2 = value_and_grad(theirs, x, t_theirs)
    torch.testing.assert_close(v1, v2.to(v1.dtype), **TOL)
    torch.testing.assert_close(g1, g2.to(g1.dtype), **TOL)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def multiclass_case(request):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 12, 10, generator=gen, dtype=request.param) * 2
    t = torch.randint(0, 4, (3, 12, 10), generator=gen)
    t[0][t[0] == 2] = 1  # class 2 absent from image 0
    return x, t


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("bg", [True, False])
@pytest.mark.parametrize("squared", [False, True])
def test_dice_loss_equals_monai(multiclass_case, per_image, bg, squared):
    x, t = multiclass_case
    monai = monai_losses.DiceLoss(
        softmax=True, to_onehot_y=True, batch=not per_image, include_background=bg, squared_pred=squared
    )

    def ours(a, b):
        return dice_loss(a, b, "multiclass", per_image=per_image, include_background=bg, squared=squared)

    assert_same(ours, monai, x, t, t[:, None])


@pytest.mark.parametrize("per_image", [True, False])
def test_jaccard_equals_monai_with_half_the_smoothing(multiclass_case, per_image):
    # MONAI's jaccard=True computes (2I + s) / (2(P + G - I) + s) = (I + s/2) / (P + G - I + s/2).
    x, t = multiclass_case
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, batch=not per_image)
    ours = lambda a, b: jaccard_loss(a, b, "multiclass", per_image=per_image, smooth=0.5e-5)  # noqa: E731
    assert_same(ours, monai, x, t, t[:, None])


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.3, 0.7), (0.9, 0.1)])
def test_tversky_equals_monai(multiclass_case, per_image, alpha, beta):
    x, t = multiclass_case
    monai = monai_losses.TverskyLoss(
        softmax=True, to_onehot_y=True, alpha=alpha, beta=beta, batch=not per_image
    )
    ours = lambda a, b: tversky_loss(a, b, "multiclass", alpha=alpha, beta=beta, per_image=per_image)  # noqa: E731
    assert_same(ours, monai, x, t, t[:, None])


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
@pytest.mark.parametrize("bg", [True, False])
def test_generalized_dice_equals_monai_without_smoothing(multiclass_case, per_image, w_type, bg):
    x, t = multiclass_case
    monai = monai_losses.GeneralizedDiceLoss(
        softmax=True, to_onehot_y=True, w_type=w_type, batch=not per_image, include_background=bg,
        smooth_nr=0.0, smooth_dr=0.0,
    )  # fmt: skip
    ours = lambda a, b: generalized_dice_loss(  # noqa: E731
        a, b, "multiclass", weight=w_type, per_image=per_image, include_background=bg, smooth=0.0
    )
    assert_same(ours, monai, x, t, t[:, None])


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("bg", [True, False])
def test_dice_ce_equals_monai(multiclass_case, per_image, bg):
    x, t = multiclass_case
    monai = monai_losses.DiceCELoss(
        softmax=True,
        to_onehot_y=True,
        batch=not per_image,
        include_background=bg,
        lambda_dice=0.6,
        lambda_ce=1.4,
    )
    ours = lambda a, b: dice_ce_loss(  # noqa: E731
        a, b, "multiclass", per_image=per_image, include_background=bg, dice_weight=0.6, ce_weight=1.4
    )
    assert_same(ours, monai, x, t, t[:, None])


def test_dice_with_ignore_index_equals_monai(multiclass_case):
    x, t = multiclass_case
    t = t.clone()
    t[:, :3] = 255
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255)
    ours = lambda a, b: dice_loss(a, b, "multiclass", per_image=True, ignore_index=255)  # noqa: E731
    assert_same(ours, monai, x, t, t[:, None])


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("per_image", [True, False])
def test_sigmoid_losses_equal_monai(mode, soft, per_image):
    gen = torch.Generator().manual_seed(1)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 9, 7, 5, generator=gen) * 2  # 3D
    t = (
        torch.rand(2, c, 9, 7, 5, generator=gen)
        if soft
        else torch.randint(0, 2, (2, c, 9, 7, 5), generator=gen).float()
    )
    b = not per_image
    cases = [
        (lambda a, g: dice_loss(a, g, mode, per_image=per_image), monai_losses.DiceLoss(sigmoid=True, batch=b, soft_label=soft)),
        (lambda a, g: tversky_loss(a, g, mode, alpha=0.2, beta=0.8, per_image=per_image),
         monai_losses.TverskyLoss(sigmoid=True, alpha=0.2, beta=0.8, batch=b, soft_label=soft)),
    ]  # fmt: skip
    # MONAI's DiceCELoss has no soft_label option (MONAI#8666) and with C > 1 it uses softmax CE even with
    # sigmoid=True; ours uses BCE for multilabel, so only the binary case is comparable.
    if not soft and mode == "binary":
        cases.append((lambda a, g: dice_ce_loss(a, g, mode, per_image=per_image), monai_losses.DiceCELoss(sigmoid=True, batch=b)))  # fmt: skip
    for ours, monai in cases:
        assert_same(ours, monai, x, t, t)
    # integer 0/1 masks give the same numbers as their float copies
    if not soft:
        assert_same(lambda a, g: dice_loss(a, g, mode, per_image=per_image), cases[0][1], x, t.long(), t)


def test_monai_class_weight_mapping(multiclass_case):
    """MONAI multiplies by w and averages over C; ours is the weighted mean: MONAI = ours * sum(w) / C."""
    x, t = multiclass_case
    w = [0.5, 1.0, 2.0, 4.0]
    monai = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, weight=torch.tensor(w))
    v_monai, _ = value_and_grad(monai, x, t[:, None])
    v_ours, _ = value_and_grad(
        lambda a, b: dice_loss(a, b, "multiclass", per_image=True, class_weights=w), x, t
    )
    torch.testing.assert_close(v_ours * sum(w) / 4, v_monai.to(v_ours.dtype), **TOL)
