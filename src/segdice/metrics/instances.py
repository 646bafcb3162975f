"""Instance and lesion-wise scores: connected components, object matching, detection, PQ, AJI, BraTS.

Semantic Dice hides a missed 5-voxel metastasis behind a well-segmented 50,000-voxel tumour; these
scores count objects. Inputs are binary masks, whose objects are their connected components
(``instances="components"``), or instance label maps, where every positive value is one object
(``instances="labels"``, as in nuclei masks). Volumes are in the cube of the units of ``spacing``
(mm³ for NIfTI spacings), distances in its units.

Matching (:func:`match_instances`):

* ``"hungarian"``: the one-to-one assignment of largest total score among the pairs whose score
  (``criterion``: IoU, Dice, or ``"overlap"`` = the share of the target covered) is > ``threshold``
  (SciPy ``linear_sum_assignment``). With IoU > 0.5 a pair can only be matched one way, so every
  one-to-one method agrees (panoptic quality's rule).
* ``"greedy"``: pairs by descending score, each object used once.
* ``"overlap"``: one-to-one, any shared voxel is enough; the most pairs, then the largest total score.
* ``"brats"``: the BraTS 2023 rule (``rachitsaluja/BraTS-2023-Metrics``): target components closer than
  ``dilation`` dilations (faces+edges element, the 18-neighbourhood in 3-D) merge into one lesion that
  keeps only its own voxels; each lesion takes, whole, every predicted component that touches its own
  dilation (many-to-many).

``dilation > 0`` merges nearby target components for every method, as BraTS does.

Aggregates (:func:`instance_scores`): targets of volume <= ``min_volume`` leave every count, and a
prediction matched only to such targets is no false positive (BraTS). With TP, FN the counted targets
with and without a match and FP the unmatched predictions:

* detection ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``f1 = 2TP / (2TP + FP + FN)``;
* panoptic ``pq = Σ_TP IoU / (TP + FP/2 + FN/2)``, ``sq = mean IoU over TP``, ``rq = f1``;
* ``lesion_<m> = (Σ_targets m + FP · penalty) / (TP + FN + FP)`` where a missed target and a false
  positive score the penalty: 0 for Dice and IoU, ``worst_case`` for distances (BraTS's lesion-wise
  score); with no target and no false positive it is 1 (Dice, IoU) or 0 (distances), as in BraTS;
* ``matched_<m>``: the mean of ``m`` over the matched targets.

Undefined ratios (no object on either side) are NaN, except the ``lesion_`` scores above.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segdice._arrays import to_numpy
from segdice._checks import SegDiceError, check_choice, check_number, check_spacing, describe
from segdice.metrics._components import (
    ObjectTable,
    box_union,
    diagonal,
    dilate_in_box,
    label_mask,
    merge_by_dilation,
    overlap_table,
    pad_box,
    volume_of,
)
from segdice.metrics._masks import binary_mask, whole_float_labels
from segdice.metrics._matching import match_greedy, match_optimal, pair_score
from segdice.metrics.surface import boundary_metrics

__all__ = [
    "BRATS_CHALLENGES",
    "BRATS_REGIONS",
    "BRATS_WORST_CASE",
    "INSTANCE_METRICS",
    "BratsLesionScores",
    "InstanceMatching",
    "InstanceScores",
    "aggregated_jaccard_index",
    "brats_lesion_scores",
    "instance_scores",
    "label_components",
    "match_instances",
    "panoptic_quality",
]

#: ``challenge -> (dilation, min_volume in mm³)`` of the BraTS 2023 lesion-wise evaluation.
BRATS_CHALLENGES: dict[str, tuple[int, float]] = {
    "GLI": (3, 50.0),
    "SSA": (3, 50.0),
    "MEN": (1, 50.0),
    "PED": (3, 50.0),
    "MET": (1, 2.0),
}
#: The BraTS regions: whole tumour, tumour core, enhancing tumour (labels 1 NCR, 2 SNFH, 3 ET).
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
#: The distance BraTS reports for a missed lesion, a false positive and any infinite HD95 (mm).
BRATS_WORST_CASE = 374.0

#: Per-object metrics of :func:`instance_scores` (besides ``"hd<p>"`` for any percentile ``p``).
INSTANCE_METRICS: tuple[str, ...] = ("dice", "iou", "hd", "hd95", "assd", "masd")

_INSTANCES = ("components", "labels")
_CRITERIA = ("iou", "dice", "overlap")
_METHODS = ("hungarian", "greedy", "overlap", "brats")
_SURFACES = ("voxels", "surfels")
_OVERLAP_METRICS = ("dice", "iou")
_PERCENTILE_NAME = re.compile(r"^hd(\d+(?:\.\d+)?)$")


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceMatching:
    """Which predicted objects were matched to which target objects.

    Attributes
    ----------
    pairs
        ``(pred_ids, target_id, score)`` per matched target, ascending ``target_id``. ``pred_ids`` is a
        tuple: one id for the one-to-one methods, every touching component for ``"brats"``; ``score`` is
        the ``criterion`` of the target against the union of its predictions.
    unmatched_pred, unmatched_target
        Ids of the objects without a partner, ascending.
    pred_labels, target_labels
        The object maps the ids refer to (components, instance labels, or the merged lesions of
        ``dilation > 0``), int32. A label map with ids above ``max(2**24, 4 * size)`` is renumbered 1..n in
        id order here (tables sized by a 2**40 id would not fit); the rows of :class:`InstanceScores`
        give the input's ids.
    """

    pairs: list[tuple[tuple[int, ...], int, float]]
    unmatched_pred: list[int]
    unmatched_target: list[int]
    pred_labels: np.ndarray = field(repr=False, compare=False)
    target_labels: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class InstanceScores:
    """Object-level scores of one image (see the module for every definition).

    Attributes
    ----------
    rows
        One dict per object: ``side`` (``"target"``/``"pred"``), ``id`` (the input's id for
        ``instances="labels"``, the component or merged-lesion number otherwise), ``voxels``, ``volume``,
        ``matched`` (ids of its partners), ``status`` (target: ``"tp"``, ``"fn"``, ``"small"`` under
        ``min_volume``; pred: ``"tp"``, ``"fp"``, ``"ignored"`` when matched only to small targets) and
        every metric, measured against the union of its partners (the penalty when it has none).
    tp, fp, fn
        Object counts.
    precision, recall, f1, pq, sq, rq
        Detection and panoptic scores.
    lesion, matched
        ``{metric: value}``: the lesion-wise aggregate and the mean over matched targets, also read as
        attributes ``lesion_<metric>`` / ``matched_<metric>``.
    matching
        The :class:`InstanceMatching` behind the scores.
    """

    rows: list[dict[str, Any]]
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    pq: float
    sq: float
    rq: float
    lesion: dict[str, float]
    matched: dict[str, float]
    matching: InstanceMatching = field(repr=False, compare=False)

    def __getattr__(self, name: str) -> float:
        for prefix in ("lesion_", "matched_"):
            if name.startswith(prefix):
                values = object.__getattribute__(self, prefix[:-1])
                if name[len(prefix) :] in values:
                    return values[name[len(prefix) :]]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def summary(self) -> dict[str, float]:
        """Every aggregate as one flat dict: counts, detection, panoptic, ``lesion_*``, ``matched_*``."""
        out: dict[str, float] = {"tp": self.tp, "fp": self.fp, "fn": self.fn}
        for name in ("precision", "recall", "f1", "pq", "sq", "rq"):
            out[name] = getattr(self, name)
        out.update({f"lesion_{k}": v for k, v in self.lesion.items()})
        out.update({f"matched_{k}": v for k, v in self.matched.items()})
        return out


class BratsLesionScores(Mapping):
    """BraTS 2023 scores per region: ``result["WT"]["lesion_dice"]``; ``result.objects["WT"]`` holds the
    :class:`InstanceScores` (per-lesion rows) behind them."""

    def __init__(self, regions: dict[str, dict[str, float]], objects: dict[str, InstanceScores]) -> None:
        self._regions = regions
        self.objects = objects

    def __getitem__(self, region: str) -> dict[str, float]:
        return self._regions[region]

    def __iter__(self) -> Iterator[str]:
        return iter(self._regions)

    def __len__(self) -> int:
        return len(self._regions)

    def __repr__(self) -> str:
        return f"BratsLesionScores({self._regions!r})"


# --- input handling -----------------------------------------------------------------------------


def _check_pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = to_numpy("pred", pred), to_numpy("target", target)
    if p.shape != t.shape:
        raise SegDiceError(
            f"pred and target must have the same shape: got pred {p.shape} and target {t.shape}"
        )
    if p.ndim < 1 or 0 in p.shape:
        raise SegDiceError(f"pred: got {describe(p, values=False)}; expected a non-empty [*spatial] array")
    return p, t


def _check_connectivity(connectivity: Any, ndim: int) -> int:
    if connectivity is None:
        return ndim
    if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)):
        raise SegDiceError(f"connectivity: got {connectivity!r}; expected an int from 1 to {ndim}")
    if not 1 <= int(connectivity) <= ndim:
        raise SegDiceError(
            f"connectivity: got {connectivity}; expected 1 (faces) to {ndim} (corners) for {ndim}-D masks"
        )
    return int(connectivity)


_LABELS_HINT = "for instances='components' (pass instances='labels' for an instance label map)"


def _instance_labels(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == bool:
        return x.astype(np.int32)
    if np.issubdtype(x.dtype, np.floating):
        x = whole_float_labels(name, x, expected="an instance label map of finite whole numbers")
    elif not np.issubdtype(x.dtype, np.integer):
        raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected an integer instance label map")
    if x.size and int(x.min()) < 0:
        raise SegDiceError(f"{name}: got {describe(x)}; expected instance ids >= 0 (0 is background)")
    return x


def _objects(
    name: str, x: np.ndarray, instances: str, connectivity: int
) -> tuple[ObjectTable, np.ndarray | None]:
    """The object table, and for renumbered ids the file's id of each table id (``None``: they are equal)."""
    if instances == "components":
        labels, n = label_mask(binary_mask(name, x, hint=_LABELS_HINT), connectivity)
        return ObjectTable(labels, n), None
    labels = _instance_labels(name, x)
    top = int(labels.max())
    if top <= max(1 << 24, 4 * labels.size):
        return ObjectTable(labels, top), None
    # Sparse huge ids (2**40): tables sized by the largest id would not fit; number them 1..n in id order
    # and keep the file's ids to report.
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:
        values = np.concatenate([np.zeros(1, dtype=values.dtype), values])
        inverse = inverse + 1
    labels = inverse.reshape(labels.shape).astype(np.int32)
    return ObjectTable(labels, len(values) - 1), values


