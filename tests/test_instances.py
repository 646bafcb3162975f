"""Instance and lesion-wise scores against references written here: brute-force matching by enumeration,
naive full-mask loops for every per-object value, and hand-worked BraTS cases (merged lesions, a small
lesion touched by a prediction, a false positive, empty images)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from segdice import SegDiceError
from segdice.metrics import (
    aggregated_jaccard_index,
    brats_lesion_scores,
    hausdorff_distance,
    instance_scores,
    label_components,
    match_instances,
    panoptic_quality,
)
from segdice.metrics._components import label_mask

# --- helpers: naive references ------------------------------------------------------------------


def naive_score(criterion, p_mask, t_mask):
    inter = np.count_nonzero(p_mask & t_mask)
    if criterion == "iou":
        return inter / np.count_nonzero(p_mask | t_mask)
    if criterion == "dice":
        return 2 * inter / (np.count_nonzero(p_mask) + np.count_nonzero(t_mask))
    return inter / np.count_nonzero(t_mask)


def candidate_scores(pred, target, criterion):
    """Every overlapping (pred id, target id) pair and its score, from full masks."""
    out = {}
    for p in np.unique(pred[pred > 0]):
        for t in np.unique(target[target > 0]):
            pm, tm = pred == p, target == t
            if (pm & tm).any():
                out[(int(p), int(t))] = naive_score(criterion, pm, tm)
    return out


def all_matchings(pairs):
    """Every set of pairs in which no pred and no target repeats (enumeration)."""
    pairs = list(pairs)
    for r in range(len(pairs) + 1):
        for combo in itertools.combinations(pairs, r):
            ps = [p for p, _ in combo]
            ts = [t for _, t in combo]
            if len(set(ps)) == len(ps) and len(set(ts)) == len(ts):
                yield combo


def random_instance_pair(seed, shape=(5, 6), n=4, density=0.7):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, n + 1, size=shape) * (rng.random(shape) < density)
    target = rng.integers(0, n + 1, size=shape) * (rng.random(shape) < density)
    return pred.astype(np.int64), target.astype(np.int64)


def blobs(shape, centres, radii):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    out = np.zeros(shape, dtype=bool)
    for c, r in zip(centres, radii, strict=True):
        out |= sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)) <= r * r
    return out


# --- label_components ----------------------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([1, 2, 3]))
def test_label_components_equals_scipy_for_every_connectivity(seed, ndim):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(3, 9, size=ndim))
    mask = rng.random(shape) < 0.4
    for connectivity in range(1, ndim + 1):
        ref, n_ref = ndimage.label(mask, structure=ndimage.generate_binary_structure(ndim, connectivity))
        labels, n = label_components(mask, connectivity=connectivity)
        assert n == n_ref and labels.dtype == np.int32
        np.testing.assert_array_equal(labels, ref)
    np.testing.assert_array_equal(label_components(mask)[0], label_components(mask, connectivity=ndim)[0])


@given(seed=st.integers(0, 2**32 - 1), connectivity=st.sampled_from([1, 2, 3]))
def test_cc3d_and_scipy_give_the_same_ids_in_3d(seed, connectivity):
    pytest.importorskip("cc3d")
    rng = np.random.default_rng(seed)
    mask = rng.random(tuple(rng.integers(4, 12, size=3))) < 0.35
    fast, n_fast = label_mask(mask, connectivity)
    slow, n_slow = label_mask(mask, connectivity, use_cc3d=False)
    assert n_fast == n_slow
    np.testing.assert_array_equal(fast, slow)
    strided = np.asfortranarray(mask)[:, ::-1]
    np.testing.assert_array_equal(
        label_mask(strided, connectivity)[0], label_mask(strided, connectivity, use_cc3d=False)[0]
    )


def test_label_components_counts_by_hand():
    m = np.zeros((3, 3, 3), dtype=bool)
    m[0, 0, 0] = m[1, 1, 1] = m[2, 2, 1] = True  # corner, then edge neighbours
    assert label_components(m)[1] == 1
    assert label_components(m, connectivity=2)[1] == 2
    assert label_components(m, connectivity=1)[1] == 3
    assert label_components(torch.from_numpy(m))[1] == 1


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: label_components(np.array([0, 2, 1])), "instances='labels'"),
        (lambda: label_components(np.zeros((3, 3)), connectivity=3), "connectivity"),
        (lambda: label_components(np.zeros((3, 3)), connectivity=True), "connectivity"),
        (lambda: label_components([0, 1]), "mask"),
        (lambda: match_instances(np.zeros((3, 3)), np.zeros((3, 4))), "same shape"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), method="hungry"), "method"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), criterion="f1"), "criterion"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), threshold=1.5), "threshold"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), dilation=-1), "dilation"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), dilation=1.5), "dilation"),
        (lambda: match_instances(np.zeros(3), np.zeros(3), instances="objects"), "instances"),
        (lambda: match_instances(np.array([0, -1, 2]), np.zeros(3), instances="labels"), "pred"),
        (lambda: match_instances(np.array([0, 0.5, 2]), np.zeros(3), instances="labels"), "whole numbers"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), spacing=(1, 2)), "spacing"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), spacing=0), "spacing"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), metrics=("nsd",)), "metrics"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), metrics=()), "metrics"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), min_volume=-1), "min_volume"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), surface="mesh"), "surface"),
        (lambda: instance_scores(np.zeros(3), np.zeros(3), worst_case=0), "worst_case"),
        (
            lambda: brats_lesion_scores(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), spacing=1, challenge="X"),
            "challenge",
        ),
        (
            lambda: brats_lesion_scores(
                np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), spacing=1, regions={"WT": ()}
            ),
            "regions",
        ),
    ],
)
def test_bad_input_names_the_argument(call, needle):
    with pytest.raises(SegDiceError, match=needle):
        call()


# --- matching by enumeration ---------------------------------------------------------------------


@given(
    seed=st.integers(0, 2**32 - 1),
    criterion=st.sampled_from(["iou", "dice", "overlap"]),
    threshold=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
)
def test_hungarian_is_the_best_matching_by_enumeration(seed, criterion, threshold):
    pred, target = random_instance_pair(seed)
    scores = candidate_scores(pred, target, criterion)
    candidates = [pt for pt, s in scores.items() if s > threshold]
    best = max(sum(scores[pt] for pt in combo) for combo in all_matchings(candidates))
    m = match_instances(pred, target, instances="labels", criterion=criterion, threshold=threshold)
    assert sum(s for _, _, s in m.pairs) == pytest.approx(best, abs=1e-12)
    chosen = [(p[0], t) for p, t, _ in m.pairs]
    assert all(pt in candidates for pt in chosen)
    assert len({p for p, _ in chosen}) == len(chosen)
    for (p, t), (_, _, s) in zip(chosen, m.pairs, strict=True):
        assert s == pytest.approx(scores[(p, t)], abs=1e-15)
    # every object is either matched or listed as unmatched
    assert sorted(m.unmatched_pred + [p for p, _ in chosen]) == sorted(
        int(v) for v in np.unique(pred[pred > 0])
    )
    assert sorted(m.unmatched_target + [t for _, t in chosen]) == sorted(
        int(v) for v in np.unique(target[target > 0])
    )


@given(seed=st.integers(0, 2**32 - 1))
def test_overlap_method_takes_the_most_pairs_then_the_best_score(seed):
    pred, target = random_instance_pair(seed, density=0.5)
    scores = candidate_scores(pred, target, "iou")
    best = max(
        ((len(combo), sum(scores[pt] for pt in combo)) for combo in all_matchings(scores)), default=(0, 0.0)
    )
    m = match_instances(pred, target, instances="labels", method="overlap", threshold=0.9)
    assert len(m.pairs) == best[0]
    assert sum(s for _, _, s in m.pairs) == pytest.approx(best[1], abs=1e-12)


@given(seed=st.integers(0, 2**32 - 1), threshold=st.sampled_from([0.0, 0.2, 0.5]))
def test_greedy_takes_pairs_by_descending_score(seed, threshold):
    pred, target = random_instance_pair(seed)
    scores = candidate_scores(pred, target, "dice")
    remaining = {pt: s for pt, s in scores.items() if s > threshold}
    expected = []
    while remaining:  # repeatedly the best remaining pair (ties: lower target, then lower pred)
        p, t = min(remaining, key=lambda pt: (-remaining[pt], pt[1], pt[0]))
        expected.append((p, t))
        remaining = {k: v for k, v in remaining.items() if k[0] != p and k[1] != t}
    m = match_instances(
        pred, target, instances="labels", criterion="dice", threshold=threshold, method="greedy"
    )
    assert sorted((p[0], t) for p, t, _ in m.pairs) == sorted(expected)


def test_iou_above_one_half_is_unique_so_all_one_to_one_methods_agree():
    for seed in range(30):
        pred, target = random_instance_pair(seed, shape=(8, 8), n=6, density=0.9)
        results = [
            [(p, t) for p, t, _ in match_instances(pred, target, instances="labels", method=method).pairs]
            for method in ("hungarian", "greedy")
        ]
        assert results[0] == results[1]


# --- instance_scores against full-mask loops -------------------------------------------------------


def naive_instance_scores(pred_labels, target_labels, pairs, spacing, worst):
    """Per-object Dice/IoU/HD95 and every aggregate from full masks, for a one-to-one matching."""
    t_ids = [int(v) for v in np.unique(target_labels[target_labels > 0])]
    p_ids = [int(v) for v in np.unique(pred_labels[pred_labels > 0])]
    partner = {t: p for p, t in pairs}
    values = {}
    for t in t_ids:
        tm = target_labels == t
        if t in partner:
            pm = pred_labels == partner[t]
            inter = np.count_nonzero(pm & tm)
            values[t] = {
                "dice": 2 * inter / (pm.sum() + tm.sum()),
                "iou": inter / np.count_nonzero(pm | tm),
                "hd95": hausdorff_distance(pm, tm, spacing=spacing, percentile=95),
            }
        else:
            values[t] = {"dice": 0.0, "iou": 0.0, "hd95": worst}
    tp = len(partner)
    fn = len(t_ids) - tp
    fp = len(p_ids) - tp
    n = tp + fn + fp
    lesion = {
        "dice": sum(v["dice"] for v in values.values()) / n if n else 1.0,
        "hd95": (sum(v["hd95"] for v in values.values()) + fp * worst) / n if n else 0.0,
    }
    iou_sum = sum(values[t]["iou"] for t in partner)
    return values, tp, fp, fn, lesion, iou_sum


@pytest.mark.parametrize("seed", range(6))
def test_instance_scores_equal_full_mask_loops(seed):
    rng = np.random.default_rng(seed)
    shape = (30, 34, 20)
    centres = [tuple(rng.integers(3, n - 3) for n in shape) for _ in range(8)]
    radii = list(rng.integers(2, 5, size=8))
    target = blobs(shape, centres[:6], radii[:6])
    shifted = [tuple(c + rng.integers(-1, 2) for c in cc) for cc in centres[1:]]
    pred = blobs(shape, shifted, radii[1:])
    spacing = (1.5, 0.8, 2.0)
    s = instance_scores(pred, target, spacing=spacing, threshold=0.2, metrics=("dice", "iou", "hd95"))
    p_lab, _ = ndimage.label(pred, structure=np.ones((3, 3, 3)))
    t_lab, _ = ndimage.label(target, structure=np.ones((3, 3, 3)))
    pairs = [(p[0], t) for p, t, _ in s.matching.pairs]
    worst = math.sqrt(sum((n * sp) ** 2 for n, sp in zip(shape, spacing, strict=True)))
    values, tp, fp, fn, lesion, iou_sum = naive_instance_scores(p_lab, t_lab, pairs, spacing, worst)
    assert (s.tp, s.fp, s.fn) == (tp, fp, fn)
    assert tp > 0
    for row in s.rows:
        if row["side"] != "target":
            continue
        assert row["voxels"] == np.count_nonzero(t_lab == row["id"])
        assert row["volume"] == pytest.approx(row["voxels"] * 1.5 * 0.8 * 2.0)
        for name in ("dice", "iou", "hd95"):
            assert row[name] == pytest.approx(values[row["id"]][name], rel=1e-12), name
    assert s.lesion_dice == pytest.approx(lesion["dice"], rel=1e-12)
    assert s.lesion_hd95 == pytest.approx(lesion["hd95"], rel=1e-12)
    assert s.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert s.pq == pytest.approx(iou_sum / (tp + fp / 2 + fn / 2), rel=1e-12)
    assert s.sq * s.rq == pytest.approx(s.pq, rel=1e-12)
    assert s.matched_dice == pytest.approx(np.mean([values[t]["dice"] for _, t in pairs]), rel=1e-12)


def test_rows_and_counts_by_hand_with_min_volume():
    gt = np.zeros((10, 20), dtype=bool)
    gt[1:5, 1:5] = True  # 16 px, matched
    gt[1:3, 10:12] = True  # 4 px, small, touched by a prediction
    gt[7:9, 15:19] = True  # 8 px, missed
    pr = np.zeros_like(gt)
    pr[1:5, 1:4] = True  # IoU 12/16
    pr[1:3, 10:12] = True  # matches the small one
    pr[8, 5:7] = True  # false positive
    s = instance_scores(pr, gt, spacing=(0.5, 2.0), min_volume=4.0, metrics=("dice",))  # 1 mm² per px
    status = {(r["side"], r["id"]): r["status"] for r in s.rows}
    assert status == {
        ("target", 1): "tp",
        ("target", 2): "small",
        ("target", 3): "fn",
        ("pred", 1): "tp",
        ("pred", 2): "ignored",
        ("pred", 3): "fp",
    }
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)
    dice = 2 * 12 / (12 + 16)
    assert s.lesion_dice == pytest.approx(dice / 3)
    assert s.matched_dice == pytest.approx(dice)
    assert s.precision == s.recall == 0.5
    assert s.summary()["lesion_dice"] == s.lesion_dice
    # without the floor the small target and its prediction count
    s0 = instance_scores(pr, gt, spacing=(0.5, 2.0), metrics=("dice",))
    assert (s0.tp, s0.fp, s0.fn) == (2, 1, 1)
    assert s0.lesion_dice == pytest.approx((dice + 1.0) / 4)


def test_empty_images_and_one_sided_cases():
    z = np.zeros((6, 6), dtype=bool)
    s = instance_scores(z, z, metrics=("dice", "hd95"))
    assert (s.tp, s.fp, s.fn) == (0, 0, 0) and s.rows == []
    assert s.lesion_dice == 1.0 and s.lesion_hd95 == 0.0  # BraTS's 0/0 rule
    assert all(math.isnan(v) for v in (s.precision, s.recall, s.f1, s.pq, s.sq, s.rq, s.matched_dice))
    one = z.copy()
    one[2:4, 2:4] = True
    fp_only = instance_scores(one, z, metrics=("dice", "hd95"), worst_case=100.0)
    assert (fp_only.fp, fp_only.lesion_dice, fp_only.lesion_hd95, fp_only.pq) == (1, 0.0, 100.0, 0.0)
    assert fp_only.precision == 0.0 and math.isnan(fp_only.recall)
    miss = instance_scores(z, one, metrics=("hd95",))
    assert miss.fn == 1 and miss.lesion_hd95 == pytest.approx(math.sqrt(72))  # the image diagonal


def test_panoptic_quality_by_hand():
    gt = np.zeros((8, 12), dtype=np.int64)
    gt[0:4, 0:4] = 1
    gt[0:4, 6:10] = 2
    gt[5:8, 0:3] = 3
    pr = np.zeros_like(gt)
    pr[0:4, 0:3] = 7  # IoU 12/16 with 1
    pr[0:2, 6:10] = 9  # IoU 8/16 = 0.5, not > 0.5
    pr[6:8, 8:10] = 4  # false positive
    out = panoptic_quality(pr, gt, instances="labels")
    assert (out["tp"], out["fp"], out["fn"]) == (1, 2, 2)
    assert out["sq"] == 0.75 and out["rq"] == pytest.approx(1 / 3) and out["pq"] == pytest.approx(0.25)
    lower = panoptic_quality(pr, gt, instances="labels", threshold=0.4)
    assert lower["tp"] == 2 and lower["sq"] == pytest.approx((0.75 + 0.5) / 2)


def test_instance_labels_and_components_differ_on_touching_objects():
    gt = np.zeros((4, 8), dtype=np.int64)
    gt[:, 0:4] = 1
    gt[:, 4:8] = 2  # two nuclei that touch
    assert match_instances(gt, gt, instances="labels").pairs == [((1,), 1, 1.0), ((2,), 2, 1.0)]
    assert match_instances(gt > 0, gt > 0).pairs == [((1,), 1, 1.0)]


def naive_aji(pred, target):
    """Kumar et al.'s AJI with full masks: best-IoU prediction per target, unused predictions added."""
    inter_sum = union_sum = 0
    used = set()
    p_ids = [int(v) for v in np.unique(pred[pred > 0])]
    for t in (int(v) for v in np.unique(target[target > 0])):
        tm = target == t
        best, best_p = 0.0, None
        for p in p_ids:
            pm = pred == p
            iou = np.count_nonzero(pm & tm) / np.count_nonzero(pm | tm)
            if iou > best:
                best, best_p = iou, p
        if best_p is None:
            union_sum += tm.sum()
            continue
        pm = pred == best_p
        used.add(best_p)
        inter_sum += np.count_nonzero(pm & tm)
        union_sum += np.count_nonzero(pm | tm)
    union_sum += sum(np.count_nonzero(pred == p) for p in p_ids if p not in used)
    return inter_sum / union_sum if union_sum else math.nan


