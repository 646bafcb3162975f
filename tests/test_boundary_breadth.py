"""Pooled HD percentiles (medpy), worst_case inf/nan, ignore_index, boundary IoU and clDice."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segdice import SegDiceError
from segdice.metrics import boundary_metrics, hausdorff_distance
from segdice.metrics.surface import boundary_iou
from segdice.metrics.topology import cldice_score


def _blobs(seed: int, shape, p: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping, irregular masks (smoothed noise, thresholded)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = ndimage.uniform_filter(rng.random(shape), 3) > 1 - p
    b = ndimage.uniform_filter(rng.random(shape), 3) > 1 - p
    a[tuple(s // 2 for s in shape)] = b[tuple(s // 2 for s in shape)] = True
    return a, b


# --- pooled percentiles: medpy's hd95 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "spacing"), [((24, 30), (1.0, 1.0)), ((24, 30), (0.7, 1.9)), ((10, 14, 12), (2.5, 0.8, 1.1))]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_hd95_equals_medpy(shape, spacing, seed):
    from medpy.metric.binary import hd95

    p, t = _blobs(seed, shape)
    ours = hausdorff_distance(p, t, spacing=spacing, percentile=95, pooled=True)
    assert ours == pytest.approx(hd95(p, t, voxelspacing=spacing), rel=1e-12)
    # not larger than the larger directed percentile, up to one interpolation step between neighbours
    assert ours <= hausdorff_distance(p, t, spacing=spacing, percentile=96)
    out = boundary_metrics(
        p.astype(np.int64), t.astype(np.int64), spacing=spacing, metrics=("hd95",), pooled=True
    )
    assert out[1]["hd95"] == pytest.approx(ours, rel=1e-12)


def test_pooled_max_is_the_hausdorff_distance():
    p, t = _blobs(3, (20, 20))
    assert hausdorff_distance(p, t, pooled=True) == hausdorff_distance(p, t)


def test_pooled_with_directed_is_refused():
    p, t = _blobs(3, (8, 8))
    with pytest.raises(SegDiceError, match="pooled"):
        hausdorff_distance(p, t, pooled=True, directed=True)


# --- worst_case inf / nan ------------------------------------------------------------------------------


def test_worst_case_inf_reproduces_monai():
    # (DeepMind's compute_robust_hausdorff returns np.Inf here, a name NumPy 2 removed: it raises)
    from monai.metrics import compute_hausdorff_distance

    t = np.zeros((12, 12), dtype=bool)
    t[3:7, 3:7] = True
    p = np.zeros_like(t)
    import torch

    monai = float(
        compute_hausdorff_distance(torch.from_numpy(p)[None, None], torch.from_numpy(t)[None, None])
    )
    assert monai == math.inf
    assert hausdorff_distance(p, t, worst_case=math.inf) == math.inf
    assert math.isnan(hausdorff_distance(p, t, worst_case=math.nan))
    out = boundary_metrics(
        p.astype(int), t.astype(int), metrics=("hd", "hd95", "assd", "nsd"), worst_case=math.inf
    )
    assert out[1] == {"hd": math.inf, "hd95": math.inf, "assd": math.inf, "nsd": 0.0}
    out = boundary_metrics(p.astype(int), t.astype(int), metrics=("hd", "nsd", "biou"), worst_case=math.nan)
    assert math.isnan(out[1]["hd"]) and out[1]["nsd"] == 0.0 and out[1]["biou"] == 0.0


@pytest.mark.parametrize("bad", [-math.inf, 0, -1.0, "inf"])
def test_worst_case_invalid(bad):
    t = np.zeros((5, 5), dtype=bool)
    t[1, 1] = True
    with pytest.raises(SegDiceError, match="worst_case"):
        hausdorff_distance(np.zeros_like(t), t, worst_case=bad)


# --- ignore_index ------------------------------------------------------------------------------------


def test_ignore_index_is_background_in_both_masks():
    rng = np.random.default_rng(4)
    gt = rng.integers(0, 3, (16, 18))
    pred = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 3, gt.shape))
    gt[5:9, 2:12] = 255  # a void region
    pred[0, 0] = 255  # a stray predicted 255 is not a label to score
    metrics = ("hd", "hd95", "assd", "nsd", "biou")
    got = boundary_metrics(pred, gt, metrics=metrics, ignore_index=255)
    assert sorted(got) == [1, 2]
    void = gt == 255
    for label in (1, 2):
        p = (pred == label) & ~void
        t = (gt == label) & ~void
        ref = boundary_metrics(p.astype(np.int64), t.astype(np.int64), metrics=metrics)[1]
        assert got[label] == pytest.approx(ref)
    plain = boundary_metrics(pred, gt, metrics=("hd",))
    assert 255 in plain  # without ignore_index the void is a label


# --- boundary IoU ------------------------------------------------------------------------------------


def _band_brute_force(mask: np.ndarray, width: float, spacing) -> np.ndarray:
    """Mask voxels within `width` of a voxel outside the mask (the one-voxel ring around the array
    included), or with a face neighbour outside it: loops over every pair of voxels."""
    padded = np.pad(mask, 1)
    outside = [np.array(i) for i in zip(*np.nonzero(~padded), strict=True)]
    band = np.zeros_like(padded)
    for idx in zip(*np.nonzero(padded), strict=True):
        x = np.array(idx)
        near = min(math.sqrt(sum(((x - y) * spacing) ** 2)) for y in outside)
        face = any(
            not padded[tuple(x + d)]
            for axis in range(mask.ndim)
            for d in (np.eye(mask.ndim, dtype=int)[axis], -np.eye(mask.ndim, dtype=int)[axis])
        )
        band[idx] = near <= width or face
    return band[tuple(slice(1, -1) for _ in range(mask.ndim))]


def _biou_brute_force(p, t, width, spacing) -> float:
    bp, bt = (
        _band_brute_force(p, width, np.asarray(spacing)),
        _band_brute_force(t, width, np.asarray(spacing)),
    )
    union = (bp | bt).sum()
    return (bp & bt).sum() / union if union else math.nan


@pytest.mark.parametrize(
    ("shape", "spacing", "width"),
    [
        ((9, 11), (1.0, 1.0), 1.0),
        ((9, 11), (1.0, 1.0), 2.5),
        ((9, 11), (0.6, 1.7), 1.3),
        ((6, 7, 5), (1.0, 2.0, 0.5), 1.6),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_boundary_iou_brute_force(shape, spacing, width, seed):
    p, t = _blobs(seed, shape, p=0.5)
    assert boundary_iou(p, t, width=width, spacing=spacing) == pytest.approx(
        _biou_brute_force(p, t, width, spacing), rel=1e-12
    )


def test_boundary_iou_default_width_is_two_percent_of_the_diagonal():
    p, t = _blobs(5, (40, 60), p=0.5)
    spacing = (1.5, 0.5)
    diag = math.sqrt((40 * 1.5) ** 2 + (60 * 0.5) ** 2)
    assert boundary_iou(p, t, spacing=spacing) == boundary_iou(p, t, spacing=spacing, width=0.02 * diag)
    out = boundary_metrics(p.astype(int), t.astype(int), spacing=spacing, metrics=("biou",))
    assert out[1]["biou"] == pytest.approx(boundary_iou(p, t, spacing=spacing))


def test_boundary_iou_properties():
    t = np.zeros((30, 30), dtype=bool)
    t[5:25, 5:25] = True
    assert boundary_iou(t, t) == 1.0
    assert boundary_iou(np.zeros_like(t), t) == 0.0
    assert math.isnan(boundary_iou(np.zeros_like(t), np.zeros_like(t)))
    shifted = np.roll(t, 1, axis=0)
    iou = (t & shifted).sum() / (t | shifted).sum()
    assert boundary_iou(shifted, t, width=1.0) < iou  # the band sees a boundary error more
    assert boundary_iou(shifted, t, width=100.0) == pytest.approx(iou)  # a wide band is the whole mask
    with pytest.raises(SegDiceError, match="width"):
        boundary_iou(t, t, width=0)


# --- clDice ------------------------------------------------------------------------------------------


def _ridge_fallback(mask: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """The documented rule, by brute force: a full-connectivity component with no skeleton voxel adds
    its voxels whose distance to the background is >= that of each of their 3**n neighbours."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim))
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))  # padded coordinates: +1 on every axis
    out = skeleton.copy()
    for k in range(1, n + 1):
        if (skeleton & (labels == k)).any():
            continue
        for idx in zip(*np.nonzero(labels == k), strict=True):
            c = tuple(i + 1 for i in idx)
            around = dist[tuple(slice(i - 1, i + 2) for i in c)]
            out[idx] = dist[c] >= around.max()
    return out


