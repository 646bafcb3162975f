"""Independent reference values for the evaluator tests, written from the definitions in DESIGN.md.

- overlap: counts from NumPy boolean masks, the textbook formulas;
- HD / HD95 / ASSD / MASD: medpy's surface distances (face-connected erosion, scipy EDT with spacing),
  HD95 as the larger directed 95th percentile;
- NSD: DeepMind's ``surface_distance`` (surfel areas, Nikolov et al.).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

medpy_binary = __import__("medpy.metric.binary", fromlist=["binary"])
# A module-level helper whose double-underscore name keeps it out of medpy's public API.
_surface_distances = vars(medpy_binary)["__surface_distances"]


def overlap(pred_mask: np.ndarray, gt_mask: np.ndarray, empty_value: float = math.nan) -> dict[str, float]:
    p, g = pred_mask.astype(bool), gt_mask.astype(bool)
    tp = float(np.sum(p & g))
    fp = float(np.sum(p & ~g))
    fn = float(np.sum(~p & g))
    tn = float(np.sum(~p & ~g))

    # DESIGN section 5: a class in neither mask gives empty_value for every overlap metric (specificity
    # also when the class fills both masks); any other 0/0 is 0, as one of the two sets is not empty.
    both_empty = tp + fp + fn == 0

    def ratio(num, den, empty=both_empty):
        if empty:
            return empty_value
        return 0.0 if den == 0 else num / den

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp, both_empty or tn + fp + fn == 0),
        "accuracy": ratio(tp + tn, tp + tn + fp + fn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def diagonal(shape, spacing=None) -> float:
    spacing = spacing or (1.0,) * len(shape)
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))


def boundary(pred_mask, gt_mask, spacing=None, nsd_tolerance=1.0) -> dict[str, float]:
    p, g = pred_mask.astype(bool), gt_mask.astype(bool)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * p.ndim
    if not p.any() and not g.any():
        return dict.fromkeys(("hd", "hd95", "assd", "masd", "nsd"), math.nan)
    if not p.any() or not g.any():
        worst = diagonal(p.shape, spacing)
        return {"hd": worst, "hd95": worst, "assd": worst, "masd": worst, "nsd": 0.0}
    d_pg = _surface_distances(p, g, spacing, 1)
    d_gp = _surface_distances(g, p, spacing, 1)
    import surface_distance

    with warnings.catch_warnings():  # it still calls scipy's deprecated ndimage.filters namespace
        warnings.simplefilter("ignore", DeprecationWarning)
        sd = surface_distance.compute_surface_distances(g, p, spacing)
    return {
        "hd": float(max(d_pg.max(), d_gp.max())),
        "hd95": float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))),
        "assd": float(np.concatenate([d_pg, d_gp]).mean()),
        "masd": float((d_pg.mean() + d_gp.mean()) / 2),
        "nsd": float(surface_distance.compute_surface_dice_at_tolerance(sd, nsd_tolerance)),
    }
