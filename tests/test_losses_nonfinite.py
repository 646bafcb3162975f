"""Non-finite input never yields a finite loss (DESIGN §4): a property over every loss, mode and setting
(the nine losses: the six Dice-family ones, focal, Lovász and clDice)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import segdice

LOSSES = [
    "DiceLoss",
    "JaccardLoss",
    "TverskyLoss",
    "GeneralizedDiceLoss",
    "DiceCELoss",
    "DiceFocalLoss",
    "FocalLoss",
    "LovaszLoss",
    "ClDiceLoss",
]
COMPOUND = {"DiceCELoss", "DiceFocalLoss"}


def _loss(name: str, mode: str, smooth: float, per_image: bool, reduction: str, extra: bool):
    """The loss with the settings it takes; ``extra`` flips each one's own option (focal: alpha,
    Lovász: probabilities in multiclass, clDice: the clDice term alone and no background)."""
    if name == "FocalLoss":
        alpha = None if not extra else ([0.2, 0.3, 0.5] if mode == "multiclass" else 0.25)
        return segdice.FocalLoss(mode, alpha=alpha, reduction=reduction)
    if name == "LovaszLoss":
        return segdice.LovaszLoss(mode, per_image=per_image, from_logits=not (extra and mode == "multiclass"))
    if name == "ClDiceLoss":
        if reduction == "none":
            per_image = True  # per-image values need the per-image Dice term
        options = {"alpha": 1.0, "include_background": mode != "multiclass"} if extra else {}
        return segdice.ClDiceLoss(mode, smooth=smooth, per_image=per_image, reduction=reduction, **options)
    if name in COMPOUND and reduction == "none":
        reduction = "mean"  # the compound losses refuse reduction="none"
    return getattr(segdice, name)(mode, smooth=smooth, per_image=per_image, reduction=reduction)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(LOSSES),
    mode=st.sampled_from(["binary", "multiclass", "multilabel"]),
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
    smooth=st.sampled_from([0.0, 1e-5, 1.0]),
    per_image=st.booleans(),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    index_target=st.booleans(),
    where=st.integers(0, 2 * 3 * 5 * 4 - 1),
    seed=st.integers(0, 2**16),
    extra=st.booleans(),
)
def test_nonfinite_logit_gives_nonfinite_loss(
    name, mode, bad, smooth, per_image, reduction, index_target, where, seed, extra
):
    if name == "LovaszLoss" and mode == "multiclass":
        index_target = True  # the Lovász-softmax takes class indices only
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 5, 4, generator=g)
    if name == "LovaszLoss" and mode == "multiclass" and extra:
        x = x.softmax(1)  # from_logits=False: probabilities, one of them non-finite
    x.view(-1)[where % x.numel()] = bad
    if mode == "multiclass":
        t = torch.randint(0, c, (2, 5, 4), generator=g)
        if not index_target:
            t = torch.nn.functional.one_hot(t, c).permute(0, 3, 1, 2).float()
    else:
        t = (torch.rand(2, c, 5, 4, generator=g) > 0.5).float()
    loss_fn = _loss(name, mode, smooth, per_image, reduction, extra)
    if name == "LovaszLoss" and mode == "multiclass" and extra:
        # probabilities are range-checked: a non-finite one is refused, which is no finite loss either
        with pytest.raises(segdice.SegDiceError, match=r"^input: .*expected probabilities in \[0, 1\]"):
            loss_fn(x, t)
        return
    loss = loss_fn(x, t)
    assert not torch.isfinite(loss).any(), (name, mode, bad, float(loss.flatten()[0]))


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_and_mode_with_default_settings(name, mode):
    # the property above samples; this visits every loss x mode once, a NaN and an inf in one batch
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 6, 6, generator=torch.Generator().manual_seed(0))
    x[0, 0, 1, 1], x[1, -1, 4, 2] = math.nan, math.inf
    t = torch.randint(0, 3, (2, 6, 6)) if mode == "multiclass" else torch.randint(0, 2, (2, c, 6, 6)).float()
    assert not torch.isfinite(getattr(segdice, name)(mode)(x, t)).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_large_finite_half_logits_stay_finite(dtype):
    # the non-finite check sums in float32: large but finite half-precision logits must not trip it
    x = torch.full((2, 3, 64, 64), 60000.0 if dtype == torch.float16 else 1e30, dtype=dtype)
    x[:, 0] = -x[:, 0]
    t = torch.randint(0, 3, (2, 64, 64))
    loss = segdice.DiceLoss("multiclass", from_logits=True)(x.float().clamp(-60, 60).to(dtype), t)
    assert torch.isfinite(loss)
    loss = segdice.DiceLoss("multiclass")(x, t)
    assert torch.isfinite(loss)


def test_nan_gradient_matches_nan_loss():
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    with torch.no_grad():
        x[0, 1, 2, 2] = math.nan
    loss = segdice.DiceLoss("multiclass", smooth=0.0)(x, torch.randint(0, 3, (1, 4, 4)))
    loss.backward()
    assert math.isnan(float(loss))
    assert torch.isnan(x.grad).any()