@given(seed=st.integers(0, 2**32 - 1))
def test_aji_equals_kumars_algorithm(seed):
    pred, target = random_instance_pair(seed, shape=(7, 8), n=5)
    expected = naive_aji(pred, target)
    got = aggregated_jaccard_index(pred, target)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


# --- BraTS by hand --------------------------------------------------------------------------------


def brats_hand_case():
    """WT only: two cubes 3 voxels apart (one lesion for dilation 3), a 27-voxel lesion C touched by a
    prediction, a false positive far away."""
    gt = np.zeros((20, 40, 40), dtype=np.int64)
    gt[5:9, 5:9, 5:9] = 2  # A, 64 voxels
    gt[5:9, 5:9, 12:16] = 2  # B, 64 voxels, 3 voxels from A
    gt[15:18, 5:8, 30:33] = 1  # C, 27 voxels (< 50)
    pr = np.zeros_like(gt)
    pr[5:9, 5:9, 5:9] = 2  # exactly A
    pr[15:17, 5:7, 30:32] = 1  # 8 voxels inside C
    pr[15:17, 30:32, 30:32] = 2  # false positive, 8 voxels
    return pr, gt


def test_brats_gli_merges_the_pair_and_drops_the_small_lesion():
    sd = pytest.importorskip("surface_distance")
    pr, gt = brats_hand_case()
    out = brats_lesion_scores(pr, gt, spacing=(1.0, 1.0, 1.0), challenge="GLI")
    wt = out["WT"]
    assert (wt["tp"], wt["fn"], wt["fp"]) == (1, 0, 1)
    lesion = (gt == 2) & (np.arange(40)[None, None, :] < 20)
    cube_a = np.zeros(gt.shape, dtype=bool)
    cube_a[5:9, 5:9, 5:9] = True
    dist = sd.compute_surface_distances(lesion, cube_a, (1.0, 1.0, 1.0))
    hd = sd.compute_robust_hausdorff(dist, 95)
    assert wt["lesion_dice"] == pytest.approx((2 * 64 / (64 + 128)) / 2, rel=1e-12)  # merged lesion + FP
    assert wt["lesion_hd95"] == pytest.approx((hd + 374) / 2, rel=1e-12)
    assert wt["legacy_dice"] == pytest.approx(2 * 72 / (155 + 80), rel=1e-12)
    assert wt["gt_volume"] == 155.0
    # TC holds only the small lesion C and its prediction: nothing counts, the prediction is no FP
    tc = out["TC"]
    assert (tc["tp"], tc["fn"], tc["fp"], tc["lesion_dice"], tc["lesion_hd95"]) == (0, 0, 0, 1, 0)
    et = out["ET"]  # empty on both sides
    assert (et["lesion_dice"], et["lesion_hd95"], et["legacy_dice"], et["legacy_hd95"]) == (1, 0, 1, 0)
    assert et["sensitivity"] == 1.0 and et["specificity"] == 1.0
    rows = out.objects["WT"].rows
    assert [(r["side"], r["status"], r["voxels"]) for r in rows] == [
        ("target", "tp", 128),
        ("target", "small", 27),
        ("pred", "tp", 64),
        ("pred", "ignored", 8),
        ("pred", "fp", 8),
    ]


