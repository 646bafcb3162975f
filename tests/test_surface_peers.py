"""Boundary metrics against the installed peers: MONAI (HD, HD95, ASSD), DeepMind surface-distance (NSD,
surfel tables) and medpy (HD; its pooled HD95 is shown to differ by definition).

Masks are real-shaped: smooth 3D structures of a few thousand voxels with an imperfect prediction, on
anisotropic grids such as (2, 2, 3) mm.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from segdice.metrics import (
    average_surface_distance,
    boundary_metrics,
    hausdorff_distance,
    mean_average_surface_distance,
    surface_dice,
)
from segdice.metrics._surfels import code_measure_table, corner_codes

monai_metrics = pytest.importorskip("monai.metrics")
sd = pytest.importorskip("surface_distance")
medpy_binary = pytest.importorskip("medpy.metric.binary")

REL = 1e-4


def organ_pair(seed: int, shape=(48, 56, 40), sigma=3.0):
    """A smooth structure and a prediction that is shifted, has a wrong bulge and a stray island."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    gt = field > 0.8 * field.std()
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    pred = np.roll(field + 0.4 * noise, 1, axis=0) > 0.75 * field.std()
    pred[(slice(2, 5), slice(3, 6), slice(30, 33))[: len(shape)]] = True  # a stray island
    return pred, gt


CASES = [
    (organ_pair(0), (2.0, 2.0, 3.0)),
    (organ_pair(1), (0.8, 0.8, 2.5)),
    (organ_pair(2, shape=(40, 40, 60)), (3.0, 1.0, 1.0)),
    (organ_pair(3, shape=(80, 72)), (0.7, 1.9)),
]


def _monai(pred, gt):
    return torch.from_numpy(pred)[None, None].float(), torch.from_numpy(gt)[None, None].float()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize(("pair", "spacing"), CASES)
def test_hd_hd95_assd_match_monai(pair, spacing):
    pred, gt = pair
    p, g = _monai(pred, gt)
    for percentile in (None, 95, 50):
        ref = monai_metrics.compute_hausdorff_distance(p, g, percentile=percentile, spacing=spacing).item()
        ours = hausdorff_distance(pred, gt, spacing=spacing, percentile=percentile)
        assert ours == pytest.approx(ref, rel=REL), percentile
    ref = monai_metrics.compute_hausdorff_distance(p, g, percentile=95, directed=True, spacing=spacing).item()
    assert hausdorff_distance(pred, gt, spacing=spacing, percentile=95, directed=True) == pytest.approx(
        ref, rel=REL
    )
    ref = monai_metrics.compute_average_surface_distance(p, g, symmetric=True, spacing=spacing).item()
    assert average_surface_distance(pred, gt, spacing=spacing) == pytest.approx(ref, rel=REL)
    ref_pg = monai_metrics.compute_average_surface_distance(p, g, symmetric=False, spacing=spacing).item()
    ref_gp = monai_metrics.compute_average_surface_distance(g, p, symmetric=False, spacing=spacing).item()
    assert average_surface_distance(pred, gt, spacing=spacing, symmetric=False) == pytest.approx(
        ref_pg, rel=REL
    )
    assert mean_average_surface_distance(pred, gt, spacing=spacing) == pytest.approx(
        (ref_pg + ref_gp) / 2, rel=REL
    )


@pytest.mark.parametrize(("pair", "spacing"), CASES)
@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5, 7.0, 40.0])
def test_nsd_matches_deepmind(pair, spacing, tolerance):
    pred, gt = pair
    distances = sd.compute_surface_distances(gt, pred, spacing)
    ref = sd.compute_surface_dice_at_tolerance(distances, tolerance)
    assert surface_dice(pred, gt, tolerance, spacing=spacing) == pytest.approx(ref, rel=REL)


