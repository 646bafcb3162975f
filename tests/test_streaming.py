"""SegmentationMetrics: streaming equals one pass over all data; distributed equals one process."""

from __future__ import annotations

import datetime
import math
import os
import sys

import numpy as np
import pytest
import torch

from segdice import SegDiceError, SegmentationMetrics
from segdice.metrics import dice_score, iou_score, recall

NUM_CLASSES = 4
METRICS = ("dice", "iou", "recall")
FUNCTIONS = {"dice": dice_score, "iou": iou_score, "recall": recall}


def dataset(n_images=9, seed=0, shape=(12, 10)):
    """Label maps where some classes are absent from both maps, and some only predicted."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, NUM_CLASSES, (n_images, *shape))
    pred = np.where(rng.random(target.shape) < 0.25, rng.integers(0, NUM_CLASSES, target.shape), target)
    target[::3][target[::3] == 3] = 0  # class 3 absent from the target of every third image...
    pred[::6][pred[::6] == 3] = 0  # ...and from the prediction of every sixth: both empty
    return pred, target


def expected_result(pred, target, **kwargs):
    """What the streaming state must report, from the functional metrics on all images at once."""
    out = {}
    for name, fn in FUNCTIONS.items():
        per_image = fn(pred, target, num_classes=NUM_CLASSES, **kwargs).numpy()
        pooled = fn(pred, target, num_classes=NUM_CLASSES, per_image=False, **kwargs).numpy()
        entry = {"per_class": {}}
        for c in range(per_image.shape[1]):
            col = per_image[:, c]
            known = col[~np.isnan(col)]
            entry["per_class"][c] = {
                "mean": known.mean() if known.size else math.nan,
                "n": known.size,
                "n_nan": int(np.isnan(col).sum()),
                "global": pooled[c],
            }
        for avg in ("macro", "micro", "weighted"):
            entry[avg] = {
                "mean": float(fn(pred, target, num_classes=NUM_CLASSES, average=avg, **kwargs)),
                "global": float(
                    fn(pred, target, num_classes=NUM_CLASSES, per_image=False, average=avg, **kwargs)
                ),
            }
        out[name] = entry
    return out


def assert_matches(result, expected, class_names):
    for name in METRICS:
        for c, cname in enumerate(class_names):
            got, want = result[name]["per_class"][cname], expected[name]["per_class"][c]
            assert got["n"] == want["n"] and got["n_nan"] == want["n_nan"], (name, cname)
            np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-12)
            np.testing.assert_allclose(got["global"], want["global"], rtol=1e-12)
        for avg in ("macro", "micro", "weighted"):
            np.testing.assert_allclose(result[name][avg]["mean"], expected[name][avg]["mean"], rtol=1e-12)
            np.testing.assert_allclose(result[name][avg]["global"], expected[name][avg]["global"], rtol=1e-12)


def feed(metric, pred, target, batch_sizes):
    start = 0
    for size in batch_sizes:
        metric.update(
            torch.from_numpy(pred[start : start + size]), torch.from_numpy(target[start : start + size])
        )
        start += size
    assert start == len(pred)


def test_hand_computed_two_images():
    m = SegmentationMetrics(2, metrics=("dice",), class_names=("bg", "fg"))
    # image 1: fg tp=1, fp=1, fn=1 -> 0.5; image 2: fg absent from both -> NaN
    m.update(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]))
    m.update(np.array([[0, 0, 0, 0]]), np.array([[0, 0, 0, 0]]))
    fg = m.compute()["dice"]["per_class"]["fg"]
    assert fg == {"mean": 0.5, "n": 1, "n_nan": 1, "global": 0.5}
    bg = m.compute()["dice"]["per_class"]["bg"]
    assert bg["mean"] == pytest.approx((0.5 + 1.0) / 2) and bg["n"] == 2 and bg["n_nan"] == 0
    assert bg["global"] == pytest.approx(2 * 5 / (6 + 6))  # pooled: tp 5, target 6, prediction 6


@pytest.mark.parametrize("batch_sizes", [[9], [1] * 9, [4, 2, 3], [2, 5, 2]])
@pytest.mark.parametrize("empty_value", [math.nan, 1.0])
def test_streaming_equals_all_data_at_once(batch_sizes, empty_value):
    pred, target = dataset()
    m = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, empty_value=empty_value)
    feed(m, pred, target, batch_sizes)
    result = m.compute()
    assert result["n_images"] == 9
    assert_matches(result, expected_result(pred, target, empty_value=empty_value), m.class_names)
    if math.isnan(empty_value):
        assert result["dice"]["per_class"]["3"]["n_nan"] == 2  # images 0 and 6


def test_batch_order_does_not_matter_and_reset():
    pred, target = dataset(seed=1)
    order = np.random.default_rng(2).permutation(len(pred))
    a = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, include_background=False)
    b = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, include_background=False)
    feed(a, pred, target, [3, 3, 3])
    feed(b, pred[order], target[order], [5, 4])
    ra, rb = a.compute(), b.compute()
    for name in METRICS:
        for cname in a.class_names:
            x, y = ra[name]["per_class"][cname], rb[name]["per_class"][cname]
            assert x["n"] == y["n"] and x["global"] == y["global"]
            assert x["mean"] == pytest.approx(y["mean"], rel=1e-14)
    assert a.class_names == ("1", "2", "3")
    a.reset()
    empty = a.compute()
    assert empty["n_images"] == 0 and math.isnan(empty["dice"]["per_class"]["1"]["mean"])
    feed(a, pred, target, [9])
    assert a.compute()["dice"]["per_class"]["1"]["global"] == ra["dice"]["per_class"]["1"]["global"]


def test_state_is_o_of_c():
    pred, target = dataset(n_images=6)
    m = SegmentationMetrics(NUM_CLASSES, metrics=METRICS)
    feed(m, pred, target, [6])
    sizes = [t.numel() for t in m._pack()]
    feed(m, pred, target, [1] * 6)
    assert [t.numel() for t in m._pack()] == sizes
    assert not m._cases


def test_keep_per_case():
    pred, target = dataset(n_images=5)
    m = SegmentationMetrics(NUM_CLASSES, metrics=("dice",), keep_per_case=True)
    feed(m, pred, target, [2, 3])
    per_case = m.compute()["per_case"]["dice"]
    np.testing.assert_array_equal(per_case.numpy(), dice_score(pred, target, num_classes=NUM_CLASSES).numpy())


def test_binary_and_multilabel_modes():
    rng = np.random.default_rng(4)
    target = rng.integers(0, 2, (4, 2, 8, 8))
    pred = rng.integers(0, 2, (4, 2, 8, 8))
    m = SegmentationMetrics(2, metrics=("dice",), mode="multilabel", class_names=("WT", "TC"))
    feed(m, pred, target, [1, 3])
    want = dice_score(pred, target, mode="multilabel", per_image=False).numpy()
    got = m.compute()["dice"]["per_class"]
    assert [got["WT"]["global"], got["TC"]["global"]] == pytest.approx(want.tolist(), rel=1e-12)
    b = SegmentationMetrics(1, metrics=("dice",), mode="binary")
    feed(b, pred[:, 0], target[:, 0], [4])
    assert b.compute()["dice"]["per_class"]["0"]["global"] == pytest.approx(want[0], rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metrics": ("dice", "hd95")}, "metrics"),
        ({"metrics": ()}, "metrics"),
        ({"class_names": ("a", "b")}, "class_names"),
        ({"class_names": ("a", "a", "b", "c")}, "distinct"),
        ({"mode": "binary"}, "num_classes"),
        ({"mode": "multilabel", "include_background": False}, "multiclass"),
        ({"empty_value": 5}, "empty_value"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(SegDiceError, match=match):
        SegmentationMetrics(NUM_CLASSES, **kwargs)


def test_bad_update_input():
    m = SegmentationMetrics(NUM_CLASSES)
    with pytest.raises(SegDiceError, match="num_classes=4"):
        m.update(np.full((1, 4), 4), np.zeros((1, 4), int))
    with pytest.raises(SegDiceError, match="same shape"):
        m.update(np.zeros((1, 4), int), np.zeros((1, 5), int))
    assert m.compute()["n_images"] == 0  # a rejected batch leaves no trace


# --- distributed: 2 gloo processes against one process seeing all the data -----------------------------

RANK_BATCHES = {0: [3, 1, 2], 1: [2]}  # uneven: 6 images in 3 updates against 2 images in 1


def _worker(rank: int, world: int, out_dir: str) -> None:
    import torch.distributed as dist

    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    # Rendezvous through a file, not a probed TCP port that another process may take before rank 0 binds
    # it; the timeout only catches a hang (a loaded machine can take minutes to start both ranks).
    dist.init_process_group(
        "gloo",
        init_method=f"file://{os.path.join(out_dir, 'rendezvous')}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=600),
    )
    try:
        pred, target = dataset(n_images=8, seed=3)
        start = sum(RANK_BATCHES[0]) if rank == 1 else 0
        local = slice(start, start + sum(RANK_BATCHES[rank]))
        m = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, keep_per_case=True)
        feed(m, pred[local], target[local], RANK_BATCHES[rank])
        result = m.compute()  # synced on a copy
        flat = m.compute(flat=True)  # the same sums, for a logger
        local_images = m.state_dict()["sums"]["n_images"].item()
        m.sync()  # in place
        try:
            m.update(torch.from_numpy(pred[:1]), torch.from_numpy(target[:1]))
            refused = False
        except SegDiceError:
            refused = True
        torch.save(
            {
                "result": result,
                "flat": flat,
                "after_sync": m.compute(),
                "state_after_sync": m.state_dict(),
                "local_images": local_images,
                "refused": refused,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_distributed_two_gloo_ranks_equal_one_process(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    pred, target = dataset(n_images=8, seed=3)
    one = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, keep_per_case=True)
    feed(one, pred, target, [8])
    single = one.compute()
    expected = expected_result(pred, target)
    assert_matches(single, expected, one.class_names)
    for rank in (0, 1):
        saved = torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
        assert saved["local_images"] == sum(RANK_BATCHES[rank])
        assert saved["refused"]
        want_flat = one.compute(flat=True)
        assert list(saved["flat"]) == list(want_flat)
        for key, value in want_flat.items():
            np.testing.assert_allclose(saved["flat"][key], value, rtol=1e-12, err_msg=key)
        # a rank's state after sync() is the global one: loaded into a fresh object, it gives the same
        # numbers, and it stays marked as synced (no more updates until reset)
        resumed = SegmentationMetrics(NUM_CLASSES, metrics=METRICS, keep_per_case=True)
        resumed.load_state_dict(saved["state_after_sync"])
        assert_matches(resumed.compute(), expected, one.class_names)
        with pytest.raises(SegDiceError, match="synced"):
            resumed.update(torch.from_numpy(pred[:1]), torch.from_numpy(target[:1]))
        for key in ("result", "after_sync"):
            result = saved[key]
            assert result["n_images"] == 8
            assert_matches(result, expected, one.class_names)
            for name in METRICS:
                np.testing.assert_array_equal(
                    result["per_case"][name].numpy(), single["per_case"][name].numpy()
                )


def test_bad_ignore_index_rejected_at_construction():
    with pytest.raises(SegDiceError, match="ignore_index"):
        SegmentationMetrics(NUM_CLASSES, ignore_index=0.5)
