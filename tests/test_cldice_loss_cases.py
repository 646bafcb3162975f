"""The empty and degenerate cases of ``cldice_loss`` stated in its docstring, hand-computed."""

from __future__ import annotations

import math

import pytest
import torch

from segdice.losses import cldice_loss

EPS = 1e-4  # the constant of the clDice ratio (MONAI's)


def _loss(p, g, smooth=1.0, alpha=0.5):
    return float(cldice_loss(p, g, "binary", from_logits=False, smooth=smooth, alpha=alpha))


def _dot():
    # one isolated voxel: the soft erosion (a min over the face neighbours) removes it, so its soft
    # skeleton is the voxel itself: sum S = 1, and P = 1
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    return x


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_both_empty(alpha):
    z = torch.zeros(1, 1, 7, 7)
    assert _loss(z, z, alpha=alpha) == pytest.approx(alpha * EPS / (2 + EPS), abs=1e-7)  # float32 rounding
    assert math.isnan(_loss(z, z, smooth=0.0, alpha=alpha))


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_empty_target_and_empty_prediction(alpha):
    # s = 1: Tprec = 1 / (1 + 1), Tsens = 1, clDice = 2 * 0.5 / (1.5 + eps); Dice term P / (P + s) = 1/2
    expected = (1 - alpha) * 0.5 + alpha * (1 - 1.0 / (1.5 + EPS))
    z = torch.zeros(1, 1, 7, 7)
    assert _loss(_dot(), z, alpha=alpha) == pytest.approx(expected, abs=1e-6)
    assert _loss(z, _dot(), alpha=alpha) == pytest.approx(expected, abs=1e-6)  # the mirror image
    if alpha > 0:
        assert math.isnan(_loss(_dot(), z, smooth=0.0, alpha=alpha))
        assert math.isnan(_loss(z, _dot(), smooth=0.0, alpha=alpha))
