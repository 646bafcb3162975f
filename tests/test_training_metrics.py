"""SegmentationMetrics in a training loop: forward, state_dict, to, flat results, class names.

The references are the functional metrics on the same predictions (all batches at once, or one batch
alone), torchmetrics' ``DiceScore`` on the same batches, and hand-computed numbers.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import subprocess
import sys
import traceback

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import segdice
from segdice import SegDiceError, SegmentationMetrics
from segdice.metrics import dice_score, iou_score

NUM_CLASSES = 4
AVERAGES = ("macro", "micro", "weighted")


def batches(n_batches=4, batch=3, shape=(10, 9), seed=0):
    """Seeded label-map batches where some classes are missing from some images (NaN scores)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        target = rng.integers(0, NUM_CLASSES, (batch, *shape))
        pred = np.where(rng.random(target.shape) < 0.3, rng.integers(0, NUM_CLASSES, target.shape), target)
        target[0][target[0] == 3] = 0  # class 3 absent from the first image's target ...
        pred[0][pred[0] == 3] = 0  # ... and prediction: NaN
        out.append((torch.from_numpy(pred), torch.from_numpy(target)))
    return out


def all_of(parts):
    return torch.cat([p for p, _ in parts]), torch.cat([t for _, t in parts])


def nanmean(values: torch.Tensor) -> float:
    known = values[~torch.isnan(values)]
    return float(known.mean()) if known.numel() else math.nan


def expected_flat(pred, target, metric_fns, class_names, **kwargs):
    """The flat result, key by key, from the functional metrics on ``pred`` / ``target``."""
    out = {}
    for name, fn in metric_fns.items():
        for avg in AVERAGES:
            out[f"{name}/{avg}"] = float(fn(pred, target, num_classes=NUM_CLASSES, average=avg, **kwargs))
        per_image = fn(pred, target, num_classes=NUM_CLASSES, **kwargs)
        for c, cname in enumerate(class_names):
            out[f"{name}/{cname}"] = nanmean(per_image[:, c])
    for name, fn in metric_fns.items():
        for avg in AVERAGES:
            out[f"{name}/global/{avg}"] = float(
                fn(pred, target, num_classes=NUM_CLASSES, per_image=False, average=avg, **kwargs)
            )
        pooled = fn(pred, target, num_classes=NUM_CLASSES, per_image=False, **kwargs)
        for c, cname in enumerate(class_names):
            out[f"{name}/global/{cname}"] = float(pooled[c])
    return out


def assert_same_values(got: dict, want: dict, rtol=1e-12):
    assert list(got) == list(want)
    for key in want:
        assert isinstance(got[key], float), key
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, err_msg=key)


# --- forward / __call__ ------------------------------------------------------------------------------


def test_forward_hand_computed():
    m = SegmentationMetrics(3, metrics=("dice",), class_names=("bg", "liver", "tumour"))
    # batch 1: liver tp=1 fp=1 fn=0 -> 2/3; tumour tp=1 fn=1 -> 2/3; bg tp=1 -> 1
    first = m(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]), flat=True)
    assert first["dice/liver"] == pytest.approx(2 / 3) and first["dice/tumour"] == pytest.approx(2 / 3)
    assert first["dice/macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # batch 2: everything background: liver and tumour NaN, bg 1
    second = m(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]]), flat=True)
    assert math.isnan(second["dice/liver"]) and second["dice/bg"] == 1.0 and second["dice/macro"] == 1.0
    total = m.compute(flat=True)
    assert total["dice/liver"] == pytest.approx(2 / 3)  # the NaN image is left out of the mean
    assert total["dice/macro"] == pytest.approx(((1 + 4 / 3) / 3 + 1) / 2)
    # pooled over both images: bg tp=5 of 5 predicted, 5 true
    assert total["dice/global/bg"] == 1.0


