"""The demo's table: every number comes from segdice's own metrics (overlap counts and HD95)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["COLUMNS", "score_predictions", "validation_scores"]

# Table columns: key in results.json -> (header, format). HD95 is in pixels (the slices have no spacing).
# Headers are short so that the table fits an 80-column terminal; the caption explains them.
COLUMNS: dict[str, tuple[str, str]] = {
    "accuracy": ("Accuracy", "{:.2%}"),
    "dice_per_image": ("Dice/img", "{:.3f}"),
    "dice_global": ("Dice", "{:.3f}"),
    "iou_global": ("IoU", "{:.3f}"),
    "hd95": ("HD95", "{:.1f}"),
    "sensitivity": ("Sens.", "{:.3f}"),
    "lesions_found": ("Found", "{:.0%}"),
}


def _scalar(x: Any) -> float:
    """The single value of a one-class result (tensor or array) as a float."""
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64).reshape(-1)
    if arr.size != 1:
        raise RuntimeError(f"expected one value for the lesion class, got shape {arr.shape}")
    return float(arr[0])


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def validation_scores(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Global lesion Dice and pixel accuracy of label maps ``[N, H, W]`` (one value each per epoch)."""
    from segdice.metrics import accuracy, dice_score

    common = {"num_classes": 2, "include_background": False, "per_image": False}
    return _scalar(dice_score(pred, target, **common)), _scalar(accuracy(pred, target, **common))


def _lesions_found(pred: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """(found, total) ground-truth lesions (8-connected components) touched by the prediction."""
    found = total = 0
    for p, t in zip(pred, target, strict=True):
        components, n = ndimage.label(t == 1, structure=np.ones((3, 3)))
        total += n
        if n:
            hit = np.unique(components[(p == 1) & (components > 0)])
            found += int(hit.size)
    return found, total


def score_predictions(pred: np.ndarray, target: np.ndarray) -> dict[str, float | int]:
    """Every column of the demo's table for lesion label maps ``pred`` and ``target`` ``[N, H, W]``.

    Overlap scores are for the lesion class only (background excluded after the arg-max). "Global"
    pools the counts of all validation slices; "mean per image" averages the per-slice Dice over slices
    where it is defined (slices with neither a lesion nor a predicted lesion are NaN and skipped, their
    number is reported as ``n_nan``). HD95 is averaged over the same slices; a slice where exactly one side
    is empty scores the image diagonal, so missing every lesion is punished, never ignored.
    """
    from segdice.metrics import accuracy, dice_score, hausdorff_distance, iou_score, recall

    common = {"num_classes": 2, "include_background": False}
    per_image_dice = np.asarray(dice_score(pred, target, per_image=True, **common), dtype=np.float64).reshape(
        len(pred)
    )
    hd95 = np.array(
        [
            hausdorff_distance(p == 1, t == 1, percentile=95)
            if (p == 1).any() or (t == 1).any()
            else math.nan
            for p, t in zip(pred, target, strict=True)
        ],
        dtype=np.float64,
    )
    found, total = _lesions_found(pred, target)
    return {
        "accuracy": _scalar(accuracy(pred, target, per_image=False, **common)),
        "dice_per_image": _nanmean(per_image_dice),
        "dice_global": _scalar(dice_score(pred, target, per_image=False, **common)),
        "iou_global": _scalar(iou_score(pred, target, per_image=False, **common)),
        "hd95": _nanmean(hd95),
        "sensitivity": _scalar(recall(pred, target, per_image=False, **common)),
        "lesions_found": found / total if total else math.nan,
        "n_images": len(pred),
        "n_nan": int(np.isnan(per_image_dice).sum()),
        "n_lesions": total,
    }
