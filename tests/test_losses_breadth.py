"""FocalLoss, LovaszLoss, ClDiceLoss: against torch's CE/BCE, kornia, MONAI, smp, a naive Lovász, gradcheck."""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import segdice
from segdice import SegDiceError
from segdice.losses import (
    ClDiceLoss,
    FocalLoss,
    LovaszLoss,
    cldice_loss,
    dice_focal_loss,
    focal_loss,
    lovasz_loss,
)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --- focal ------------------------------------------------------------------------------------------


def test_focal_gamma0_is_cross_entropy():
    x = torch.randn(2, 4, 5, 6, generator=_gen(0), dtype=torch.float64)
    t = torch.randint(0, 4, (2, 5, 6), generator=_gen(1))
    t[0, 0, :3] = 255
    w = [0.5, 1.0, 2.0, 3.0]
    ce = F.cross_entropy(x, t, ignore_index=255, weight=torch.tensor(w, dtype=torch.float64))
    got = focal_loss(x, t, "multiclass", gamma=0.0, ignore_index=255, class_weights=w)
    torch.testing.assert_close(got, ce)
    ce_sum = F.cross_entropy(x, t, ignore_index=255, reduction="sum")
    torch.testing.assert_close(
        focal_loss(x, t, "multiclass", gamma=0.0, ignore_index=255, reduction="sum"), ce_sum
    )
    # a soft target (a distribution per pixel)
    g = torch.softmax(torch.randn(2, 4, 5, 6, generator=_gen(2), dtype=torch.float64), 1)
    torch.testing.assert_close(focal_loss(x, g, "multiclass", gamma=0.0), F.cross_entropy(x, g))


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_focal_gamma0_is_bce(mode):
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 7, 5, generator=_gen(3), dtype=torch.float64)
    t = torch.randint(0, 2, x.shape, generator=_gen(4))
    bce = F.binary_cross_entropy_with_logits(x, t.double())
    torch.testing.assert_close(focal_loss(x, t, mode, gamma=0.0), bce)


def test_focal_multiclass_equals_kornia():
    from kornia.losses import focal_loss as kornia_focal

    x = torch.randn(3, 4, 6, 6, generator=_gen(5), dtype=torch.float64)
    t = torch.randint(0, 4, (3, 6, 6), generator=_gen(6))
    theirs = kornia_focal(x, t, alpha=0.25, gamma=2.0, reduction="mean")
    # kornia weighs the background 1 - alpha and every other class alpha, and its mean runs over the
    # B x C x pixels elements of a one-hot layout (C times more than the pixels)
    ours = focal_loss(x, t, "multiclass", gamma=2.0, alpha=[0.75, 0.25, 0.25, 0.25])
    torch.testing.assert_close(ours / 4, theirs)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_focal_binary_equals_monai(alpha):
    from monai.losses import FocalLoss as MonaiFocal

    x = torch.randn(2, 1, 8, 8, generator=_gen(7), dtype=torch.float64)
    t = torch.randint(0, 2, x.shape, generator=_gen(8)).double()
    theirs = MonaiFocal(gamma=2.0, alpha=alpha, use_softmax=False)(x, t)  # MONAI computes in float32
    torch.testing.assert_close(
        focal_loss(x, t, "binary", gamma=2.0, alpha=alpha), theirs.double(), rtol=1e-5, atol=1e-7
    )


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_focal_is_the_dice_focal_term(mode):
    c = {"binary": 1, "multiclass": 3, "multilabel": 3}[mode]
    x = torch.randn(2, c, 6, 6, generator=_gen(9))
    t = torch.randint(0, 3, (2, 6, 6)) if mode == "multiclass" else torch.randint(0, 2, x.shape)
    alpha = [0.2, 0.3, 0.5] if mode == "multiclass" else 0.25
    term = dice_focal_loss(x, t, mode, gamma=1.5, alpha=alpha, dice_weight=0.0)
    torch.testing.assert_close(focal_loss(x, t, mode, gamma=1.5, alpha=alpha), term)


