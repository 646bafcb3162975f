"""The sigmoid_hard kernel (binary/multilabel logits against hard 0/1 targets) against a float64 autograd
reference written here: values, gradients, every backward branch, slabs, validation and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from segdice import SegDiceError, dice_loss, jaccard_loss, tversky_loss
from segdice.stats import soft_stats
from segdice.stats._kernels import _MIN_SIGMOID_HARD_SLAB, is_hard_target, sigmoid_hard_stats


@pytest.fixture(autouse=True)
def _fused_kernels_only(monkeypatch):
    """These tests are about the fused kernels: small inputs must not take the plain-autograd path
    (tests/test_losses_lean.py checks that path against the same references)."""
    monkeypatch.setattr("segdice.stats._small.SMALL_INPUT", 0)


def reference_dice(x, g, per_image, smooth=1e-5):
    """Float64 autograd Dice from the textbook formula; returns (loss, d loss / d x)."""
    x = x.detach().double().requires_grad_(True)
    p = torch.sigmoid(x)
    g = g.double()
    dims = tuple(range(2, x.ndim)) if per_image else (0, *range(2, x.ndim))
    inter, den = (p * g).sum(dims), (p + g).sum(dims)
    loss = (1 - (2 * inter + smooth) / (den + smooth)).mean()
    loss.backward()
    return loss.detach(), x.grad


def case(shape, tdtype, seed=0, p_one=0.5):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen) * 3
    g = torch.rand(*shape, generator=gen) < p_one
    return x, g.to(tdtype)


TARGET_DTYPES = [torch.int64, torch.uint8, torch.bool, torch.float32]


@pytest.mark.parametrize("tdtype", TARGET_DTYPES)
@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (2, 1, 12, 10),  # one slab
        (9, 1, 256, 256),  # integer targets: batch slabs of unequal size
        (1, 1, 700, 1000),  # integer targets: voxel slabs of one image
        (3, 2, 300, 300),  # multilabel, per-channel coefficients, two slabs
    ],
)
def test_loss_and_gradient_match_float64_reference(shape, tdtype, per_image):
    x, g = case(shape, tdtype)
    mode = "binary" if shape[1] == 1 else "multilabel"
    x.requires_grad_(True)
    loss = dice_loss(x, g, mode, per_image=per_image)
    loss.backward()
    ref_loss, ref_grad = reference_dice(x, g, per_image)
    assert abs(loss.item() - ref_loss.item()) < 2e-6
    scale = ref_grad.abs().max().item()
    assert (x.grad.double() - ref_grad).abs().max().item() < 1e-4 * scale


@pytest.mark.parametrize("tdtype", [torch.int64, torch.float64])
@pytest.mark.parametrize("per_image", [False, True])
def test_gradcheck_float64(tdtype, per_image):
    x, g = case((3, 1, 5, 4), tdtype, seed=1)
    x = x.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: dice_loss(a, g, "binary", per_image=per_image), (x,))
    assert torch.autograd.gradcheck(lambda a: tversky_loss(a, g, "binary", alpha=0.3, beta=0.7), (x,))


@pytest.mark.parametrize("tdtype", [torch.int64, torch.float64])
@pytest.mark.parametrize("which", ["tp", "pred", "both_rows_differ"])
def test_every_backward_branch_against_autograd(tdtype, which):
    # tp only: dL/dP is None; pred only: dL/dI is None; row weights: a / q differs between rows.
    x, g = case((4, 2, 6, 5), tdtype, seed=2)
    x = x.double().requires_grad_(True)
    st = sigmoid_hard_stats(x.reshape(4, 2, -1), g.reshape(4, 2, -1))
    w = torch.arange(1.0, 9.0, dtype=torch.float64).view(4, 2)
    if which == "tp":
        (st[0] * w).sum().backward()
    elif which == "pred":
        (st[1] * w).sum().backward()
    else:
        (st[0] * w - st[1] * w.flip(0)).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    p, gd = torch.sigmoid(xr), g.double()
    tp, pred = (p * gd).sum((2, 3)), p.sum((2, 3))
    ref = {
        "tp": (tp * w).sum(),
        "pred": (pred * w).sum(),
        "both_rows_differ": (tp * w - pred * w.flip(0)).sum(),
    }
    ref[which].backward()
    torch.testing.assert_close(x.grad, xr.grad)


def test_retain_graph_second_backward_is_identical():
    x, g = case((2, 1, 9, 9), torch.int64, seed=3)
    x.requires_grad_(True)
    loss = dice_loss(x, g, "binary")
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    loss.backward()
    torch.testing.assert_close(x.grad, first)


def test_target_is_never_modified():
    for tdtype in (torch.int64, torch.float32):
        x, g = case((2, 1, 300, 300), tdtype, seed=4)
        before = g.clone()
        dice_loss(x.requires_grad_(True), g, "binary", per_image=True).backward()
        assert torch.equal(g, before)


def test_is_hard_target_sees_any_soft_value():
    g = torch.randint(0, 2, (2, 1, 1000)).float()
    assert is_hard_target(g)
    for v in (0.5, 1e-3, 0.999):
        soft = g.clone()
        soft[1, 0, 17] = v
        assert not is_hard_target(soft)


def test_soft_float_target_keeps_the_semimetric_intersection():
    x, g = case((2, 1, 8, 8), torch.float32, seed=5)
    g[0, 0, 0, 0] = 0.25
    st = soft_stats(x, g, "binary")
    p = torch.sigmoid(x.double())
    semimetric = 0.5 * (p.sum((2, 3)) + g.double().sum((2, 3)) - (p - g.double()).abs().sum((2, 3)))
    torch.testing.assert_close(st.tp.double(), semimetric)
    assert not torch.allclose(semimetric, (p * g.double()).sum((2, 3)))


@pytest.mark.parametrize("bad", [2, -1])
def test_integer_target_out_of_range_names_the_values(bad):
    # The bad value sits in the last slab: the check covers every slab of the converted copy.
    x, g = case((12, 1, 256, 256), torch.int64, seed=6)
    g[-1, 0, -1, -1] = bad
    assert g.numel() > 2 * _MIN_SIGMOID_HARD_SLAB
    with pytest.raises(SegDiceError, match=rf"target: .*int64.*values in \[{min(bad, 0)}, {max(bad, 1)}\]"):
        dice_loss(x, g, "binary")


def test_jaccard_on_hard_targets_matches_reference():
    x, g = case((3, 1, 40, 40), torch.int64, seed=7)
    x = x.double().requires_grad_(True)
    loss = jaccard_loss(x, g, "binary")
    p, gd = torch.sigmoid(x.detach()), g.double()
    i, d = (p * gd).sum(), (p + gd).sum()
    ref = 1 - (i + 1e-5) / (d - i + 1e-5)
    torch.testing.assert_close(loss.detach(), ref)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    import segdice
    torch.set_num_threads(1)
    def rss(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    x = torch.randn(16, 1, 256, 256, requires_grad=True)
    t = torch.randint(0, 2, (16, 1, 256, 256))
    t = t.float() if sys.argv[1] == "float" else t
    per_image = sys.argv[2] == "per_image"
    f = lambda: segdice.dice_loss(x, t, "binary", per_image=per_image)
    f().backward(); x.grad = None
    open("/proc/self/clear_refs", "w").write("5")
    base = rss("VmRSS")
    f().backward()
    print((rss("VmHWM") - base) / (x.numel() * 4))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset")
@pytest.mark.parametrize("target", ["int", "float"])
@pytest.mark.parametrize("per_image", ["pooled", "per_image"])
def test_binary_peak_memory_stays_under_one_and_a_half_logits(target, per_image):
    """Peak RSS rise of forward + backward (gradient included), fresh process, 64 KiB mmap threshold."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, target, per_image],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout.strip().splitlines()[-1]) < 1.5