def test_brats_met_keeps_the_pair_apart_and_counts_the_small_lesion():
    sd = pytest.importorskip("surface_distance")
    pr, gt = brats_hand_case()
    wt = brats_lesion_scores(pr, gt, spacing=(1.0, 1.0, 1.0), challenge="MET")["WT"]
    assert (wt["tp"], wt["fn"], wt["fp"]) == (2, 1, 1)  # A and C found, B missed
    c = gt == 1
    hd_c = sd.compute_robust_hausdorff(sd.compute_surface_distances(c, pr == 1, (1.0, 1.0, 1.0)), 95)
    assert wt["lesion_dice"] == pytest.approx((1 + 0 + 16 / 35) / 4, rel=1e-12)
    assert wt["lesion_hd95"] == pytest.approx((0 + 374 + hd_c + 374) / 4, rel=1e-12)


def test_brats_volume_threshold_uses_spacing():
    gt = np.zeros((10, 10, 10), dtype=np.int64)
    gt[2:5, 2:5, 2:5] = 3  # 27 voxels
    pr = np.zeros_like(gt)
    at_1mm = brats_lesion_scores(pr, gt, spacing=(1, 1, 1), challenge="GLI")["ET"]
    assert (at_1mm["fn"], at_1mm["lesion_dice"]) == (0, 1)  # 27 mm³ <= 50: not counted
    at_2mm = brats_lesion_scores(pr, gt, spacing=(2, 1, 1), challenge="GLI")["ET"]  # 54 mm³
    assert (at_2mm["fn"], at_2mm["lesion_dice"], at_2mm["lesion_hd95"]) == (1, 0, 374)
    assert at_2mm["legacy_hd95"] == 374 and at_2mm["legacy_dice"] == 0