def test_focal_module_settings_are_attributes_and_reduction_none():
    x = torch.randn(2, 3, 4, 4, generator=_gen(10))
    t = torch.randint(0, 3, (2, 4, 4), generator=_gen(11))
    m = FocalLoss("multiclass")
    m.gamma = 0.0
    torch.testing.assert_close(m(x, t), F.cross_entropy(x, t))
    m.reduction = "none"
    torch.testing.assert_close(m(x, t)[:, 0], F.cross_entropy(x, t, reduction="none"))
    m.gamma = -1.0
    with pytest.raises(SegDiceError, match="gamma"):
        m(x, t)


def test_focal_everything_ignored_is_zero():
    x = torch.randn(1, 3, 2, 2)
    t = torch.full((1, 2, 2), 255)
    assert focal_loss(x, t, "multiclass", ignore_index=255).item() == 0.0


def test_focal_bad_inputs():
    x = torch.randn(1, 3, 2, 2)
    with pytest.raises(SegDiceError, match="target"):
        focal_loss(x, torch.full((1, 2, 2), 3), "multiclass")
    with pytest.raises(SegDiceError, match="target"):
        focal_loss(torch.randn(1, 1, 2, 2), torch.full((1, 1, 2, 2), 2.0), "binary")
    with pytest.raises(SegDiceError, match="alpha"):
        focal_loss(x, torch.zeros(1, 2, 2, dtype=torch.long), "multiclass", alpha=[1.0, 1.0])
    with pytest.raises(SegDiceError, match="sums to 1"):
        focal_loss(x, torch.zeros(1, 3, 2, 2), "multiclass")


# --- Lovász -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smp_lovasz():
    """smp's LovaszLoss, its loss files loaded under a bare parent package (smp is installed without
    timm/torchvision, so importing the package itself fails; its loss code needs only torch)."""
    try:
        from segmentation_models_pytorch.losses import LovaszLoss as SmpLovasz

        return SmpLovasz
    except ImportError:
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("segmentation-models-pytorch is not installed")
    saved = {n: m for n, m in sys.modules.items() if n.startswith("segmentation_models_pytorch")}
    parent = types.ModuleType("segmentation_models_pytorch")
    parent.__path__ = list(spec.submodule_search_locations)
    sys.modules["segmentation_models_pytorch"] = parent
    try:
        module = importlib.import_module("segmentation_models_pytorch.losses.lovasz")
        return module.LovaszLoss
    finally:
        for name in [n for n in sys.modules if n.startswith("segmentation_models_pytorch")]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_equals_smp(smp_lovasz, mode, per_image, ignore):
    c = {"binary": 1, "multiclass": 4, "multilabel": 3}[mode]
    x = torch.randn(3, c, 7, 9, generator=_gen(12), requires_grad=True)  # smp's weights are float32
    if mode == "multiclass":
        t = torch.randint(0, 4, (3, 7, 9), generator=_gen(13))
        t[1][t[1] == 2] = 0  # a class absent from one image
    else:
        t = torch.randint(0, 2, x.shape, generator=_gen(13))
    if ignore is not None:
        t[0, ..., :2] = ignore
    ours = lovasz_loss(x, t, mode, per_image=per_image, ignore_index=ignore)
    theirs = smp_lovasz(mode, per_image=per_image, ignore_index=ignore)(x, t)
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    (g_ours,) = torch.autograd.grad(ours, x)
    (g_theirs,) = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(g_ours, g_theirs)