def test_forward_returns_the_batch_and_accumulates_like_update():
    parts = batches()
    fns = {"dice": dice_score, "iou": iou_score}
    called = SegmentationMetrics(NUM_CLASSES, metrics=tuple(fns))
    updated = SegmentationMetrics(NUM_CLASSES, metrics=tuple(fns))
    for pred, target in parts:
        batch = called(pred, target, flat=True)
        assert_same_values(batch, expected_flat(pred, target, fns, called.class_names))
        nested = called.forward(pred, target)  # a second call: the batch counts twice from here on
        assert nested["n_images"] == len(pred)
        assert nested["dice"]["macro"]["mean"] == batch["dice/macro"]
        updated.update(pred, target)
        updated.update(pred, target)
    pred, target = all_of(parts)
    want = expected_flat(torch.cat([pred, pred]), torch.cat([target, target]), fns, called.class_names)
    assert_same_values(called.compute(flat=True), want)
    assert called.compute() == updated.compute()


@pytest.mark.filterwarnings("ignore:DiceScore metric currently defaults:UserWarning")
def test_forward_equals_torchmetrics_dice_score_per_batch_and_at_the_end():
    from torchmetrics.segmentation import DiceScore

    parts = batches(seed=5)
    for include_background in (True, False):
        ours = SegmentationMetrics(NUM_CLASSES, metrics=("dice",), include_background=include_background)
        averages = ("macro", "micro", "weighted") if include_background else ("macro", "micro")
        theirs = {
            avg: DiceScore(
                NUM_CLASSES, include_background=include_background, average=avg, input_format="index"
            )
            for avg in (*averages, "none")
        }
        global_macro = DiceScore(
            NUM_CLASSES,
            include_background=include_background,
            aggregation_level="global",
            input_format="index",
        )
        for pred, target in parts:
            batch = ours(pred, target, flat=True)
            for avg in averages:
                assert batch[f"dice/{avg}"] == pytest.approx(float(theirs[avg](pred, target)), rel=1e-6)
            per_class = theirs["none"](pred, target)
            global_macro.update(pred, target)
            got = torch.tensor([batch[f"dice/{c}"] for c in ours.class_names])
            torch.testing.assert_close(got.float(), per_class, equal_nan=True)
        result = ours.compute(flat=True)
        for avg in averages:
            assert result[f"dice/{avg}"] == pytest.approx(float(theirs[avg].compute()), rel=1e-6)
        got = torch.tensor([result[f"dice/{c}"] for c in ours.class_names])
        torch.testing.assert_close(got.float(), theirs["none"].compute(), equal_nan=True)
        assert result["dice/global/macro"] == pytest.approx(float(global_macro.compute()), rel=1e-6)


def test_weighted_average_of_a_false_positive_on_an_empty_target():
    # An image whose target holds only background, with a predicted foreground voxel, and the background
    # left out: no class has support. The false positive is seen: the plain mean of the scored classes, 0
    # (torchmetrics gives 0 too), never NaN (which would drop the image from the mean over images).
    from torchmetrics.functional.segmentation import dice_score as tm_dice

    m = SegmentationMetrics(2, metrics=("dice",), include_background=False)
    pred, target = torch.tensor([[1, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]])
    batch = m(pred, target, flat=True)
    theirs = tm_dice(
        pred, target, num_classes=2, include_background=False, average="weighted", input_format="index"
    )
    assert batch["dice/1"] == 0.0 and batch["dice/weighted"] == 0.0 == float(theirs)


def test_forward_refused_after_sync_state_is_loaded():
    m = SegmentationMetrics(2, metrics=("dice",))
    m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    state = m.state_dict()
    state["synced"] = True  # as saved from a rank after sync(): the sums are global ones
    m.load_state_dict(state)
    with pytest.raises(SegDiceError, match=r"forward: .*synced.*reset\(\)"):
        m(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    m.reset()
    m(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))