def _cldice_metricsreloaded(p: np.ndarray, t: np.ndarray) -> float:
    """MetricsReloaded's formula (pairwise_measures.cldice): topology precision and sensitivity of the
    skimage skeletons, their harmonic mean; components the 3-D thinning deletes whole (scikit-image
    #3757) take the ridge of :func:`_ridge_fallback` (segdice's documented difference)."""
    from skimage.morphology import skeletonize

    s_p, s_t = _ridge_fallback(p, skeletonize(p)), _ridge_fallback(t, skeletonize(t))
    tprec = (s_p & t).sum() / s_p.sum()
    tsens = (s_t & p).sum() / s_t.sum()
    return 2 * tprec * tsens / (tprec + tsens)


@pytest.mark.parametrize("shape", [(40, 50), (14, 16, 18)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cldice_metricsreloaded_formula(shape, seed):
    p, t = _blobs(seed, shape, p=0.45)
    assert cldice_score(p, t) == pytest.approx(_cldice_metricsreloaded(p, t), rel=1e-12)
    out = boundary_metrics(p.astype(int), t.astype(int), metrics=("cldice",))
    assert out[1]["cldice"] == pytest.approx(cldice_score(p, t), rel=1e-12)


def test_cldice_cares_about_connectivity():
    vessel = np.zeros((11, 60), dtype=bool)
    vessel[4:7, 2:58] = True
    thick = vessel.copy()
    thick[3:8, 2:58] = True  # a wider vessel: more volume error, same centre line
    broken = vessel.copy()
    broken[:, 28:32] = False
    assert cldice_score(thick, vessel) == 1.0
    assert cldice_score(broken, vessel) < 1.0


def test_cldice_empty_cases_and_errors():
    t = np.zeros((8, 8), dtype=bool)
    t[2:6, 2:6] = True
    assert cldice_score(np.zeros_like(t), t) == 0.0
    assert math.isnan(cldice_score(np.zeros_like(t), np.zeros_like(t)))
    with pytest.raises(SegDiceError, match="2-D or 3-D"):
        cldice_score(np.zeros(5, dtype=bool), np.zeros(5, dtype=bool))
    with pytest.raises(SegDiceError, match="binary"):
        cldice_score(t * 2, t)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_boundary_iou_symmetric_and_bounded(seed):
    p, t = _blobs(seed, (12, 13), p=0.5)
    a, b = boundary_iou(p, t, width=1.5), boundary_iou(t, p, width=1.5)
    assert a == b and 0.0 <= a <= 1.0


def test_brute_force_band_of_a_square():
    # hand check of the reference: a 5x5 square, width 1: the 16 border voxels
    m = np.zeros((7, 7), dtype=bool)
    m[1:6, 1:6] = True
    band = _band_brute_force(m, 1.0, np.ones(2))
    assert band.sum() == 16 and not band[3, 3]
    assert all(band[i, j] for i, j in itertools.product(range(1, 6), (1, 5)))
