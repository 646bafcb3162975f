"""The cost of a training-loop metric call: segdice's ``forward`` per batch next to torchmetrics' ``DiceScore``.

Run ``python benchmarks/streaming.py`` (three batches: ``[16, 256, 256]`` label maps of 4 classes, the
same as ``[16, 4, 256, 256]`` logits, and a 3-D batch ``[2, 128, 128, 128]`` of 4 classes), or
``python benchmarks/streaming.py --quick`` (small batches, a smoke run). It prints one markdown table
per batch and the machine's load.

Method: one process, one torch thread, the same torch label maps for every implementation. Each round
times one call of every implementation on the batch, in an order that alternates from round to round
(so a warm cache favours none); a row's ratio is the median over rounds of its time divided by
``DiceScore.forward``'s time in the same round. ``segdice confusion`` is the counting pass alone,
``segdice.stats.confusion(per_image=True)``: what is left above it is the metric bookkeeping.
Every implementation's batch value is checked against ``segdice.metrics.dice_score`` first.
Timings on a shared machine are noisy: read the ratios, next to the load printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch

# label: (label-map shape [B, *spatial], classes, whether the prediction is given as logits [B, C, *spatial])
FULL_CASES = {
    "2d label maps [16, 256, 256], 4 classes": ((16, 256, 256), 4, False),
    "2d logits [16, 4, 256, 256] (DiceScore gets logits.argmax(1))": ((16, 256, 256), 4, True),
    "3d label maps [2, 128, 128, 128], 4 classes": ((2, 128, 128, 128), 4, False),
}
QUICK_CASES = {
    "2d label maps [4, 64, 64], 4 classes": ((4, 64, 64), 4, False),
    "2d logits [4, 4, 64, 64] (DiceScore gets logits.argmax(1))": ((4, 64, 64), 4, True),
    "3d label maps [1, 32, 32, 32], 4 classes": ((1, 32, 32, 32), 4, False),
}


def make_batch(shape, num_classes, logits=False, seed=0):
    """A seeded label-map batch: blocks of classes, and a prediction with 10% of the voxels relabelled
    (as logits whose arg-max is that prediction, with ``logits=True``)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_classes, (shape[0], *(max(1, s // 16) for s in shape[1:])), generator=g)
    target = coarse
    for axis in range(1, len(shape)):
        target = target.repeat_interleave(16, dim=axis)
    target = target[(slice(None), *(slice(0, s) for s in shape[1:]))].contiguous()
    noise = torch.rand(shape, generator=g) < 0.1
    pred = torch.where(noise, torch.randint(0, num_classes, shape, generator=g), target)
    if logits:
        scores = torch.rand((shape[0], num_classes, *shape[1:]), generator=g)
        pred = scores.scatter_(1, pred[:, None], 2.0)  # the predicted class scores highest
    return pred, target


def implementations(num_classes, logits):
    """name -> (description, a callable of (pred, target) returning the batch's macro Dice, or None)."""
    from torchmetrics.segmentation import DiceScore

    from segdice import SegmentationMetrics
    from segdice.integrations.torchmetrics import SegDiceMetric
    from segdice.stats import confusion

    streaming = SegmentationMetrics(num_classes, metrics=("dice",))
    segdice_metric = SegDiceMetric(num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DiceScore's note on its default average
        dice_score = DiceScore(num_classes, average="macro", input_format="index")
    updated = SegmentationMetrics(num_classes, metrics=("dice",))

    def torchmetrics_forward(pred, target):
        # DiceScore takes label maps or one-hot masks, not scores: the user's argmax is part of its cost
        return float(dice_score(pred.argmax(1) if logits else pred, target))

    def only_update(pred, target):
        updated.update(pred, target)

    def only_count(pred, target):
        confusion(pred, target, num_classes, per_image=True)

    return {
        "torchmetrics": (
            "torchmetrics DiceScore.forward (index input)",
            torchmetrics_forward,
        ),
        "forward": (
            "segdice SegmentationMetrics.forward",
            lambda p, t: streaming(p, t)["dice"]["macro"]["mean"],
        ),
        "forward-flat": (
            "segdice SegmentationMetrics.forward(flat=True)",
            lambda p, t: streaming(p, t, flat=True)["dice/macro"],
        ),
        "update": ("segdice SegmentationMetrics.update (no batch value)", only_update),
        "segdice-metric": (
            "segdice SegDiceMetric.forward (torchmetrics.Metric)",
            lambda p, t: float(segdice_metric(p, t)),
        ),
        "confusion": ("segdice confusion alone (the counting pass)", only_count),
    }


def run_case(shape, num_classes, logits, rounds):
    from segdice.metrics import dice_score

    pred, target = make_batch(shape, num_classes, logits)
    impls = implementations(num_classes, logits)
    want = float(dice_score(pred, target, num_classes=num_classes, average="macro"))
    for name, (_, fn) in impls.items():  # a check, and the warm-up call
        got = fn(pred, target)
        if got is not None and abs(got - want) > 1e-6:
            raise AssertionError(f"{name}: batch macro Dice {got}, expected {want}")
    names = list(impls)
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            impls[name][1](pred, target)
            times[name].append(time.perf_counter() - start)
    ratios = {
        name: statistics.median(t / ref for t, ref in zip(times[name], times["torchmetrics"], strict=True))
        for name in names
    }
    return impls, times, ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small batches, a smoke run")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per batch (default 10, quick 4)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cases = QUICK_CASES if args.quick else FULL_CASES
    rounds = args.rounds or (4 if args.quick else 10)
    print(f"torch {torch.__version__}, 1 thread, {rounds} rounds; load before: {_load()}")
    for label, (shape, num_classes, logits) in cases.items():
        impls, times, ratios = run_case(shape, num_classes, logits, rounds)
        print(f"\n### {label}\n")
        print("| implementation | median ms per batch | x DiceScore.forward |")
        print("|---|---:|---:|")
        for name, (description, _) in impls.items():
            print(f"| {description} | {1000 * statistics.median(times[name]):.2f} | {ratios[name]:.2f}x |")
    print(f"\nload after: {_load()}")


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
