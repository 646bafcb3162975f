"""Instance scores against the installed peers and the BraTS 2023 rule.

* BraTS: an independent, straightforward port of the challenge's algorithm (``get_LesionWiseScores`` /
  ``get_LesionWiseResults`` of rachitsaluja/BraTS-2023-Metrics: cc3d with 26-connectivity, full-volume
  dilation per lesion, DeepMind surface-distance HD95, inf -> 374) on BraTS-like label maps with merged,
  small, missed and false-positive lesions, for all five challenges and anisotropic spacings.
* Surfels: ``surface="surfels"`` against ``surface_distance.compute_robust_hausdorff`` and
  ``compute_average_surface_distance``.
* medpy ``obj_tpr``/``obj_fpr``, MONAI ``compute_panoptic_quality`` and panoptica's evaluator, where the
  definitions coincide; the conventions that differ are shown with an example.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from segdice.metrics import (
    average_surface_distance,
    boundary_metrics,
    brats_lesion_scores,
    hausdorff_distance,
    instance_scores,
    match_instances,
    panoptic_quality,
)

sd = pytest.importorskip("surface_distance")
cc3d = pytest.importorskip("cc3d")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- the BraTS 2023 rule, written out the slow way -------------------------------------------------

CHALLENGES = {"GLI": (3, 50), "SSA": (3, 50), "MEN": (1, 50), "PED": (3, 50), "MET": (1, 2)}
REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


def _robust_hd95(gt, pred, spacing):
    if not gt.any() or not pred.any():  # DeepMind returns inf here (through np.Inf, gone in NumPy 2)
        return 374.0
    value = sd.compute_robust_hausdorff(sd.compute_surface_distances(gt, pred, spacing), 95)
    return 374.0 if math.isinf(value) else float(value)


def brats_reference(pred_map, gt_map, spacing, challenge):
    """The challenge's per-region algorithm on full volumes, one lesion at a time."""
    dilation, threshold = CHALLENGES[challenge]
    element = ndimage.generate_binary_structure(3, 2)
    sx, sy, sz = spacing
    out = {}
    for name, members in REGIONS.items():
        pred = np.isin(pred_map, members)
        gt = np.isin(gt_map, members)
        if not pred.any() and not gt.any():
            legacy_dice, legacy_hd95 = 1.0, 0.0
        else:
            legacy_dice = 2 * np.count_nonzero(pred & gt) / (pred.sum() + gt.sum())
            legacy_hd95 = _robust_hd95(gt, pred, spacing)
        tp_v = np.count_nonzero(pred & gt)
        fn_v, fp_v = gt.sum() - tp_v, pred.sum() - tp_v
        tn_v = np.count_nonzero(~pred & ~gt)
        sensitivity = tp_v / (tp_v + fn_v + sys.float_info.min)
        specificity = tn_v / (tn_v + fp_v + sys.float_info.min)
        if not pred.any() and not gt.any():
            sensitivity = 1.0

        gt_cc = cc3d.connected_components(gt, connectivity=26)
        pred_cc = cc3d.connected_components(pred, connectivity=26)
        grown_cc = cc3d.connected_components(
            ndimage.binary_dilation(gt, structure=element, iterations=dilation), connectivity=26
        )
        lesions = np.zeros(gt.shape, dtype=np.int64)
        for k in range(1, int(grown_cc.max()) + 1):
            lesions[(grown_cc == k) & (gt_cc > 0)] = k
        touched: set[int] = set()
        per_lesion = []
        for k in range(1, int(lesions.max()) + 1):
            lesion = lesions == k
            reach = ndimage.binary_dilation(lesion, structure=element, iterations=dilation)
            hits = {int(v) for v in np.unique(pred_cc[reach]) if v}
            touched |= hits
            matched = np.isin(pred_cc, sorted(hits))
            dice = 2 * np.count_nonzero(matched & lesion) / (matched.sum() + lesion.sum())
            per_lesion.append(
                (bool(hits), lesion.sum() * sx * sy * sz, dice, _robust_hd95(lesion, matched, spacing))
            )
        n_fp = len({int(v) for v in np.unique(pred_cc) if v} - touched)
        kept = [x for x in per_lesion if x[1] > threshold]
        n = len(kept) + n_fp
        out[name] = {
            "lesion_dice": sum(x[2] for x in kept) / n if n else 1.0,
            "lesion_hd95": (sum(x[3] for x in kept) + 374 * n_fp) / n if n else 0.0,
            "legacy_dice": float(legacy_dice),
            "legacy_hd95": legacy_hd95,
            "tp": sum(1 for x in kept if x[0]),
            "fn": sum(1 for x in kept if not x[0]),
            "fp": n_fp,
            "sensitivity": float(sensitivity),
            "specificity": float(specificity),
            "gt_volume": float(gt.sum() * sx * sy * sz),
        }
    return out


