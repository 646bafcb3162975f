"""Score one case: read both files, check them, and compute every requested metric per label/region.

The functions here run in worker processes, so they are top-level (spawn-safe) and take only
picklable arguments. A case never raises: whatever goes wrong becomes the ``error`` text of its rows.
Metric values come from :mod:`segdice.metrics`: one :func:`~segdice.metrics.confusion` pass on a
compact re-coded label map (labels) or on stacked masks (regions) gives the counts every overlap metric
is formed from, and one :func:`~segdice.metrics.boundary_metrics` call gives every distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError
from segdice.evaluation._pairing import CasePair
from segdice.io import read_mask

__all__ = [
    "BOUNDARY_METRICS",
    "OVERLAP_METRICS",
    "Item",
    "ScoringSpec",
    "case_columns",
    "gt_label_set",
    "score_case",
]

OVERLAP_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
BOUNDARY_METRICS: tuple[str, ...] = ("hd", "hd95", "assd", "masd", "nsd")

# Columns before the metric columns, in CSV order.
BASE_COLUMNS: tuple[str, ...] = (
    "case",
    "item",
    "labels",
    "n_voxels",
    "gt_voxels",
    "pred_voxels",
    "tp",
    "fp",
    "fn",
    "tn",
    "empty_gt",
    "empty_pred",
    "missing_pred",
    "error",
    "pred_file",
    "gt_file",
)

# Spacing of the two files must agree to this relative tolerance (headers store float32).
_SPACING_RTOL = 1e-4
# Label values below this use a lookup table to remap; larger ones fall back to comparisons.
_LUT_LIMIT = 1 << 16


@dataclass(frozen=True)
class Item:
    """A label (one id) or a region (the union of several ids) to score, with its display name."""

    name: str
    ids: tuple[int, ...]
    region: bool = False

    @property
    def key(self) -> int | tuple[int, ...]:
        """The key :func:`segdice.metrics.boundary_metrics` uses: an int, or a tuple for a region."""
        return self.ids if self.region else self.ids[0]

    @property
    def label_text(self) -> str:
        """The ids as written in the CSV, e.g. ``"1"`` or ``"1+2+3"``."""
        return "+".join(str(i) for i in self.ids)


@dataclass(frozen=True)
class ScoringSpec:
    """Everything a worker needs to score a case (picklable)."""

    items: tuple[Item, ...]
    metrics: tuple[str, ...]
    ignore_label: int | None = None
    nsd_tolerance: float = 1.0
    spacing: tuple[float, ...] | None = None
    empty_value: float = math.nan


def case_columns(metrics: Sequence[str]) -> list[str]:
    """The CSV columns for a metric list: the fixed columns, then one per metric."""
    return [*BASE_COLUMNS, *metrics]


def gt_label_set(path: Path, ignore_label: int | None) -> tuple[int, ...]:
    """Labels > 0 present in one ground-truth file (minus the ignore label); ``()`` if unreadable."""
    try:
        array = read_mask(path).array
    except Exception:  # the scoring pass reports the unreadable file on the case's own rows
        return ()
    return tuple(v for v in _present(array) if v != 0 and v != ignore_label)


def _present(array: np.ndarray) -> list[int]:
    """Sorted distinct values of an integer array (bincount when small and non-negative: no sort)."""
    if array.size == 0:
        return []
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi < _LUT_LIMIT:
        return np.flatnonzero(np.bincount(array.ravel(), minlength=hi + 1)).tolist()
    return np.unique(array).tolist()


def _table_size(array: np.ndarray) -> int | None:
    """Size of a lookup table indexable by every value of ``array``, or ``None`` if too large/negative."""
    if array.dtype.kind == "u" and array.dtype.itemsize <= 2:
        return 1 << (8 * array.dtype.itemsize)  # no pass over the data needed
    if array.size == 0:
        return 1
    lo, hi = int(array.min()), int(array.max())
    return hi + 1 if lo >= 0 and hi < _LUT_LIMIT else None


def _encode(array: np.ndarray, ids: Sequence[int], known: set[int]) -> tuple[np.ndarray, list[int]]:
    """Compact codes for counting, and the values outside ``known``, in one table lookup.

    ``ids[k]`` becomes ``k + 1``; every other value becomes 0. The second result lists the values of
    ``array`` in neither ``ids`` nor ``known`` (sorted; found without sorting the data unless present).
    """
    dtype, sentinel = (np.uint8, 255) if len(ids) < 255 else (np.int32, -1)
    size = _table_size(array)
    if size is not None:
        table = np.full(size, sentinel, dtype=dtype)
        table[[k for k in known if 0 <= k < size]] = 0
        for k, value in enumerate(ids):
            if 0 <= value < size:
                table[value] = k + 1
        codes = table[array]
        outside = codes == sentinel
    else:
        codes = np.zeros(array.shape, dtype=dtype)
        for k, value in enumerate(ids):
            codes[array == value] = k + 1
        outside = ~np.isin(array, sorted(known | set(ids)))
    if not outside.any():
        return codes, []
    codes[outside] = 0
    return codes, np.unique(array[outside]).tolist()


def _empty_row(pair: CasePair, item: Item, metrics: Sequence[str]) -> dict:
    row = dict.fromkeys(case_columns(metrics))
    row.update(
        case=pair.name,
        item=item.name,
        labels=item.label_text,
        missing_pred=pair.pred is None,
        error="",
        pred_file=str(pair.pred) if pair.pred is not None else "",
        gt_file=str(pair.gt),
    )
    for metric in metrics:
        row[metric] = math.nan
    return row


def _error_rows(pair: CasePair, spec: ScoringSpec, message: str) -> list[dict]:
    rows = []
    for item in spec.items:
        row = _empty_row(pair, item, spec.metrics)
        row["error"] = message
        rows.append(row)
    return rows


def score_case(pair: CasePair, spec: ScoringSpec) -> list[dict]:
    """Score one case; return one row per item of ``spec`` (never raises for bad files).

    A missing prediction is scored as an empty prediction (Dice 0 where the ground truth has the
    label, distances at their worst case) and flagged ``missing_pred``. Unreadable files, a shape or
    spacing mismatch produce rows with NaN metrics and the reason in ``error``; labels outside the
    evaluated list produce scored rows whose ``error`` names the stray labels.
    """
    try:
        return _score(pair, spec)
    except SegDiceError as exc:
        return _error_rows(pair, spec, str(exc))
    except Exception as exc:  # a crash in one case must not stop the run; the row says what happened
        return _error_rows(pair, spec, f"{type(exc).__name__}: {exc}")


def _score(pair: CasePair, spec: ScoringSpec) -> list[dict]:
    gt = read_mask(pair.gt)
    if pair.pred is None:
        pred_array = np.zeros_like(gt.array)
        pred_spacing = gt.spacing
    else:
        pred = read_mask(pair.pred)
        pred_array, pred_spacing = pred.array, pred.spacing
        if pred_array.shape != gt.array.shape:
            raise SegDiceError(
                f"shape mismatch: prediction {pred_array.shape} vs ground truth {gt.array.shape}"
            )
    if spec.spacing is not None:
        if len(spec.spacing) == 1:  # one number: the same spacing along every axis
            spec = replace(spec, spacing=spec.spacing * gt.array.ndim)
        if len(spec.spacing) != gt.array.ndim:
            raise SegDiceError(
                f"spacing: got {len(spec.spacing)} value(s) {spec.spacing} for masks of shape "
                f"{gt.array.shape}; expected one per axis"
            )
        spacing: tuple[float, ...] | None = spec.spacing
    else:
        if (
            gt.spacing is not None
            and pred_spacing is not None
            and not np.allclose(pred_spacing, gt.spacing, rtol=_SPACING_RTOL, atol=0)
        ):
            raise SegDiceError(
                f"spacing mismatch: prediction {tuple(round(s, 6) for s in pred_spacing)} vs ground truth "
                f"{tuple(round(s, 6) for s in gt.spacing)} (override with --spacing if intended)"
            )
        spacing = gt.spacing if gt.spacing is not None else pred_spacing

    gt_array = gt.array
    known = {0, *(i for item in spec.items for i in item.ids)}
    if spec.ignore_label is not None:
        known.add(spec.ignore_label)
    rows = {item: _empty_row(pair, item, spec.metrics) for item in spec.items}
    if spec.ignore_label is not None:
        valid = gt_array != spec.ignore_label
        pred_flat, gt_flat = pred_array[valid], gt_array[valid]
        # Ignored voxels leave both surfaces too: set them to background for the distance metrics.
        pred_array = np.where(valid, pred_array, 0)
        gt_array = np.where(valid, gt_array, 0)
    else:
        pred_flat, gt_flat = pred_array.ravel(), gt_array.ravel()

    label_ids = [item.ids[0] for item in spec.items if not item.region]
    pred_codes, stray_pred = _encode(pred_flat, label_ids, known)
    gt_codes, stray_gt = _encode(gt_flat, label_ids, known)
    problems = []
    if stray_gt:
        problems.append(f"ground truth has labels outside the list: {stray_gt}")
    if stray_pred:
        problems.append(f"prediction has labels outside the list: {stray_pred}")

    _overlap(rows, (pred_codes, gt_codes), (pred_flat, gt_flat), spec)
    _boundary(rows, pred_array, gt_array, spacing, spec)
    for row in rows.values():
        row["error"] = "; ".join(problems)
    return list(rows.values())


def _overlap(
    rows: dict[Item, dict],
    codes: tuple[np.ndarray, np.ndarray],
    flat: tuple[np.ndarray, np.ndarray],
    spec: ScoringSpec,
) -> None:
    """Counts and overlap metrics: labels from their codes (one multiclass pass), regions as masks."""
    import torch

    from segdice import metrics as m

    functions = {
        "dice": m.dice_score,
        "iou": m.iou_score,
        "precision": m.precision,
        "recall": m.recall,
        "specificity": m.specificity,
        "accuracy": m.accuracy,
    }
    wanted = [name for name in spec.metrics if name in functions]
    labels = [item for item in spec.items if not item.region]
    regions = [item for item in spec.items if item.region]
    groups = []
    if labels:
        p = torch.from_numpy(codes[0][None])
        g = torch.from_numpy(codes[1][None])
        kwargs = {"num_classes": len(labels) + 1, "mode": "multiclass", "include_background": False}
        groups.append((labels, p, g, kwargs))
    if regions:
        p = torch.from_numpy(np.stack([np.isin(flat[0], item.ids) for item in regions])[None])
        g = torch.from_numpy(np.stack([np.isin(flat[1], item.ids) for item in regions])[None])
        groups.append((regions, p, g, {"mode": "multilabel"}))
    from_counts = getattr(m, "score_from_counts", None)
    for items, p, g, kwargs in groups:
        counts = m.confusion(p, g, **kwargs)
        if from_counts is not None:  # one counting pass serves every metric
            scores = {name: from_counts(name, *counts, empty_value=spec.empty_value) for name in wanted}
        else:
            scores = {name: functions[name](p, g, empty_value=spec.empty_value, **kwargs) for name in wanted}
        scores = {name: value.reshape(-1).tolist() for name, value in scores.items()}
        tp, fp, fn, tn = (t.reshape(-1).tolist() for t in counts)
        for k, item in enumerate(items):
            row = rows[item]
            row.update(
                tp=tp[k],
                fp=fp[k],
                fn=fn[k],
                tn=tn[k],
                n_voxels=tp[k] + fp[k] + fn[k] + tn[k],
                gt_voxels=tp[k] + fn[k],
                pred_voxels=tp[k] + fp[k],
                empty_gt=tp[k] + fn[k] == 0,
                empty_pred=tp[k] + fp[k] == 0,
            )
            for name in wanted:
                row[name] = float(scores[name][k])


def _boundary(
    rows: dict[Item, dict],
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: tuple[float, ...] | None,
    spec: ScoringSpec,
) -> None:
    wanted = tuple(name for name in spec.metrics if name in BOUNDARY_METRICS)
    if not wanted or not spec.items:
        return
    from segdice.metrics import boundary_metrics

    result = boundary_metrics(
        pred,
        gt,
        labels=[item.key for item in spec.items],
        spacing=spacing,
        metrics=wanted,
        nsd_tolerance=spec.nsd_tolerance,
    )
    for item in spec.items:
        values = result[item.key]
        for name in wanted:
            rows[item][name] = float(values[name])
