"""The arguments of :func:`segdice.evaluation.evaluate`, checked once and frozen into :class:`Options`.

Every check raises :class:`~segdice.SegDiceError` naming the argument, before any file is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from segdice._checks import SegDiceError, check_choice, check_number
from segdice.evaluation._labels import parse_label_list, read_label_names
from segdice.evaluation._metric_names import ALL_METRICS, DEFAULT_METRICS
from segdice.evaluation._scoring import Item

__all__ = ["ALL_METRICS", "DEFAULT_METRICS", "Options", "build_items", "normalise_options"]

#: The HD percentile definitions of ``evaluate(hd95=...)``: the larger directed one, or both directions pooled.
HD95_DEFINITIONS: tuple[str, ...] = ("max", "pooled")
#: The surfaces of the distance metrics (``evaluate(surface=...)``): surface voxels or DeepMind's surfels.
SURFACES: tuple[str, ...] = ("voxels", "surfels")
_EMPTY_POLICIES = {"nan": math.nan, "0": 0.0, "1": 1.0}


@dataclass(frozen=True)
class Options:
    """The checked arguments of one evaluation (see :func:`segdice.evaluation.evaluate`).

    ``labels`` is ``"auto"`` until the cases have been read, or the sorted foreground labels (``(1,)``
    with ``binarize``); ``label_names`` maps a label to its display name; ``regions`` holds the
    regions of a dataset.json, then those passed; ``empty_key`` is the policy's name and
    ``empty_value`` its number.
    """

    pred: str | os.PathLike[str]
    gt: str | os.PathLike[str]
    out: Path | None
    labels: str | tuple[int, ...]
    label_names: dict[int, str]
    regions: tuple[Item, ...]
    ignore_label: int | None
    metrics: tuple[str, ...]
    nsd_tolerance: float
    spacing: tuple[float, ...] | None
    empty_key: str
    empty_value: float
    workers: int
    pred_suffix: str
    gt_suffix: str
    resume: bool
    reorient: bool = False
    binarize: bool = False
    recursive: bool = False
    pred_glob: str | None = None
    gt_glob: str | None = None
    hd95: str = "max"
    surface: str = "voxels"

    @property
    def csv_path(self) -> Path | None:
        """``out/per_case.csv``, or ``None`` when nothing is written."""
        return self.out / "per_case.csv" if self.out is not None else None


def normalise_options(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None,
    labels: str | Sequence[int],
    label_names: Mapping[str, int] | Mapping[int, str] | str | os.PathLike[str] | None,
    regions: Mapping[str, Sequence[int] | str] | None,
    ignore_label: int | None,
    metrics: str | Sequence[str],
    nsd_tolerance: float,
    spacing: Sequence[float] | None,
    empty: str,
    workers: int | None,
    pred_suffix: str,
    gt_suffix: str,
    resume: bool,
    reorient: bool = False,
    binarize: bool = False,
    recursive: bool = False,
    pred_glob: str | None = None,
    gt_glob: str | None = None,
    hd95: str = "max",
    surface: str = "voxels",
) -> Options:
    """Check every argument of :func:`~segdice.evaluation.evaluate` and return them as :class:`Options`.

    Raises
    ------
    SegDiceError
        For the first invalid argument, in the order of the signature.

    Examples
    --------
    >>> options = normalise_options(
    ...     "pred", "gt", out=None, labels=[2, 1, 2], label_names={"liver": 1}, regions=None,
    ...     ignore_label=None, metrics="Dice, hd95", nsd_tolerance=1, spacing=None, empty="0",
    ...     workers=1, pred_suffix="", gt_suffix="", resume=False,
    ... )
    >>> options.labels, options.label_names, options.metrics, options.empty_value
    ((1, 2), {1: 'liver'}, ('dice', 'hd95'), 0.0)
    """
    metric_names = _parse_metrics(metrics)
    check_choice("hd95", hd95, HD95_DEFINITIONS)
    check_choice("surface", surface, SURFACES)
    if hd95 == "pooled" and surface == "surfels":
        raise SegDiceError(
            "hd95: got 'pooled' with surface='surfels'; expected surface='voxels' (medpy's pooled HD95)"
        )
    empty_key, empty_value = _parse_empty(empty)
    check_number("nsd_tolerance", nsd_tolerance, minimum=0, strict_min=True)
    if ignore_label is not None:
        ignore_label = _as_int("ignore_label", ignore_label)
    if spacing is not None:
        if isinstance(spacing, (int, float)) or not len(spacing):
            raise SegDiceError(f"spacing: got {spacing!r}; expected one value per array axis")
        spacing = tuple(float(check_number("spacing", s, minimum=0, strict_min=True)) for s in spacing)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = _as_int("workers", workers)
    if workers < 1:
        raise SegDiceError(f"workers: got {workers}; expected a value >= 1 (or None for every core)")
    names, named_regions = read_label_names(label_names) if label_names else ({}, {})
    region_items = _regions(named_regions) + _regions(regions)
    if isinstance(labels, str) and labels.strip().lower() != "auto":
        labels = parse_label_list("labels", labels)  # "1,2" or "1-3"
    elif isinstance(labels, str):
        labels = "auto"
    if not (isinstance(labels, str) and labels == "auto"):
        if isinstance(labels, (str, int)):
            raise SegDiceError(f"labels: got {labels!r}; expected 'auto' or a list of integer labels")
        labels = tuple(sorted({_as_int("labels", v) for v in labels}))
        if 0 in labels:
            raise SegDiceError("labels: 0 is the background and is not scored; list foreground labels only")
    if binarize:
        if labels != "auto" and labels != (1,):
            raise SegDiceError(
                f"binarize: scores one foreground class (1); got labels {list(labels)}; "
                "leave labels at 'auto' (or pass [1])"
            )
        if region_items:
            raise SegDiceError(
                f"binarize: every value > 0 is one class, so regions mean nothing; got regions "
                f"{[item.name for item in region_items]}"
            )
        labels = (1,)
    for name, pattern in (("pred_glob", pred_glob), ("gt_glob", gt_glob)):
        if pattern is not None and (not isinstance(pattern, str) or not pattern):
            raise SegDiceError(f"{name}: got {pattern!r}; expected a glob pattern such as '*.nii.gz'")
    if resume and out is None:
        raise SegDiceError("resume: needs out, the folder whose per_case.csv holds the finished cases")
    return Options(
        pred=pred,
        gt=gt,
        out=Path(out) if out is not None else None,
        labels=labels,  # type: ignore[arg-type]
        label_names=names,
        regions=region_items,
        ignore_label=ignore_label,
        metrics=metric_names,
        nsd_tolerance=float(nsd_tolerance),
        spacing=spacing,  # type: ignore[arg-type]
        empty_key=empty_key,
        empty_value=empty_value,
        workers=workers,
        pred_suffix=pred_suffix,
        gt_suffix=gt_suffix,
        resume=bool(resume),
        reorient=bool(reorient),
        binarize=bool(binarize),
        recursive=bool(recursive),
        pred_glob=pred_glob,
        gt_glob=gt_glob,
        hd95=hd95,
        surface=surface,
    )


def build_items(labels: Sequence[int], options: Options) -> tuple[Item, ...]:
    """The labels (named by ``options.label_names``), then the regions; names must be unique.

    Examples
    --------
    >>> options = normalise_options(
    ...     "pred", "gt", out=None, labels="auto", label_names={1: "liver"}, regions={"all": [1, 2]},
    ...     ignore_label=None, metrics="dice", nsd_tolerance=1, spacing=None, empty="nan",
    ...     workers=1, pred_suffix="", gt_suffix="", resume=False,
    ... )
    >>> [(item.name, item.label_text) for item in build_items([1, 2], options)]
    [('liver', '1'), ('2', '2'), ('all', '1+2')]
    """
    items = [Item(name=options.label_names.get(label, str(label)), ids=(label,)) for label in labels]
    items += options.regions
    seen: dict[str, Item] = {}
    for item in items:
        if item.name in seen:
            raise SegDiceError(
                f"labels/regions: the name {item.name!r} is used by both {seen[item.name].label_text} and "
                f"{item.label_text}; names must be unique"
            )
        seen[item.name] = item
    return tuple(items)


def _as_int(name: str, value: object) -> int:
    check_number(name, value, integer=True)
    return int(value)  # type: ignore[arg-type]


def _parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    names = [m.strip().lower() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise SegDiceError(f"metrics: got {metrics!r}; expected names from {', '.join(ALL_METRICS)}")
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise SegDiceError(f"metrics: got unknown {unknown}; expected names from {', '.join(ALL_METRICS)}")
    return tuple(dict.fromkeys(names))


def _parse_empty(empty: str | float) -> tuple[str, float]:
    key = str(empty).strip().lower()
    key = {"0.0": "0", "1.0": "1"}.get(key, key)
    if key not in _EMPTY_POLICIES:
        raise SegDiceError(f"empty: got {empty!r}; expected one of 'nan', '0', '1'")
    return key, _EMPTY_POLICIES[key]


def _regions(regions: Mapping[str, Sequence[int] | str] | None) -> tuple[Item, ...]:
    """Region items; a region's labels are a list of integers or a text such as ``"1-3,5"``."""
    items = []
    for name, labels in (regions or {}).items():
        if not isinstance(name, str) or not name:
            raise SegDiceError(f"regions: got name {name!r}; expected a non-empty string")
        if isinstance(labels, str):
            labels = parse_label_list(f"regions[{name!r}]", labels)
        if isinstance(labels, int) or not len(labels):
            raise SegDiceError(f"regions[{name!r}]: got {labels!r}; expected a non-empty list of labels")
        ids = tuple(sorted({_as_int(f"regions[{name!r}]", v) for v in labels}))
        items.append(Item(name=name, ids=ids, region=True))
    return tuple(items)