def _check_metrics(metrics: Any) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if not names:
        raise SegDiceError(
            f"metrics: got an empty sequence; expected names from {', '.join(INSTANCE_METRICS)}"
        )
    for name in names:
        if name in INSTANCE_METRICS:
            continue
        match = _PERCENTILE_NAME.match(name) if isinstance(name, str) else None
        if match is None or not 0 <= float(match.group(1)) <= 100:
            raise SegDiceError(
                f"metrics: got {name!r}; expected names from {', '.join(INSTANCE_METRICS)} "
                "(or 'hd<p>' for the p-th percentile HD)"
            )
    return names


# --- matching -----------------------------------------------------------------------------------


class _Matched:
    """Both object tables, their overlaps and the matching: everything the scores need."""

    def __init__(
        self,
        pred: np.ndarray,
        target: np.ndarray,
        *,
        instances: str,
        connectivity: Any,
        criterion: str,
        threshold: Any,
        method: str,
        dilation: Any,
    ) -> None:
        p, t = _check_pair(pred, target)
        check_choice("instances", instances, _INSTANCES)
        check_choice("criterion", criterion, _CRITERIA)
        check_choice("method", method, _METHODS)
        self.threshold = float(check_number("threshold", threshold, minimum=0, maximum=1))
        self.dilation = int(check_number("dilation", dilation, minimum=0, integer=True))
        conn = _check_connectivity(connectivity, p.ndim)
        self.shape = p.shape
        self.criterion = criterion
        self.P, self.pred_ids = _objects("pred", p, instances, conn)
        self.T, self.target_ids = _objects("target", t, instances, conn)
        if self.dilation:
            self.T = merge_by_dilation(self.T, self.dilation)
            self.target_ids = None  # the merged lesions have numbers of their own
        self.overlap = overlap_table(self.P.labels, self.T.labels, self.T.n)
        # partners: target id -> pred ids, pred id -> target ids
        if method == "brats":
            self.of_target = self._touching()
        else:
            scores = {pt: self._score((pt[0],), pt[1]) for pt in self.overlap}
            if method == "overlap":
                chosen = match_optimal(scores, scores, most_pairs=True)
            else:
                candidates = [pt for pt, s in scores.items() if s > self.threshold]
                solve = match_optimal if method == "hungarian" else match_greedy
                chosen = solve(scores, candidates)
            self.of_target = {t_id: (p_id,) for p_id, t_id in chosen}
        of_pred: dict[int, list[int]] = {}
        for t_id, p_ids in self.of_target.items():
            for p_id in p_ids:
                of_pred.setdefault(p_id, []).append(t_id)
        self.of_pred = {p_id: tuple(sorted(ts)) for p_id, ts in of_pred.items()}

    def _touching(self) -> dict[int, tuple[int, ...]]:
        """BraTS: every pred component with a voxel in the target's own dilation, per target."""
        found = {}
        for t_id in self.T.ids():
            box = pad_box(self.T.boxes[t_id], self.dilation, self.shape)
            reach = dilate_in_box(self.T.labels[box] == t_id, self.dilation)
            hits = np.unique(self.P.labels[box][reach])
            hits = tuple(int(h) for h in hits if h)
            if hits:
                found[t_id] = hits
        return found

    def inter(self, p_ids: Sequence[int], t_ids: Sequence[int]) -> int:
        return sum(self.overlap.get((p, t), 0) for p in p_ids for t in t_ids)

    def _score(self, p_ids: Sequence[int], t_id: int) -> float:
        size_p = int(sum(self.P.sizes[p] for p in p_ids))
        return pair_score(self.criterion, self.inter(p_ids, (t_id,)), size_p, int(self.T.sizes[t_id]))

    def file_id(self, side: str, obj_id: int) -> int:
        """The id ``obj_id`` of the ``side`` table has in the input (they differ only when renumbered)."""
        ids = self.pred_ids if side == "pred" else self.target_ids
        return obj_id if ids is None else int(ids[obj_id])

    def matching(self) -> InstanceMatching:
        pairs = [(p_ids, t_id, self._score(p_ids, t_id)) for t_id, p_ids in sorted(self.of_target.items())]
        return InstanceMatching(
            pairs=pairs,
            unmatched_pred=[p for p in self.P.ids() if p not in self.of_pred],
            unmatched_target=[t for t in self.T.ids() if t not in self.of_target],
            pred_labels=self.P.labels,
            target_labels=self.T.labels,
        )


