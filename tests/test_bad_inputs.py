"""Bad inputs give a SegDiceError naming the argument, never a raw torch/NumPy error or a silent number."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segdice.losses as L
from segdice import SegDiceError
from segdice.metrics import boundary_metrics, dice_score
from segdice.stats import confusion

LOSSES = ["DiceLoss", "JaccardLoss", "TverskyLoss", "GeneralizedDiceLoss", "DiceCELoss", "DiceFocalLoss"]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 3, 0, 4), (2, 0, 4)])
def test_zero_size_batch(name, shape):
    loss = getattr(L, name)("multiclass")
    target = torch.zeros((shape[0], *shape[2:]), dtype=torch.long)
    with pytest.raises(SegDiceError, match=r"input: .*no elements"):
        loss(torch.zeros(shape), target)


@pytest.mark.parametrize("name", LOSSES)
def test_meta_tensors(name):
    loss = getattr(L, name)("multiclass")
    with pytest.raises(SegDiceError, match=r"meta device"):
        loss(torch.zeros(2, 3, 4, 4, device="meta"), torch.zeros(2, 4, 4, dtype=torch.long, device="meta"))


@pytest.mark.parametrize("name", LOSSES)
def test_meta_target_only(name):
    loss = getattr(L, name)("binary")
    with pytest.raises(SegDiceError, match=r"target: .*meta device"):
        loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4, device="meta"))


@pytest.mark.parametrize("name", LOSSES)
def test_one_dimensional_input(name):
    with pytest.raises(SegDiceError, match=r"input: .*\[B, C, \*spatial\]"):
        getattr(L, name)("binary")(torch.zeros(4), torch.zeros(4))


@pytest.mark.parametrize("name", LOSSES)
def test_numpy_target(name):
    with pytest.raises(SegDiceError, match=r"target: .*expected a torch tensor"):
        getattr(L, name)("binary")(torch.zeros(2, 1, 4, 4), np.zeros((2, 1, 4, 4)))


def test_dice_ce_functional_bad_inputs():
    with pytest.raises(SegDiceError, match="input"):
        L.dice_ce_loss(torch.zeros(4), torch.zeros(4), "binary")
    with pytest.raises(SegDiceError, match="target"):
        L.dice_ce_loss(torch.zeros(1, 2, 4), np.zeros((1, 4), dtype=np.int64), "multiclass")


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("fill", [0.0, 1.0, 0.5])
def test_multiclass_soft_target_not_a_distribution(name, fill):
    # 3 channels filled with 0 (sum 0), 1 (sum 3) or 0.5 (sum 1.5): none is a class distribution
    target = torch.full((2, 3, 4, 4), fill)
    with pytest.raises(SegDiceError, match="sums to 1 over the C channels"):
        getattr(L, name)("multiclass")(torch.randn(2, 3, 4, 4), target)


@pytest.mark.parametrize("name", LOSSES)
def test_multiclass_soft_target_one_bad_pixel(name):
    target = torch.softmax(torch.randn(2, 3, 4, 4), 1)
    getattr(L, name)("multiclass")(torch.randn(2, 3, 4, 4), target)  # a distribution: accepted
    target[1, :, 2, 3] = 0.0
    with pytest.raises(SegDiceError, match=r"lie in \[0, 1\]"):
        getattr(L, name)("multiclass")(torch.randn(2, 3, 4, 4), target)


def test_soft_target_ignored_pixels_are_not_checked():
    target = torch.softmax(torch.randn(1, 3, 4, 4), 1)
    target[0, :, 0, 0] = 255.0  # the documented way to ignore a pixel of a dense target
    value = L.dice_loss(torch.randn(1, 3, 4, 4), target, "multiclass", ignore_index=255)
    assert torch.isfinite(value)


def test_multilabel_soft_targets_need_no_distribution():
    value = L.dice_loss(torch.randn(2, 3, 4, 4), torch.ones(2, 3, 4, 4), "multilabel")
    assert torch.isfinite(value)


@pytest.mark.parametrize("label", [2**31, 2**16])
def test_huge_stray_label_asks_for_num_classes(label):
    pred = torch.tensor([[0, 1, 1]])
    target = torch.tensor([[0, 1, label]])
    with pytest.raises(SegDiceError, match=rf"num_classes: .*largest label is {label}"):
        dice_score(pred, target)
    with pytest.raises(SegDiceError, match="num_classes"):
        confusion(target.numpy(), pred.numpy())


def test_largest_inferable_label_still_works():
    target = np.array([[0, 1, 2**16 - 1]])
    tp = confusion(target, target)[0]
    assert tp.shape == (1, 2**16) and int(tp[0, -1]) == 1


def test_huge_label_with_num_classes_is_an_out_of_range_error():
    with pytest.raises(SegDiceError, match="target"):
        dice_score(torch.tensor([[0, 1]]), torch.tensor([[0, 2**31]]), num_classes=3)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, 1e20, 2.0**60])
@pytest.mark.parametrize("side", ["pred", "target"])
def test_boundary_metrics_float_label_map_out_of_range(bad, side):
    good = np.zeros((6, 6))
    good[1:4, 1:4] = 1
    other = good.copy()
    other[0, 0] = bad
    args = (other, good) if side == "pred" else (good, other)
    with pytest.raises(SegDiceError, match=rf"{side}: .*finite integer values"):
        boundary_metrics(*args)


def test_boundary_metrics_float_label_map_in_range():
    gt = np.zeros((6, 6))
    gt[1:4, 1:4] = 2.0**40  # large but exact: accepted and used as the label
    out = boundary_metrics(gt, gt, metrics=("hd",))
    assert out == {2**40: {"hd": 0.0}}
