"""The confusion family and the generalized Dice score: textbook formulas, MONAI, torchmetrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import segdice.metrics as M
from segdice import SegDiceError

# function name -> (evaluator key, MONAI metric name or None)
FAMILY = {
    "sensitivity": ("sensitivity", "sensitivity"),
    "specificity": ("specificity", "specificity"),
    "precision": ("precision", "precision"),
    "negative_predictive_value": ("npv", "negative predictive value"),
    "false_positive_rate": ("fpr", "fall out"),
    "false_negative_rate": ("fnr", "miss rate"),
    "false_discovery_rate": ("fdr", "false discovery rate"),
    "false_omission_rate": ("for", "false omission rate"),
    "balanced_accuracy": ("ba", "balanced accuracy"),
    "matthews_corrcoef": ("mcc", "matthews correlation coefficient"),
    "fowlkes_mallows_index": ("fmi", "fowlkes mallows index"),
    "informedness": ("bm", "informedness"),
    "markedness": ("mk", "markedness"),
    "prevalence_threshold": ("pt", "prevalence threshold"),
    "volume_similarity": ("vs", None),
    "relative_volume_difference": ("rvd", None),
}


def textbook(key: str, tp: float, fp: float, fn: float, tn: float) -> float:
    """The definitions as written on Wikipedia / in Taha & Hanbury 2015, for non-degenerate counts."""
    tpr, tnr = tp / (tp + fn), tn / (tn + fp)
    ppv, npv = tp / (tp + fp), tn / (tn + fn)
    fpr = fp / (fp + tn)
    return {
        "sensitivity": tpr,
        "specificity": tnr,
        "precision": ppv,
        "npv": npv,
        "fpr": fpr,
        "fnr": fn / (fn + tp),
        "fdr": fp / (fp + tp),
        "for": fn / (fn + tn),
        "ba": (tpr + tnr) / 2,
        "mcc": (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)),
        "fmi": math.sqrt(ppv * tpr),
        "bm": tpr + tnr - 1,
        "mk": ppv + npv - 1,
        "pt": (math.sqrt(tpr * fpr) - fpr) / (tpr - fpr),
        "vs": 1 - abs(fp - fn) / (2 * tp + fp + fn),
        "rvd": ((tp + fp) - (tp + fn)) / (tp + fn),
    }[key]


def _random_pair(seed: int, b: int = 3, c: int = 4, shape=(9, 11)):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (b, *shape), generator=g)
    pred = torch.where(
        torch.rand(target.shape, generator=g) < 0.7, target, torch.randint(0, c, target.shape, generator=g)
    )
    return pred, target


def _counts_loop(pred: torch.Tensor, target: torch.Tensor, c: int):
    """(b, c) -> tp, fp, fn, tn by comparing voxels, the slow obvious way."""
    out = {}
    for i in range(pred.shape[0]):
        for k in range(c):
            p, t = pred[i] == k, target[i] == k
            out[i, k] = tuple(
                int(v) for v in ((p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum())
            )
    return out


@pytest.mark.parametrize("fname", list(FAMILY))
def test_textbook_formula_per_image_and_class(fname):
    key = FAMILY[fname][0]
    pred, target = _random_pair(1)
    got = getattr(M, fname)(pred, target, num_classes=4)
    for (i, k), (tp, fp, fn, tn) in _counts_loop(pred, target, 4).items():
        if key == "pt" and tp / (tp + fn) == fp / (fp + tn):
            continue
        assert got[i, k].item() == pytest.approx(textbook(key, tp, fp, fn, tn), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("fname", list(FAMILY))
def test_evaluator_key_equals_function(fname):
    key = FAMILY[fname][0]
    assert key in M.score_from_counts.__globals__["METRICS"]
    pred, target = _random_pair(2)
    tp, fp, fn, tn = M.confusion(pred, target, 4)
    expected = getattr(M, fname)(pred, target, num_classes=4)
    torch.testing.assert_close(M.score_from_counts(key, tp, fp, fn, tn), expected)


def _monai_values(name: str, pred: torch.Tensor, target: torch.Tensor, c: int) -> torch.Tensor:
    from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix

    onehot = lambda x: torch.nn.functional.one_hot(x, c).movedim(-1, 1).float()  # noqa: E731
    cm = get_confusion_matrix(onehot(pred), onehot(target), include_background=True)
    return compute_confusion_matrix_metric(name, cm).double()


@pytest.mark.parametrize("fname", [f for f, (_, m) in FAMILY.items() if m is not None])
@pytest.mark.parametrize("seed", [3, 4])
def test_equals_monai_compute_confusion_matrix_metric(fname, seed):
    pred, target = _random_pair(seed)
    ours = getattr(M, fname)(pred, target, num_classes=4)
    theirs = _monai_values(FAMILY[fname][1], pred, target, 4)
    defined = ~torch.isnan(theirs)
    assert defined.all()  # random maps: every denominator is positive
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fname", [f for f, (_, m) in FAMILY.items() if m is not None])
def test_monai_confusion_matrix_metric_class_mean_batch(fname):
    from monai.metrics import ConfusionMatrixMetric

    pred, target = _random_pair(5)
    onehot = lambda x: torch.nn.functional.one_hot(x, 4).movedim(-1, 1).float()  # noqa: E731
    metric = ConfusionMatrixMetric(metric_name=FAMILY[fname][1], reduction="mean_batch", compute_sample=True)
    metric(onehot(pred), onehot(target))
    theirs = metric.aggregate()[0].double()
    ours = torch.nanmean(getattr(M, fname)(pred, target, num_classes=4), dim=0)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_empty_cases_documented():
    # image 0: class 1 absent from both; image 1: class 1 a false positive on an empty target
    target = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0]])
    pred = torch.tensor([[0, 0, 0, 0], [0, 1, 0, 0]])
    kw = {"num_classes": 2}
    for fname in FAMILY:
        values = getattr(M, fname)(pred, target, **kw)
        assert math.isnan(values[0, 1]), fname
    fp_on_empty = {f: getattr(M, f)(pred, target, **kw)[1, 1].item() for f in FAMILY}
    assert fp_on_empty["sensitivity"] == 0.0 and fp_on_empty["false_negative_rate"] == 1.0
    assert fp_on_empty["false_discovery_rate"] == 1.0 and fp_on_empty["precision"] == 0.0
    assert fp_on_empty["matthews_corrcoef"] == 0.0  # a zero marginal: no correlation (MONAI: NaN)
    assert fp_on_empty["volume_similarity"] == 0.0
    assert fp_on_empty["relative_volume_difference"] == math.inf
    assert fp_on_empty["false_positive_rate"] == pytest.approx(1 / 4)
    # a class covering every voxel in both: the negative-based metrics have nothing to score
    full = torch.ones(1, 4, dtype=torch.long)
    for fname in (
        "specificity",
        "negative_predictive_value",
        "balanced_accuracy",
        "matthews_corrcoef",
        "informedness",
        "markedness",
        "prevalence_threshold",
        "false_positive_rate",
    ):
        assert math.isnan(getattr(M, fname)(full, full, **kw)[0, 1]), fname
    assert M.sensitivity(full, full, **kw)[0, 1] == 1.0
    one = {"empty_value": 1.0}
    assert M.matthews_corrcoef(target, target, num_classes=2, **one)[0, 1] == 1.0


def test_prevalence_threshold_at_tpr_equal_fpr_is_the_limit():
    # TP=1, FN=1, FP=2, TN=2: TPR = FPR = 0.5, MONAI's form is 0/0
    pred = torch.tensor([[1, 0, 1, 1, 0, 0]])
    target = torch.tensor([[1, 1, 0, 0, 0, 0]])
    assert M.prevalence_threshold(pred, target, mode="binary").item() == pytest.approx(0.5)
    # the limit from both sides of the textbook form
    for eps in (1e-6, -1e-6):
        tpr, fpr = 0.5 + eps, 0.5
        assert (math.sqrt(tpr * fpr) - fpr) / (tpr - fpr) == pytest.approx(0.5, abs=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    tp=st.integers(0, 50),
    fp=st.integers(0, 50),
    fn=st.integers(0, 50),
    tn=st.integers(0, 50),
)
def test_identities(tp, fp, fn, tn):
    counts = tuple(torch.tensor([v]) for v in (tp, fp, fn, tn))
    s = {
        k: M.score_from_counts(k, *counts, empty_value=0.25)[0].item()
        for k in M.score_from_counts.__globals__["METRICS"]
    }
    if tp + fp + fn and tn + fp + fn:
        assert s["ba"] == pytest.approx((s["recall"] + s["specificity"]) / 2)
        assert s["bm"] == pytest.approx(2 * s["ba"] - 1)
        assert -1 - 1e-12 <= s["mcc"] <= 1 + 1e-12
        assert 0 <= s["pt"] <= 1
    if tp + fp + fn:
        assert s["fnr"] == pytest.approx(1 - s["recall"])
        assert s["fdr"] == pytest.approx(1 - s["precision"])
        assert s["sensitivity"] == s["recall"]
        assert 0 <= s["vs"] <= 1
    if tp + fn:
        assert s["rvd"] == pytest.approx((fp - fn) / (tp + fn))


def test_streaming_computes_the_family_from_its_sums():
    pred, target = _random_pair(6)
    keys = ("mcc", "npv", "vs", "rvd", "pt")
    sm = M.SegmentationMetrics(num_classes=4, metrics=keys)
    sm.update(pred[:2], target[:2])
    sm.update(pred[2:], target[2:])
    out = sm.compute()
    loop = _counts_loop(pred, target, 4)
    for key in keys:
        for k in range(4):
            pooled = [sum(loop[i, k][j] for i in range(pred.shape[0])) for j in range(4)]
            per_image = [textbook(key, *loop[i, k]) for i in range(pred.shape[0])]
            entry = out[key]["per_class"][str(k)]
            assert entry["global"] == pytest.approx(textbook(key, *pooled), rel=1e-12)
            assert entry["mean"] == pytest.approx(sum(per_image) / len(per_image), rel=1e-12)


# --- generalized Dice ---------------------------------------------------------------------------


def _gds_formula(pred, target, c, weight):
    """GDS per image from the definition, MONAI's rule for absent classes, with plain Python loops."""
    out = []
    for i in range(pred.shape[0]):
        g = [int((target[i] == k).sum()) for k in range(c)]
        p = [int((pred[i] == k).sum()) for k in range(c)]
        inter = [int(((pred[i] == k) & (target[i] == k)).sum()) for k in range(c)]
        w = [
            1.0 if weight == "uniform" else (1 / gk**2 if weight == "square" else 1 / gk) if gk else None
            for gk in g
        ]
        known = [x for x in w if x is not None]
        w = [x if x is not None else (max(known) if known else 1.0) for x in w]
        num = 2 * sum(wk * ik for wk, ik in zip(w, inter, strict=True))
        den = sum(wk * (gk + pk) for wk, gk, pk in zip(w, g, p, strict=True))
        out.append(num / den if den else math.nan)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("weight", ["square", "simple", "uniform"])