def label_components(
    mask: np.ndarray | torch.Tensor, *, connectivity: int | None = None
) -> tuple[np.ndarray, int]:
    """Connected components of a binary mask.

    Parameters
    ----------
    mask
        Binary mask ``[*spatial]`` (bool or 0/1), NumPy array or torch tensor, any number of dimensions.
    connectivity
        Which neighbours connect: 1 = faces (4 in 2-D, 6 in 3-D), 2 = faces and edges (8, 18), ``ndim``
        = faces, edges and corners (8, 26; the default).

    Returns
    -------
    (numpy.ndarray, int)
        int32 labels (0 background, components 1..n numbered in C raster order of their first voxel)
        and ``n``.

    Raises
    ------
    SegDiceError
        The mask is not binary, is empty of voxels, or ``connectivity`` is not in 1..ndim.

    Examples
    --------
    >>> m = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    >>> label_components(m)[1], label_components(m, connectivity=1)[1]
    (1, 3)
    >>> label_components(m, connectivity=1)[0].tolist()
    [[1, 0, 0], [0, 2, 0], [0, 0, 3]]
    """
    x = to_numpy("mask", mask)
    if x.ndim < 1 or 0 in x.shape:
        raise SegDiceError(f"mask: got {describe(x, values=False)}; expected a non-empty [*spatial] array")
    return label_mask(binary_mask("mask", x, hint=_LABELS_HINT), _check_connectivity(connectivity, x.ndim))


