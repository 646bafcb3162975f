"""Score one case: read both files, check them, and compute every requested metric per label/region.

The functions here run in worker processes, so they are top-level (spawn-safe) and take only
picklable arguments. A case never raises: whatever goes wrong becomes the ``error`` text of its rows.
The prediction must lie on the ground truth's voxel grid (:mod:`segdice.evaluation._geometry`, which
also reorients it on request). Values outside the scored labels count as background, never as an error.
Metric values come from :mod:`segdice.metrics`: one :func:`~segdice.metrics.confusion` pass on a
compact re-coded label map (labels) or on stacked masks (regions) gives the counts every overlap metric
is formed from, and one :func:`~segdice.metrics.boundary_metrics` call gives every distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from segdice._checks import SegDiceError
from segdice.evaluation._geometry import align_prediction
from segdice.evaluation._instances import InstanceSpec, instance_inputs, score_instances
from segdice.evaluation._metric_names import (
    ACROSS_LABEL_ITEM,
    ACROSS_LABEL_METRICS,
    BOUNDARY_METRICS,
    OVERLAP_METRICS,
)
from segdice.evaluation._pairing import CasePair
from segdice.io import Mask, read_mask
from segdice.metrics import boundary_metrics, confusion, generalized_dice_score, score_from_counts
from segdice.report.case_view import CaseView
from segdice.report.tables import CASE_COLUMNS

if TYPE_CHECKING:
    from segdice.evaluation._options import Options

__all__ = [
    "ACROSS_LABELS",
    "CaseViews",
    "Item",
    "ScoringSpec",
    "case_columns",
    "case_label_set",
    "check_item_names",
    "error_rows",
    "row_items",
    "score_case",
    "scored_view",
    "scoring_spec",
]

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


#: The item of the across-label row of a case (``labels`` column empty): every label scored, no region.
ACROSS_LABELS = Item(name=ACROSS_LABEL_ITEM, ids=())


def row_items(items: Sequence[Item], metrics: Sequence[str]) -> tuple[Item, ...]:
    """The items a case has rows for, in row order: ``items``, then :data:`ACROSS_LABELS` when an
    across-label metric (``gds``) is scored."""
    across = any(m in ACROSS_LABEL_METRICS for m in metrics)
    return (*items, ACROSS_LABELS) if across else tuple(items)


def check_item_names(items: Sequence[Item], metrics: Sequence[str]) -> None:
    """Refuse a label or region named like the across-label row when that row is written."""
    if len(row_items(items, metrics)) == len(items):
        return
    taken = [item for item in items if item.name == ACROSS_LABELS.name]
    if taken:
        raise SegDiceError(
            f"label_names: {taken[0].label_text} is named {ACROSS_LABELS.name!r}, the item of the row that "
            f"holds {', '.join(ACROSS_LABEL_METRICS)} (every scored label at once); choose another name"
        )


@dataclass(frozen=True)
class ScoringSpec:
    """Everything a worker needs to score a case (picklable)."""

    items: tuple[Item, ...]
    metrics: tuple[str, ...]
    ignore_label: int | None = None
    nsd_tolerance: float = 1.0
    spacing: tuple[float, ...] | None = None
    empty_value: float = math.nan
    reorient: bool = False
    binarize: bool = False
    hd_pooled: bool = False
    surface: str = "voxels"
    instances: InstanceSpec | None = None  # object columns (--instances, --protocol)


def scoring_spec(options: Options, items: tuple[Item, ...], instances: InstanceSpec | None) -> ScoringSpec:
    """The :class:`ScoringSpec` of a run: its options, the items it scores and its object options."""
    return ScoringSpec(
        items=items,
        metrics=options.metrics,
        ignore_label=options.ignore_label,
        nsd_tolerance=options.nsd_tolerance,
        spacing=options.spacing,
        empty_value=options.empty_value,
        reorient=options.reorient,
        binarize=options.binarize,
        hd_pooled=options.hd95 == "pooled",
        surface=options.surface,
        instances=instances,
    )


def case_columns(metrics: Sequence[str]) -> list[str]:
    """The CSV columns for a metric list: the fixed columns of the schema, then one per metric."""
    return [*CASE_COLUMNS, *metrics]


def case_label_set(pair: CasePair, ignore_label: int | None) -> tuple[int, ...]:
    """Labels > 0 present in a case's ground truth or prediction, less the ignore label.

    Prediction voxels where the ground truth holds the ignore label are left out, as in scoring.
    An unreadable file contributes nothing: the scoring pass reports it on the case's own rows.
    """
    found: set[int] = set()
    gt = None
    try:
        gt = read_mask(pair.gt).array
        found.update(_present(gt))
    except Exception:  # reported by the scoring pass
        pass
    if pair.pred is not None:
        try:
            pred = read_mask(pair.pred).array
            if ignore_label is not None and gt is not None and gt.shape == pred.shape:
                pred = pred[gt != ignore_label]
            found.update(_present(pred))
        except Exception:  # reported by the scoring pass
            pass
    return tuple(sorted(v for v in found if v != 0 and v != ignore_label))


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


def _encode(array: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Compact codes for counting in one table lookup: ``ids[k]`` becomes ``k + 1``, any other value 0."""
    dtype = np.uint8 if len(ids) < 255 else np.int32
    size = _table_size(array)
    if size is not None:
        table = np.zeros(size, dtype=dtype)
        for k, value in enumerate(ids):
            if 0 <= value < size:
                table[value] = k + 1
        return table[array]
    codes = np.zeros(array.shape, dtype=dtype)
    for k, value in enumerate(ids):
        codes[array == value] = k + 1
    return codes