def test_nsd_matches_deepmind_when_masks_touch_the_border():
    pred, gt = organ_pair(4, shape=(20, 24, 18), sigma=2.0)
    gt[0, :, :] |= True
    pred[:, -1, :] |= True
    spacing = (2.0, 2.0, 3.0)
    ref = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(gt, pred, spacing), 2.0)
    assert surface_dice(pred, gt, 2.0, spacing=spacing) == pytest.approx(ref, rel=REL)
    p, g = _monai(pred, gt)
    ref_hd = monai_metrics.compute_hausdorff_distance(p, g, percentile=95, spacing=spacing).item()
    assert hausdorff_distance(pred, gt, spacing=spacing, percentile=95) == pytest.approx(ref_hd, rel=REL)


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (2.0, 2.0, 3.0), (0.37, 1.9, 5.3), (1.0, 1.0), (0.5, 3.0)]
)
def test_surfel_tables_equal_deepmind(spacing):
    ours = code_measure_table(spacing)
    if len(spacing) == 3:
        ref = sd.lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    else:
        ref = sd.lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_corner_codes_equal_deepmind_encoding(ndim):
    rng = np.random.default_rng(ndim)
    mask = np.zeros((9,) * ndim, dtype=bool)
    mask[(slice(1, -1),) * ndim] = rng.random((7,) * ndim) > 0.5
    kernel = (
        sd.lookup_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL
        if ndim == 3
        else sd.lookup_tables.ENCODE_NEIGHBOURHOOD_2D_KERNEL
    )
    ref = ndimage.correlate(mask.astype(np.uint8), kernel, mode="constant", cval=0)
    inner = (slice(1, None),) * ndim
    np.testing.assert_array_equal(corner_codes(mask)[inner], ref[inner])


def test_boundary_metrics_per_label_and_region_match_monai_and_deepmind():
    pred1, gt1 = organ_pair(5, shape=(40, 44, 36))
    pred2, gt2 = organ_pair(6, shape=(40, 44, 36))
    gt = np.where(gt1, 1, np.where(gt2, 3, 0)).astype(np.uint8)
    pred = np.where(pred1, 1, np.where(pred2, 3, 0)).astype(np.uint8)
    spacing = (2.0, 2.0, 3.0)
    out = boundary_metrics(pred, gt, labels=[1, 3, (1, 3)], spacing=spacing, nsd_tolerance=2.0)
    for key, members in ((1, (1,)), (3, (3,)), ((1, 3), (1, 3))):
        p, g = np.isin(pred, members), np.isin(gt, members)
        tp, tg = _monai(p, g)
        assert out[key]["hd"] == pytest.approx(
            monai_metrics.compute_hausdorff_distance(tp, tg, spacing=spacing).item(), rel=REL
        )
        assert out[key]["hd95"] == pytest.approx(
            monai_metrics.compute_hausdorff_distance(tp, tg, percentile=95, spacing=spacing).item(), rel=REL
        )
        assert out[key]["assd"] == pytest.approx(
            monai_metrics.compute_average_surface_distance(tp, tg, symmetric=True, spacing=spacing).item(),
            rel=REL,
        )
        ref_nsd = sd.compute_surface_dice_at_tolerance(sd.compute_surface_distances(g, p, spacing), 2.0)
        assert out[key]["nsd"] == pytest.approx(ref_nsd, rel=REL)


def test_hd_equals_medpy_and_hd95_is_never_below_medpys_pooled_hd95():
    for seed in range(3):
        pred, gt = organ_pair(10 + seed, shape=(36, 40, 30))
        spacing = (2.0, 2.0, 3.0)
        assert hausdorff_distance(pred, gt, spacing=spacing) == pytest.approx(
            medpy_binary.hd(pred, gt, voxelspacing=spacing), rel=1e-9
        )
        # medpy pools both directions before the percentile; the max of the directed percentiles is
        # at least as large (a pooled quantile lies between the two directed ones).
        pooled = medpy_binary.hd95(pred, gt, voxelspacing=spacing)
        assert hausdorff_distance(pred, gt, spacing=spacing, percentile=95) >= pooled - 1e-9
        assert average_surface_distance(pred, gt, spacing=spacing) == pytest.approx(
            medpy_binary.assd(pred, gt, voxelspacing=spacing), rel=1e-9
        )
