"""Boundary metrics against hand-computed values, a brute-force reference, properties and the empty policy.

The brute-force reference below is written independently of the implementation: surfaces from
``scipy.ndimage.binary_erosion`` and distances from all pairwise distances (``scipy.spatial.distance``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage
from scipy.spatial.distance import cdist

import segdice.metrics._distances as distances_module
from segdice import SegDiceError
from segdice.metrics import (
    average_surface_distance,
    boundary_metrics,
    hausdorff_distance,
    mean_average_surface_distance,
    surface_dice,
    surface_distances,
)

# --- brute-force reference -----------------------------------------------------------------------


def naive_directed(a: np.ndarray, b: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """All surface distances by brute force (face-connected erosion, border counts as background)."""

    def surface_points(m):
        eroded = ndimage.binary_erosion(m, ndimage.generate_binary_structure(m.ndim, 1), border_value=0)
        return np.argwhere(m & ~eroded) * np.asarray(spacing, dtype=float)

    pa, pb = surface_points(a), surface_points(b)
    d = cdist(pa, pb)
    return d.min(axis=1), d.min(axis=0)


def naive_metrics(a, b, spacing):
    d_ab, d_ba = naive_directed(a, b, spacing)
    return {
        "hd": max(d_ab.max(), d_ba.max()),
        "hd95": max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)),
        "assd": np.concatenate([d_ab, d_ba]).mean(),
        "masd": (d_ab.mean() + d_ba.mean()) / 2,
    }


def blob(shape, rng, threshold=0.3, sigma=2.0):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > threshold * field.std()


# --- hand-computed values ----------------------------------------------------------------------------


def test_hand_computed_1d_values():
    gt = np.zeros(12, dtype=bool)
    gt[2:5] = True  # surface voxels 2 and 4
    pr = np.zeros(12, dtype=bool)
    pr[2:8] = True  # surface voxels 2 and 7
    # pred->gt: 0 and 3; gt->pred: 0 and 2
    assert hausdorff_distance(pr, gt) == 3.0
    assert hausdorff_distance(pr, gt, directed=True) == 3.0
    assert hausdorff_distance(gt, pr, directed=True) == 2.0
    assert hausdorff_distance(pr, gt, percentile=50) == pytest.approx(max(1.5, 1.0))
    assert average_surface_distance(pr, gt) == pytest.approx(5 / 4)
    assert average_surface_distance(pr, gt, symmetric=False) == pytest.approx(1.5)
    assert average_surface_distance(gt, pr, symmetric=False) == pytest.approx(1.0)
    assert mean_average_surface_distance(pr, gt) == pytest.approx((1.5 + 1.0) / 2)
    assert hausdorff_distance(pr, gt, spacing=0.25) == 0.75


def test_shifted_square_2d_with_anisotropic_spacing():
    gt = np.zeros((20, 20), dtype=bool)
    gt[5:10, 5:10] = True
    pr = np.roll(gt, 3, axis=1)
    # Every surface point of one square has its nearest surface point of the other square at <= 3
    # columns; the far column is exactly 3 columns away.
    assert hausdorff_distance(pr, gt, spacing=(1.0, 2.0)) == 6.0
    assert hausdorff_distance(pr, gt, spacing=(7.0, 2.0)) == 6.0
    assert hausdorff_distance(np.roll(gt, 2, axis=0), gt, spacing=(1.5, 1.0)) == 3.0


def test_masd_and_assd_differ_when_surfaces_differ_in_size():
    gt = np.zeros((30, 30), dtype=bool)
    gt[5:25, 5:25] = True
    pr = np.zeros_like(gt)
    pr[8:12, 8:12] = True
    ref = naive_metrics(pr, gt, (1.0, 1.0))
    assert average_surface_distance(pr, gt) == pytest.approx(ref["assd"])
    assert mean_average_surface_distance(pr, gt) == pytest.approx(ref["masd"])
    assert ref["assd"] != pytest.approx(ref["masd"])


def test_surface_dice_hand_computed_2d():
    # Two 4x4 squares with three empty columns between them: their contours (on the voxel-corner grid)
    # are 3 apart, so nothing overlaps below a tolerance of 3 and everything does far above it.
    gt = np.zeros((10, 14), dtype=bool)
    gt[3:7, 3:7] = True
    assert surface_dice(gt, gt, 0.0) == 1.0
    far = np.roll(gt, 7, axis=1)  # gap of 3 columns between the squares
    assert surface_dice(far, gt, 2.9) == 0.0
    assert surface_dice(far, gt, 100.0) == 1.0


# --- brute force, generated ----------------------------------------------------------------------


@st.composite
def mask_pairs(draw):
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(3, 14 if ndim == 3 else 30)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.02, 0.1, 0.5, 0.9]))
    a = rng.random(shape) < density
    b = rng.random(shape) < density
    a.flat[rng.integers(a.size)] = True
    b.flat[rng.integers(b.size)] = True
    spacing = tuple(draw(st.sampled_from([0.5, 1.0, 1.3, 2.0, 3.0])) for _ in range(ndim))
    return a, b, spacing


@given(mask_pairs())
def test_matches_brute_force(pair):
    a, b, spacing = pair
    ref = naive_metrics(a, b, spacing)
    out = boundary_metrics(a, b, [1], spacing=spacing, metrics=("hd", "hd95", "assd", "masd"))[1]
    for name, value in ref.items():
        assert out[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert hausdorff_distance(a, b, spacing=spacing, percentile=95) == pytest.approx(ref["hd95"], rel=1e-9)


@given(mask_pairs())
def test_directed_distances_match_brute_force(pair):
    a, b, spacing = pair
    d_ab, d_ba = surface_distances(a, b, spacing=spacing)
    ref_ab, ref_ba = naive_directed(a, b, spacing)
    np.testing.assert_allclose(d_ab, ref_ab, rtol=1e-12)
    np.testing.assert_allclose(d_ba, ref_ba, rtol=1e-12)


def test_tree_fallback_and_offset_search_agree(monkeypatch):
    # With a tiny offset budget almost every point goes to the k-d tree; the numbers must not move.
    rng = np.random.default_rng(3)
    a, b = blob((30, 34, 26), rng), blob((30, 34, 26), rng, threshold=0.6)
    spacing = (2.0, 2.0, 3.0)
    full = boundary_metrics(
        a, b, [1], spacing=spacing, metrics=("hd", "hd95", "assd", "nsd"), nsd_tolerance=2.5
    )
    ref = naive_metrics(a, b, spacing)
    monkeypatch.setattr(distances_module, "OFFSET_BUDGET", 1)
    small = boundary_metrics(
        a, b, [1], spacing=spacing, metrics=("hd", "hd95", "assd", "nsd"), nsd_tolerance=2.5
    )
    for name in ("hd", "hd95", "assd"):
        assert full[1][name] == pytest.approx(ref[name], rel=1e-12)
        assert small[1][name] == pytest.approx(ref[name], rel=1e-12)
    assert small[1]["nsd"] == pytest.approx(full[1]["nsd"], rel=1e-12)


# --- properties ------------------------------------------------------------------------------------


def test_symmetry_and_translation_invariance():
    rng = np.random.default_rng(4)
    a, b = blob((24, 28, 20), rng), blob((24, 28, 20), rng, threshold=0.5)
    spacing = (2.0, 1.0, 3.0)
    for fn in (hausdorff_distance, average_surface_distance, mean_average_surface_distance):
        assert fn(a, b, spacing=spacing) == pytest.approx(fn(b, a, spacing=spacing), rel=1e-12)
    assert surface_dice(a, b, 2.0, spacing=spacing) == pytest.approx(surface_dice(b, a, 2.0, spacing=spacing))
    # Embedding the pair in a larger zero volume moves nothing but the default worst case.
    big_a, big_b = np.zeros((40, 50, 30), dtype=bool), np.zeros((40, 50, 30), dtype=bool)
    big_a[7:31, 11:39, 5:25], big_b[7:31, 11:39, 5:25] = a, b
    metrics = ("hd", "hd95", "assd", "masd", "nsd")
    small = boundary_metrics(a, b, [1], spacing=spacing, metrics=metrics)[1]
    large = boundary_metrics(big_a, big_b, [1], spacing=spacing, metrics=metrics)[1]
    for name in metrics:
        assert large[name] == pytest.approx(small[name], rel=1e-12), name


def test_axis_permutation_with_spacing_permuted():
    rng = np.random.default_rng(5)
    a, b = blob((20, 26, 18), rng), blob((20, 26, 18), rng, threshold=0.5)
    spacing = (2.0, 1.0, 3.0)
    order = (2, 0, 1)
    a_t, b_t = a.transpose(order), b.transpose(order)
    spacing_t = tuple(spacing[i] for i in order)
    metrics = ("hd", "hd95", "assd", "nsd")
    ref = boundary_metrics(a, b, [1], spacing=spacing, metrics=metrics)[1]
    out = boundary_metrics(a_t, b_t, [1], spacing=spacing_t, metrics=metrics)[1]
    for name in metrics:
        assert out[name] == pytest.approx(ref[name], rel=1e-12), name


def test_identical_masks_give_zero_distance_and_full_nsd():
    rng = np.random.default_rng(6)
    a = blob((16, 18, 14), rng)
    out = boundary_metrics(a, a, [1], spacing=(2, 2, 3))[1]
    assert out == {"hd": 0.0, "hd95": 0.0, "assd": 0.0, "masd": 0.0, "nsd": 1.0}


def test_masks_touching_the_border():
    a = np.ones((6, 7, 5), dtype=bool)
    b = np.zeros_like(a)
    b[:, :4] = True
    ref = naive_metrics(a, b, (1.0, 2.0, 1.5))
    assert hausdorff_distance(a, b, spacing=(1.0, 2.0, 1.5)) == pytest.approx(ref["hd"])
    assert average_surface_distance(a, b, spacing=(1.0, 2.0, 1.5)) == pytest.approx(ref["assd"])


def test_torch_and_numpy_give_the_same_numbers():
    rng = np.random.default_rng(7)
    a, b = blob((20, 22), rng), blob((20, 22), rng, threshold=0.5)
    ref = boundary_metrics(a, b, [1], spacing=(1.5, 1.0))[1]
    out = boundary_metrics(
        torch.from_numpy(a), torch.from_numpy(b.astype(np.int64)), [1], spacing=(1.5, 1.0)
    )[1]
    assert out == ref
    assert (
        hausdorff_distance(torch.from_numpy(a).float(), torch.from_numpy(b), spacing=(1.5, 1.0)) == ref["hd"]
    )
    assert hausdorff_distance(a, b, spacing=torch.tensor([1.5, 1.0])) == ref["hd"]


# --- the empty policy ----------------------------------------------------------------------------


def test_both_empty_is_nan_everywhere():
    z = np.zeros((5, 6, 7), dtype=bool)
    assert math.isnan(hausdorff_distance(z, z))
    assert math.isnan(hausdorff_distance(z, z, percentile=95))
    assert math.isnan(average_surface_distance(z, z))
    assert math.isnan(mean_average_surface_distance(z, z))
    assert math.isnan(surface_dice(z, z, 1.0))
    out = boundary_metrics(z, z, [1])[1]
    assert all(math.isnan(v) for v in out.values())
    assert boundary_metrics(z, z) == {}


@pytest.mark.parametrize("empty_side", ["pred", "target"])
def test_one_side_empty_is_the_worst_case_never_inf_nan_or_zero(empty_side):
    shape, spacing = (10, 20, 30), (2.0, 1.0, 0.5)
    diagonal = math.sqrt(20**2 + 20**2 + 15**2)
    full = np.zeros(shape, dtype=bool)
    full[2:5, 3:9, 4:20] = True
    empty = np.zeros(shape, dtype=bool)
    pred, target = (empty, full) if empty_side == "pred" else (full, empty)
    assert hausdorff_distance(pred, target, spacing=spacing) == pytest.approx(diagonal)
    assert hausdorff_distance(pred, target, spacing=spacing, percentile=95) == pytest.approx(diagonal)
    assert hausdorff_distance(pred, target, spacing=spacing, directed=True) == pytest.approx(diagonal)
    assert average_surface_distance(pred, target, spacing=spacing) == pytest.approx(diagonal)
    assert mean_average_surface_distance(pred, target, spacing=spacing) == pytest.approx(diagonal)
    assert hausdorff_distance(pred, target, spacing=spacing, worst_case=373.13) == 373.13
    assert surface_dice(pred, target, 1.0, spacing=spacing) == 0.0
    out = boundary_metrics(pred.astype(np.uint8), target.astype(np.uint8), spacing=spacing, worst_case=99.0)
    assert out == {1: {"hd": 99.0, "hd95": 99.0, "assd": 99.0, "masd": 99.0, "nsd": 0.0}}


def test_surface_distances_with_an_empty_side():
    full = np.zeros((6, 6), dtype=bool)
    full[1:4, 1:4] = True
    d_pt, d_tp = surface_distances(full, np.zeros_like(full))
    assert d_pt.shape == (8,) and np.isinf(d_pt).all()
    assert d_tp.shape == (0,)


# --- label maps --------------------------------------------------------------------------------------


def _label_pair():
    rng = np.random.default_rng(8)
    gt = np.zeros((24, 30, 20), dtype=np.int16)
    gt[2:10, 3:12, 2:9] = 1
    gt[12:20, 5:25, 10:18] = 2
    gt[3:8, 18:26, 3:8] = 4
    pred = gt.copy()
    pred[pred == 2] = 0
    pred[13:21, 6:24, 9:17] = 2
    pred[rng.random(gt.shape) < 0.01] = 1
    pred[pred == 4] = 0  # label 4 missed entirely
    return pred, gt


def test_boundary_metrics_per_label_equals_binary_functions():
    pred, gt = _label_pair()
    spacing = (2.0, 1.0, 1.5)
    out = boundary_metrics(pred, gt, spacing=spacing, metrics=("hd", "hd95", "assd", "masd", "nsd"))
    assert list(out) == [1, 2, 4]
    for label in (1, 2):
        p, g = pred == label, gt == label
        ref = naive_metrics(p, g, spacing)
        for name in ("hd", "hd95", "assd", "masd"):
            assert out[label][name] == pytest.approx(ref[name], rel=1e-9), (label, name)
        assert out[label]["nsd"] == pytest.approx(surface_dice(p, g, 1.0, spacing=spacing), rel=1e-12)
    diagonal = math.sqrt(48**2 + 30**2 + 30**2)
    assert out[4]["hd95"] == pytest.approx(diagonal) and out[4]["nsd"] == 0.0


def test_boundary_metrics_regions_lists_and_percentile_names():
    pred, gt = _label_pair()
    out = boundary_metrics(pred, gt, labels=[(1, 2), [2, 4], 7, np.int64(2)], metrics=("hd", "hd99"))
    assert list(out) == [(1, 2), (2, 4), 7, 2]
    union_p, union_g = np.isin(pred, (1, 2)), np.isin(gt, (1, 2))
    ref = naive_directed(union_p, union_g, (1.0, 1.0, 1.0))
    assert out[(1, 2)]["hd"] == pytest.approx(max(ref[0].max(), ref[1].max()))
    assert out[(1, 2)]["hd99"] == pytest.approx(max(np.percentile(ref[0], 99), np.percentile(ref[1], 99)))
    assert all(math.isnan(v) for v in out[7].values())


def test_boundary_metrics_accepts_integral_float_maps_and_bool_masks():
    pred, gt = _label_pair()
    ref = boundary_metrics(pred, gt, metrics=("hd95",))
    assert boundary_metrics(pred.astype(np.float64), gt.astype(np.float32), metrics=("hd95",)) == ref
    assert boundary_metrics(pred == 2, gt == 2, metrics=("hd95",)) == {1: ref[2]}


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda m: hausdorff_distance(m, m[:-1]), ["pred", "target", "shape"]),
        (lambda m: hausdorff_distance(m, m, spacing=(1.0, 1.0)), ["spacing", "3"]),
        (lambda m: hausdorff_distance(m, m, spacing=(1.0, 0.0, 1.0)), ["spacing", "> 0"]),
        (lambda m: hausdorff_distance(m, m, spacing=(1.0, float("nan"), 1.0)), ["spacing"]),
        (lambda m: hausdorff_distance(m, m, spacing="abc"), ["spacing"]),
        (lambda m: hausdorff_distance(m.astype(np.int64) * 2, m), ["pred", "binary"]),
        (lambda m: hausdorff_distance(m, m.astype(float) * 0.5), ["target", "binary"]),
        (lambda m: hausdorff_distance(m, m, percentile=101), ["percentile"]),
        (lambda m: hausdorff_distance(m, m, worst_case=0), ["worst_case"]),
        (lambda m: hausdorff_distance(m.tolist(), m), ["pred", "NumPy"]),
        (lambda m: surface_dice(m, m, -1.0), ["tolerance"]),
        (lambda m: surface_dice(m[0, 0], m[0, 0], 1.0), ["pred", "2D or 3D"]),
        (lambda m: boundary_metrics(m, m, metrics=("hd", "dice")), ["metrics", "dice"]),
        (lambda m: boundary_metrics(m, m, metrics=()), ["metrics"]),
        (lambda m: boundary_metrics(m, m, labels=[1.5]), ["labels", "1.5"]),
        (lambda m: boundary_metrics(m, m, labels=[()]), ["labels"]),
        (lambda m: boundary_metrics(m, m, nsd_tolerance=-2), ["nsd_tolerance"]),
        (lambda m: boundary_metrics(m * 0.5, m), ["pred", "integer"]),
        (lambda m: boundary_metrics(m.astype("U1"), m), ["pred"]),
    ],
)
def test_bad_input_raises_segdice_error_naming_the_argument(call, words):
    m = np.zeros((4, 5, 6), dtype=bool)
    m[1:3, 1:3, 1:3] = True
    with pytest.raises(SegDiceError) as info:
        call(m)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("offset", [0, 100, 5000, -3])
def test_default_labels_are_those_present_in_either_map(offset, negative):
    gt = np.zeros((8, 9, 10), dtype=np.int64)
    pred = np.zeros_like(gt)
    gt[1:3, 1:3, 1:3] = 2 + offset
    pred[4:6, 4:6, 4:6] = 7 + offset
    pred[0, 0, 0] = -1 if negative else 0
    out = boundary_metrics(pred, gt, metrics=("hd",))
    expected = sorted(v for v in {2 + offset, 7 + offset} if v > 0)
    assert list(out) == expected


def test_extreme_anisotropy_stays_exact():
    rng = np.random.default_rng(9)
    a, b = blob((40, 12), rng, sigma=1.5), blob((40, 12), rng, threshold=0.6, sigma=1.5)
    for spacing in [(0.01, 50.0), (50.0, 0.02)]:
        ref = naive_metrics(a, b, spacing)
        out = boundary_metrics(
            a, b, [1], spacing=spacing, metrics=("hd", "hd95", "assd", "nsd"), nsd_tolerance=20.0
        )
        for name in ("hd", "hd95", "assd"):
            assert out[1][name] == pytest.approx(ref[name], rel=1e-12), (spacing, name)
        assert 0.0 <= out[1]["nsd"] <= 1.0


def test_background_label_and_both_box_paths_agree():
    pred, gt = _label_pair()
    pred, gt = pred[:, :, :12], gt[:, :, :12]
    many = boundary_metrics(pred, gt, labels=[0, 1, 2], metrics=("hd", "assd"))  # one find_objects pass
    for label in (0, 1, 2):
        ref = naive_metrics(pred == label, gt == label, (1.0, 1.0, 1.0))
        alone = boundary_metrics(pred, gt, labels=[label], metrics=("hd", "assd"))[label]  # projections
        for name in ("hd", "assd"):
            assert many[label][name] == pytest.approx(ref[name], rel=1e-12), (label, name)
            assert alone[name] == pytest.approx(ref[name], rel=1e-12), (label, name)


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.0, 3.5, 12.0])
def test_nsd_dilation_and_point_search_agree(monkeypatch, tolerance):
    rng = np.random.default_rng(10)
    a, b = blob((26, 30, 22), rng), blob((26, 30, 22), rng, threshold=0.6)
    spacing = (2.0, 1.0, 1.5)
    values = []
    for ratio in (0, 10**12):  # never / always dilate
        monkeypatch.setattr(distances_module, "_DILATE_RATIO", ratio)
        values.append(surface_dice(a, b, tolerance, spacing=spacing))
    assert values[0] == values[1]
    assert 0.0 < values[0] <= 1.0
