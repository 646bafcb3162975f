"""Overlap metrics (Dice, IoU, precision, ...), boundary metrics (HD, HD95, ASSD, NSD), instance and
lesion-wise scores, and streaming."""

# instances and lesions (connected components, matching, detection, PQ, AJI, BraTS)
from segdice.metrics.instances import (
    BRATS_CHALLENGES,
    BRATS_REGIONS,
    BRATS_WORST_CASE,
    INSTANCE_METRICS,
    BratsLesionScores,
    InstanceMatching,
    InstanceScores,
    aggregated_jaccard_index,
    brats_lesion_scores,
    instance_scores,
    label_components,
    match_instances,
    panoptic_quality,
)

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
    "BRATS_CHALLENGES",
    "BRATS_REGIONS",
    "BRATS_WORST_CASE",
    "INSTANCE_METRICS",
    "BratsLesionScores",
    "InstanceMatching",
    "InstanceScores",
    "SegmentationMetrics",
    "accuracy",
    "aggregated_jaccard_index",
    "average_surface_distance",
    "boundary_metrics",
    "brats_lesion_scores",
    "confusion",
    "dice_score",
    "fbeta_score",
    "hausdorff_distance",
    "instance_scores",
    "iou_score",
    "label_components",
    "match_instances",
    "mean_average_surface_distance",
    "panoptic_quality",
    "precision",
    "recall",
    "score_from_counts",
    "specificity",
    "surface_dice",
    "surface_distances",
]
