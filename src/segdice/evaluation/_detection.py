"""Object detection over a whole run (``--instances``, ``--protocol``): the tables of ``summary.json``.

Two views of the object columns, computed here and handed to the report as plain data:

- :func:`detection_table`: per label/region, the object counts summed over the cases and the detection
  precision, recall and F1 of those pooled counts, beside the mean over cases of the per-case F1. The
  pooled numbers weigh every object alike (a case with 30 lesions counts 30 times); the per-case mean
  weighs every case alike.
- :func:`detection_by_size`: per label/region, the share of ground-truth objects found (matched), in
  bins of object volume (decades: 1-10, 10-100, ... in the volume unit of ``lesions.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["DETECTION_DEFINITIONS", "detection_by_size", "detection_table"]

#: What the two tables of ``summary.json`` hold (its ``definitions``).
DETECTION_DEFINITIONS: dict[str, str] = {
    "detection": (
        "per label/region: objects_tp/fp/fn summed over the cases scored (error rows left out); precision "
        "= TP/(TP+FP), recall = TP/(TP+FN), f1 = 2TP/(2TP+FP+FN) of those pooled counts (every object "
        "weighs the same; NaN when the denominator is 0); mean_case_f1: the mean over cases of each "
        "case's detection_f1 (every case weighs the same), cases without any object on either side have "
        "no F1 and are left out of it (n_case_f1 counts the cases used)"
    ),
    "detection_by_size": (
        "per label/region: ground-truth objects of lesions.csv counted (status tp or fn; those under "
        "min_volume are not, see below_min_volume) in volume bins [edges[k], edges[k+1]), decades of the "
        "lesions.csv volume (voxels x voxel size: mm3 from NIfTI headers, mm2 for 2-D images, a voxel "
        "count where files store no spacing); found = matched (tp); recall = found / targets per bin"
    ),
}
# At most this many decade bins: a wider range merges its smallest volumes into the first bin.
_MAX_BINS = 8


def _count(value: object) -> int:
    """An object count of a row: ``None`` or NaN (a row without object scoring) counts 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    return int(value)  # type: ignore[call-overload]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


def detection_table(per_case: Iterable[dict], item_names: Sequence[str]) -> dict[str, dict]:
    """Per label/region, the object counts of every case pooled, and the mean per-case F1.

    Parameters
    ----------
    per_case
        Rows with ``item``, ``error``, ``objects_tp``, ``objects_fp``, ``objects_fn`` and
        ``detection_f1``.
    item_names
        The labels/regions, in report order.

    Returns
    -------
    dict
        ``{item: {"objects_tp": int, "objects_fp": int, "objects_fn": int, "precision", "recall", "f1",
        "mean_case_f1": float, "n_case_f1": int, "cases": int}}`` (see :data:`DETECTION_DEFINITIONS`).

    Examples
    --------
    >>> rows = [
    ...     {"item": "1", "error": "", "objects_tp": 3, "objects_fp": 1, "objects_fn": 0, "detection_f1": 6 / 7},
    ...     {"item": "1", "error": "", "objects_tp": 0, "objects_fp": 0, "objects_fn": 1, "detection_f1": 0.0},
    ...     {"item": "1", "error": "", "objects_tp": 0, "objects_fp": 0, "objects_fn": 0, "detection_f1": float("nan")},
    ... ]
    >>> t = detection_table(rows, ["1"])["1"]
    >>> t["objects_tp"], t["objects_fp"], t["objects_fn"], t["f1"], round(t["mean_case_f1"], 4), t["n_case_f1"]
    (3, 1, 1, 0.75, 0.4286, 2)
    """
    table: dict[str, dict] = {}
    by_item: dict[str, list[dict]] = {name: [] for name in item_names}
    for row in per_case:
        if not row.get("error") and row["item"] in by_item:
            by_item[row["item"]].append(row)
    for name, rows in by_item.items():
        tp = sum(_count(r.get("objects_tp")) for r in rows)
        fp = sum(_count(r.get("objects_fp")) for r in rows)
        fn = sum(_count(r.get("objects_fn")) for r in rows)
        f1s = [float(r["detection_f1"]) for r in rows if r.get("detection_f1") is not None]
        f1s = [v for v in f1s if not math.isnan(v)]
        table[name] = {
            "objects_tp": tp,
            "objects_fp": fp,
            "objects_fn": fn,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "mean_case_f1": float(np.mean(f1s)) if f1s else math.nan,
            "n_case_f1": len(f1s),
            "cases": len(rows),
        }
    return table