def match_instances(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    instances: str = "components",
    connectivity: int | None = None,
    criterion: str = "iou",
    threshold: float = 0.5,
    method: str = "hungarian",
    dilation: int = 0,
) -> InstanceMatching:
    """Match predicted objects to target objects.

    Parameters
    ----------
    pred, target
        Binary masks (``instances="components"``) or instance label maps (``"labels"``), same shape.
    instances
        ``"components"``: objects are the connected components; ``"labels"``: every value > 0 is one
        object.
    connectivity
        Of the components (see :func:`label_components`); default ``ndim``.
    criterion
        Pair score: ``"iou"``, ``"dice"`` or ``"overlap"`` (shared voxels / target voxels).
    threshold
        A pair is a candidate when its score is > ``threshold`` (``"hungarian"``, ``"greedy"``).
    method
        ``"hungarian"`` (optimal one-to-one), ``"greedy"``, ``"overlap"`` (any shared voxel) or
        ``"brats"`` (BraTS 2023 many-to-many via ``dilation``); see the module.
    dilation
        Dilations (faces+edges element) that merge nearby target objects; for ``"brats"`` also the
        reach within which a prediction touches a lesion.

    Returns
    -------
    InstanceMatching

    Raises
    ------
    SegDiceError
        Shapes differ, a mask is not binary (components) or not integer (labels), or an option is invalid.

    Examples
    --------
    >>> gt = np.zeros((1, 12), dtype=bool); gt[0, 0:4] = gt[0, 7:9] = True
    >>> pr = np.zeros((1, 12), dtype=bool); pr[0, 1:4] = pr[0, 9:11] = True
    >>> m = match_instances(pr, gt)
    >>> m.pairs, m.unmatched_pred, m.unmatched_target
    ([((1,), 1, 0.75)], [2], [2])
    >>> match_instances(pr, gt, method="brats", dilation=1).pairs  # 9:11 touches 7:9 grown by one
    [((1,), 1, 0.75), ((2,), 2, 0.0)]
    """
    return _Matched(
        pred,
        target,
        instances=instances,
        connectivity=connectivity,
        criterion=criterion,
        threshold=threshold,
        method=method,
        dilation=dilation,
    ).matching()


