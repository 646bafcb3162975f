"""Overlap metrics (Dice, IoU, precision, ...), boundary metrics (HD, HD95, ASSD, NSD) and streaming."""

# overlap metrics and streaming (one counting pass, segdice.stats.confusion)
from segdice.metrics.overlap import (
    accuracy,
    balanced_accuracy,
    dice_score,
    false_discovery_rate,
    false_negative_rate,
    false_omission_rate,
    false_positive_rate,
    fbeta_score,
    fowlkes_mallows_index,
    generalized_dice_score,
    informedness,
    iou_score,
    markedness,
    matthews_corrcoef,
    negative_predictive_value,
    precision,
    prevalence_threshold,
    recall,
    relative_volume_difference,
    score_from_counts,
    sensitivity,
    specificity,
    volume_similarity,
)
from segdice.metrics.streaming import SegmentationMetrics

# boundary metrics
from segdice.metrics.surface import (
    average_surface_distance,
    boundary_iou,
    boundary_metrics,
    hausdorff_distance,
    mean_average_surface_distance,
    surface_dice,
    surface_distances,
)
from segdice.metrics.topology import cldice_score
from segdice.stats import confusion

__all__: list[str] = [
    "SegmentationMetrics",
    "accuracy",
    "average_surface_distance",
    "balanced_accuracy",
    "boundary_iou",
    "boundary_metrics",
    "cldice_score",
    "confusion",
    "dice_score",
    "false_discovery_rate",
    "false_negative_rate",
    "false_omission_rate",
    "false_positive_rate",
    "fbeta_score",
    "fowlkes_mallows_index",
    "generalized_dice_score",
    "hausdorff_distance",
    "informedness",
    "iou_score",
    "markedness",
    "matthews_corrcoef",
    "mean_average_surface_distance",
    "negative_predictive_value",
    "precision",
    "prevalence_threshold",
    "recall",
    "relative_volume_difference",
    "score_from_counts",
    "sensitivity",
    "specificity",
    "surface_dice",
    "surface_distances",
    "volume_similarity",
]
