"""clDice on objects scikit-image's 3-D thinning deletes whole (scikit-image #3757: even thickness)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.morphology import skeletonize

from segdice.metrics import boundary_metrics
from segdice.metrics.topology import cldice_score


def _tube(k: int, ndim: int, length: int = 20) -> np.ndarray:
    """A straight tube ``k`` voxels thick (2-D: a bar ``k`` wide), two voxels from every border."""
    shape = (k + 4,) * (ndim - 1) + (length + 4,)
    x = np.zeros(shape, dtype=bool)
    x[(slice(2, 2 + k),) * (ndim - 1) + (slice(2, 2 + length),)] = True
    return x


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("k", range(1, 8))
def test_identical_tubes_score_one_for_every_thickness(k, ndim):
    t = _tube(k, ndim)
    assert cldice_score(t, t) == 1.0
    assert boundary_metrics(t.astype(np.int64), t.astype(np.int64), metrics=("cldice",))[1]["cldice"] == 1.0


def test_the_bug_is_real_in_scikit_image():
    # what the fallback exists for: the 3-D thinning returns nothing for a 2-voxel-thick tube
    assert not skeletonize(_tube(2, 3)).any()


@settings(max_examples=40, deadline=None)
@given(
    ndim=st.sampled_from([2, 3]),
    sizes=st.lists(st.integers(1, 6), min_size=3, max_size=3),
    corner=st.lists(st.integers(0, 3), min_size=3, max_size=3),
    second=st.booleans(),
)
def test_a_mask_against_itself_is_one(ndim, sizes, corner, second):
    # a box (and maybe a second, apart from the first) of any thickness, anywhere, touching the border too
    x = np.zeros((12,) * ndim, dtype=bool)
    x[tuple(slice(c, c + s) for c, s in zip(corner[:ndim], sizes[:ndim], strict=True))] = True
    if second:
        x[(slice(10, 12),) * ndim] = True  # a 2x2(x2) block: no 3-D skeleton of its own
    assert cldice_score(x, x) == 1.0


def test_hand_checked_half_tube():
    # target: a 2x2 tube of 10 voxels along z, no skeleton; every voxel is at distance 1 from the
    # background, so the ridge is the whole tube (40 voxels). pred: its first 5 slices (20 voxels, the
    # same). Tprec = 20/20 = 1, Tsens = |S(T) ∩ P| / |S(T)| = 20/40, clDice = 2 * 0.5 / 1.5 = 2/3.
    t = np.zeros((6, 6, 14), dtype=bool)
    t[2:4, 2:4, 2:12] = True
    p = t.copy()
    p[..., 7:] = False
    assert cldice_score(p, t) == pytest.approx(2 / 3, rel=1e-12)
    assert cldice_score(t, p) == pytest.approx(2 / 3, rel=1e-12)


def test_hand_checked_even_cube_uses_its_centre():
    # a 4x4x4 cube has no 3-D skeleton; its ridge is the central 2x2x2 (distance 2, the rest 1). A pred
    # that is the cube minus that centre covers none of it: Tsens = 0; the pred (a hollow shell, kept by
    # the thinning) lies inside the cube: Tprec = 1; clDice = 0.
    t = np.zeros((8, 8, 8), dtype=bool)
    t[2:6, 2:6, 2:6] = True
    centre = np.zeros_like(t)
    centre[3:5, 3:5, 3:5] = True
    assert cldice_score(t & ~centre, t) == 0.0
    assert cldice_score(centre, t) == pytest.approx(2 * 1 * 1 / 2)  # the centre is the whole ridge