# --- scores -------------------------------------------------------------------------------------


class _PairValues:
    """Metrics of an object against the union of its partners, cached per (preds, targets)."""

    def __init__(
        self, m: _Matched, names: tuple[str, ...], spacing: tuple[float, ...], surface: str, worst: float
    ) -> None:
        self.m, self.names, self.spacing, self.surface, self.worst = m, names, spacing, surface, worst
        self.distance_names = tuple(n for n in names if n not in _OVERLAP_METRICS)
        self.cache: dict[tuple[tuple[int, ...], tuple[int, ...]], dict[str, float]] = {}

    def penalty(self) -> dict[str, float]:
        out = {n: (0.0 if n in _OVERLAP_METRICS else self.worst) for n in self.names}
        out.update(iou_=0.0)
        return out

    def values(self, p_ids: tuple[int, ...], t_ids: tuple[int, ...]) -> dict[str, float]:
        key = (p_ids, t_ids)
        if key in self.cache:
            return self.cache[key]
        m = self.m
        inter = m.inter(p_ids, t_ids)
        size_p = int(sum(m.P.sizes[p] for p in p_ids))
        size_t = int(sum(m.T.sizes[t] for t in t_ids))
        out: dict[str, float] = {}
        dice, iou = 2 * inter / (size_p + size_t), inter / (size_p + size_t - inter)
        for n in self.names:
            if n in _OVERLAP_METRICS:
                out[n] = dice if n == "dice" else iou
        out["iou_"] = iou
        if self.distance_names:
            box = box_union([m.P.boxes[p] for p in p_ids] + [m.T.boxes[t] for t in t_ids])
            pm = _member(m.P.labels[box], p_ids)
            tm = _member(m.T.labels[box], t_ids)
            extra = {} if self.surface == "voxels" else {"surface": self.surface}
            dist = boundary_metrics(
                pm,
                tm,
                labels=[1],
                spacing=self.spacing,
                metrics=self.distance_names,
                worst_case=self.worst,
                **extra,
            )[1]
            out.update(dist)
        self.cache[key] = out
        return out


