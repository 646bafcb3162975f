"""Non-finite input never yields a finite loss (DESIGN §4): a property over every loss, mode and setting."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import segdice

LOSSES = ["DiceLoss", "JaccardLoss", "TverskyLoss", "GeneralizedDiceLoss", "DiceCELoss", "DiceFocalLoss"]
COMPOUND = {"DiceCELoss", "DiceFocalLoss"}


@settings(max_examples=150, deadline=None)
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
)
def test_nonfinite_logit_gives_nonfinite_loss(
    name, mode, bad, smooth, per_image, reduction, index_target, where, seed
):
    if name in COMPOUND and reduction == "none":
        reduction = "mean"  # the compound losses refuse reduction="none"
    g = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 5, 4, generator=g)
    x.view(-1)[where % x.numel()] = bad
    if mode == "multiclass":
        t = torch.randint(0, c, (2, 5, 4), generator=g)
        if not index_target:
            t = torch.nn.functional.one_hot(t, c).permute(0, 3, 1, 2).float()
    else:
        t = (torch.rand(2, c, 5, 4, generator=g) > 0.5).float()
    loss = getattr(segdice, name)(mode, smooth=smooth, per_image=per_image, reduction=reduction)(x, t)
    assert not torch.isfinite(loss).any(), (name, mode, bad, float(loss.flatten()[0]))


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