def test_rejected_batch_leaves_no_trace_in_forward():
    m = SegmentationMetrics(NUM_CLASSES, metrics=("dice",))
    with pytest.raises(SegDiceError, match="num_classes=4"):
        m(torch.full((1, 4), 7), torch.zeros(1, 4, dtype=torch.long))
    assert m.compute()["n_images"] == 0


# --- compute(flat=True) and class names -----------------------------------------------------------


def test_flat_keys_cover_every_metric_average_and_class():
    m = SegmentationMetrics(3, metrics=("dice", "recall"), class_names=("bg", "liver", "tumour"))
    m.update(torch.tensor([[0, 1, 2, 2]]), torch.tensor([[0, 1, 1, 2]]))
    keys = list(m.compute(flat=True))
    parts = ("macro", "micro", "weighted", "bg", "liver", "tumour")
    assert keys == [f"{metric}/{p}" for metric in ("dice", "recall") for p in parts] + [
        f"{metric}/global/{p}" for metric in ("dice", "recall") for p in parts
    ]


def test_flat_equals_functional_metrics_on_all_batches():
    parts = batches(seed=2)
    m = SegmentationMetrics(NUM_CLASSES, metrics=("dice", "iou"), include_background=False, ignore_index=2)
    for pred, target in parts:
        m.update(pred, target)
    pred, target = all_of(parts)
    kwargs = {"include_background": False, "ignore_index": 2}
    want = expected_flat(pred, target, {"dice": dice_score, "iou": iou_score}, ("1", "2", "3"), **kwargs)
    assert_same_values(m.compute(flat=True), want)


def test_class_names_may_include_the_dropped_background():
    parts = batches(seed=3)
    named = SegmentationMetrics(
        NUM_CLASSES, metrics=("dice",), include_background=False, class_names=("bg", "a", "b", "c")
    )
    reported = SegmentationMetrics(
        NUM_CLASSES, metrics=("dice",), include_background=False, class_names=("a", "b", "c")
    )
    assert named.class_names == reported.class_names == ("a", "b", "c")
    for pred, target in parts:
        named.update(pred, target)
    pred, target = all_of(parts)
    per_image = dice_score(pred, target, include_background=False)
    result = named.compute(flat=True)
    assert "dice/bg" not in result
    for c, cname in enumerate("abc"):
        assert result[f"dice/{cname}"] == pytest.approx(nanmean(per_image[:, c]), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"class_names": ("a", "b")}, r"got 2 names .*expected 4 \(one per reported class\)"),
        (
            {"class_names": ("a", "b"), "include_background": False},
            r"expected 3 \(one per reported class, or 4 with the background's first\)",
        ),
        ({"class_names": "abcd"}, "the string 'abcd'"),
        ({"class_names": 4}, r"got 4 \(int\); expected a sequence of names"),
        ({"class_names": ("a", "macro", "b", "c")}, "'macro'.*flat result"),
        ({"class_names": ("a", "global/x", "b", "c")}, "'global/x'"),
    ],
)
def test_bad_class_names(kwargs, match):
    with pytest.raises(SegDiceError, match=match):
        SegmentationMetrics(NUM_CLASSES, **kwargs)


# --- state_dict / load_state_dict ----------------------------------------------------------------