def _member(labels: np.ndarray, ids: tuple[int, ...]) -> np.ndarray:
    if len(ids) == 1:
        return labels == ids[0]
    return np.isin(labels, ids)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def instance_scores(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    spacing: float | Sequence[float] | None = None,
    instances: str = "components",
    connectivity: int | None = None,
    criterion: str = "iou",
    threshold: float = 0.5,
    method: str = "hungarian",
    dilation: int = 0,
    min_volume: float = 0.0,
    metrics: Sequence[str] = ("dice", "iou", "hd95", "assd"),
    surface: str = "voxels",
    worst_case: float | None = None,
) -> InstanceScores:
    """Object-level scores: per-object rows, detection counts, panoptic quality, lesion-wise aggregates.

    Parameters
    ----------
    pred, target, instances, connectivity, criterion, threshold, method, dilation
        As :func:`match_instances`.
    spacing
        Voxel size per array axis (or one number); volumes and distances use it. Default 1.
    min_volume
        Targets of volume <= ``min_volume`` (units of ``spacing`` cubed) are left out of every count and
        aggregate, and predictions matched only to them are no false positives (BraTS).
    metrics
        Per-object metrics: ``"dice"``, ``"iou"``, ``"hd"``, ``"hd95"`` (``"hd<p>"``), ``"assd"``,
        ``"masd"``; distances as :func:`~segdice.metrics.hausdorff_distance`.
    surface
        ``"voxels"`` or ``"surfels"`` (DeepMind's area-weighted surfaces; what BraTS reports).
    worst_case
        Distance of a missed target or a false positive (default: the image diagonal).

    Returns
    -------
    InstanceScores

    Raises
    ------
    SegDiceError
        As :func:`match_instances`, or an invalid ``spacing``, ``min_volume``, ``metrics``, ``surface`` or
        ``worst_case``.

    Examples
    --------
    >>> gt = np.zeros((8, 8), dtype=bool); gt[1:3, 1:3] = gt[5:7, 5:7] = True
    >>> pr = np.zeros((8, 8), dtype=bool); pr[1:3, 1:3] = pr[5, 1] = True
    >>> s = instance_scores(pr, gt, metrics=("dice",))
    >>> s.tp, s.fp, s.fn, s.f1
    (1, 1, 1, 0.5)
    >>> s.lesion_dice, s.matched_dice, round(s.pq, 3)  # (1 + 0 + 0) / 3
    (0.3333333333333333, 1.0, 0.5)
    >>> [(r["side"], r["id"], r["status"]) for r in s.rows]
    [('target', 1, 'tp'), ('target', 2, 'fn'), ('pred', 1, 'tp'), ('pred', 2, 'fp')]
    """
    m = _Matched(
        pred,
        target,
        instances=instances,
        connectivity=connectivity,
        criterion=criterion,
        threshold=threshold,
        method=method,
        dilation=dilation,
    )
    spc = check_spacing("spacing", spacing, len(m.shape))
    floor = float(check_number("min_volume", min_volume, minimum=0))
    names = _check_metrics(metrics)
    check_choice("surface", surface, _SURFACES)
    if worst_case is None:
        worst = diagonal(m.shape, spc)
    else:
        worst = float(check_number("worst_case", worst_case, minimum=0, strict_min=True))
    pv = _PairValues(m, names, spc, surface, worst)
    penalty = pv.penalty()

    rows: list[dict[str, Any]] = []
    small: set[int] = set()
    target_values: list[dict[str, float]] = []
    for t_id in m.T.ids():
        voxels = int(m.T.sizes[t_id])
        volume = volume_of(voxels, spc)
        partners = m.of_target.get(t_id, ())
        values = pv.values(partners, (t_id,)) if partners else penalty
        if volume <= floor:
            small.add(t_id)
            status = "small"
        else:
            status = "tp" if partners else "fn"
            target_values.append({**values, "tp": bool(partners)})
        rows.append(_row(m, "target", t_id, voxels, volume, partners, status, values, names))
    fp = 0
    for p_id in m.P.ids():
        voxels = int(m.P.sizes[p_id])
        partners = m.of_pred.get(p_id, ())
        if not partners:
            status, values = "fp", penalty
            fp += 1
        else:
            status = "ignored" if all(t in small for t in partners) else "tp"
            values = pv.values((p_id,), partners)
        rows.append(_row(m, "pred", p_id, voxels, volume_of(voxels, spc), partners, status, values, names))

    tp = sum(1 for v in target_values if v["tp"])
    fn = len(target_values) - tp
    iou_sum = sum(v["iou_"] for v in target_values if v["tp"])
    lesion, matched = {}, {}
    for n in names:
        total = sum(v[n] for v in target_values) + fp * penalty[n]
        count = len(target_values) + fp
        lesion[n] = total / count if count else (1.0 if n in _OVERLAP_METRICS else 0.0)
        matched[n] = _ratio(sum(v[n] for v in target_values if v["tp"]), tp)
    return InstanceScores(
        rows=rows,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        pq=_ratio(iou_sum, tp + 0.5 * fp + 0.5 * fn),
        sq=_ratio(iou_sum, tp),
        rq=_ratio(tp, tp + 0.5 * fp + 0.5 * fn),
        lesion=lesion,
        matched=matched,
        matching=m.matching(),
    )


def _row(
    m: _Matched,
    side: str,
    obj_id: int,
    voxels: int,
    volume: float,
    partners: tuple[int, ...],
    status: str,
    values: dict[str, float],
    names: tuple[str, ...],
) -> dict[str, Any]:
    other = "target" if side == "pred" else "pred"
    row: dict[str, Any] = {
        "side": side,
        "id": m.file_id(side, obj_id),
        "voxels": voxels,
        "volume": volume,
        "matched": tuple(m.file_id(other, i) for i in partners),
        "status": status,
    }
    row.update({n: values[n] for n in names})
    return row


