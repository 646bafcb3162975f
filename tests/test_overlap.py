"""Overlap metrics: hand-computed values, the empty-mask policy case by case, averages, and peers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from segdice import SegDiceError
from segdice.metrics import (
    accuracy,
    dice_score,
    fbeta_score,
    iou_score,
    precision,
    recall,
    score_from_counts,
    specificity,
)

FUNCTIONS = {
    "dice": dice_score,
    "iou": iou_score,
    "precision": precision,
    "recall": recall,
    "specificity": specificity,
    "accuracy": accuracy,
    "fbeta": fbeta_score,
}


def formula(name: str, tp: float, fp: float, fn: float, tn: float, beta: float = 1.0) -> float:
    """The textbook formulas; None where the ratio is 0/0."""
    num, den = {
        "dice": (2 * tp, 2 * tp + fp + fn),
        "iou": (tp, tp + fp + fn),
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "accuracy": (tp + tn, tp + fp + fn + tn),
        "fbeta": ((1 + beta**2) * tp, (1 + beta**2) * tp + beta**2 * fn + fp),
    }[name]
    return num / den if den else None


def binary(values) -> torch.Tensor:
    return torch.tensor([values])


# --- values -----------------------------------------------------------------------------------------


def test_hand_computed_binary_values():
    # tp=2 (positions 0, 1), fp=1 (2), fn=1 (3), tn=4
    target = binary([1, 1, 0, 1, 0, 0, 0, 0])
    pred = binary([1, 1, 1, 0, 0, 0, 0, 0])
    expected = {
        "dice": 4 / 6,
        "iou": 2 / 4,
        "precision": 2 / 3,
        "recall": 2 / 3,
        "specificity": 4 / 5,
        "accuracy": 6 / 8,
        "fbeta": 2 / 3,
    }
    for name, value in expected.items():
        got = FUNCTIONS[name](pred, target, mode="binary")
        assert got.dtype == torch.float64 and got.shape == (1, 1)
        assert float(got) == pytest.approx(value, rel=1e-15), name
    # F2 weighs recall: 5*2 / (5*2 + 4*1 + 1)
    assert float(fbeta_score(pred, target, mode="binary", beta=2.0)) == pytest.approx(10 / 15)
    assert float(fbeta_score(pred, target, mode="binary", beta=0.0)) == pytest.approx(2 / 3)  # = precision


def test_the_reason_segdice_exists():
    """All-background prediction on 0.1% foreground: accuracy >= 0.999, Dice 0."""
    target = torch.zeros(1, 100, 100, dtype=torch.long)
    target[0, 40:50, 50] = 1  # 10 of 10,000 pixels
    pred = torch.zeros_like(target)
    assert float(accuracy(pred, target, mode="binary")) >= 0.999
    assert float(dice_score(pred, target, mode="binary")) == 0.0
    assert float(accuracy(pred, target, num_classes=2)[0, 1]) >= 0.999
    assert float(dice_score(pred, target, num_classes=2)[0, 1]) == 0.0
    assert float(recall(pred, target, mode="binary")) == 0.0
    # the pooled view agrees: the structure is missed
    assert float(dice_score(pred, target, num_classes=2, include_background=False, average="macro")) == 0.0


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    num_classes=st.integers(2, 6),
    size=st.integers(1, 30),
    empty_value=st.sampled_from([math.nan, 0.0, 1.0]),
    beta=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_every_metric_against_formula_per_image_and_class(seed, batch, num_classes, size, empty_value, beta):
    rng = np.random.default_rng(seed)
    # few classes per image so that absent classes are common
    target = rng.integers(0, num_classes, (batch, size)) * (rng.random((batch, 1)) < 0.7)
    pred = np.where(rng.random((batch, size)) < 0.3, rng.integers(0, num_classes, (batch, size)), target)
    for name, fn in FUNCTIONS.items():
        kwargs = {"beta": beta} if name == "fbeta" else {}
        got = fn(pred, target, num_classes=num_classes, empty_value=empty_value, **kwargs).numpy()
        for b in range(batch):
            for c in range(num_classes):
                g, p = target[b] == c, pred[b] == c
                tp, fp = np.sum(g & p), np.sum(~g & p)
                fn_, tn = np.sum(g & ~p), np.sum(~g & ~p)
                if tp + fp + fn_ == 0 or (name == "specificity" and tn + fp + fn_ == 0):
                    want = empty_value  # rule 1: absent from both (for specificity: no negatives)
                else:
                    want = formula(name, tp, fp, fn_, tn, beta)
                    want = 0.0 if want is None else want  # rule 2: one set empty -> 0
                np.testing.assert_allclose(got[b, c], want, rtol=1e-12, err_msg=f"{name} b={b} c={c}")


# --- the empty-mask policy, case by case ---------------------------------------------------------------

EMPTY = [0, 0, 0, 0]
SOME = [0, 1, 1, 0]


@pytest.mark.parametrize("empty_value", [math.nan, 0.0, 1.0])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_both_empty_gives_empty_value(name, empty_value):
    got = float(FUNCTIONS[name](binary(EMPTY), binary(EMPTY), mode="binary", empty_value=empty_value))
    assert got == empty_value or (math.isnan(got) and math.isnan(empty_value))


@pytest.mark.parametrize("empty_value", [math.nan, 0.0, 1.0])
def test_target_empty_prediction_not(empty_value):
    """The false positive is always seen: Dice, IoU, precision, recall, F-beta are 0."""
    pred, target = binary(SOME), binary(EMPTY)
    for name in ("dice", "iou", "precision", "recall", "fbeta"):
        assert float(FUNCTIONS[name](pred, target, mode="binary", empty_value=empty_value)) == 0.0, name
    assert (
        float(specificity(pred, target, mode="binary", empty_value=empty_value)) == 0.5
    )  # tn 2 / (tn 2 + fp 2)
    assert float(accuracy(pred, target, mode="binary", empty_value=empty_value)) == 0.5


@pytest.mark.parametrize("empty_value", [math.nan, 0.0, 1.0])
def test_prediction_empty_target_not(empty_value):
    """The miss is always seen: Dice, IoU, precision, recall, F-beta are 0."""
    pred, target = binary(EMPTY), binary(SOME)
    for name in ("dice", "iou", "precision", "recall", "fbeta"):
        assert float(FUNCTIONS[name](pred, target, mode="binary", empty_value=empty_value)) == 0.0, name
    assert float(specificity(pred, target, mode="binary", empty_value=empty_value)) == 1.0
    assert float(accuracy(pred, target, mode="binary", empty_value=empty_value)) == 0.5


@pytest.mark.parametrize("empty_value", [math.nan, 0.0, 1.0])
def test_specificity_without_negatives(empty_value):
    full = binary([1, 1, 1, 1])
    got = float(specificity(full, full, mode="binary", empty_value=empty_value))
    assert got == empty_value or (math.isnan(got) and math.isnan(empty_value))
    # no negatives in the target but the prediction leaves some out: the miss counts, 0/0 -> 0
    assert float(specificity(binary([1, 1, 0, 1]), full, mode="binary", empty_value=empty_value)) == 0.0


def test_fully_ignored_image_is_empty():
    target = torch.full((1, 4), 255)
    pred = torch.tensor([[0, 1, 1, 0]])
    for name, fn in FUNCTIONS.items():
        assert math.isnan(float(fn(pred, target, num_classes=2, ignore_index=255)[0, 1])), name


# --- averages ---------------------------------------------------------------------------------------


def naive_average(name, counts, average, empty_value):
    """Per image: the class average by hand, then the NaN-ignoring mean over images."""

    def value(tp, fp, fn, tn):
        if tp + fp + fn == 0 or (name == "specificity" and tn + fp + fn == 0):
            return empty_value
        v = formula(name, tp, fp, fn, tn)
        return 0.0 if v is None else v

    per_image = []
    for row in counts.transpose(1, 0, 2):  # [4, C] per image
        vals = [value(*row[:, c]) for c in range(row.shape[1])]
        if average == "macro":
            known = [v for v in vals if not math.isnan(v)]
            per_image.append(sum(known) / len(known) if known else math.nan)
        elif average == "micro":
            per_image.append(value(*row.sum(1)))
        else:
            pairs = [(v, row[0, c] + row[2, c]) for c, v in enumerate(vals) if not math.isnan(v)]
            total = sum(w for _, w in pairs)
            if total:
                per_image.append(sum(v * w for v, w in pairs) / total)
            else:  # only zero-support classes (false positives on empty targets): their plain mean
                per_image.append(sum(v for v, _ in pairs) / len(pairs) if pairs else math.nan)
    known = [v for v in per_image if not math.isnan(v)]
    return sum(known) / len(known) if known else math.nan


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    num_classes=st.integers(1, 5),
    average=st.sampled_from(["macro", "micro", "weighted"]),
    empty_value=st.sampled_from([math.nan, 0.0, 1.0]),
    name=st.sampled_from(["dice", "iou", "precision", "recall", "specificity", "accuracy"]),
)
def test_averages_against_naive(seed, batch, num_classes, average, empty_value, name):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, (4, batch, num_classes)) * (rng.random((1, batch, num_classes)) < 0.7)
    want = naive_average(name, counts, average, empty_value)
    got = float(score_from_counts(name, *torch.from_numpy(counts), empty_value=empty_value, average=average))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # pooled: one "image" holding the summed counts
    pooled = counts.sum(1, keepdims=True)
    want = naive_average(name, pooled, average, empty_value)
    got = float(
        score_from_counts(name, *torch.from_numpy(counts.sum(1)), empty_value=empty_value, average=average)
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_weighted_average_keeps_a_false_positive_on_an_empty_target():
    # image 0: class 1 found perfectly; image 1: no class 1 in the target, one false-positive voxel.
    # Support weights of image 1 are all zero; its only known class scores 0 and must count (torchmetrics: 0.5).
    target = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]]])
    pred = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
    got = float(dice_score(pred, target, num_classes=2, include_background=False, average="weighted"))
    assert got == pytest.approx(0.5)
    tm = pytest.importorskip("torchmetrics.segmentation")
    want = tm.DiceScore(num_classes=2, average="weighted", input_format="index", include_background=False)
    assert got == pytest.approx(float(want(pred, target)))
    # nothing known at all (both empty, empty_value NaN) stays NaN
    assert math.isnan(
        float(
            dice_score(
                target[1:] * 0, target[1:] * 0, num_classes=2, include_background=False, average="weighted"
            )
        )
    )


def test_functional_averages_and_pooling():
    rng = np.random.default_rng(7)
    target = rng.integers(0, 4, (3, 20, 20))
    pred = np.where(rng.random(target.shape) < 0.2, rng.integers(0, 4, target.shape), target)
    per = dice_score(pred, target, num_classes=4)
    assert per.shape == (3, 4)
    assert float(dice_score(pred, target, num_classes=4, average="macro")) == pytest.approx(float(per.mean()))
    pooled = dice_score(pred, target, num_classes=4, per_image=False)
    assert pooled.shape == (4,)
    g, p = target.ravel(), pred.ravel()
    for c in range(4):
        assert float(pooled[c]) == pytest.approx(
            2 * np.sum((g == c) & (p == c)) / (np.sum(g == c) + np.sum(p == c))
        )
    # micro over all classes of a multiclass map: every error is one fp and one fn, so it is accuracy
    micro = float(dice_score(pred, target, num_classes=4, per_image=False, average="micro"))
    assert micro == pytest.approx(np.mean(g == p))
    no_bg = dice_score(pred, target, num_classes=4, include_background=False)
    np.testing.assert_array_equal(no_bg.numpy(), per[:, 1:].numpy())


def test_batch_order_invariance_and_numpy_torch_agree():
    rng = np.random.default_rng(8)
    target = rng.integers(0, 3, (5, 16, 16))
    pred = np.where(rng.random(target.shape) < 0.3, rng.integers(0, 3, target.shape), target)
    order = rng.permutation(5)
    a = iou_score(pred, target, num_classes=3)
    b = iou_score(torch.from_numpy(pred[order]), torch.from_numpy(target[order]), num_classes=3)
    np.testing.assert_array_equal(a.numpy()[order], b.numpy())
    for average in ("macro", "micro", "weighted"):
        x = iou_score(pred, target, num_classes=3, average=average, per_image=False)
        y = iou_score(pred[order], target[order], num_classes=3, average=average, per_image=False)
        assert float(x) == float(y)


@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.integers(1, 40),
    name=st.sampled_from(["dice", "iou", "fbeta"]),
)
def test_symmetry_of_dice_and_iou(seed, size, name):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 3, (2, size)), rng.integers(0, 3, (2, size))
    x = FUNCTIONS[name](a, b, num_classes=3).numpy()
    y = FUNCTIONS[name](b, a, num_classes=3).numpy()
    np.testing.assert_array_equal(x, y)
    assert np.all((x[~np.isnan(x)] >= 0) & (x[~np.isnan(x)] <= 1))


def test_multilabel_regions():
    target = np.zeros((1, 2, 4, 4), np.uint8)
    target[0, 0, :2] = 1
    target[0, 1, :3] = 1  # overlapping channels, e.g. BraTS regions
    pred = target.copy()
    pred[0, 1, 2] = 0
    got = dice_score(pred, target, mode="multilabel").numpy()
    np.testing.assert_allclose(got, [[1.0, 2 * 8 / (8 + 12)]])


# --- peers --------------------------------------------------------------------------------------------


def peer_maps(seed=0, batch=3, shape=(24, 20, 16), num_classes=4):
    rng = np.random.default_rng(seed)
    target = np.repeat(rng.integers(0, num_classes, (batch, *shape[:-1], shape[-1] // 4)), 4, axis=-1)
    pred = np.where(rng.random(target.shape) < 0.1, rng.integers(0, num_classes, target.shape), target)
    # class 3: absent from both in image 0, predicted only in image 1
    target[:2][target[:2] == 3] = 0
    pred[0][pred[0] == 3] = 0
    return pred, target


@pytest.mark.parametrize("include_background", [True, False])
def test_agrees_with_monai_compute_dice_and_iou(include_background):
    monai_metrics = pytest.importorskip("monai.metrics")
    pred, target = peer_maps()
    one_hot = lambda x: torch.nn.functional.one_hot(torch.from_numpy(x), 4).movedim(-1, 1).float()  # noqa: E731
    kw = {"include_background": include_background}
    # ignore_empty=False <=> empty_value=1: both empty -> 1, empty target with a prediction -> 0
    monai_dice = monai_metrics.compute_dice(one_hot(pred), one_hot(target), ignore_empty=False, **kw)
    ours = dice_score(pred, target, num_classes=4, empty_value=1.0, **kw)
    np.testing.assert_allclose(ours.numpy(), monai_dice.double().numpy(), rtol=1e-6, atol=1e-7)
    monai_iou = monai_metrics.compute_iou(one_hot(pred), one_hot(target), ignore_empty=False, **kw)
    ours = iou_score(pred, target, num_classes=4, empty_value=1.0, **kw)
    np.testing.assert_allclose(ours.numpy(), monai_iou.double().numpy(), rtol=1e-6, atol=1e-7)
    # MONAI's default ignore_empty=True is NaN whenever the target is empty, even with a false positive;
    # elsewhere the values are the same as ours
    monai_default = monai_metrics.compute_dice(one_hot(pred), one_hot(target), **kw).double().numpy()
    ours = dice_score(pred, target, num_classes=4, **kw).numpy()
    target_has = np.stack([(target == c).any(axis=(1, 2, 3)) for c in range(4)], 1)
    target_has = target_has if include_background else target_has[:, 1:]
    assert np.all(np.isnan(monai_default[~target_has]))
    np.testing.assert_allclose(ours[target_has], monai_default[target_has], rtol=1e-6)
    assert ours[1, -1] == 0.0  # the false positive of class 3 in image 1 is seen here


def test_agrees_with_medpy_dc_and_jc_per_label():
    medpy_binary = pytest.importorskip("medpy.metric.binary")
    pred, target = peer_maps(seed=1)
    dice = dice_score(pred, target, num_classes=4).numpy()
    iou = iou_score(pred, target, num_classes=4, empty_value=1.0).numpy()
    for b in range(pred.shape[0]):
        for c in range(4):
            p, g = pred[b] == c, target[b] == c
            if p.any() or g.any():  # medpy's dc on two empty masks is NaN or 0 depending on NumPy
                assert dice[b, c] == pytest.approx(medpy_binary.dc(p, g), rel=1e-12)
            assert iou[b, c] == pytest.approx(medpy_binary.jc(p, g), rel=1e-12)  # jc: both empty -> 1


def test_agrees_with_torchmetrics_dice_score():
    tm = pytest.importorskip("torchmetrics.functional.segmentation")
    pred, target = peer_maps(seed=2)
    theirs = tm.dice_score(
        torch.from_numpy(pred), torch.from_numpy(target), num_classes=4, average="none", input_format="index"
    )
    ours = dice_score(pred, target, num_classes=4).numpy()
    np.testing.assert_allclose(ours, theirs.double().numpy(), rtol=1e-6, equal_nan=True)


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"average": "samples"}, "average"),
        ({"empty_value": 2.0}, "empty_value"),
        ({"empty_value": "nan"}, "empty_value"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"per_image": "yes"}, "per_image"),
    ],
)
def test_bad_options(kwargs, match):
    x = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(SegDiceError, match=match):
        dice_score(x, x, **kwargs)


def test_bad_beta():
    x = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(SegDiceError, match="beta"):
        fbeta_score(x, x, beta=-1.0)
    with pytest.raises(SegDiceError, match="metric"):
        score_from_counts("hausdorff", x, x, x, x)


def test_float_labels_and_nan_scores_raise():
    with pytest.raises(SegDiceError, match="float labels"):
        dice_score(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4))
    scores = torch.zeros(1, 3, 4)
    scores[0, 1, 2] = float("nan")
    with pytest.raises(SegDiceError, match="NaN"):
        dice_score(scores, torch.zeros(1, 4, dtype=torch.long))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    pred, target = peer_maps(seed=3)
    target[0, 0, 0, :3] = 255
    cpu = dice_score(pred, target, num_classes=4, ignore_index=255)
    gpu = dice_score(
        torch.from_numpy(pred).cuda(), torch.from_numpy(target).cuda(), num_classes=4, ignore_index=255
    )
    assert gpu.device.type == "cuda"
    np.testing.assert_array_equal(gpu.cpu().numpy(), cpu.numpy())
    with pytest.raises(SegDiceError, match="num_classes=4"):
        dice_score(torch.from_numpy(pred).cuda() + 1, torch.from_numpy(target).cuda(), num_classes=4)
