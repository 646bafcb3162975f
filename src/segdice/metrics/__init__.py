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

# boundary metrics
from segdice.metrics.surface import (
    average_surface_distance,
    boundary_metrics,
    hausdorff_distance,
    mean_average_surface_distance,
    surface_dice,
    surface_distances,
)
from segdice.stats import confusion

__all__: list[str] = [
    "SegmentationMetrics",
    "accuracy",
    "average_surface_distance",
    "boundary_metrics",
    "confusion",
    "dice_score",
    "fbeta_score",
    "hausdorff_distance",
    "iou_score",
    "mean_average_surface_distance",
    "precision",
    "recall",
    "score_from_counts",
    "specificity",
    "surface_dice",
    "surface_distances",
]
