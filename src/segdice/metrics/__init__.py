"""Overlap metrics (Dice, IoU, precision, ...), boundary metrics (HD, HD95, ASSD, NSD) and streaming."""

# boundary metrics (surface developer)
from segdice.metrics.surface import (
    average_surface_distance,
    boundary_metrics,
    hausdorff_distance,
    mean_average_surface_distance,
    surface_dice,
    surface_distances,
)

__all__: list[str] = [
    # boundary metrics
    "average_surface_distance",
    "boundary_metrics",
    "hausdorff_distance",
    "mean_average_surface_distance",
    "surface_dice",
    "surface_distances",
]