def saved_and_loaded(state) -> dict:
    """``state`` through torch.save and torch.load, as a checkpoint takes it (weights_only, the default)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_results_identical(a: dict, b: dict):
    """Equal to the last bit, NaN where the other is NaN (a nested compute() result)."""
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_results_identical(a[key], b[key])
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b and type(a) is type(b)


@given(split=st.integers(0, 4), keep_per_case=st.booleans())
def test_state_dict_resume_equals_an_uninterrupted_run(split, keep_per_case):
    parts = batches(n_batches=4, seed=4)
    settings = {"metrics": ("dice", "iou", "fbeta"), "beta": 2.0, "keep_per_case": keep_per_case}
    uninterrupted = SegmentationMetrics(NUM_CLASSES, **settings)
    first = SegmentationMetrics(NUM_CLASSES, **settings)
    for pred, target in parts:
        uninterrupted.update(pred, target)
    for pred, target in parts[:split]:
        first.update(pred, target)
    resumed = SegmentationMetrics(NUM_CLASSES, **settings)
    resumed.update(*parts[0])  # whatever was there is replaced, not added to
    resumed.load_state_dict(saved_and_loaded(first.state_dict()))
    assert_results_identical(resumed.compute(), first.compute())
    for pred, target in parts[split:]:
        resumed.update(pred, target)
    assert_results_identical(resumed.compute(), uninterrupted.compute())
    pred, target = all_of(parts)
    assert resumed.compute(flat=True)["dice/global/1"] == pytest.approx(
        float(dice_score(pred, target, per_image=False)[1]), rel=1e-12
    )


def test_state_dict_is_a_copy_and_plain_data():
    m = SegmentationMetrics(2, metrics=("dice",))
    m.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    state = m.state_dict()
    assert state["version"] == segdice.metrics.streaming.STATE_VERSION == 2
    assert state["cases"] is None and state["synced"] is False
    assert state["config"]["metrics"] == ["dice"] and state["config"]["class_names"] == ["0", "1"]
    assert state["sums"]["counts"].tolist() == [[1, 2], [0, 1], [1, 0], [2, 1]]  # tp, fp, fn, tn per class
    state["sums"]["counts"].zero_()
    assert m.state_dict()["sums"]["counts"].sum() == 8  # the object's own state is untouched


def _as_version_1(state):
    """The layout segdice wrote before the generalized Dice sums: no gds_n, gds_sum or gds_weight."""
    state = dict(state, version=1, config=dict(state["config"]), sums=dict(state["sums"]))
    for key in ("gds_n", "gds_sum"):
        del state["sums"][key]
    del state["config"]["gds_weight"]
    return state


def test_a_version_1_state_still_loads_and_refuses_gds():
    parts = batches(n_batches=2)
    saved = SegmentationMetrics(NUM_CLASSES, metrics=("dice", "iou"))
    saved.update(*parts[0])
    resumed = SegmentationMetrics(NUM_CLASSES, metrics=("dice", "iou"))
    resumed.load_state_dict(_as_version_1(saved.state_dict()))
    resumed.update(*parts[1])
    pred, target = all_of(parts)
    assert resumed.compute(flat=True)["dice/global/1"] == pytest.approx(
        float(dice_score(pred, target, per_image=False)[1]), rel=1e-12
    )
    with pytest.raises(SegDiceError, match="metrics="):
        SegmentationMetrics(NUM_CLASSES, metrics=("dice", "iou", "gds")).load_state_dict(
            _as_version_1(saved.state_dict())
        )


def test_load_state_dict_renamed_classes_allowed():
    a = SegmentationMetrics(2, metrics=("dice",), class_names=("bg", "fg"))
    a.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
    b = SegmentationMetrics(2, metrics=("dice",), class_names=("background", "lesion"))
    b.load_state_dict(a.state_dict())
    assert b.compute(flat=True)["dice/global/lesion"] == a.compute(flat=True)["dice/global/fg"] == 0.8


def _state(**kwargs):
    m = SegmentationMetrics(NUM_CLASSES, **kwargs)
    m.update(*batches(n_batches=1)[0])
    return m.state_dict()


def _with(state, path, value):
    *head, last = path
    node = state
    for key in head:
        node = node[key]
    node[last] = value
    return state


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ([1, 2], r"state_dict: got list; expected the dict that SegmentationMetrics.state_dict\(\) returns"),
        ({"counts": torch.zeros(4, 4)}, r"state_dict: got a dict with keys \['counts'\]"),
        (_with(_state(), ["version"], 3), r"state_dict\['version'\]: got 3; expected 2 or 1"),
        ({"version": 2, "config": {}}, r"missing keys \['synced', 'sums', 'cases'\]"),
        (_state(metrics=("dice",)), r"metrics=\['dice'\], but .*metrics=\['dice', 'iou'\]"),
        (
            _state(empty_value=1.0),
            r"saved with empty_value=1.0, but this SegmentationMetrics has empty_value=nan",
        ),
        (_state(ignore_index=255), "ignore_index=255"),
        (_state(include_background=False), "include_background=False"),
        (_state(keep_per_case=True), "keep_per_case=True"),
        (
            _with(_state(), ["sums", "sum"], torch.zeros(2, 4, dtype=torch.float32)),
            r"state_dict\['sums'\]\['sum'\]: got a tensor of shape \(2, 4\), dtype torch.float32; "
            r"expected a tensor of shape \(2, 4\), dtype torch.float64",
        ),
        (_with(_state(), ["sums", "n"], [0, 1]), r"\['sums'\]\['n'\]: got list"),
        (_with(_state(), ["sums"], {"counts": torch.zeros(4, 4)}), r"state_dict\['sums'\]: got \['counts'\]"),
    ],
)
def test_mismatched_state_is_refused_and_leaves_the_state_alone(state, match):
    m = SegmentationMetrics(NUM_CLASSES)
    m.update(*batches(n_batches=1, seed=9)[0])
    before = m.compute()
    with pytest.raises(SegDiceError, match=match):
        m.load_state_dict(state)
    assert_results_identical(m.compute(), before)


def test_per_case_state_of_the_wrong_length_is_refused():
    m = SegmentationMetrics(NUM_CLASSES, keep_per_case=True)
    state = _state(keep_per_case=True)
    state["cases"] = state["cases"][:1]
    with pytest.raises(
        SegDiceError, match=r"state_dict\['cases'\]: got a tensor of shape \(1, 4, 4\).*\(3, 4, 4\)"
    ):
        m.load_state_dict(state)


def test_mismatch_message_names_the_binary_mode():
    a = SegmentationMetrics(1, metrics=("dice",), mode="binary")
    b = SegmentationMetrics(1, metrics=("dice",), mode="multilabel")
    with pytest.raises(
        SegDiceError, match="mode='binary', but this SegmentationMetrics has mode='multilabel'"
    ):
        b.load_state_dict(a.state_dict())


# --- devices ---------------------------------------------------------------------------------------


def test_to_returns_self_and_keeps_the_device_over_reset():
    m = SegmentationMetrics(2, metrics=("dice",))
    assert m.to(torch.device("cpu")) is m and m.device == torch.device("cpu")
    m.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    m.reset()
    assert all(t.device == m.device for t in m.state_dict()["sums"].values())


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_state_moves_across_devices_exactly():
    parts = batches(seed=6)
    on_gpu = SegmentationMetrics(NUM_CLASSES, keep_per_case=True).to("cuda")
    assert on_gpu.device == torch.device("cuda", 0)
    for pred, target in parts[:2]:
        on_gpu.update(pred.cuda(), target.cuda())
    state = on_gpu.state_dict()
    assert all(t.device.type == "cuda" for t in state["sums"].values())
    on_cpu = SegmentationMetrics(NUM_CLASSES, keep_per_case=True)
    on_cpu.load_state_dict(state)  # loads onto its own device
    assert all(t.device.type == "cpu" for t in on_cpu.state_dict()["sums"].values())
    assert_results_identical(on_cpu.compute(), on_gpu.compute())
    back = SegmentationMetrics(NUM_CLASSES, keep_per_case=True).to("cuda")
    back.load_state_dict(on_cpu.state_dict())
    for pred, target in parts[2:]:
        back.update(pred.cuda(), target.cuda())
        on_cpu.update(pred, target)
    assert_results_identical(back.compute(), on_cpu.compute())


@cuda
def test_update_follows_the_inputs_device():
    m = SegmentationMetrics(NUM_CLASSES)
    m.update(*batches(n_batches=1)[0])
    pred, target = batches(n_batches=1, seed=1)[0]
    m.update(pred.cuda(), target.cuda())
    assert m.device.type == "cuda" and m.compute()["n_images"] == 6


# --- SegDiceError's public name ------------------------------------------------------------------


def test_segdice_error_shows_its_public_name_and_pickles():
    assert SegDiceError.__module__ == "segdice" and segdice.SegDiceError is SegDiceError
    try:
        SegmentationMetrics(0)
    except SegDiceError as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc))
        assert text.startswith("segdice.SegDiceError: num_classes")
        copy = pickle.loads(pickle.dumps(exc))
        assert type(copy) is SegDiceError and str(copy) == str(exc)


# --- segdice.integrations.torchmetrics.SegDiceMetric -----------------------------------------------

FUNCTIONS = {"dice": dice_score, "iou": iou_score}


def per_class_means(per_image: torch.Tensor) -> torch.Tensor:
    """``[B, C]`` scores -> the NaN-aware mean of each class over the images, float64 ``[C]``."""
    return torch.tensor([nanmean(col) for col in per_image.T], dtype=torch.float64)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted", "none"])
@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_segdice_metric_equals_the_functional_metric(metric, average, per_image):
    from segdice.integrations.torchmetrics import SegDiceMetric

    parts = batches(seed=7)
    m = SegDiceMetric(NUM_CLASSES, metric, average=average, per_image=per_image, ignore_index=3)
    fn = FUNCTIONS[metric]
    kwargs = {"num_classes": NUM_CLASSES, "average": average, "per_image": per_image, "ignore_index": 3}
    for pred, target in parts:
        batch = m(pred, target)  # forward: this batch alone
        want = fn(pred, target, **kwargs)
        if average == "none" and per_image:
            want = per_class_means(want)
        torch.testing.assert_close(batch, want, equal_nan=True, rtol=1e-12, atol=0)
    pred, target = all_of(parts)
    want = fn(pred, target, **kwargs)
    if average == "none" and per_image:
        want = per_class_means(want)
    got = m.compute()
    assert got.dtype == torch.float64 and got.shape == want.shape
    torch.testing.assert_close(got, want, equal_nan=True, rtol=1e-12, atol=0)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_segdice_metric_binary_and_multilabel_probabilities(mode):
    from segdice.integrations.torchmetrics import SegDiceMetric

    g = torch.Generator().manual_seed(12)
    channels = 1 if mode == "binary" else 3
    m = SegDiceMetric(channels, mode=mode, per_image=False, average="none")
    probs, masks = [], []
    for _ in range(3):
        prob = torch.rand(2, channels, 8, 8, generator=g)  # thresholded at 0.5
        mask = (torch.rand(2, channels, 8, 8, generator=g) < 0.4).long()
        m.update(prob, mask)
        probs.append(prob)
        masks.append(mask)
    prob, mask = torch.cat(probs), torch.cat(masks)
    hard = (prob > 0.5).long()
    tp = (hard * mask).sum((0, 2, 3)).double()
    want = 2 * tp / (hard.sum((0, 2, 3)) + mask.sum((0, 2, 3)))  # by hand: pooled Dice per channel
    got = m.compute()  # torchmetrics squeezes a one-element result to 0-dim
    torch.testing.assert_close(got.reshape(-1), want, rtol=1e-12, atol=0)


@pytest.mark.filterwarnings("ignore:DiceScore metric currently defaults:UserWarning")
def test_segdice_metric_equals_torchmetrics_dice_score_in_one_collection():
    from torchmetrics import MetricCollection
    from torchmetrics.segmentation import DiceScore

    from segdice.integrations.torchmetrics import SegDiceMetric

    collection = MetricCollection(
        {
            "segdice_macro": SegDiceMetric(NUM_CLASSES),
            "segdice_micro": SegDiceMetric(NUM_CLASSES, average="micro"),
            "segdice_iou": SegDiceMetric(NUM_CLASSES, "iou"),
            "torchmetrics_macro": DiceScore(NUM_CLASSES, input_format="index"),
            "torchmetrics_micro": DiceScore(NUM_CLASSES, average="micro", input_format="index"),
        }
    )
    parts = batches(seed=8)
    for pred, target in parts:
        step = collection(pred, target)
        assert float(step["segdice_macro"]) == pytest.approx(float(step["torchmetrics_macro"]), rel=1e-6)
    result = collection.compute()
    assert float(result["segdice_macro"]) == pytest.approx(float(result["torchmetrics_macro"]), rel=1e-6)
    assert float(result["segdice_micro"]) == pytest.approx(float(result["torchmetrics_micro"]), rel=1e-6)
    pred, target = all_of(parts)
    assert float(result["segdice_iou"]) == pytest.approx(
        float(iou_score(pred, target, average="macro")), rel=1e-12
    )
    collection.reset()
    collection.update(*parts[0])  # after reset() only this batch counts
    again = collection.compute()
    assert float(again["segdice_macro"]) == pytest.approx(
        float(dice_score(*parts[0], average="macro")), rel=1e-12
    )
    assert float(again["segdice_macro"]) == pytest.approx(float(again["torchmetrics_macro"]), rel=1e-6)


def test_collection_never_merges_metrics_whose_sums_agree_by_chance():
    # On a perfect first batch Dice and IoU (and the two ignore_index settings) have equal sums: a
    # MetricCollection that merged them into one compute group would report Dice as IoU from then on.
    from torchmetrics import MetricCollection

    from segdice.integrations.torchmetrics import SegDiceMetric

    collection = MetricCollection(
        {
            "dice": SegDiceMetric(NUM_CLASSES),
            "iou": SegDiceMetric(NUM_CLASSES, "iou"),
            "dice_ignore_2": SegDiceMetric(NUM_CLASSES, ignore_index=2),
        }
    )
    perfect = torch.tensor([[0, 1, 3, 3]])
    collection.update(perfect, perfect.clone())
    pred, target = batches(n_batches=1, seed=9)[0]
    collection.update(pred, target)
    result = collection.compute()
    for name, fn, kwargs in [
        ("dice", dice_score, {}),
        ("iou", iou_score, {}),
        ("dice_ignore_2", dice_score, {"ignore_index": 2}),
    ]:
        per_image = [
            float(fn(perfect, perfect, num_classes=NUM_CLASSES, average="macro", **kwargs)),
            *fn(pred, target, num_classes=NUM_CLASSES, **kwargs).nanmean(1).tolist(),
        ]
        assert float(result[name]) == pytest.approx(np.mean(per_image), rel=1e-12), name


@pytest.mark.filterwarnings(
    "ignore:The ``compute`` method of metric SegDiceMetric was called before:UserWarning"
)
def test_segdice_metric_state_is_o_of_c_sums_and_follows_reset_and_to():
    from segdice.integrations.torchmetrics import SegDiceMetric

    m = SegDiceMetric(NUM_CLASSES).to("cpu")
    shapes = {name: tuple(value.shape) for name, value in m.metric_state.items()}
    for pred, target in batches(n_batches=5):
        m.update(pred, target)
    assert {name: tuple(value.shape) for name, value in m.metric_state.items()} == shapes
    assert all(isinstance(value, torch.Tensor) for value in m.metric_state.values())  # no list states
    assert m.metric_state["n_images"].item() == 15
    m.reset()
    assert m.metric_state["n_images"].item() == 0 and torch.isnan(m.compute())


@pytest.mark.filterwarnings(
    "ignore:The ``compute`` method of metric SegDiceMetric was called before:UserWarning"
)
def test_segdice_metric_state_dict_round_trip_and_mismatch():
    from segdice.integrations.torchmetrics import SegDiceMetric

    parts = batches(seed=10)
    m = SegDiceMetric(NUM_CLASSES)
    m.persistent(True)
    for pred, target in parts[:2]:
        m.update(pred, target)
    state = saved_and_loaded(m.state_dict())
    assert "counts" in state and "settings" in state
    resumed = SegDiceMetric(NUM_CLASSES)
    resumed.persistent(True)
    resumed.load_state_dict(state)
    for pred, target in parts[2:]:
        resumed.update(pred, target)
    pred, target = all_of(parts)
    assert float(resumed.compute()) == pytest.approx(
        float(dice_score(pred, target, average="macro")), rel=1e-12
    )
    other = SegDiceMetric(NUM_CLASSES, "iou")
    other.persistent(True)
    other.load_state_dict(state)
    with pytest.raises(
        SegDiceError, match="SegDiceMetric state: got the state of a metric with other settings"
    ):
        other.compute()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": ("dice", "iou")}, "metric: got"),
        ({"metric": "hd95"}, "metrics: got 'hd95'"),
        ({"average": "samplewise"}, "average: got 'samplewise'"),
        ({"per_image": "yes"}, "per_image: got 'yes'"),
        ({"mode": "binary"}, "num_classes"),
    ],
)
def test_segdice_metric_bad_options(kwargs, match):
    from segdice.integrations.torchmetrics import SegDiceMetric

    with pytest.raises(SegDiceError, match=match):
        SegDiceMetric(NUM_CLASSES, **kwargs)


def test_segdice_metric_rejects_bad_input_without_a_trace():
    from segdice.integrations.torchmetrics import SegDiceMetric

    m = SegDiceMetric(NUM_CLASSES)
    with pytest.raises(SegDiceError, match="num_classes=4"):
        m.update(torch.full((1, 4), 9), torch.zeros(1, 4, dtype=torch.long))
    assert m.metric_state["n_images"].item() == 0


@cuda
def test_segdice_metric_on_cuda():
    from segdice.integrations.torchmetrics import SegDiceMetric

    m = SegDiceMetric(NUM_CLASSES).to("cuda")
    parts = batches(seed=11)
    for pred, target in parts:
        m.update(pred.cuda(), target.cuda())
    value = m.compute()
    assert value.device.type == "cuda"
    pred, target = all_of(parts)
    assert float(value) == pytest.approx(float(dice_score(pred, target, average="macro")), rel=1e-12)


# One fresh process (importing torch there takes seconds on a loaded machine) checks three things:
# segdice and segdice.integrations load no torchmetrics, the integration explains a missing torchmetrics,
# and a pickled SegDiceError loads back by its public name.
FRESH_PROCESS = """
import json, pickle, sys
import numpy as np
error = pickle.loads(sys.stdin.buffer.read())
import segdice, segdice.integrations
report = {"loaded": "torchmetrics" in sys.modules, "error": [type(error).__module__, str(error)]}
sys.modules["torchmetrics"] = None  # as if it were not installed
segdice.SegmentationMetrics(2).update(np.array([[0, 1]]), np.array([[0, 1]]))
try:
    import segdice.integrations.torchmetrics
except ImportError as exc:
    report["message"] = str(exc)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_without_torchmetrics_segdice_works_and_the_integration_explains():
    data = pickle.dumps(SegDiceError("x: got 1; expected 2"))
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS], input=data, capture_output=True, check=False)
    assert out.returncode == 0, out.stderr.decode()
    report = json.loads(out.stdout)
    assert report["loaded"] is False
    assert report["error"] == ["segdice", "x: got 1; expected 2"]
    message = report["message"]
    assert message.startswith("segdice.integrations.torchmetrics: could not import torchmetrics")
    assert "pip install torchmetrics" in message and "segdice itself does not need it" in message
