"""``"gds"`` in SegmentationMetrics: the generalized Dice score from the streamed per-class counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segdice import SegDiceError
from segdice.metrics import SegmentationMetrics, generalized_dice_score


def _naive_gds(p: np.ndarray, g: np.ndarray, classes, weight: str, empty: float) -> float:
    """Sudre et al.'s formula over ``classes`` of one label map, loop by loop, with MONAI's rule for a
    class absent from the target (the largest weight of the present ones; all 1 if none is present)."""
    tp = [np.sum((p == c) & (g == c)) for c in classes]
    fp = [np.sum((p == c) & (g != c)) for c in classes]
    fn = [np.sum((p != c) & (g == c)) for c in classes]
    size = [t + f for t, f in zip(tp, fn, strict=True)]
    raw = {"square": lambda n: 1.0 / n**2, "simple": lambda n: 1.0 / n, "uniform": lambda n: 1.0}[weight]
    present = [raw(n) for n in size if n > 0]
    w = [raw(n) if n > 0 else (max(present) if present else 1.0) for n in size]
    num = 2 * sum(wi * t for wi, t in zip(w, tp, strict=True))
    den = sum(wi * (2 * t + a + b) for wi, t, a, b in zip(w, tp, fp, fn, strict=True))
    return num / den if den else empty


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    weight=st.sampled_from(["square", "simple", "uniform"]),
    include_background=st.booleans(),
    empty_value=st.sampled_from([math.nan, 0.0, 1.0]),
    sparse=st.booleans(),
)
def test_equals_generalized_dice_score_on_the_concatenated_batches(
    seed, sizes, weight, include_background, empty_value, sparse
):
    g = torch.Generator().manual_seed(seed)
    c = 3

    def labels(b):
        x = torch.randint(0, c, (b, 5, 5), generator=g)
        return x * (torch.rand(b, 5, 5, generator=g) < 0.1) if sparse else x  # often empty images

    preds, targets = [labels(b) for b in sizes], [labels(b) for b in sizes]
    m = SegmentationMetrics(
        c,
        metrics=("gds", "dice"),
        gds_weight=weight,
        include_background=include_background,
        empty_value=empty_value,
        keep_per_case=True,
    )
    for p, t in zip(preds, targets, strict=True):
        m.update(p, t)
    result = m.compute()["gds"]
    pred, target = torch.cat(preds), torch.cat(targets)
    options = {"weight": weight, "include_background": include_background, "empty_value": empty_value}
    per_image = generalized_dice_score(pred, target, **options)
    pooled = float(generalized_dice_score(pred, target, per_image=False, **options))
    nan = torch.isnan(per_image)
    assert (result["n"], result["n_nan"]) == (int((~nan).sum()), int(nan.sum()))
    if result["n"]:
        assert result["mean"] == pytest.approx(float(per_image[~nan].mean()), rel=1e-12)
    else:
        assert math.isnan(result["mean"])
    assert result["global"] == pytest.approx(pooled, rel=1e-12, nan_ok=True)
    torch.testing.assert_close(m.compute()["per_case"]["gds"], per_image, equal_nan=True)
    # and against the formula written out, image by image
    classes = range(0 if include_background else 1, c)
    naive = [
        _naive_gds(p.numpy(), t.numpy(), classes, weight, empty_value)
        for p, t in zip(pred, target, strict=True)
    ]
    np.testing.assert_allclose(per_image.numpy(), naive, rtol=1e-12)


def test_hand_computed_two_images():
    # image 1: class 1 has G = 2, TP = 1, FN = 1; class 0 G = 2, TP = 2, FP = 1. square weights 1/4 each:
    # GDS = 2 (2 + 1) / 4 / ((2*2 + 1) + (2*1 + 1)) / 4 = 6 / 8 = 0.75. image 2: all background, right: 1.
    m = SegmentationMetrics(2, metrics=("gds",))
    m.update(torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 1, 1]]))
    m.update(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]]))
    result = m.compute()
    assert result["gds"]["mean"] == pytest.approx((0.75 + 1.0) / 2)
    # pooled: class 0 G = 6, TP = 6, FP = 1; class 1 G = 2, TP = 1, FN = 1; weights 1/36, 1/4
    num = 2 * (6 / 36 + 1 / 4)
    den = (2 * 6 + 1) / 36 + (2 * 1 + 1) / 4
    assert result["gds"]["global"] == pytest.approx(num / den)
    assert m.compute(flat=True) == {"gds": result["gds"]["mean"], "gds/global": result["gds"]["global"]}
    assert result["n_images"] == 2


def test_forward_returns_the_batch_value_and_state_round_trips():
    p, t = torch.tensor([[0, 0, 0, 1]]), torch.tensor([[0, 0, 1, 1]])
    m = SegmentationMetrics(2, metrics=("dice", "gds"), gds_weight="uniform")
    assert m(p, t, flat=True)["gds"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))  # uniform: micro Dice
    resumed = SegmentationMetrics(2, metrics=("dice", "gds"), gds_weight="uniform")
    resumed.load_state_dict(m.state_dict())
    assert resumed.compute() == m.compute()
    other = SegmentationMetrics(2, metrics=("dice", "gds"))  # square weights: another meaning of the sums
    with pytest.raises(SegDiceError, match="gds_weight"):
        other.load_state_dict(m.state_dict())


def test_bad_gds_weight():
    with pytest.raises(SegDiceError, match="gds_weight"):
        SegmentationMetrics(2, metrics=("gds",), gds_weight="linear")


def test_the_torchmetrics_wrapper_refuses_gds():
    pytest.importorskip("torchmetrics")
    from segdice.integrations.torchmetrics import SegDiceMetric

    with pytest.raises(SegDiceError, match="metric: got 'gds'"):
        SegDiceMetric(2, "gds")