def test_gds_formula_and_monai(weight):
    from monai.metrics import compute_generalized_dice

    pred, target = _random_pair(7, b=3, c=4)
    target[0][target[0] == 3] = 0  # class 3 absent from image 0's target (MONAI's max-weight rule)
    ours = M.generalized_dice_score(pred, target, weight=weight, num_classes=4)
    torch.testing.assert_close(ours, _gds_formula(pred, target, 4, weight))
    onehot = lambda x: torch.nn.functional.one_hot(x, 4).movedim(-1, 1).float()  # noqa: E731
    theirs = compute_generalized_dice(onehot(pred), onehot(target), weight_type=weight, sum_over_classes=True)
    torch.testing.assert_close(ours, theirs.reshape(-1).double(), rtol=1e-5, atol=1e-6)  # MONAI adds eps=1e-8


@pytest.mark.parametrize("weight", ["square", "simple", "uniform"])
def test_gds_torchmetrics_when_every_class_is_present(weight):
    from torchmetrics.functional.segmentation import generalized_dice_score as tm_gds

    pred, target = _random_pair(8, b=2, c=3, shape=(16, 16))
    ours = M.generalized_dice_score(pred, target, weight=weight, num_classes=3, include_background=False)
    tm_weight = "linear" if weight == "uniform" else weight
    theirs = tm_gds(
        pred, target, num_classes=3, include_background=False, weight_type=tm_weight, input_format="index"
    )
    torch.testing.assert_close(ours, theirs.double(), rtol=1e-5, atol=1e-6)


def test_gds_empty_cases():
    both_empty = torch.zeros(1, 5, dtype=torch.long)
    fp = both_empty.clone()
    fp[0, 2] = 1
    assert math.isnan(
        M.generalized_dice_score(both_empty, both_empty, num_classes=2, include_background=False)
    )
    assert (
        M.generalized_dice_score(
            both_empty, both_empty, num_classes=2, include_background=False, empty_value=1.0
        ).item()
        == 1.0
    )
    assert M.generalized_dice_score(fp, both_empty, num_classes=2, include_background=False).item() == 0.0
    pooled = M.generalized_dice_score(
        torch.cat([fp, both_empty]),
        torch.cat([both_empty, both_empty]),
        num_classes=2,
        include_background=False,
        per_image=False,
    )
    assert pooled.ndim == 0 and pooled.item() == 0.0


def test_gds_bad_weight():
    with pytest.raises(SegDiceError, match="weight"):
        M.generalized_dice_score(np.zeros((1, 3), dtype=int), np.zeros((1, 3), dtype=int), weight="linear")