def _decade(value: float) -> int:
    """The ``k`` with ``10**k <= value < 10**(k + 1)`` (``log10`` rounds up just below a power of ten)."""
    k = math.floor(math.log10(value))
    if 10.0**k > value:
        k -= 1
    elif 10.0 ** (k + 1) <= value:
        k += 1
    return k


def _decade_edges(volumes: np.ndarray) -> list[float]:
    """Powers of ten around every volume, at most :data:`_MAX_BINS` bins (the first one open below)."""
    if volumes.size == 0:
        return []
    low = _decade(float(volumes.min()))
    high = _decade(float(volumes.max())) + 1
    low = max(low, high - _MAX_BINS)
    return [10.0**k for k in range(low, high + 1)]


def detection_by_size(
    object_rows: Iterable[dict], item_names: Sequence[str], *, volume_unit: str | None = None
) -> dict:
    """Per label/region, the ground-truth objects found per volume bin (decades).

    Parameters
    ----------
    object_rows
        ``lesions.csv`` rows (values as written or as read back as text): ``item``, ``side``,
        ``status``, ``voxels`` and ``volume``.
    item_names
        The labels/regions, in report order.
    volume_unit
        The unit to name (the evaluator's follows where the spacing came from); ``None`` infers it:
        ``"voxels"`` when every volume equals its voxel count (no spacing, or 1 per axis), else ``"mm³"``.

    Returns
    -------
    dict
        ``{"unit": str, "edges": [float], "items": {item: {"targets": [int], "found": [int],
        "recall": [float], "below_min_volume": int}}}``: bin ``k`` holds the volumes in
        ``[edges[k], edges[k + 1])``, the first bin also every smaller one, the last every larger one.
        No edges when no ground-truth object was counted.

    Examples
    --------
    >>> rows = [
    ...     {"item": "1", "side": "target", "status": "tp", "voxels": "5", "volume": "5.0"},
    ...     {"item": "1", "side": "target", "status": "fn", "voxels": "8", "volume": "8.0"},
    ...     {"item": "1", "side": "target", "status": "tp", "voxels": "40", "volume": "40.0"},
    ...     {"item": "1", "side": "pred", "status": "fp", "voxels": "3", "volume": "3.0"},
    ... ]
    >>> bins = detection_by_size(rows, ["1"])
    >>> bins["unit"], bins["edges"], bins["items"]["1"]["targets"], bins["items"]["1"]["recall"]
    ('voxels', [1.0, 10.0, 100.0], [2, 1], [0.5, 1.0])
    """
    counted: dict[str, list[tuple[float, bool]]] = {name: [] for name in item_names}
    small = dict.fromkeys(item_names, 0)
    same = True
    for row in object_rows:
        if row["side"] != "target" or row["item"] not in counted:
            continue
        if row["status"] == "small":
            small[row["item"]] += 1
            continue
        volume = float(row["volume"])
        same = same and volume == float(row["voxels"])
        counted[row["item"]].append((volume, row["status"] == "tp"))
    everything = np.asarray([v for pairs in counted.values() for v, _ in pairs], dtype=float)
    edges = _decade_edges(everything[everything > 0])
    unit = volume_unit if volume_unit is not None else ("voxels" if same else "mm³")
    items = {}
    for name, pairs in counted.items():
        n_bins = max(len(edges) - 1, 0)
        targets, found = [0] * n_bins, [0] * n_bins
        for volume, hit in pairs:
            # inner edges only: the first bin is open below, the last open above
            k = int(np.searchsorted(edges[1:-1], volume, side="right")) if n_bins else 0
            if n_bins:
                targets[k] += 1
                found[k] += int(hit)
        items[name] = {
            "targets": targets,
            "found": found,
            "recall": [_ratio(f, t) for f, t in zip(found, targets, strict=True)],
            "below_min_volume": small[name],
        }
    return {"unit": unit, "edges": edges, "items": items}
