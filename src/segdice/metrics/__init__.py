"""Overlap metrics (Dice, IoU, precision, ...), boundary metrics (HD, HD95, ASSD, NSD) and streaming."""

# overlap metrics and streaming (one counting pass, segdice.stats.confusion)
from segdice.metrics.overlap import (
    accuracy,
    dice_score,
    fbeta_score,
    iou_score,
    precision,
    recall,
    score_from_counts,
    specificity,
)
from segdice.metrics.streaming import SegmentationMetrics
from segdice.stats import confusion

__all__: list[str] = [
    # overlap metrics and streaming
    "SegmentationMetrics",
    "accuracy",
    "confusion",
    "dice_score",
    "fbeta_score",
    "iou_score",
    "precision",
    "recall",
    "score_from_counts",
    "specificity",
]