def _lovasz_hinge_naive(z: list[float], g: list[int]) -> float:
    """The Lovász extension of the Jaccard loss, from its definition: sort the hinge errors, weigh each by
    the Jaccard loss increment of taking it in."""
    errors = [max(0.0, 1 - zi * (2 * gi - 1)) for zi, gi in zip(z, g, strict=True)]
    order = sorted(range(len(z)), key=lambda i: -errors[i])
    total, prev = 0.0, 0.0
    fg = {i for i in range(len(g)) if g[i]}
    for k in range(1, len(order) + 1):
        chosen = set(order[:k])
        jac = 1 - len(fg - chosen) / len(fg | chosen) if fg | chosen else 0.0
        total += errors[order[k - 1]] * (jac - prev)
        prev = jac
    return total


def test_lovasz_hinge_naive_definition():
    z = torch.randn(1, 1, 3, 5, generator=_gen(14), dtype=torch.float64)
    g = torch.randint(0, 2, z.shape, generator=_gen(15))
    expected = _lovasz_hinge_naive(z.reshape(-1).tolist(), g.reshape(-1).tolist())
    assert lovasz_loss(z, g, "binary").item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
def test_lovasz_gradcheck(mode):
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 3, 4, generator=_gen(16), dtype=torch.float64, requires_grad=True)
    t = torch.randint(
        0, 2 if mode == "binary" else 3, (2, c, 3, 4) if mode == "binary" else (2, 3, 4), generator=_gen(17)
    )
    assert torch.autograd.gradcheck(lambda z: lovasz_loss(z, t, mode, per_image=True), (x,))


def test_lovasz_bad_inputs():
    with pytest.raises(SegDiceError, match="from_logits"):
        LovaszLoss("binary", from_logits=False)
    with pytest.raises(SegDiceError, match="class indices"):
        lovasz_loss(torch.randn(1, 3, 2, 2), torch.softmax(torch.randn(1, 3, 2, 2), 1), "multiclass")
    with pytest.raises(SegDiceError, match="0/1"):
        lovasz_loss(torch.randn(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5), "binary")


# --- clDice -----------------------------------------------------------------------------------------


def _tubes(seed, b=2, c=1, size=(24, 24)):
    t = torch.zeros(b, c, *size)
    g = _gen(seed)
    for i in range(b):
        for k in range(c):
            r = int(torch.randint(3, size[0] - 3, (1,), generator=g))
            t[i, k, r - 1 : r + 1, 2:-2] = 1
            col = int(torch.randint(3, size[1] - 3, (1,), generator=g))
            t[i, k, 2:-2, col : col + 2] = 1
    return t


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("iterations", [0, 3])
def test_cldice_equals_monai_binary(alpha, iterations):
    from monai.losses import SoftclDiceLoss, SoftDiceclDiceLoss

    t = _tubes(18)
    x = torch.randn(t.shape, generator=_gen(19), dtype=torch.float64) + 3 * (2 * t.double() - 1)
    x.requires_grad_(True)
    ours = cldice_loss(x, t, "binary", iterations=iterations, alpha=alpha)
    if alpha == 1.0:
        theirs = SoftclDiceLoss(iter_=iterations, sigmoid=True)(x, t.double())
    else:
        theirs = SoftDiceclDiceLoss(iter_=iterations, alpha=alpha, sigmoid=True)(x, t.double())
    torch.testing.assert_close(ours, theirs.to(ours.dtype))
    (g_ours,) = torch.autograd.grad(ours, x)
    (g_theirs,) = torch.autograd.grad(theirs, x)
    torch.testing.assert_close(g_ours, g_theirs)


@pytest.mark.parametrize("include_background", [True, False])
def test_cldice_equals_monai_multiclass(include_background):
    from monai.losses import SoftDiceclDiceLoss

    labels = torch.zeros(2, 20, 20, dtype=torch.long)
    labels[:, 5:7, 2:18] = 1
    labels[:, 2:18, 12:14] = 2
    x = torch.randn(2, 3, 20, 20, generator=_gen(20), dtype=torch.float64)
    ours = cldice_loss(x, labels, "multiclass", include_background=include_background)
    theirs = SoftDiceclDiceLoss(softmax=True, to_onehot_y=True, include_background=include_background)(
        x, labels[:, None]
    )
    torch.testing.assert_close(ours, theirs.to(ours.dtype))


