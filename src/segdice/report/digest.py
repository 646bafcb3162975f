"""What a reader needs first from a summary: each metric's unit, and which labels did worst.

Shared by the HTML report and the terminal summary, so both say the same thing. Everything here reads
the plain ``summary`` dict (``summary.json``); nothing imports the evaluator.
"""

from __future__ import annotations

import math

__all__ = [
    "DISTANCE_METRICS",
    "across_label_metrics",
    "distance_unit",
    "label_metrics",
    "metric_unit",
    "ranking_metric",
    "worst_items",
]

# Metrics measured in the spacing's physical units (every other metric is a fraction in [0, 1]).
# Lower is better for these; higher is better for the others.
DISTANCE_METRICS: tuple[str, ...] = ("hd", "hd95", "assd", "masd")


def distance_unit(spacing_sources: dict[str, int]) -> str:
    """The unit of a run's distances, from how many scored cases took their spacing from where.

    ``spacing_sources`` counts the scored cases by the ``spacing_source`` of their rows: ``"header"`` (the
    file's own spacing: NIfTI, ITK and DICOM store mm), ``"override"`` (``--spacing``, whose unit segdice
    cannot know) or ``"none"`` (a file without spacing, PNG or NumPy: 1 per axis, distances in voxels).

    Returns
    -------
    str
        ``"mm"`` only when every scored case had its spacing from its header; ``"spacing units"`` with an
        override; ``"voxels"`` when no case had a spacing; ``"mm or voxels"`` for a mix (the per-case
        rows say which is which); ``"mm"`` when nothing was scored.

    Examples
    --------
    >>> distance_unit({"header": 3}), distance_unit({"none": 2}), distance_unit({"header": 1, "none": 1})
    ('mm', 'voxels', 'mm or voxels')
    >>> distance_unit({"override": 4})
    'spacing units'
    """
    counts = {source: n for source, n in spacing_sources.items() if n}
    if counts.get("override"):
        return "spacing units"
    if counts.get("none"):
        return "mm or voxels" if counts.get("header") else "voxels"
    return "mm"


def metric_unit(metric: str, summary: dict) -> str:
    """The unit of ``metric``'s values: ``""`` for a fraction, else the run's distance unit.

    The distance unit is the summary's ``distance_unit`` (see :func:`distance_unit`). A summary written
    before that key existed gives ``"spacing units"`` with a spacing override and ``"mm"`` otherwise.

    Examples
    --------
    >>> metric_unit("hd95", {"distance_unit": "voxels"})
    'voxels'
    >>> metric_unit("hd95", {"inputs": {"spacing_override": [1.0, 1.0]}})
    'spacing units'
    >>> metric_unit("dice", {"distance_unit": "mm"})
    ''
    """
    if metric not in DISTANCE_METRICS:
        return ""
    if "distance_unit" in summary:
        return summary["distance_unit"]
    return "spacing units" if summary["inputs"].get("spacing_override") is not None else "mm"


def across_label_metrics(summary: dict) -> list[str]:
    """The metrics scored once per case over every label (``gds``), kept in ``results["all"]``.

    Examples
    --------
    >>> across_label_metrics({"across_labels": {"item": "all", "metrics": ["gds"]}}), across_label_metrics({})
    (['gds'], [])
    """
    return list((summary.get("across_labels") or {}).get("metrics", []))


def label_metrics(summary: dict) -> list[str]:
    """The metrics of the per-label/region statistics: every metric of the run but the across-label ones.

    Examples
    --------
    >>> label_metrics({"inputs": {"metrics": ["dice", "gds"]}, "across_labels": {"metrics": ["gds"]}})
    ['dice']
    """
    across = across_label_metrics(summary)
    return [m for m in summary["inputs"]["metrics"] if m not in across]


def ranking_metric(metrics: list[str] | tuple[str, ...]) -> str | None:
    """The metric that orders labels from worst to best: Dice when scored, else the first one.

    Examples
    --------
    >>> ranking_metric(["hd95", "dice"]), ranking_metric(["hd95"]), ranking_metric([])
    ('dice', 'hd95', None)
    """
    if "dice" in metrics:
        return "dice"
    return metrics[0] if metrics else None


def worst_items(summary: dict, limit: int) -> list[str]:
    """The names of at most ``limit`` items (labels/regions), worst mean first, by :func:`ranking_metric`.

    Items without a mean (NaN) come last; ties keep the summary's order.

    Examples
    --------
    >>> summary = {
    ...     "inputs": {"metrics": ["dice"]},
    ...     "items": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
    ...     "results": {"a": {"dice": {"mean": 0.9}}, "b": {"dice": {"mean": 0.2}},
    ...                 "c": {"dice": {"mean": float("nan")}}},
    ... }
    >>> worst_items(summary, 2)
    ['b', 'a']
    """
    metric = ranking_metric(label_metrics(summary))
    names = [item["name"] for item in summary["items"]]
    if metric is None:
        return names[:limit]
    sign = 1.0 if metric in DISTANCE_METRICS else -1.0  # worst first: the largest distance, lowest Dice

    def key(position: int) -> tuple[bool, float, int]:
        mean = summary["results"][names[position]][metric]["mean"]
        missing = mean is None or math.isnan(mean)
        return missing, 0.0 if missing else -sign * mean, position

    return [names[i] for i in sorted(range(len(names)), key=key)[:limit]]
