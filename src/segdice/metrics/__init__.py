"""Overlap metrics (Dice, IoU, precision, ...), boundary metrics (HD, HD95, ASSD, NSD), instance and
lesion-wise scores, and streaming.

Every name is resolved on first use (PEP 562), like the root package's: ``from segdice.metrics import
METRICS`` loads no torch, so that the command line's ``--help`` can list the metric names at once.
``from segdice.metrics import dice_score`` and ``segdice.metrics.dice_score`` give the same object.
"""

# The TYPE_CHECKING imports only name what __getattr__ resolves (ruff cannot read the computed __all__).
# ruff: noqa: F401
from __future__ import annotations

from typing import TYPE_CHECKING

from segdice._lazy import lazy_attributes

if TYPE_CHECKING:  # the names below, for type checkers and the API reference
    from segdice.metrics._names import (
        BOUNDARY_METRICS,
        METRICS,
    )
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

# Public name -> the module that defines it.
_NAMES: dict[str, str] = {
    # metric names (importing nothing: the command line's --help lists them)
    "BOUNDARY_METRICS": "segdice.metrics._names",
    "METRICS": "segdice.metrics._names",
    # overlap metrics (one counting pass, segdice.stats.confusion)
    "accuracy": "segdice.metrics.overlap",
    "balanced_accuracy": "segdice.metrics.overlap",
    "dice_score": "segdice.metrics.overlap",
    "false_discovery_rate": "segdice.metrics.overlap",
    "false_negative_rate": "segdice.metrics.overlap",
    "false_omission_rate": "segdice.metrics.overlap",
    "false_positive_rate": "segdice.metrics.overlap",
    "fbeta_score": "segdice.metrics.overlap",
    "fowlkes_mallows_index": "segdice.metrics.overlap",
    "generalized_dice_score": "segdice.metrics.overlap",
    "informedness": "segdice.metrics.overlap",
    "iou_score": "segdice.metrics.overlap",
    "markedness": "segdice.metrics.overlap",
    "matthews_corrcoef": "segdice.metrics.overlap",
    "negative_predictive_value": "segdice.metrics.overlap",
    "precision": "segdice.metrics.overlap",
    "prevalence_threshold": "segdice.metrics.overlap",
    "recall": "segdice.metrics.overlap",
    "relative_volume_difference": "segdice.metrics.overlap",
    "score_from_counts": "segdice.metrics.overlap",
    "sensitivity": "segdice.metrics.overlap",
    "specificity": "segdice.metrics.overlap",
    "volume_similarity": "segdice.metrics.overlap",
    # streaming
    "SegmentationMetrics": "segdice.metrics.streaming",
    # boundary metrics
    "average_surface_distance": "segdice.metrics.surface",
    "boundary_iou": "segdice.metrics.surface",
    "boundary_metrics": "segdice.metrics.surface",
    "hausdorff_distance": "segdice.metrics.surface",
    "mean_average_surface_distance": "segdice.metrics.surface",
    "surface_dice": "segdice.metrics.surface",
    "surface_distances": "segdice.metrics.surface",
    # topology
    "cldice_score": "segdice.metrics.topology",
    # instances and lesions (connected components, matching, detection, PQ, AJI, BraTS)
    "BRATS_CHALLENGES": "segdice.metrics.instances",
    "BRATS_REGIONS": "segdice.metrics.instances",
    "BRATS_WORST_CASE": "segdice.metrics.instances",
    "BratsLesionScores": "segdice.metrics.instances",
    "INSTANCE_METRICS": "segdice.metrics.instances",
    "InstanceMatching": "segdice.metrics.instances",
    "InstanceScores": "segdice.metrics.instances",
    "aggregated_jaccard_index": "segdice.metrics.instances",
    "brats_lesion_scores": "segdice.metrics.instances",
    "instance_scores": "segdice.metrics.instances",
    "label_components": "segdice.metrics.instances",
    "match_instances": "segdice.metrics.instances",
    "panoptic_quality": "segdice.metrics.instances",
    # the counts every overlap metric is formed from
    "confusion": "segdice.stats",
}
# Submodules reachable as attributes after a bare `import segdice.metrics` (e.g. `segdice.metrics.surface`).
_SUBMODULES = frozenset({"instances", "overlap", "streaming", "surface", "topology"})

__all__: list[str] = sorted(_NAMES)


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, _SUBMODULES)