def panoptic_quality(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    instances: str = "components",
    threshold: float = 0.5,
    connectivity: int | None = None,
) -> dict[str, float]:
    """Panoptic quality (Kirillov et al. 2019) of one image and one class.

    ``PQ = Σ_TP IoU / (TP + FP/2 + FN/2) = SQ · RQ`` with pairs matched one-to-one at IoU >
    ``threshold`` (unique for ``threshold >= 0.5``; the optimal assignment below).

    Parameters
    ----------
    pred, target, instances, connectivity
        As :func:`match_instances`.
    threshold
        IoU a pair must exceed.

    Returns
    -------
    dict
        ``pq``, ``sq``, ``rq`` (NaN where undefined: ``sq`` without TP, all three without any object),
        ``tp``, ``fp``, ``fn``.

    Raises
    ------
    SegDiceError
        As :func:`match_instances`.

    Examples
    --------
    >>> gt = np.array([[1, 1, 0, 2, 2, 0, 3]])
    >>> pr = np.array([[1, 1, 0, 2, 0, 0, 0]])
    >>> panoptic_quality(pr, gt, instances="labels")
    {'pq': 0.4, 'sq': 1.0, 'rq': 0.4, 'tp': 1, 'fp': 1, 'fn': 2}
    """
    s = instance_scores(
        pred,
        target,
        instances=instances,
        connectivity=connectivity,
        criterion="iou",
        threshold=threshold,
        metrics=("iou",),
    )
    return {"pq": s.pq, "sq": s.sq, "rq": s.rq, "tp": s.tp, "fp": s.fp, "fn": s.fn}


def aggregated_jaccard_index(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    instances: str = "labels",
    connectivity: int | None = None,
) -> float:
    """Aggregated Jaccard index (AJI, Kumar et al. 2017), the nuclei-segmentation score.

    Every target object ``G_i`` takes the prediction ``S_j`` of largest IoU with it (a prediction may
    serve several targets); ``AJI = Σ_i |G_i ∩ S_j| / (Σ_i |G_i ∪ S_j| + Σ_unused |S_k|)``, where a target
    overlapping no prediction adds its own voxels to the denominator and every prediction chosen by no
    target adds its voxels (the rule of HoVer-Net's ``get_fast_aji``).

    Parameters
    ----------
    pred, target
        Instance label maps (default) or binary masks with ``instances="components"``.
    instances, connectivity
        As :func:`match_instances`.

    Returns
    -------
    float
        In [0, 1]; NaN when both are empty.

    Raises
    ------
    SegDiceError
        As :func:`match_instances`.

    Examples
    --------
    >>> gt = np.array([[1, 1, 1, 1, 0, 2, 2]])
    >>> pr = np.array([[1, 1, 0, 0, 0, 0, 3]])
    >>> aggregated_jaccard_index(pr, gt)  # (2 + 1) / (4 + 2)
    0.5
    """
    m = _Matched(
        pred,
        target,
        instances=instances,
        connectivity=connectivity,
        criterion="iou",
        threshold=0.5,
        method="greedy",
        dilation=0,
    )
    best: dict[int, tuple[float, int]] = {}
    for (p, t), inter in m.overlap.items():
        iou = inter / (m.P.sizes[p] + m.T.sizes[t] - inter)
        if t not in best or iou > best[t][0] or (iou == best[t][0] and p < best[t][1]):
            best[t] = (iou, p)
    inter_sum = union_sum = 0
    used = set()
    for t in m.T.ids():
        if t not in best:
            union_sum += int(m.T.sizes[t])
            continue
        p = best[t][1]
        used.add(p)
        inter = m.overlap[(p, t)]
        inter_sum += inter
        union_sum += int(m.P.sizes[p] + m.T.sizes[t]) - inter
    union_sum += sum(int(m.P.sizes[p]) for p in m.P.ids() if p not in used)
    return _ratio(inter_sum, union_sum)


# --- BraTS 2023 ---------------------------------------------------------------------------------


def _region_mask(labels: np.ndarray, members: tuple[int, ...]) -> np.ndarray:
    mask = labels == members[0]
    for m in members[1:]:
        mask |= labels == m
    return mask


