"""Meta-device tensors (a shape, no data) are refused with a SegDiceError by every metric entry point."""

from __future__ import annotations

import pytest
import torch

from segdice import SegDiceError
from segdice.metrics import (
    SegmentationMetrics,
    boundary_iou,
    boundary_metrics,
    dice_score,
    generalized_dice_score,
    instance_scores,
)
from segdice.metrics.topology import cldice_score
from segdice.stats import confusion

CALLS = {
    "confusion": lambda p, t: confusion(p, t, 2),
    "dice_score": lambda p, t: dice_score(p, t, num_classes=2),
    "generalized_dice_score": lambda p, t: generalized_dice_score(p, t, num_classes=2),
    "SegmentationMetrics.update": lambda p, t: SegmentationMetrics(num_classes=2).update(p, t),
    "boundary_metrics": lambda p, t: boundary_metrics(p[0], t[0]),
    "boundary_iou": lambda p, t: boundary_iou(p[0], t[0]),
    "cldice_score": lambda p, t: cldice_score(p[0], t[0]),
    "instance_scores": lambda p, t: instance_scores(p[0], t[0]),
}


@pytest.mark.parametrize("on_meta", ["pred", "target"])
@pytest.mark.parametrize("name", list(CALLS))
def test_meta_tensor_is_refused(name, on_meta):
    real = torch.zeros(1, 6, 6, dtype=torch.long)
    real[0, 1:4, 1:4] = 1
    meta = torch.zeros(1, 6, 6, dtype=torch.long, device="meta")
    p, t = (meta, real) if on_meta == "pred" else (real, meta)
    with pytest.raises(
        SegDiceError, match=rf"^{on_meta}: got .* on the meta device; expected a tensor with data"
    ):
        CALLS[name](p, t)


@pytest.mark.parametrize("name", list(CALLS))
def test_the_same_call_works_on_real_tensors(name):
    # the refusal is about the device only: the same shapes with data are scored
    x = torch.zeros(1, 6, 6, dtype=torch.long)
    x[0, 1:4, 1:4] = 1
    CALLS[name](x, x.clone())
