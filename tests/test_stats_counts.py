"""Hard counts (segdice.stats.confusion) against naive per-class loops written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from segdice import SegDiceError
from segdice.stats import confusion


def naive_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore=None) -> np.ndarray:
    """(tp, fp, fn, tn) [4, B, C] by comparing every class with == in a Python loop."""
    out = np.zeros((4, target.shape[0], num_classes), np.int64)
    for b in range(target.shape[0]):
        g, p = target[b].ravel().astype(np.int64), pred[b].ravel().astype(np.int64)
        if ignore is not None:
            keep = g != ignore
            g, p = g[keep], p[keep]
        for c in range(num_classes):
            out[0, b, c] = np.sum((g == c) & (p == c))
            out[1, b, c] = np.sum((g != c) & (p == c))
            out[2, b, c] = np.sum((g == c) & (p != c))
            out[3, b, c] = np.sum((g != c) & (p != c))
    return out


def bincount_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore=None) -> np.ndarray:
    """(tp, fp, fn, tn) [4, B, C] from textbook np.bincount marginals over every voxel."""
    batch, c = target.shape[0], num_classes
    g = target.reshape(batch, -1).astype(np.int64)
    p = pred.reshape(batch, -1).astype(np.int64)
    image = np.repeat(np.arange(batch), g.shape[1]).reshape(g.shape)
    keep = np.ones_like(g, bool) if ignore is None else g != ignore
    gi, pi = image[keep] * c + g[keep], image[keep] * c + p[keep]
    tp = np.bincount(gi[g[keep] == p[keep]], minlength=batch * c).reshape(batch, c)
    fp = np.bincount(pi, minlength=batch * c).reshape(batch, c) - tp
    fn = np.bincount(gi, minlength=batch * c).reshape(batch, c) - tp
    tn = keep.sum(1)[:, None] - tp - fp - fn
    return np.stack([tp, fp, fn, tn])


def stacked(result) -> np.ndarray:
    assert all(t.dtype == torch.int64 for t in result)
    return np.stack([t.cpu().numpy() for t in result])


def blocky_maps(rng, batch, shape, num_classes, run=8, noise=0.05):
    """Label maps made of runs (like real segmentations) plus a little noise in the prediction."""
    coarse = [*shape[:-1], shape[-1] // run + 1]
    target = np.repeat(rng.integers(0, num_classes, [batch, *coarse]), run, axis=-1)[..., : shape[-1]]
    pred = target.copy()
    flip = rng.random(pred.shape) < noise
    pred[flip] = rng.integers(0, num_classes, int(flip.sum()))
    return pred, target


def test_bincount_reference_agrees_with_naive_loop():
    rng = np.random.default_rng(5)
    pred, target = blocky_maps(rng, 3, (9, 10), 6)
    target[:, 0] = 255
    np.testing.assert_array_equal(bincount_counts(pred, target, 6, 255), naive_counts(pred, target, 6, 255))


def test_hand_computed_example():
    target = torch.tensor([[0, 1, 1, 2]])
    pred = torch.tensor([[0, 1, 2, 2]])
    tp, fp, fn, tn = confusion(pred, target, 3)
    assert tp.tolist() == [[1, 1, 1]]
    assert fp.tolist() == [[0, 0, 1]]
    assert fn.tolist() == [[0, 1, 0]]
    assert tn.tolist() == [[3, 2, 2]]


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 4),
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    num_classes=st.integers(1, 20),
    ignore=st.sampled_from([None, 255, -100]),
    dtype=st.sampled_from(["int64", "int32", "int16", "uint8"]),
    blocky=st.booleans(),
    as_torch=st.booleans(),
)
def test_matches_naive_loop(seed, batch, shape, num_classes, ignore, dtype, blocky, as_torch):
    rng = np.random.default_rng(seed)
    if blocky:
        pred, target = blocky_maps(rng, batch, shape, num_classes)
    else:
        target = rng.integers(0, num_classes, [batch, *shape])
        pred = rng.integers(0, num_classes, [batch, *shape])
    if ignore is not None:
        target = target.copy()
        target[rng.random(target.shape) < 0.1] = ignore
    if ignore == -100 and dtype == "uint8":  # -100 does not fit in uint8
        dtype = "int64"
    target_c, pred_c = target.astype(dtype), pred.astype(dtype)
    if as_torch:
        target_c, pred_c = torch.from_numpy(target_c), torch.from_numpy(pred_c)
    expected = naive_counts(pred, target, num_classes, ignore)
    got = stacked(confusion(pred_c, target_c, num_classes, ignore_index=ignore))
    np.testing.assert_array_equal(got, expected)
    pooled = stacked(confusion(pred_c, target_c, num_classes, ignore_index=ignore, per_image=False))
    np.testing.assert_array_equal(pooled, expected.sum(1))


@pytest.mark.parametrize("num_classes", [3, 40, 300])
@pytest.mark.parametrize("kind", ["blocky", "noise", "mixed"])
@pytest.mark.parametrize("image_size", [500, 200_000])
def test_large_maps_cover_sparse_and_dense_chunks(num_classes, kind, image_size):
    """Maps larger than one chunk: run counting, dense fallback, images smaller than a chunk."""
    rng = np.random.default_rng(num_classes)
    total = 600_000
    batch = total // image_size
    pred, target = blocky_maps(rng, batch, (image_size,), num_classes, run=50, noise=0.02)
    if kind != "blocky":
        noisy = slice(None) if kind == "noise" else slice(0, image_size // 2)
        target[:, noisy] = rng.integers(0, num_classes, target[:, noisy].shape)
    ignore = 255 if num_classes < 255 else -1
    target[rng.random(target.shape) < 0.01] = ignore
    expected = bincount_counts(pred, target, num_classes, ignore)
    np.testing.assert_array_equal(
        stacked(confusion(pred, target, num_classes, ignore_index=ignore)), expected
    )


def test_confusion_counts_sum_to_valid_voxels():
    rng = np.random.default_rng(0)
    pred, target = blocky_maps(rng, 3, (30, 31), 5)
    target[:, :2] = 255
    tp, fp, fn, tn = confusion(pred, target, 5, ignore_index=255)
    valid = (target != 255).reshape(3, -1).sum(1)
    np.testing.assert_array_equal((tp + fp + fn + tn).numpy(), np.repeat(valid[:, None], 5, 1))
    # in multiclass every voxel is one class in each map: the columns of tp+fn sum to the valid count
    np.testing.assert_array_equal((tp + fn).sum(1).numpy(), valid)
    np.testing.assert_array_equal((tp + fp).sum(1).numpy(), valid)


def test_layouts_and_scores():
    rng = np.random.default_rng(1)
    pred, target = blocky_maps(rng, 2, (6, 7, 8), 4)
    expected = naive_counts(pred, target, 4)
    # target with a channel axis, prediction with a channel axis
    got = stacked(confusion(torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None], 4))
    np.testing.assert_array_equal(got, expected)
    got = stacked(confusion(pred, target[:, None], 4))
    np.testing.assert_array_equal(got, expected)
    # float scores are arg-maxed over the channel axis
    scores = torch.randn(2, 4, 6, 7, 8)
    scores.scatter_(1, torch.from_numpy(pred)[:, None], 10.0)
    np.testing.assert_array_equal(stacked(confusion(scores, torch.from_numpy(target))), expected)
    np.testing.assert_array_equal(stacked(confusion(scores.numpy(), target)), expected)
    # a one-hot (integer) prediction is its label map
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(pred), 4).movedim(-1, 1)
    np.testing.assert_array_equal(stacked(confusion(one_hot, torch.from_numpy(target), 4)), expected)
    # bool label maps are classes 0/1
    got = stacked(confusion(pred > 1, target > 1, 2))
    np.testing.assert_array_equal(got, naive_counts((pred > 1).astype(int), (target > 1).astype(int), 2))


def test_num_classes_inferred():
    pred = np.array([[0, 3, 3, 255]])
    target = np.array([[0, 1, 3, 255]])
    tp, *_ = confusion(pred, target, ignore_index=255)
    assert tp.shape == (1, 4)


def test_include_background_drops_class_zero_after_counting():
    pred = torch.tensor([[0, 0, 1, 2]])
    target = torch.tensor([[1, 0, 1, 2]])
    full = stacked(confusion(pred, target, 3))
    fg = stacked(confusion(pred, target, 3, include_background=False))
    np.testing.assert_array_equal(fg, full[:, :, 1:])
    assert fg[2, 0, 0] == 1  # class 1 predicted as background is a false negative of class 1


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    channels=st.integers(1, 4),
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=3),
    ignore=st.sampled_from([None, 255, -100]),
    as_torch=st.booleans(),
)
def test_multilabel_and_binary_against_naive(seed, batch, channels, shape, ignore, as_torch):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 2, [batch, channels, *shape])
    pred = rng.integers(0, 2, [batch, channels, *shape])
    if ignore is not None:
        target[rng.random(target.shape) < 0.2] = ignore
    expected = np.zeros((4, batch, channels), np.int64)
    for b in range(batch):
        for c in range(channels):
            g, p = target[b, c].ravel(), pred[b, c].ravel()
            if ignore is not None:
                p, g = p[g != ignore], g[g != ignore]
            expected[:, b, c] = [
                np.sum((p == 1) & (g == 1)),
                np.sum((p == 1) & (g == 0)),
                np.sum((p == 0) & (g == 1)),
                np.sum((p == 0) & (g == 0)),
            ]
    conv = torch.from_numpy if as_torch else (lambda x: x)
    got = stacked(confusion(conv(pred), conv(target), mode="multilabel", ignore_index=ignore))
    np.testing.assert_array_equal(got, expected)
    # probabilities are thresholded at 0.5
    probs = np.where(pred == 1, 0.9, 0.2).astype(np.float32)
    got = stacked(confusion(conv(probs), conv(target), mode="multilabel", ignore_index=ignore))
    np.testing.assert_array_equal(got, expected)
    # binary: each channel on its own, as [B, *spatial] or [B, 1, *spatial]
    for c in range(channels):
        got = stacked(confusion(conv(pred[:, c]), conv(target[:, c]), mode="binary", ignore_index=ignore))
        np.testing.assert_array_equal(got, expected[:, :, c : c + 1])
        got = stacked(
            confusion(conv(pred[:, c : c + 1]), conv(target[:, c]), mode="binary", ignore_index=ignore)
        )
        np.testing.assert_array_equal(got, expected[:, :, c : c + 1])


def test_fp16_and_bf16_scores():
    target = torch.tensor([[0, 1, 2, 2]])
    scores = torch.nn.functional.one_hot(torch.tensor([[0, 1, 2, 1]]), 3).movedim(-1, 1).float()
    for dtype in (torch.float16, torch.bfloat16):
        tp, *_ = confusion(scores.to(dtype), target)
        assert tp.tolist() == [[1, 1, 1]]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "target", "kwargs", "match"),
    [
        (np.zeros((2, 4), int), np.zeros((2, 5), int), {}, "same shape"),
        (np.zeros((2, 4)), np.zeros((2, 4), int), {}, "pred: .*float64"),
        (np.zeros((2, 4), int), np.zeros((2, 4)), {}, "target: .*float labels"),
        (np.array([[0, -1]]), np.array([[0, 1]]), {"num_classes": 2}, r"pred: .*\[-1, 0\]"),
        (
            np.array([[0, 1]]),
            np.array([[0, -3]]),
            {"num_classes": 2, "ignore_index": -100},
            r"target: .*\[-3, 0\]",
        ),
        (np.array([[0, 1]]), np.array([[0, 2]]), {"num_classes": 2}, r"target: .*num_classes=2"),
        (np.array([[0, 5]]), np.array([[0, 1]]), {"num_classes": 2}, r"pred: .*\[0, 5\]"),
        (np.full((1, 3, 4), np.nan), np.zeros((1, 4), int), {}, "NaN"),
        (np.zeros((1, 3, 4)), np.zeros((1, 4), int), {"num_classes": 2}, "3 channels"),
        (np.zeros((1, 1, 4)), np.zeros((1, 4), int), {}, "mode='binary'"),
        (np.zeros(4, int), np.zeros(4, int), {}, r"\[B, \*spatial\]"),
        (
            np.zeros((1, 4), int),
            np.zeros((1, 4), int),
            {"mode": "binary", "include_background": False},
            "multiclass",
        ),
        (np.zeros((1, 4), int), np.array([[0, 1, 2, 1]]), {"mode": "binary"}, "values 0 and 1"),
        (np.array([[0.0, 1.5]]), np.zeros((1, 2), int), {"mode": "binary"}, "probabilities"),
        (np.array([[0, 2]]), np.zeros((1, 2), int), {"mode": "binary"}, "values 0 and 1"),
        (np.zeros((1, 2, 4), int), np.zeros((1, 3, 4), int), {"mode": "multilabel"}, "same shape"),
        (np.zeros((1, 4), int), np.zeros((1, 4), int), {"mode": "segmentation"}, "mode"),
        (np.zeros((1, 4), int), np.zeros((1, 4), int), {"ignore_index": 1.5}, "ignore_index"),
        (np.zeros((1, 4), int), np.zeros((1, 4), int), {"num_classes": 0}, "num_classes"),
        ([[0, 1]], np.zeros((1, 2), int), {}, "torch.Tensor or a numpy.ndarray"),
    ],
)
def test_bad_input_raises_clear_error(pred, target, kwargs, match):
    with pytest.raises(SegDiceError, match=match):
        confusion(pred, target, **kwargs)


def test_out_of_range_detected_in_large_maps():
    """Validation on run values must still see a single bad voxel in a long map."""
    rng = np.random.default_rng(3)
    pred, target = blocky_maps(rng, 1, (300_000,), 4, run=1000, noise=0.0)
    target[0, 123_457] = 4
    with pytest.raises(SegDiceError, match=r"target: .*\[0, 4\]"):
        confusion(pred, target, 4)
    target[0, 123_457] = 255
    confusion(pred, target, 4, ignore_index=255)
    pred[0, 200_001] = -2
    with pytest.raises(SegDiceError, match="pred"):
        confusion(pred, target, 4, ignore_index=255)


def test_prediction_at_ignored_voxels_is_not_checked():
    # a prediction copied from a target with void labels is fine where the target is ignored
    target = np.array([[0, 255, 1]])
    pred = np.array([[0, 255, 1]])
    tp, fp, fn, _ = confusion(pred, target, 2, ignore_index=255)
    assert tp.tolist() == [[1, 1]] and (fp + fn).sum() == 0


@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 3),
    size=st.integers(1, 50),
    num_classes=st.integers(1, 6),
    ignore=st.sampled_from([None, 255, -100]),
)
def test_accelerator_path_on_cpu_tensors(seed, batch, size, num_classes, ignore):
    """The torch.bincount path used for CUDA tensors, run on CPU tensors (no GPU needed)."""
    from segdice.stats.counts import _counts_torch

    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, (batch, size))
    pred = rng.integers(0, num_classes, (batch, size))
    if ignore is not None:
        target[rng.random(target.shape) < 0.2] = ignore
    g_cnt, p_cnt, t_cnt, valid = _counts_torch(
        torch.from_numpy(pred), torch.from_numpy(target), num_classes, ignore
    )
    expected = naive_counts(pred, target, num_classes, ignore)
    np.testing.assert_array_equal(t_cnt.numpy(), expected[0])
    np.testing.assert_array_equal((p_cnt - t_cnt).numpy(), expected[1])
    np.testing.assert_array_equal((g_cnt - t_cnt).numpy(), expected[2])
    np.testing.assert_array_equal(valid.numpy(), expected.sum(0)[:, 0])


def test_accelerator_path_rejects_bad_labels():
    from segdice.stats.counts import _counts_torch

    with pytest.raises(SegDiceError, match="num_classes=3"):
        _counts_torch(torch.tensor([[0, 3]]), torch.tensor([[0, 1]]), 3, None)


def test_empty_batch_and_empty_images():
    counts = confusion(np.zeros((0, 4), int), np.zeros((0, 4), int), 3)
    assert all(t.shape == (0, 3) for t in counts)
    assert [t.tolist() for t in confusion(np.zeros((2, 0), int), np.zeros((2, 0), int), 2)] == [
        [[0, 0]] * 2
    ] * 4
    assert confusion(torch.zeros(0, 2, 4), torch.zeros(0, 2, 4), mode="multilabel")[0].shape == (0, 2)


def naive_argmax(scores: np.ndarray) -> np.ndarray:
    """The first channel holding the largest score, voxel by voxel, in a Python loop."""
    flat = np.moveaxis(scores, 1, -1).reshape(-1, scores.shape[1]).tolist()
    first = [row.index(max(row)) for row in flat]
    return np.array(first, np.int64).reshape(scores.shape[:1] + scores.shape[2:])


@given(
    seed=st.integers(0, 2**31 - 1),
    channels=st.integers(2, 6),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    levels=st.sampled_from([2, 3, 1000]),
    dtype=st.sampled_from(["float32", "float64", "float16", "bfloat16", "int64", "uint8", "bool"]),
    as_torch=st.booleans(),
)
def test_scores_are_arg_maxed_to_the_first_tied_channel(seed, channels, shape, levels, dtype, as_torch):
    # Few score levels make ties common: the counts must follow the first maximal channel, as argmax does.
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, levels, [2, channels, *shape])
    if dtype == "bool":
        raw = raw > levels // 2
    target = rng.integers(0, channels, [2, *shape])
    if as_torch:
        pred = torch.from_numpy(raw % 256 if dtype == "uint8" else raw).to(getattr(torch, dtype))
        exact = pred.double().numpy()  # the scores as the cast left them (bf16 rounds 999 to 1000)
        target = torch.from_numpy(target)
    elif dtype == "bfloat16":
        return
    else:
        pred = (raw % 256 if dtype == "uint8" else raw).astype(dtype)
        exact = pred.astype(np.float64)
    expected = naive_counts(naive_argmax(exact), np.asarray(target), channels)
    np.testing.assert_array_equal(stacked(confusion(pred, target, channels)), expected)