def _legacy(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    """BraTS's whole-region Dice, HD95 (surfels, 374 for a miss), sensitivity and specificity."""
    from segdice.metrics.surface import hausdorff_distance

    n_p, n_g = int(pred.sum()), int(gt.sum())
    tp = int(np.count_nonzero(pred & gt))
    tn = int(np.count_nonzero(~pred & ~gt))
    fp, fn = n_p - tp, n_g - tp
    if n_p == 0 and n_g == 0:
        dice, hd95, sens = 1.0, 0.0, 1.0
    else:
        dice = 2 * tp / (n_p + n_g)
        hd95 = hausdorff_distance(
            pred, gt, spacing=spacing, percentile=95, surface="surfels", worst_case=BRATS_WORST_CASE
        )
        sens = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    return {
        "legacy_dice": dice,
        "legacy_hd95": hd95,
        "sensitivity": sens,
        "specificity": spec,
        "gt_volume": volume_of(n_g, spacing),
    }


def brats_lesion_scores(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    *,
    spacing: float | Sequence[float] | None,
    challenge: str = "GLI",
    regions: Mapping[str, Sequence[int]] | None = None,
) -> BratsLesionScores:
    """The BraTS 2023 lesion-wise evaluation of one case, number for number.

    Per region: components with full connectivity (26 in 3-D); ground-truth components within
    ``dilation`` dilations merge into one lesion; each lesion takes every predicted component touching
    its dilation (many-to-many); lesions of volume <= ``min_volume`` mm³ are dropped from both sides of
    the ratio; with L the remaining lesions and FP the predicted components touching no lesion,
    ``lesion_dice = Σ_L Dice / (|L| + FP)`` and ``lesion_hd95 = (Σ_L HD95 + 374 FP) / (|L| + FP)``, HD95 on
    surfels (DeepMind's ``compute_robust_hausdorff``), 374 for a missed lesion; no lesion and no false
    positive give 1 and 0. Per challenge ``(dilation, min_volume)``: GLI, SSA, PED (3, 50); MEN (1, 50);
    MET (1, 2) (:data:`BRATS_CHALLENGES`).

    Parameters
    ----------
    pred, target
        Label maps ``[*spatial]`` (BraTS: 1 NCR, 2 SNFH/ED, 3 ET).
    spacing
        Voxel size per array axis in mm (volumes and distances use it); ``None`` for 1 mm.
    challenge
        ``"GLI"``, ``"SSA"``, ``"MEN"``, ``"PED"`` or ``"MET"``.
    regions
        ``{name: labels}``; default :data:`BRATS_REGIONS` (WT 1-3, TC 1 and 3, ET 3).

    Returns
    -------
    BratsLesionScores
        Per region: ``lesion_dice``, ``lesion_hd95``, ``legacy_dice``, ``legacy_hd95``, ``tp``, ``fp``,
        ``fn`` (lesions), ``sensitivity``, ``specificity`` (voxels, BraTS's conventions: 1 when both are
        empty) and ``gt_volume``; ``.objects[region]`` holds the per-lesion rows.

    Raises
    ------
    SegDiceError
        Shapes differ, the maps are not integer, ``challenge`` or ``regions`` is invalid.

    Examples
    --------
    >>> gt = np.zeros((1, 8, 20), dtype=np.int64); gt[0, 2:6, 2:6] = 3  # 16 mm³
    >>> pr = np.zeros_like(gt); pr[0, 2:6, 2:6] = 3; pr[0, 4, 15] = 3   # plus a 1-voxel FP
    >>> et = brats_lesion_scores(pr, gt, spacing=(1, 1, 1), challenge="MET")["ET"]
    >>> et["tp"], et["fp"], et["lesion_dice"], et["lesion_hd95"]  # (1 + 0) / 2, (0 + 374) / 2
    (1, 1, 0.5, 187.0)
    """
    p, t = _check_pair(pred, target)
    p, t = _instance_labels("pred", p), _instance_labels("target", t)
    spc = check_spacing("spacing", spacing, p.ndim)
    check_choice("challenge", challenge, tuple(BRATS_CHALLENGES))
    dilation, floor = BRATS_CHALLENGES[challenge]
    items = dict(BRATS_REGIONS if regions is None else regions)
    if not items or not all(
        isinstance(k, str)
        and len(tuple(v)) > 0
        and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v)
        for k, v in items.items()
    ):
        raise SegDiceError(f"regions: got {regions!r}; expected {{name: labels}} such as {BRATS_REGIONS}")
    results: dict[str, dict[str, float]] = {}
    objects: dict[str, InstanceScores] = {}
    for name, members in items.items():
        pm, gm = _region_mask(p, tuple(members)), _region_mask(t, tuple(members))
        s = instance_scores(
            pm,
            gm,
            spacing=spc,
            method="brats",
            dilation=dilation,
            min_volume=floor,
            metrics=("dice", "hd95"),
            surface="surfels",
            worst_case=BRATS_WORST_CASE,
        )
        objects[name] = s
        results[name] = {
            "lesion_dice": s.lesion["dice"],
            "lesion_hd95": s.lesion["hd95"],
            "tp": s.tp,
            "fp": s.fp,
            "fn": s.fn,
            **_legacy(pm, gm, spc),
        }
    return BratsLesionScores(results, objects)
