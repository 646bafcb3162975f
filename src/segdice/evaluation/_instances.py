"""Object-level columns of the evaluator: ``--instances``, ``--match``, ``--protocol brats2023-*``.

Per case and label/region, :func:`score_instances` adds object counts, detection precision/recall/F1,
panoptic quality and the ``lesion_<metric>`` / ``matched_<metric>`` aggregates of
:func:`segdice.metrics.instance_scores` to the case's rows, and hands the per-object rows (for
``lesions.csv``) back under :data:`OBJECT_ROWS`, a key the per-case CSV does not write. The BraTS
protocols score WT, TC and ET with :func:`segdice.metrics.brats_lesion_scores` and put the challenge's
legacy Dice, HD95, sensitivity and specificity into the ``dice``, ``hd95``, ``recall`` and
``specificity`` columns.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdice._checks import SegDiceError, check_choice, check_number
from segdice.report.tables import COUNT_COLUMNS, CaseCSVWriter

__all__ = [
    "INSTANCE_DEFINITIONS",
    "MATCHES",
    "OBJECT_ROWS",
    "PROTOCOLS",
    "PROTOCOL_METRICS",
    "InstanceSpec",
    "LesionLog",
    "add_object_summary",
    "fill_missing",
    "instance_columns",
    "instance_inputs",
    "instance_spec",
    "lesion_columns",
    "score_instances",
    "with_object_options",
]

#: ``--protocol`` value -> BraTS 2023 challenge.
PROTOCOLS: dict[str, str] = {
    "brats2023-gli": "GLI",
    "brats2023-ssa": "SSA",
    "brats2023-men": "MEN",
    "brats2023-ped": "PED",
    "brats2023-met": "MET",
}
#: The per-case metric columns a protocol writes (legacy Dice, HD95, sensitivity, specificity).
PROTOCOL_METRICS: tuple[str, ...] = ("dice", "hd95", "recall", "specificity")
#: ``--match`` value -> (criterion, method).
MATCHES: dict[str, tuple[str, str]] = {
    "iou": ("iou", "hungarian"),
    "dice": ("dice", "hungarian"),
    "overlap": ("iou", "overlap"),
    "brats": ("iou", "brats"),
}
#: The summary's definition of the object columns.
INSTANCE_DEFINITIONS = (
    "objects: connected components (full connectivity) or instance label values; objects_tp/fn: counted "
    "targets with/without a match, objects_fp: unmatched predictions; targets of volume <= min_volume are "
    "not counted and predictions matched only to them are no false positives; detection_f1 = 2TP/(2TP+FP+FN); "
    "pq = sum of matched IoU / (TP + FP/2 + FN/2); lesion_<m> = (sum over targets of m + FP x penalty) / "
    "(TP+FN+FP), penalty 0 for Dice/IoU and the worst case for distances (1 or 0 without any object); "
    "matched_<m>: mean over matched targets; lesions.csv: one row per object"
)
#: The key under which a case's rows carry their per-object rows (never a CSV column).
OBJECT_ROWS = "_object_rows"

_PER_OBJECT = ("dice", "iou", "hd", "hd95", "assd", "masd")
_COUNT_COLUMNS = tuple(COUNT_COLUMNS)
_SCORE_COLUMNS = ("detection_precision", "detection_recall", "detection_f1", "pq", "sq", "rq")
# The unit of lesions.csv volumes for the run's distance unit (summary["distance_unit"]); a 2-D image's
# "volume" is an area, which the report says in words.
_VOLUME_UNITS = {
    "mm": "mm³",
    "voxels": "voxels",
    "spacing units": "spacing units³",
    "mm or voxels": "mm³ or voxels",
}
_LESION_BASE = ("case", "item", "side", "id", "voxels", "volume", "matched", "status")


@dataclass(frozen=True)
class InstanceSpec:
    """How a worker scores objects (picklable)."""

    instances: str
    criterion: str
    method: str
    threshold: float
    dilation: int
    min_volume: float
    metrics: tuple[str, ...]
    surface: str = "voxels"
    worst_case: float | None = None
    challenge: str | None = None


def instance_spec(
    *,
    instances: str | None,
    match: str,
    match_threshold: float,
    dilation: int,
    min_volume: float,
    protocol: str | None,
    metrics: Sequence[str],
) -> InstanceSpec | None:
    """Validate the object options; ``None`` when no object scoring was asked for."""
    if protocol is not None:
        check_choice("protocol", protocol, tuple(PROTOCOLS))
        if instances not in (None, "components"):
            raise SegDiceError(
                f"protocol: {protocol} scores connected components; got instances={instances!r}"
            )
        from segdice.metrics import BRATS_CHALLENGES, BRATS_WORST_CASE

        challenge = PROTOCOLS[protocol]
        dil, floor = BRATS_CHALLENGES[challenge]
        return InstanceSpec(
            instances="components",
            criterion="iou",
            method="brats",
            threshold=0.5,
            dilation=dil,
            min_volume=floor,
            metrics=("dice", "hd95"),
            surface="surfels",
            worst_case=BRATS_WORST_CASE,
            challenge=challenge,
        )
    if instances is None:
        defaults = (match, float(match_threshold), int(dilation), float(min_volume))
        if defaults != ("iou", 0.5, 0, 0.0):
            raise SegDiceError(
                "match, match_threshold, dilation and min_volume apply to object scoring: pass "
                "instances='components' or 'labels' (or a protocol)"
            )
        return None
    check_choice("instances", instances, ("components", "labels"))
    check_choice("match", match, tuple(MATCHES))
    threshold = float(check_number("match_threshold", match_threshold, minimum=0, maximum=1))
    dil = int(check_number("dilation", dilation, minimum=0, integer=True))
    floor = float(check_number("min_volume", min_volume, minimum=0))
    criterion, method = MATCHES[match]
    per_object = tuple(m for m in metrics if m in _PER_OBJECT) or ("dice",)
    return InstanceSpec(instances, criterion, method, threshold, dil, floor, per_object)


def with_object_options(
    options: Any,
    *,
    instances: str | None,
    match: str,
    match_threshold: float,
    dilation: int,
    min_volume: float,
    protocol: str | None,
) -> tuple[Any, InstanceSpec | None]:
    """The evaluation's :class:`~segdice.evaluation._options.Options` adjusted for object scoring, and
    the :class:`InstanceSpec` (``None`` without ``instances`` or ``protocol``).

    A protocol fixes the regions (WT, TC, ET) and the metrics; instance label maps are scored as one
    item, ``objects``, the foreground of both maps. Both refuse labels and regions of the caller.
    """
    from dataclasses import replace

    from segdice.evaluation._scoring import Item

    spec = instance_spec(
        instances=instances,
        match=match,
        match_threshold=match_threshold,
        dilation=dilation,
        min_volume=min_volume,
        protocol=protocol,
        metrics=options.metrics,
    )
    if protocol is None and instances != "labels":
        return options, spec
    option = f"protocol={protocol!r}" if protocol else "instances='labels'"
    if options.labels != "auto" or options.regions:
        raise SegDiceError(f"labels/regions: {option} chooses what is scored; leave labels and regions out")
    if instances == "labels":
        return replace(options, labels=(1,), label_names={1: "objects"}), spec
    from segdice.evaluation._metric_names import DEFAULT_METRICS
    from segdice.metrics import BRATS_REGIONS

    if options.metrics != DEFAULT_METRICS:
        raise SegDiceError(f"metrics: {option} sets the metrics; leave metrics out")
    regions = tuple(Item(name=name, ids=ids, region=True) for name, ids in BRATS_REGIONS.items())
    return replace(options, labels=(), regions=regions, metrics=PROTOCOL_METRICS), spec


def add_object_summary(
    summary: dict,
    per_case: list[dict],
    spec: InstanceSpec,
    protocol: str | None,
    objects: Iterable[dict] = (),
) -> None:
    """The object settings, their definition, the statistics of the object columns and the detection
    tables (:mod:`segdice.evaluation._detection`; ``objects`` are the ``lesions.csv`` rows), in the
    summary."""
    from segdice.evaluation._detection import DETECTION_DEFINITIONS, detection_by_size, detection_table
    from segdice.evaluation._summary import summarize_rows

    summary["inputs"]["instances"] = {"protocol": protocol, **vars(spec)}
    summary["definitions"]["instances"] = INSTANCE_DEFINITIONS
    summary["definitions"].update(DETECTION_DEFINITIONS)
    columns = instance_columns(spec)
    names = [item["name"] for item in summary["items"]]  # labels and regions, not the across-label row
    for name, values in summarize_rows(per_case, names, columns).items():
        summary["results"][name].update(values)
    summary["detection"] = detection_table(per_case, names)
    unit = _VOLUME_UNITS.get(summary.get("distance_unit", ""))  # None: inferred from the rows
    summary["detection_by_size"] = detection_by_size(objects, names, volume_unit=unit)


def instance_columns(spec: InstanceSpec | None) -> list[str]:
    """The per-case columns object scoring adds (after the metric columns)."""
    if spec is None:
        return []
    return [
        *_COUNT_COLUMNS,
        *_SCORE_COLUMNS,
        *(f"lesion_{m}" for m in spec.metrics),
        *(f"matched_{m}" for m in spec.metrics),
    ]


def lesion_columns(spec: InstanceSpec) -> list[str]:
    """The columns of ``lesions.csv``."""
    return [*_LESION_BASE, *spec.metrics]


def instance_inputs(
    pred: np.ndarray, gt: np.ndarray, spec: InstanceSpec | None, ignore_label: int | None
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """For instance label maps: the foreground as label 1 for the semantic columns (the ignore label
    kept in the ground truth), the raw maps and the ignored voxels; other inputs pass through."""
    if spec is None or spec.instances != "labels":
        return pred, gt, None, None
    pred_fg = (pred > 0).astype(np.uint8)
    gt_fg = (gt > 0).astype(np.int64)
    ignored = None
    if ignore_label is not None:
        ignored = gt == ignore_label
        gt_fg[ignored] = ignore_label
    return pred_fg, gt_fg, (pred, gt), ignored


def _object_rows(case: str, item: str, rows: Iterable[dict[str, Any]], names: Sequence[str]) -> list[dict]:
    out = []
    for r in rows:
        row = {"case": case, "item": item}
        row.update({k: r[k] for k in ("side", "id", "voxels", "volume", "status")})
        row["matched"] = " ".join(str(i) for i in r["matched"])
        row.update({n: float(r[n]) for n in names})
        out.append(row)
    return out


def _fill(row: dict, scores: Any, names: Sequence[str]) -> None:
    row.update(objects_tp=scores.tp, objects_fp=scores.fp, objects_fn=scores.fn)
    row.update(
        detection_precision=scores.precision,
        detection_recall=scores.recall,
        detection_f1=scores.f1,
        pq=scores.pq,
        sq=scores.sq,
        rq=scores.rq,
    )
    for n in names:
        row[f"lesion_{n}"] = float(scores.lesion[n])
        row[f"matched_{n}"] = float(scores.matched[n])


def score_instances(
    rows: dict,
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: tuple[float, ...] | None,
    spec: InstanceSpec,
    instance_maps: tuple[np.ndarray, np.ndarray] | None = None,
    ignore: np.ndarray | None = None,
) -> None:
    """Add the object columns to every item's row and its per-object rows under :data:`OBJECT_ROWS`.

    ``pred``/``gt`` are the label maps the semantic columns were scored on (ignored voxels already
    background); ``instance_maps`` the raw instance label maps for ``instances="labels"``, with
    ``ignore`` the voxels to clear in them.
    """
    from segdice.metrics import brats_lesion_scores, instance_scores

    if spec.challenge is not None:
        regions = {item.name: item.ids for item in rows}
        result = brats_lesion_scores(pred, gt, spacing=spacing, challenge=spec.challenge, regions=regions)
        for item, row in rows.items():
            values = result[item.name]
            _fill(row, result.objects[item.name], spec.metrics)
            row.update(
                dice=float(values["legacy_dice"]),
                hd95=float(values["legacy_hd95"]),
                recall=float(values["sensitivity"]),
                specificity=float(values["specificity"]),
            )
            row[OBJECT_ROWS] = _object_rows(
                row["case"], item.name, result.objects[item.name].rows, spec.metrics
            )
        return
    options = {
        "spacing": spacing,
        "instances": spec.instances,
        "criterion": spec.criterion,
        "threshold": spec.threshold,
        "method": spec.method,
        "dilation": spec.dilation,
        "min_volume": spec.min_volume,
        "metrics": spec.metrics,
        "surface": spec.surface,
        "worst_case": spec.worst_case,
    }
    for item, row in rows.items():
        if instance_maps is not None:
            p, g = instance_maps
            if ignore is not None:
                p, g = np.where(ignore, 0, p), np.where(ignore, 0, g)
        else:
            p, g = np.isin(pred, item.ids), np.isin(gt, item.ids)
        scores = instance_scores(p, g, **options)
        _fill(row, scores, spec.metrics)
        row[OBJECT_ROWS] = _object_rows(row["case"], item.name, scores.rows, spec.metrics)


def fill_missing(rows: Iterable[dict], columns: Sequence[str]) -> list[dict]:
    """Pop the per-object rows of a case; give rows that never reached object scoring NaN columns
    (no value, ``None``, for the object counts: a count is an int or nothing)."""
    objects: list[dict] = []
    for row in rows:
        objects += row.pop(OBJECT_ROWS, None) or []
        for column in columns:
            row.setdefault(column, None if column in COUNT_COLUMNS else math.nan)
    return objects


class LesionLog:
    """``lesions.csv``: one row per object, appended as cases finish, rewritten in case order at the end.

    With ``resume`` the rows of the cases kept from the earlier run are carried over.
    """

    def __init__(self, path: Path, columns: Sequence[str], *, keep_cases: Iterable[str] = ()) -> None:
        self.path, self.columns = path, list(columns)
        self.rows: dict[str, list[dict]] = {}
        keep = set(keep_cases)
        if keep and path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames == self.columns:
                    for row in reader:
                        if row["case"] in keep:
                            self.rows.setdefault(row["case"], []).append(row)
        self._writer = CaseCSVWriter(path, self.columns)
        for rows in self.rows.values():
            self._writer.write_rows(rows)

    def add(self, case: str, rows: list[dict]) -> None:
        self.rows[case] = rows
        self._writer.write_rows(rows)

    def close(self, order: Sequence[str]) -> None:
        self._writer.close()
        tmp = self.path.with_name(self.path.name + ".tmp")
        with CaseCSVWriter(tmp, self.columns) as writer:
            for case in order:
                writer.write_rows(self.rows.get(case, []))
        os.replace(tmp, self.path)
