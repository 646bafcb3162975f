"""The soft statistics core (segdice.stats, soft section) against a naive one-hot reference written here."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given

from segdice import SegDiceError
from segdice.stats import SoftStats, pool_soft_stats, soft_stats


def naive_stats(x, target, mode, *, from_logits=True, squared=False, ignore_index=None):
    """I, P, G per image and class, float64, by one-hot expansion and explicit masks."""
    x = x.detach().double()
    b, c = x.shape[:2]
    p = (torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)) if from_logits else x.clone()
    index = mode == "multiclass" and (not target.is_floating_point()) and target.shape != x.shape
    if index:
        t = target.reshape(b, *x.shape[2:]).long()
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = F.one_hot(torch.where(valid, t, 0), c).movedim(-1, 1).double()
        valid = valid.unsqueeze(1).expand_as(g)
        g = torch.where(valid, g, 0.0)
        soft = False
    else:
        t = target.reshape(x.shape)
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        g = torch.where(valid, t.double(), 0.0)
        soft = t.is_floating_point()
    p = torch.where(valid, p, 0.0)
    dims = tuple(range(2, x.ndim))
    if squared:
        return (p * g).sum(dims), (p * p).sum(dims), (g * g).sum(dims)
    big_p, big_g = p.sum(dims), g.sum(dims)
    inter = 0.5 * (big_p + big_g - (p - g).abs().sum(dims)) if soft else (p * g).sum(dims)
    return inter, big_p, big_g


def make_case(mode, kind, b, c, spatial, seed, ignore_index=None, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    c = 1 if mode == "binary" else c
    x = torch.randn(b, c, *spatial, generator=gen, dtype=dtype) * 2
    if mode == "multiclass" and kind == "index":
        t = torch.randint(0, c, (b, *spatial), generator=gen)
    elif kind == "soft":
        t = torch.rand(b, c, *spatial, generator=gen, dtype=dtype)
        if mode == "multiclass":
            t = t / t.sum(1, keepdim=True)
    else:
        if mode == "multiclass":
            t = F.one_hot(torch.randint(0, c, (b, *spatial), generator=gen), c).movedim(-1, 1)
        else:
            t = torch.randint(0, 2, (b, c, *spatial), generator=gen)
    if ignore_index is not None:
        m = torch.rand(t.shape if kind != "index" else (b, *spatial), generator=gen) < 0.3
        if kind == "index":
            t = torch.where(m, ignore_index, t)
        elif mode == "multiclass":
            t = torch.where(m[:, :1].expand_as(t), ignore_index, t)  # whole pixels
        else:
            t = torch.where(m, ignore_index, t)
    return x, t


CASES = [
    ("multiclass", "index"),
    ("multiclass", "hard"),
    ("multiclass", "soft"),
    ("binary", "hard"),
    ("binary", "soft"),
    ("multilabel", "hard"),
    ("multilabel", "soft"),
]


@given(
    case=st.sampled_from(CASES),
    b=st.integers(1, 3),
    c=st.integers(2, 4),
    spatial=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    squared=st.booleans(),
    from_logits=st.booleans(),
    ignore=st.sampled_from([None, 255, -100]),
    seed=st.integers(0, 2**16),
)
def test_matches_naive_one_hot_reference(case, b, c, spatial, squared, from_logits, ignore, seed):
    mode, kind = case
    x, t = make_case(mode, kind, b, c, tuple(spatial), seed, ignore)
    if not from_logits:
        x = torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)
    got = soft_stats(x, t, mode, from_logits=from_logits, squared=squared, ignore_index=ignore)
    want = naive_stats(x, t, mode, from_logits=from_logits, squared=squared, ignore_index=ignore)
    for g, w in zip(got[:3], want, strict=True):
        assert g.shape == (b, x.shape[1])
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("mode", "kind"), CASES)
@pytest.mark.parametrize(
    ("squared", "ignore", "from_logits"), list(itertools.product([False, True], [None, 255], [True, False]))
)
@pytest.mark.parametrize("path", ["small", "fused"])
def test_gradcheck_every_mode(mode, kind, squared, ignore, from_logits, path, monkeypatch):
    """Both paths: the plain-autograd one of small inputs and the fused kernels (forced on this small input)."""
    if path == "fused":
        monkeypatch.setattr("segdice.stats._small.SMALL_INPUT", 0)
    x, t = make_case(mode, kind, 2, 3, (3, 4), seed=1, ignore_index=ignore)
    if not from_logits:
        x = (torch.softmax(x, 1) if mode == "multiclass" else torch.sigmoid(x)) * 0.9 + 0.05
    x.requires_grad_(True)
    w = torch.randn(3, 2, x.shape[1], dtype=torch.float64)

    def f(inp):
        s = soft_stats(inp, t, mode, from_logits=from_logits, squared=squared, ignore_index=ignore)
        return (s.tp * w[0]).sum() + (s.pred * w[1]).sum()

    assert torch.autograd.gradcheck(f, (x,))


@pytest.mark.parametrize(
    ("mode", "kind"), [("multiclass", "index"), ("binary", "hard"), ("multilabel", "soft")]
)
def test_gradcheck_nll_and_single_outputs(mode, kind):
    """The cross-entropy sums and each output alone (the others' gradients are None) are differentiated right."""
    x, t = make_case(mode, kind, 2, 3, (5,), seed=2, ignore_index=255)
    x.requires_grad_(True)
    for field in ("tp", "pred", "nll"):

        def f(inp, field=field):
            return getattr(soft_stats(inp, t, mode, with_nll=True, ignore_index=255), field).pow(2).sum()

        assert torch.autograd.gradcheck(f, (x,)), field


def test_nll_sums_equal_cross_entropy():
    x, t = make_case("multiclass", "index", 3, 4, (6, 5), seed=3, ignore_index=255)
    s = soft_stats(x, t, "multiclass", with_nll=True, ignore_index=255)
    ce = F.cross_entropy(x, t, ignore_index=255, reduction="sum")
    torch.testing.assert_close(s.nll.sum(), ce)
    xb, tb = make_case("multilabel", "soft", 2, 3, (7,), seed=4)
    sb = soft_stats(xb, tb, "multilabel", with_nll=True)
    torch.testing.assert_close(sb.nll.sum(), F.binary_cross_entropy_with_logits(xb, tb, reduction="sum"))


def test_per_image_false_pools_the_batch_and_shapes():
    x, t = make_case("multiclass", "index", 3, 4, (5, 5), seed=5)
    per = soft_stats(x, t, "multiclass")
    pooled = soft_stats(x, t, "multiclass", per_image=False)
    assert per.tp.shape == (3, 4) and pooled.tp.shape == (4,)
    for a, b in zip(per, pooled, strict=True):
        torch.testing.assert_close(a.sum(0), b)
    assert isinstance(pool_soft_stats(per), SoftStats)


def test_retain_graph_second_backward_is_identical():
    x, t = make_case("multiclass", "index", 2, 3, (4, 4), seed=6)
    x.requires_grad_(True)
    s = soft_stats(x, t, "multiclass", squared=True)
    loss = (s.tp / (s.pred + s.target)).sum()
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g1, g2, rtol=0, atol=0)