@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([2, 3]), dilation=st.sampled_from([1, 2, 3]))
def test_dilation_groups_equal_labelling_the_dilated_mask(seed, ndim, dilation):
    """The per-object grouping equals BraTS's: dilate the whole mask (faces+edges element), label it
    with full connectivity, keep the original voxels; ids in raster order of the dilated components."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(6, 16, size=ndim))
    mask = rng.random(shape) < 0.03
    grown = ndimage.binary_dilation(
        mask, structure=ndimage.generate_binary_structure(ndim, 2), iterations=dilation
    )
    groups, _ = ndimage.label(grown, structure=np.ones((3,) * ndim))
    expected = np.where(mask, groups, 0)
    got = match_instances(mask, mask, method="brats", dilation=dilation).target_labels
    np.testing.assert_array_equal(got, expected)


@given(seed=st.integers(0, 2**32 - 1), percentile=st.sampled_from([0, 5, 50, 90, 95, 99, 99.9, 100]))
def test_hd_percentiles_are_numpys_percentiles_exactly(seed, percentile):
    """The per-object HD95 path skips np.percentile's overhead; the numbers stay NumPy's, bit for bit."""
    from segdice.metrics import surface_distances

    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(4, 14, size=int(rng.integers(2, 4))))
    a, b = rng.random(shape) < 0.3, rng.random(shape) < 0.3
    if not a.any() or not b.any():
        return
    spacing = tuple(float(v) for v in rng.choice([0.5, 0.7, 1.0, 2.5], size=len(shape)))
    d_ab, d_ba = surface_distances(a, b, spacing=spacing)
    expected = max(float(np.percentile(d_ab, percentile)), float(np.percentile(d_ba, percentile)))
    assert hausdorff_distance(a, b, spacing=spacing, percentile=percentile) == expected