def _empty_row(pair: CasePair, item: Item, metrics: Sequence[str]) -> dict:
    """A row of NaN metrics; the metrics that do not belong to the row (``gds`` on a label's row, the
    per-label metrics on the across-label row) stay empty (``None``)."""
    row = dict.fromkeys(case_columns(metrics))
    row.update(
        case=pair.name,
        item=item.name,
        labels=item.label_text,
        missing_pred=pair.pred is None,
        error="",
        note="",
        pred_file=str(pair.pred) if pair.pred is not None else "",
        gt_file=str(pair.gt),
    )
    across = item == ACROSS_LABELS
    for metric in metrics:
        if (metric in ACROSS_LABEL_METRICS) == across:
            row[metric] = math.nan
    return row


def error_rows(pair: CasePair, spec: ScoringSpec, message: str) -> list[dict]:
    """The rows of a case that could not be scored: NaN metrics (empty where a metric does not belong
    to the row, as in a scored case), ``message`` in ``error``. Also those of a case whose worker died."""
    rows = []
    for item in row_items(spec.items, spec.metrics):
        row = _empty_row(pair, item, spec.metrics)
        row["error"] = message
        rows.append(row)
    return rows


def score_case(pair: CasePair, spec: ScoringSpec) -> list[dict]:
    """Score one case; return one row per item of ``spec`` (never raises for bad files).

    A missing prediction is scored as an empty prediction (Dice 0 where the ground truth has the
    label, distances at their worst case) and flagged ``missing_pred``. Unreadable files and a shape,
    spacing, origin or direction mismatch produce rows with NaN metrics and the reason in ``error``.
    A reoriented prediction says so in ``note``. Values outside the scored labels are background.
    """
    try:
        return _score(pair, spec)
    except SegDiceError as exc:
        return error_rows(pair, spec, str(exc))
    except Exception as exc:  # a crash in one case must not stop the run; the row says what happened
        return error_rows(pair, spec, f"{type(exc).__name__}: {exc}")


def _score(pair: CasePair, spec: ScoringSpec) -> list[dict]:
    gt, pred_array, pred_spacing, note = _read_case(pair, spec)
    spacing = _case_spacing(spec, gt, pred_spacing)
    valid, pred_array, gt_array, instance_maps, ignored = _scored_arrays(gt.array, pred_array, spec)
    rows = {item: _empty_row(pair, item, spec.metrics) for item in row_items(spec.items, spec.metrics)}
    pred_flat, gt_flat, pred_array, gt_array = _without_ignored(pred_array, gt_array, valid)

    label_ids = [item.ids[0] for item in spec.items if not item.region]
    pred_codes = _encode(pred_flat, label_ids)
    gt_codes = _encode(gt_flat, label_ids)
    _overlap(rows, (pred_codes, gt_codes), (pred_flat, gt_flat), spec)
    if ACROSS_LABELS in rows:
        _across_labels(rows[ACROSS_LABELS], (pred_codes, gt_codes), len(label_ids), spec)
    _boundary(rows, pred_array, gt_array, spacing, spec)
    if spec.instances is not None:
        items = {item: row for item, row in rows.items() if item != ACROSS_LABELS}
        score_instances(items, pred_array, gt_array, spacing, spec.instances, instance_maps, ignored)
    source = _spacing_source(spec, gt, pred_spacing)
    for row in rows.values():
        row["note"] = note
        row["spacing_source"] = source
    return list(rows.values())


def _scored_arrays(
    gt: np.ndarray, pred: np.ndarray, spec: ScoringSpec
) -> tuple[
    np.ndarray | None, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None, np.ndarray | None
]:
    """``(valid, pred, gt, instance_maps, ignored)``: the voxels that count (``None``: all), the label
    maps as scored (instance maps as foreground, ``binarize`` applied), and the raw instance maps."""
    valid = None if spec.ignore_label is None else gt != spec.ignore_label
    pred, gt, instance_maps, ignored = instance_inputs(pred, gt, spec.instances, spec.ignore_label)
    if spec.binarize:  # every value > 0 is the one foreground class, 1
        pred, gt = (pred > 0).view(np.uint8), (gt > 0).view(np.uint8)
    return valid, pred, gt, instance_maps, ignored