def test_target_is_never_modified():
    x, t = make_case("multilabel", "soft", 2, 3, (4, 4), seed=7, ignore_index=255)
    x.requires_grad_(True)
    before = t.clone()
    soft_stats(x, t, "multilabel", ignore_index=255).tp.sum().backward()
    assert torch.equal(t, before)


def test_bf16_autocast_on_a_3d_volume_accumulates_in_float32():
    x32 = torch.randn(1, 3, 24, 24, 24) * 3
    t = torch.randint(0, 3, (1, 24, 24, 24))
    x = x32.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = x * 1.0 + torch.zeros((), dtype=torch.bfloat16)  # an op under autocast -> bf16 logits
        logits = logits.to(torch.bfloat16)
        s = soft_stats(logits, t, "multiclass")
    assert s.tp.dtype == torch.float32 and s.pred.dtype == torch.float32
    ref = soft_stats(x32.to(torch.bfloat16).float(), t, "multiclass")
    torch.testing.assert_close(s.pred, ref.pred, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(s.tp, ref.tp, rtol=1e-5, atol=1e-3)
    (s.tp.sum() - s.pred.sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_fp16_input_counts_beyond_fp16_range_stay_exact():
    # 2 * 64**3 = 524288 voxels of one class: an fp16 sum would overflow at 65504.
    x = torch.full((2, 2, 64, 64, 64), 8.0, dtype=torch.float16)
    x[:, 1] = -8.0
    t = torch.zeros(2, 64, 64, 64, dtype=torch.long)
    s = soft_stats(x, t, "multiclass", per_image=False)
    assert s.target[0].item() == 2 * 64**3
    assert torch.isfinite(s.pred).all() and s.pred[0].item() == pytest.approx(2 * 64**3, rel=1e-4)


@pytest.mark.parametrize(
    ("x_shape", "t", "mode", "kwargs", "words"),
    [
        (
            (2, 1, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.long),
            "multiclass",
            {},
            ["input", "C >= 2", "binary"],
        ),
        ((2, 3, 4, 4), torch.full((2, 4, 4), 3), "multiclass", {}, ["target", "[3, 3]", "[0, 2]", "C=3"]),
        ((2, 3, 4, 4), torch.full((2, 4, 4), -1), "multiclass", {}, ["target", "[-1, -1]"]),
        ((2, 3, 4, 4), torch.zeros(2, 5, 4, dtype=torch.long), "multiclass", {}, ["target", "(2, 5, 4)"]),
        ((2, 2, 4, 4), torch.zeros(2, 1, 4, 4), "binary", {}, ["input", "one channel"]),
        ((2, 1, 4, 4), torch.full((2, 1, 4, 4), 2.0), "binary", {}, ["target", "[0, 1]"]),
        ((2, 3, 4, 4), torch.zeros(2, 3, 4, 5), "multilabel", {}, ["target", "(2, 3, 4, 5)"]),
        ((2, 3), torch.zeros(2, 3), "multilabel", {}, ["input", "spatial"]),
        ((2, 3, 4), torch.zeros(2, 3, 4), "sideways", {}, ["mode", "sideways"]),
        ((2, 3, 4), torch.zeros(2, 3, 4), "multilabel", {"from_logits": False}, ["input", "from_logits"]),
        ((2, 3, 4), torch.zeros(2, 3, 4), "multilabel", {"distributed": True}, ["distributed", "per_image"]),
    ],
)
def test_bad_input_raises_a_clear_error(x_shape, t, mode, kwargs, words):
    x = torch.randn(*x_shape) * 5
    with pytest.raises(SegDiceError) as info:
        soft_stats(x, t, mode, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_ignored_labels_outside_the_class_range_are_accepted():
    x = torch.randn(1, 3, 4, 4)
    t = torch.randint(0, 3, (1, 4, 4))
    t[0, 0] = 255
    soft_stats(x, t, "multiclass", ignore_index=255)
    t[0, 1] = 7
    with pytest.raises(SegDiceError, match="ignore_index=255"):
        soft_stats(x, t, "multiclass", ignore_index=255)


def test_distributed_needs_a_process_group():
    x, t = make_case("multiclass", "index", 2, 3, (4,), seed=8)
    with pytest.raises(SegDiceError, match="process group"):
        soft_stats(x, t, "multiclass", per_image=False, distributed=True)


_MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.nn.functional as F
    import segdice.stats as S
    torch.set_num_threads(1)
    def rss(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    x = torch.randn(2, 4, 64, 64, 64, requires_grad=True)
    t = torch.randint(0, 4, (2, 64, 64, 64))
    def ours():
        s = S.soft_stats(x, t, "multiclass", per_image=False)
        return (1 - (2 * s.tp + 1e-5) / (s.pred + s.target + 1e-5)).mean()
    def naive():
        p = torch.softmax(x, 1)
        g = F.one_hot(t, 4).movedim(-1, 1).float()
        i, d = (p * g).sum((0, 2, 3, 4)), (p + g).sum((0, 2, 3, 4))
        return (1 - (2 * i + 1e-5) / (d + 1e-5)).mean()
    f = ours if sys.argv[1] == "ours" else naive
    f().backward(); x.grad = None
    open("/proc/self/clear_refs", "w").write("5")
    base = rss("VmRSS")
    f().backward()
    print((rss("VmHWM") - base) / (x.numel() * 4))
    """
)


def _peak_ratio(which: str) -> float:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, which], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc peak-RSS reset")
def test_forward_backward_peak_memory_stays_under_two_logits():
    """Peak RSS rise of forward + backward (gradient included), fresh process, 64 KiB mmap threshold."""
    naive = _peak_ratio("naive")
    ours = _peak_ratio("ours")
    assert naive > 2.5  # the method sees the one-hot and the autograd buffers of the naive loss
    assert ours < 2.0


@pytest.mark.parametrize(
    "mode,target,kwargs,kernel,activation,soft",
    [
        ("multiclass", torch.zeros(2, 4, 4, dtype=torch.long), {}, "index", "softmax", False),
        (
            "multiclass",
            torch.zeros(2, 1, 4, 4, dtype=torch.long),
            {"from_logits": False},
            "index",
            "none",
            False,
        ),
        ("multiclass", torch.full((2, 3, 4, 4), 1 / 3), {}, "dense", "softmax", True),
        (
            "binary",
            torch.zeros(2, 4, 4, dtype=torch.long),
            {"allow_sigmoid_hard": True},
            "sigmoid_hard",
            "sigmoid",
            False,
        ),
        ("binary", torch.zeros(2, 1, 4, 4), {"allow_sigmoid_hard": True}, "sigmoid_hard", "sigmoid", False),
        ("binary", torch.full((2, 1, 4, 4), 0.5), {"allow_sigmoid_hard": True}, "dense", "sigmoid", True),
        ("multilabel", torch.zeros(2, 3, 4, 4, dtype=torch.long), {}, "dense", "sigmoid", False),
        (
            "multilabel",
            torch.zeros(2, 3, 4, 4),
            {"from_logits": False, "allow_sigmoid_hard": True},
            "dense",
            "none",
            True,
        ),
    ],
)
def test_plan_names_the_kernel_and_its_activation(mode, target, kwargs, kernel, activation, soft):
    from segdice.stats.soft import _prepare

    c = 1 if mode == "binary" else 3
    x = torch.rand(2, c, 4, 4)
    options = {"from_logits": True, "allow_sigmoid_hard": False, **kwargs}
    plan = _prepare(x, target, mode, options["from_logits"], None, options["allow_sigmoid_hard"])
    assert (plan.kernel, plan.activation, plan.soft) == (kernel, activation, soft)
    assert plan.x.shape == (2, c, 16)
    assert plan.t.shape == ((2, 16) if kernel == "index" else (2, c, 16))