def brats_like_case(seed, shape=(40, 44, 30)):
    """Tumours with an oedema shell, a necrotic core and an enhancing rim, some tiny, some close together,
    and a prediction that shifts them, misses one, merges two and adds false positives."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]

    def ball(c, r):
        return sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)) <= r * r

    def draw(target, centres, radii):
        for c, r in zip(centres, radii, strict=True):
            target[ball(c, r) & (target == 0)] = 2
            target[ball(c, 0.75 * r)] = 3
            target[ball(c, 0.45 * r)] = 1

    n = int(rng.integers(3, 7))
    centres = [tuple(int(rng.integers(4, s - 4)) for s in shape) for _ in range(n)]
    radii = [float(rng.choice([1.2, 2.0, 3.0, 4.5, 6.0])) for _ in range(n)]
    centres.append((centres[0][0] + 9, centres[0][1] + 9, centres[0][2]))  # a neighbour of the first
    radii.append(2.5)
    gt = np.zeros(shape, dtype=np.int64)
    draw(gt, centres, radii)
    keep = rng.random(len(centres)) > 0.2
    moved = [
        tuple(int(ci + rng.integers(-2, 3)) for ci in c) for c, k in zip(centres, keep, strict=True) if k
    ]
    sizes = [r * float(rng.uniform(0.7, 1.3)) for r, k in zip(radii, keep, strict=True) if k]
    for _ in range(int(rng.integers(0, 4))):  # false positives, some of one voxel
        moved.append(tuple(int(rng.integers(2, s - 2)) for s in shape))
        sizes.append(float(rng.choice([0.5, 1.5, 2.5])))
    pred = np.zeros(shape, dtype=np.int64)
    draw(pred, moved, sizes)
    return pred, gt


KEYS = (
    "lesion_dice",
    "lesion_hd95",
    "legacy_dice",
    "legacy_hd95",
    "tp",
    "fn",
    "fp",
    "sensitivity",
    "specificity",
    "gt_volume",
)


@pytest.mark.parametrize(
    ("seed", "challenge", "spacing"),
    [
        (0, "GLI", (1.0, 1.0, 1.0)),
        (1, "SSA", (1.0, 1.0, 1.0)),
        (2, "MEN", (1.0, 1.0, 1.0)),
        (3, "PED", (0.9375, 0.9375, 1.5)),
        (4, "MET", (1.0, 1.0, 1.0)),
        (5, "MET", (0.5, 1.2, 2.0)),
        (6, "GLI", (1.0, 0.8, 3.0)),
    ],
)
def test_brats_lesion_scores_reproduce_the_challenge_algorithm(seed, challenge, spacing):
    pred, gt = brats_like_case(seed)
    expected = brats_reference(pred, gt, spacing, challenge)
    got = brats_lesion_scores(pred, gt, spacing=spacing, challenge=challenge)
    for region in REGIONS:
        for key in KEYS:
            assert got[region][key] == pytest.approx(expected[region][key], rel=1e-12, abs=1e-12), (
                region,
                key,
            )


def test_brats_reproduction_covers_merges_small_lesions_and_misses():
    """The generated cases really hold merged lesions, small lesions and misses (the comparison above is
    not vacuous)."""
    merged = small = missed = 0
    for seed in range(7):
        pred, gt = brats_like_case(seed)
        for members in REGIONS.values():
            g = np.isin(gt, members)
            n_cc = cc3d.connected_components(g, connectivity=26).max()
            s = instance_scores(
                np.isin(pred, members), g, method="brats", dilation=3, min_volume=50, metrics=("dice",)
            )
            merged += int(s.matching.target_labels.max() < n_cc)
            small += sum(r["status"] == "small" for r in s.rows)
            missed += s.fn
    assert merged and small and missed


def test_brats_empty_case():
    z = np.zeros((8, 8, 8), dtype=np.int64)
    got = brats_lesion_scores(z, z, spacing=(1, 1, 1))
    assert got["WT"] == pytest.approx(brats_reference(z, z, (1, 1, 1), "GLI")["WT"])
    assert (got["WT"]["lesion_dice"], got["WT"]["lesion_hd95"]) == (1, 0)


# --- surfels against DeepMind ---------------------------------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([2, 3]))
def test_surfel_distances_equal_deepmind(seed, ndim):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(5, 16, size=ndim))
    spacing = tuple(float(v) for v in rng.choice([0.5, 0.8, 1.0, 1.5, 3.0], size=ndim))
    a = ndimage.binary_dilation(rng.random(shape) < 0.05, iterations=int(rng.integers(0, 3)))
    b = ndimage.binary_dilation(rng.random(shape) < 0.05, iterations=int(rng.integers(0, 3)))
    if not a.any() or not b.any():
        return
    dist = sd.compute_surface_distances(b, a, spacing)  # gt = b, pred = a
    for percentile in (50, 95, 99):
        expected = sd.compute_robust_hausdorff(dist, percentile)
        assert hausdorff_distance(
            a, b, spacing=spacing, percentile=percentile, surface="surfels"
        ) == pytest.approx(expected, rel=1e-12)
    gt_to_pred, pred_to_gt = sd.compute_average_surface_distance(dist)
    assert average_surface_distance(
        a, b, spacing=spacing, symmetric=False, surface="surfels"
    ) == pytest.approx(pred_to_gt, rel=1e-12)
    assert average_surface_distance(
        b, a, spacing=spacing, symmetric=False, surface="surfels"
    ) == pytest.approx(gt_to_pred, rel=1e-12)
    everything = np.concatenate([dist["distances_gt_to_pred"], dist["distances_pred_to_gt"]])
    weights = np.concatenate([dist["surfel_areas_gt"], dist["surfel_areas_pred"]])
    bm = boundary_metrics(
        a, b, labels=[1], spacing=spacing, metrics=("hd", "hd95", "assd", "masd"), surface="surfels"
    )[1]
    assert bm["hd"] == pytest.approx(everything.max(), rel=1e-12)
    assert bm["hd95"] == pytest.approx(sd.compute_robust_hausdorff(dist, 95), rel=1e-12)
    assert bm["assd"] == pytest.approx(np.sum(everything * weights) / np.sum(weights), rel=1e-12)
    assert bm["masd"] == pytest.approx((gt_to_pred + pred_to_gt) / 2, rel=1e-12)


def test_surfel_hd95_differs_from_the_voxel_hd95():
    """Same masks, two definitions: voxel centres with interpolated percentiles (MONAI) and
    area-weighted surfels (DeepMind, BraTS) give different HD95s on anisotropic grids."""
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.standard_normal((30, 30, 20)), 3)
    gt = field > 0.5 * field.std()
    pred = field + 0.5 * ndimage.gaussian_filter(rng.standard_normal(field.shape), 3) > 0.5 * field.std()
    voxels = hausdorff_distance(pred, gt, spacing=(1.0, 1.0, 3.0), percentile=95)
    surfels = hausdorff_distance(pred, gt, spacing=(1.0, 1.0, 3.0), percentile=95, surface="surfels")
    assert surfels == pytest.approx(_robust_hd95(gt, pred, (1.0, 1.0, 3.0)), rel=1e-12)
    assert (voxels, surfels) == pytest.approx((math.sqrt(8), math.sqrt(5)), rel=1e-12)


# --- medpy ---------------------------------------------------------------------------------------


def sparse_blob_pair(seed, shape=(40, 40)):
    """Blobs that never touch two objects of the other side (medpy's one-voxel correspondence is then
    unambiguous), plus misses and false positives."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, dtype=bool)
    pred = np.zeros(shape, dtype=bool)
    for i in range(4):
        for j in range(4):
            y, x = 2 + 10 * i, 2 + 10 * j
            kind = rng.integers(0, 4)
            if kind in (0, 1):
                gt[y : y + 4, x : x + 4] = True
            if kind in (0, 2):
                dy, dx = rng.integers(0, 3, size=2)
                pred[y + dy : y + dy + 3, x + dx : x + dx + 3] = True
    return pred, gt