def scored_view(pair: CasePair, spec: ScoringSpec) -> CaseView:
    """A case's label maps as :func:`score_case` counts them, for the report's pictures.

    The same reading, alignment (``reorient``), instance and ``binarize`` steps as the scores; then every
    value outside the scored labels and regions, and every voxel of the ignore label, becomes 0 on both
    sides. Raises like :func:`segdice.io.read_mask` for unreadable files.
    """
    gt, pred_array, pred_spacing, _ = _read_case(pair, spec)
    spacing = _case_spacing(spec, gt, pred_spacing)
    valid, pred_array, gt_array, _, _ = _scored_arrays(gt.array, pred_array, spec)
    ids = np.array(sorted({i for item in spec.items for i in item.ids}))
    shown = []
    for array in (pred_array, gt_array):
        keep = np.isin(array, ids) if valid is None else np.isin(array, ids) & valid
        shown.append(np.where(keep, array, 0))
    direction = gt.geometry.direction if gt.geometry is not None else None
    return CaseView(pred=shown[0], gt=shown[1], spacing=spacing, direction=direction)


@dataclass(frozen=True)
class CaseViews:
    """The report's :data:`~segdice.report.CaseReader` for a run: case name -> :func:`scored_view`."""

    pairs: Mapping[str, CasePair]
    spec: ScoringSpec

    def __call__(self, case: str) -> CaseView | None:
        pair = self.pairs.get(case)
        if pair is None:
            return None
        try:
            return scored_view(pair, self.spec)
        except Exception:  # a picture is not worth failing the report for; the rows say what went wrong
            return None


def _read_case(pair: CasePair, spec: ScoringSpec) -> tuple[Mask, np.ndarray, tuple[float, ...] | None, str]:
    """The ground truth, the prediction on its grid, the prediction's spacing, and a note.

    A missing prediction is an empty one. The geometry check is skipped when ``spec.spacing``
    overrides the headers.
    """
    gt = read_mask(pair.gt)
    if pair.pred is None:
        return gt, np.zeros_like(gt.array), gt.spacing, ""
    pred = read_mask(pair.pred)
    array, spacing, note = align_prediction(
        gt, pred, reorient=spec.reorient, compare_headers=spec.spacing is None
    )
    return gt, array, spacing, note


def _spacing_source(spec: ScoringSpec, gt: Mask, pred_spacing: tuple[float, ...] | None) -> str:
    """Where :func:`_case_spacing` found the spacing: ``"override"``, ``"header"`` or ``"none"`` (1 per axis)."""
    if spec.spacing is not None:
        return "override"
    return "header" if gt.spacing is not None or pred_spacing is not None else "none"


def _case_spacing(
    spec: ScoringSpec, gt: Mask, pred_spacing: tuple[float, ...] | None
) -> tuple[float, ...] | None:
    """The spacing to score with: the override, else the ground truth's, else the prediction's."""
    if spec.spacing is not None:
        spacing = spec.spacing
        if len(spacing) == 1:  # one number: the same spacing along every axis
            spacing = spacing * gt.array.ndim
        if len(spacing) != gt.array.ndim:
            raise SegDiceError(
                f"spacing: got {len(spacing)} value(s) {spacing} for masks of shape "
                f"{gt.array.shape}; expected one per axis"
            )
        return spacing
    return gt.spacing if gt.spacing is not None else pred_spacing


def _without_ignored(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pred_flat, gt_flat, pred, gt)``: the voxels to count, and the maps to take surfaces from.

    Ignored voxels (``valid`` False) leave the counts (the flat arrays hold only the others) and both
    surfaces (the maps have them set to background).
    """
    if valid is None:
        return pred.ravel(), gt.ravel(), pred, gt
    return pred[valid], gt[valid], np.where(valid, pred, 0), np.where(valid, gt, 0)


def _overlap(
    rows: dict[Item, dict],
    codes: tuple[np.ndarray, np.ndarray],
    flat: tuple[np.ndarray, np.ndarray],
    spec: ScoringSpec,
) -> None:
    """Counts and overlap metrics: labels from their codes (one multiclass pass), regions as masks."""
    wanted = [name for name in spec.metrics if name in OVERLAP_METRICS]
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
    for items, p, g, kwargs in groups:
        counts = confusion(p, g, **kwargs)
        # One counting pass serves every metric.
        scores = {name: score_from_counts(name, *counts, empty_value=spec.empty_value) for name in wanted}
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


def _across_labels(row: dict, codes: tuple[np.ndarray, np.ndarray], n_labels: int, spec: ScoringSpec) -> None:
    """The across-label metrics of a case: the generalized Dice of every scored label (the codes ``1..n``
    of the labels, 0 the rest; regions overlap labels and are left out), square weights."""
    if "gds" not in spec.metrics:
        return
    if n_labels == 0:  # only regions are scored: no label to weigh
        row["gds"] = math.nan
        return
    value = generalized_dice_score(
        torch.from_numpy(codes[0][None]),
        torch.from_numpy(codes[1][None]),
        num_classes=n_labels + 1,
        include_background=False,
        empty_value=spec.empty_value,
    )
    row["gds"] = float(value[0])


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
    result = boundary_metrics(
        pred,
        gt,
        labels=[item.key for item in spec.items],
        spacing=spacing,
        metrics=wanted,
        nsd_tolerance=spec.nsd_tolerance,
        pooled=spec.hd_pooled,
        surface=spec.surface,
    )
    for item in spec.items:
        values = result[item.key]
        for name in wanted:
            rows[item][name] = float(values[name])