def test_cldice_3d_equals_monai():
    from monai.losses import SoftDiceclDiceLoss

    t = torch.zeros(1, 1, 10, 12, 12)
    t[0, 0, 4:6, 5:7, 1:11] = 1
    x = torch.randn(t.shape, generator=_gen(21), dtype=torch.float64)
    torch.testing.assert_close(
        cldice_loss(x, t, "binary"), SoftDiceclDiceLoss(sigmoid=True)(x, t.double()).to(torch.float64)
    )


def test_cldice_module_and_topology():
    t = torch.zeros(1, 1, 15, 15)
    t[0, 0, 7, 1:14] = 1
    good = t * 20 - 10
    broken = good.clone()
    broken[0, 0, 7, 6:9] = -10  # a gap in the line
    loss = ClDiceLoss("binary", alpha=1.0)
    assert loss(good, t) < loss(broken, t)
    loss.iterations = -1
    with pytest.raises(SegDiceError, match="iterations"):
        loss(good, t)
    with pytest.raises(SegDiceError, match="2-D or 3-D"):
        cldice_loss(torch.randn(1, 1, 8), torch.zeros(1, 1, 8), "binary")


def test_cldice_gradient_matches_finite_differences_off_the_kinks():
    # The soft skeleton is piecewise smooth (min/max pooling, relu): compare autograd with a central
    # difference on a few coordinates, with a step far below the gaps between neighbouring values.
    t = _tubes(22, b=1, size=(12, 12))
    x = torch.randn(t.shape, generator=_gen(23), dtype=torch.float64)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(cldice_loss(x, t, "binary"), x)
    flat = x.detach().reshape(-1)
    for i in (5, 40, 77, 100):
        h = 1e-7
        up, down = flat.clone(), flat.clone()
        up[i] += h
        down[i] -= h
        fd = (cldice_loss(up.view_as(x), t, "binary") - cldice_loss(down.view_as(x), t, "binary")) / (2 * h)
        assert grad.reshape(-1)[i].item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-7)


# --- shared rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["focal_loss", "lovasz_loss", "cldice_loss"])
@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_input_gives_nonfinite_loss(name, mode, bad):
    c = 1 if mode == "binary" else 3
    x = torch.randn(2, c, 8, 8, generator=_gen(24))
    x[1, 0, 3, 3] = bad
    t = torch.randint(0, 3, (2, 8, 8)) if mode == "multiclass" else torch.randint(0, 2, x.shape)
    value = getattr(segdice.losses, name)(x, t, mode)
    assert not torch.isfinite(value).all()


def test_focal_gradcheck():
    x = torch.randn(2, 3, 3, 3, generator=_gen(25), dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 3, (2, 3, 3), generator=_gen(26))
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, t, "multiclass", gamma=2.0), (x,))
    tb = torch.randint(0, 2, (2, 1, 3, 3), generator=_gen(27))
    xb = x[:, :1].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, tb, "binary", gamma=2.0, alpha=0.25), (xb,))


def test_exported_lazily_from_segdice():
    for name in ("FocalLoss", "LovaszLoss", "ClDiceLoss", "focal_loss", "lovasz_loss", "cldice_loss"):
        assert getattr(segdice, name) is getattr(segdice.losses, name)
        assert name in segdice.__all__


def test_zero_size_and_meta_inputs():
    for fn in (focal_loss, lovasz_loss, cldice_loss):
        with pytest.raises(SegDiceError, match="no elements"):
            fn(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4), "binary")
        with pytest.raises(SegDiceError, match="meta"):
            fn(torch.zeros(1, 1, 4, 4, device="meta"), torch.zeros(1, 1, 4, 4, device="meta"), "binary")