@pytest.mark.parametrize("seed", range(8))
def test_medpy_object_rates_are_precision_and_miss_rate(seed):
    medpy = pytest.importorskip("medpy.metric.binary")
    pred, gt = sparse_blob_pair(seed)
    s = instance_scores(pred, gt, connectivity=1, method="overlap", metrics=("dice",))
    # medpy's obj_tpr(result, reference) divides the matches by the number of *result* objects (our
    # precision) and obj_fpr by the number of reference objects of the unmatched references (1 - recall)
    assert medpy.obj_tpr(pred, gt, connectivity=1) == pytest.approx(s.precision)
    assert medpy.obj_fpr(pred, gt, connectivity=1) == pytest.approx(1 - s.recall)


# --- MONAI panoptic quality ------------------------------------------------------------------------


def nuclei_pair(seed, shape=(64, 64), n=40):
    """Touching convex nuclei (an instance map) and a prediction that erodes, shifts, splits and drops."""
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, shape[0], size=(n, 2))
    yy, xx = np.indices(shape)
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    owner = d.argmin(axis=-1) + 1
    radius = d.min(axis=-1)
    gt = np.where(radius <= 20, owner, 0)
    pred = np.roll(gt, int(rng.integers(-1, 2)), axis=0).copy()
    for k in rng.choice(np.arange(1, n + 1), size=n // 5, replace=False):
        pred[pred == k] = 0  # missed
    for k in rng.choice(np.arange(1, n + 1), size=n // 5, replace=False):
        half = (pred == k) & (xx % 2 == 0)
        pred[half] = n + k  # split: two interleaved halves
    pred = ndimage.grey_erosion(pred, size=(2, 2)) if seed % 2 else pred
    return pred.astype(np.int64), gt.astype(np.int64)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_pq_equals_monai(seed, threshold):
    monai_pq = pytest.importorskip("monai.metrics.panoptic_quality")
    pred, gt = nuclei_pair(seed)
    ours = panoptic_quality(pred, gt, instances="labels", threshold=threshold)
    tp, fp, fn, iou_sum = monai_pq.compute_panoptic_quality(
        torch.from_numpy(pred),
        torch.from_numpy(gt),
        match_iou_threshold=threshold,
        output_confusion_matrix=True,
    ).tolist()
    assert (ours["tp"], ours["fp"], ours["fn"]) == (tp, fp, fn)
    assert ours["tp"] > 0 and ours["fp"] + ours["fn"] > 0
    # MONAI sums float32 IoUs and adds 1e-6 to every denominator
    assert ours["pq"] == pytest.approx(iou_sum / (tp + fp / 2 + fn / 2), rel=1e-6)
    assert ours["sq"] == pytest.approx(iou_sum / tp, rel=1e-6)
    for name in ("pq", "sq", "rq"):
        monai_value = monai_pq.compute_panoptic_quality(
            torch.from_numpy(pred), torch.from_numpy(gt), metric_name=name, match_iou_threshold=threshold
        ).item()
        assert ours[name] == pytest.approx(monai_value, rel=1e-5)


def test_pq_of_an_empty_pair_is_nan_where_monai_says_zero():
    monai_pq = pytest.importorskip("monai.metrics.panoptic_quality")
    z = np.zeros((8, 8), dtype=np.int64)
    assert math.isnan(panoptic_quality(z, z, instances="labels")["pq"])
    assert monai_pq.compute_panoptic_quality(torch.from_numpy(z), torch.from_numpy(z)).item() == 0.0


# --- panoptica ------------------------------------------------------------------------------------


def _panoptica(pred, gt, matcher, expected_input, spacing=None):
    panoptica = pytest.importorskip("panoptica")
    evaluator = panoptica.Panoptica_Evaluator(
        expected_input=expected_input,
        instance_approximator=panoptica.ConnectedComponentsInstanceApproximator(),
        instance_matcher=matcher,
        instance_metrics=[panoptica.Metric.DSC, panoptica.Metric.IOU],
        global_metrics=[panoptica.Metric.DSC],
    )
    return evaluator.evaluate(pred, gt, voxelspacing=spacing, verbose=False)["ungrouped"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["greedy", "hungarian"])
def test_instance_maps_equal_panoptica(seed, method):
    panoptica = pytest.importorskip("panoptica")
    pred, gt = nuclei_pair(seed)
    matcher = panoptica.NaiveThresholdMatching() if method == "greedy" else panoptica.MaxBipartiteMatching()
    r = _panoptica(
        pred.astype(np.int32), gt.astype(np.int32), matcher, panoptica.InputType.UNMATCHED_INSTANCE
    )
    # panoptica accepts IoU >= 0.5, segdice IoU > threshold: a threshold just below 0.5 is panoptica's rule
    s = instance_scores(
        pred, gt, instances="labels", threshold=0.5 - 1e-12, method=method, metrics=("dice", "iou")
    )
    assert (s.tp, s.fp, s.fn) == (r.tp, r.fp, r.fn)
    assert s.pq == pytest.approx(r.pq, rel=1e-12)
    assert s.sq == pytest.approx(r.sq, rel=1e-12)
    assert s.rq == pytest.approx(r.rq, rel=1e-12)
    assert s.matched_dice == pytest.approx(r.sq_dsc, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_3d_components_equal_panoptica(seed):
    panoptica = pytest.importorskip("panoptica")
    pred, gt = brats_like_case(seed)
    p, g = (pred > 0).astype(np.uint8), (gt > 0).astype(np.uint8)
    r = _panoptica(p, g, panoptica.NaiveThresholdMatching(), panoptica.InputType.SEMANTIC)
    s = instance_scores(p, g, threshold=0.5 - 1e-12, method="greedy", metrics=("dice", "iou"))  # 26-connected
    assert (s.tp, s.fp, s.fn) == (r.tp, r.fp, r.fn)
    assert s.pq == pytest.approx(r.pq, rel=1e-12) or (math.isnan(s.pq) and math.isnan(r.pq))


def test_panoptica_labels_2d_components_with_faces_only():
    """A convention that differs: panoptica's 2-D semantic input is labelled with SciPy's default
    (4-connected) element, segdice's default is full connectivity (8 in 2-D); connectivity=1 agrees."""
    panoptica = pytest.importorskip("panoptica")
    gt = np.zeros((6, 6), dtype=np.uint8)
    gt[1, 1] = gt[2, 2] = 1  # diagonal neighbours: one object with 8-connectivity, two with 4
    r = _panoptica(gt, gt, panoptica.NaiveThresholdMatching(), panoptica.InputType.SEMANTIC)
    assert r.tp == 2
    assert instance_scores(gt, gt, metrics=("dice",)).tp == 1
    assert instance_scores(gt, gt, connectivity=1, metrics=("dice",)).tp == 2


def test_iou_exactly_one_half_matches_in_panoptica_not_here():
    panoptica = pytest.importorskip("panoptica")
    gt = np.zeros((4, 8), dtype=np.int32)
    gt[0:2, 0:4] = 1
    pred = np.zeros_like(gt)
    pred[0:2, 0:2] = 1  # IoU 4/8 = 0.5
    r = _panoptica(pred, gt, panoptica.NaiveThresholdMatching(), panoptica.InputType.UNMATCHED_INSTANCE)
    assert r.tp == 1
    assert match_instances(pred, gt, instances="labels").pairs == []
