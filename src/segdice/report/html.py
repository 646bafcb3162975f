"""The self-contained HTML report: one file, plots inlined as base64 PNG, rendered by Jinja2.

Autoescaping is on for the whole template, so file names, case names, label names and error texts are
always text, never markup (a file called ``<script>alert(1)</script>.npy`` shows up as those
characters). The page's only script is a fixed block of the template (sorting and filtering tables); it
holds no data. A Content-Security-Policy in the page allows nothing but that script, inline styles and
``data:`` images, so the report never reaches the network. Names drawn in figures go through
:func:`~segdice.report.plots.plain_text`, never through matplotlib's math-text parser.

The page is built for 1 to hundreds of labels: one wide table with a row per label, box plots with a
row per label split into figures of at most :data:`~segdice.report.plots.BOXES_PER_FIGURE` rows, a
short worst-case table, and the per-case table capped at :data:`MAX_TABLE_ROWS` rows (the worst first
when there are more; ``per_case.csv`` always has every row).
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segdice._checks import SegDiceError
from segdice.io import read_mask
from segdice.report import plots
from segdice.report.digest import (
    DISTANCE_METRICS,
    across_label_metrics,
    label_metrics,
    metric_unit,
    ranking_metric,
    worst_items,
)

__all__ = ["MAX_TABLE_ROWS", "N_WORST", "PLAIN_DEFINITIONS", "ReportData", "render_report", "write_report"]


class ReportData(Protocol):
    """What the report is drawn from: per-case rows and the summary, as an evaluation returns them.

    :class:`segdice.EvaluationResult` is one; the report needs nothing else, so it never imports the
    evaluator.
    """

    per_case: list[dict]
    summary: dict


TEMPLATE_DIR = Path(__file__).parent / "templates"
# Cases shown as worst cases, with a thumbnail each.
N_WORST = 5
# The per-case table stops here; per_case.csv always has every row.
MAX_TABLE_ROWS = 5000
# Labels named as the worst of a worst case.
_WORST_LABELS_PER_CASE = 3

# What each metric means, in plain words; "{unit}" and "{tolerance}" are filled in for the run.
PLAIN_DEFINITIONS: dict[str, str] = {
    "dice": (
        "How much the prediction and the ground truth overlap: twice the voxels they share, divided by "
        "the voxels of both together. 1 means identical, 0 means no voxel in common."
    ),
    "iou": (
        "Intersection over union (Jaccard index): the voxels both share, divided by the voxels in either. "
        "Never above Dice."
    ),
    "precision": "Of the voxels predicted as the label, the fraction that carry it in the ground truth.",
    "recall": "Of the ground-truth voxels of the label, the fraction the prediction found (sensitivity).",
    "specificity": "Of the voxels that are not the label, the fraction the prediction also left out.",
    "accuracy": (
        "The fraction of all voxels given the right answer for this label. Close to 1 even when a small "
        "structure is missed entirely, which is why Dice is the headline number."
    ),
    "hd": (
        "Hausdorff distance: how far, at the worst point, the surface of one mask is from the surface "
        "of the other, in {unit}."
    ),
    "hd95": (
        "Like the Hausdorff distance, but the 95th percentile of the surface distances instead of the "
        "largest, so a few stray voxels do not dominate it; in {unit}."
    ),
    "assd": (
        "Average symmetric surface distance: the mean distance from each surface point of either mask to "
        "the other mask's surface, in {unit}."
    ),
    "masd": "The mean of the two one-way mean surface distances (prediction to truth, truth to prediction), in {unit}.",
    "nsd": (
        "Normalised surface Dice: the fraction of both surfaces that lies within {tolerance} {unit} of the "
        "other surface. 1 means every boundary point is within the tolerance."
    ),
    "gds": (
        "Generalized Dice: one Dice per case over every scored label at once (not the regions), each label "
        "weighted by one over its ground-truth voxel count squared, so that small structures count as much "
        "as large ones. It is in the rows whose label is \"all\", below the label table, and not in the "
        "mean over labels."
    ),
}


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    return f"{float(value):.{digits}g}"


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgb)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template, whatever its name: names in the report are untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _number
    return env


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _rows_by_item(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows without an error, grouped by label/region (one pass: the report must scale with rows)."""
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        if not row["error"]:
            grouped.setdefault(row["item"], []).append(row)
    return grouped


def _across_labels(summary: dict, metrics: Sequence[str]) -> dict[str, float]:
    """``summary["foreground_mean"]``, or the same mean of means for a summary written without it."""
    if "foreground_mean" in summary:
        return {m: summary["foreground_mean"].get(m, math.nan) for m in metrics}
    means = {}
    for metric in metrics:
        values = [s[metric]["mean"] for s in summary["results"].values() if _finite(s[metric]["mean"])]
        means[metric] = float(np.mean(values)) if values else math.nan
    return means


def _across_counts(summary: dict) -> dict:
    """The case counts of a run without per-label metrics (only ``gds``): those of its across-label row."""
    item = (summary.get("across_labels") or {}).get("item")
    for stats in summary["results"].get(item, {}).values():
        return stats
    return {"n": 0, "n_nan": 0, "n_missing": 0, "n_error": 0}


def _label_table(summary: dict, metrics: Sequence[str]) -> list[dict]:
    """One row per label/region: its ids, each metric's mean (and spread, for a tooltip) and its counts."""
    table = []
    for item in summary["items"]:
        stats = summary["results"][item["name"]]
        first = stats[metrics[0]] if metrics else _across_counts(summary)
        cells = []
        for metric in metrics:
            s = stats[metric]
            spread = (
                f"median {_number(s['median'])}, quartiles {_number(s['q1'])} to {_number(s['q3'])}, "
                f"95% CI of the mean {_number(s['ci_low'])} to {_number(s['ci_high'])}, n {s['n']}"
            )
            cells.append({"mean": s["mean"], "spread": spread})
        table.append(
            {
                "name": item["name"],
                "ids": "+".join(str(i) for i in item["labels"]),
                "region": item["region"],
                "cells": cells,
                "cases": first["n"] + first["n_nan"],
                "missing": first["n_missing"],
                "errors": first["n_error"],
            }
        )
    return table


def _box_figures(
    grouped: dict[str, list[dict]], items: list[str], metrics: Sequence[str], titles: dict
) -> list:
    """Per metric, its pages of horizontal box plots (a row per label/region)."""
    figures = []
    for metric in metrics:
        values = {
            item: [float(r[metric]) for r in grouped.get(item, []) if _finite(r.get(metric))]
            for item in items
        }
        if not any(values.values()):
            continue
        pages = plots.box_plot_pages(values, titles[metric])
        figures.append({"metric": metric, "title": titles[metric], "pages": [_data_uri(p) for p in pages]})
    return figures


def _scatter_figure(rows: list[dict], metrics: Sequence[str], n_items: int) -> dict | None:
    scatter_rows = [r for r in rows if not r["error"] and r.get("n_voxels") and _finite(r.get("dice"))]
    if "dice" not in metrics or not scatter_rows:
        return None
    accuracy = [(r["tp"] + r["tn"]) / r["n_voxels"] for r in scatter_rows]
    png = plots.accuracy_dice_scatter(
        accuracy, [r["dice"] for r in scatter_rows], [r["item"] for r in scatter_rows]
    )
    colours = (
        "one colour per label/region"
        if 1 < n_items <= plots.MAX_LEGEND_ENTRIES
        else "all labels in one colour"
    )
    return {
        "src": _data_uri(png),
        "caption": (
            f"Pixel accuracy against Dice, one dot per case and label/region ({colours}). A structure "
            "missed entirely keeps an accuracy near 1 while its Dice is 0."
        ),
    }


def _worst_cases(rows: list[dict]) -> list[dict]:
    """The :data:`N_WORST` cases with the lowest mean Dice over labels/regions, each with a thumbnail."""
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        if not row["error"]:
            by_case.setdefault(row["case"], []).append(row)
    ranked = []
    for case, mine in by_case.items():
        dice = [r["dice"] for r in mine if _finite(r.get("dice"))]
        if dice:
            ranked.append((float(np.mean(dice)), case, mine))
    ranked.sort(key=lambda t: (t[0], t[1]))
    worst = []
    for mean_dice, case, mine in ranked[:N_WORST]:
        scored = sorted((r for r in mine if _finite(r.get("dice"))), key=lambda r: (r["dice"], r["item"]))
        thumbnail = _thumbnail(mine[0]["pred_file"], mine[0]["gt_file"])
        worst.append(
            {
                "case": case,
                "mean_dice": mean_dice,
                "worst": [(r["item"], r["dice"]) for r in scored[:_WORST_LABELS_PER_CASE]],
                "pred_file": mine[0]["pred_file"] or "(missing: scored as empty)",
                "gt_file": mine[0]["gt_file"],
                **thumbnail,
            }
        )
    return worst


def _thumbnail(pred_file: str, gt_file: str) -> dict:
    """The slice with the most wrong voxels as an overlay, with where it is and how it is shown.

    3-D volumes with a geometry are shown as axial slices in the radiological convention (see
    :func:`~segdice.report.plots.radiological_view`); without one, along the last array axis as stored.
    A case whose masks are both empty everywhere gets no image, never a blank one.
    """
    none = {"image": None, "where": "", "convention": ""}
    try:
        gt_mask = read_mask(gt_file)
        pred_mask = read_mask(pred_file) if pred_file else None
    except SegDiceError:
        return none
    gt = gt_mask.array
    pred = pred_mask.array if pred_mask is not None else np.zeros_like(gt)
    if gt.shape != pred.shape or gt.ndim not in (2, 3) or not ((gt != 0).any() or (pred != 0).any()):
        return none
    spacing = gt_mask.spacing or (1.0,) * gt.ndim
    # io's Mask carries the orientation where the format stores one
    geometry = getattr(gt_mask, "geometry", None)
    view = plots.radiological_view(getattr(geometry, "direction", None), gt.ndim)
    if gt.ndim == 2:
        index, pred_2d, gt_2d = plots.slice_of_largest_error(pred, gt)
        return {
            "image": _data_uri(plots.overlay_png(pred_2d, gt_2d, aspect=spacing[0] / spacing[1])),
            "where": "",
            "convention": "as stored (rows top to bottom)",
        }
    if view is None:
        index, pred_2d, gt_2d = plots.slice_of_largest_error(pred, gt)
        return {
            "image": _data_uri(plots.overlay_png(pred_2d, gt_2d, aspect=spacing[0] / spacing[1])),
            "where": f"slice {index} of array axis 2",
            "convention": "array axes as stored (the file gives no orientation)",
        }
    axes, flips = view

    def oriented(array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, axes)
        for axis, flip in enumerate(flips):
            if flip:
                out = np.flip(out, axis)
        return out

    index, pred_2d, gt_2d = plots.slice_of_largest_error(oriented(pred), oriented(gt))
    stored = gt.shape[axes[2]] - 1 - index if flips[2] else index
    return {
        "image": _data_uri(plots.overlay_png(pred_2d, gt_2d, aspect=spacing[axes[0]] / spacing[axes[1]])),
        "where": f"axial slice {stored} of array axis {axes[2]}",
        "convention": "radiological: patient's right on the left, anterior at the top",
    }


# The per-case object columns shown in the per-case table (``--instances``), with their headings.
_CASE_OBJECT_COLUMNS = {
    "objects_tp": "TP objects",
    "objects_fp": "FP objects",
    "objects_fn": "FN objects",
    "detection_f1": "detection F1",
}


def _edge(value: float) -> str:
    """A bin edge as text: whole numbers with thousands separators, smaller ones as they are."""
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def _size_bins(edges: Sequence[float], unit: str) -> list[str]:
    """Names of the size bins: the first open below, the last open above, as the summary counts them."""
    n = len(edges) - 1
    if n <= 0:
        return []
    if n == 1:
        return [f"all sizes ({unit})"]
    names = [f"< {_edge(edges[1])}"]
    names += [f"{_edge(edges[k])}–{_edge(edges[k + 1])}" for k in range(1, n - 1)]
    names.append(f"≥ {_edge(edges[n - 1])}")
    return names


def _detection(summary: dict) -> dict | None:
    """The detection table and the detection rate by size, from ``summary["detection"]`` and
    ``summary["detection_by_size"]`` (runs with ``--instances`` or ``--protocol``); ``None`` otherwise."""
    table = summary.get("detection")
    if not table:
        return None
    spec = summary["inputs"].get("instances") or {}
    lesion_metrics = [m for m in spec.get("metrics", ()) if m]
    names = [item["name"] for item in summary["items"] if item["name"] in table]
    rows = []
    for name in names:
        stats = summary["results"][name]
        lesion = [stats.get(f"lesion_{m}", {}).get("mean") for m in lesion_metrics]
        rows.append({"name": name, **table[name], "lesion": lesion})
    sizes = summary.get("detection_by_size") or {}
    unit = sizes.get("unit", "")
    bins = _size_bins(sizes.get("edges", []), unit)
    size_rows, small = [], False
    for name in names:
        entry = sizes.get("items", {}).get(name)
        if entry is None:
            continue
        cells = [
            {"found": f, "targets": t, "recall": r}
            for f, t, r in zip(entry["found"], entry["targets"], entry["recall"], strict=True)
        ]
        n, found = sum(entry["targets"]), sum(entry["found"])
        size_rows.append(
            {
                "name": name,
                "cells": cells,
                "total": {"found": found, "targets": n, "recall": found / n if n else None},
                "small": entry.get("below_min_volume", 0),
            }
        )
        small = small or bool(entry.get("below_min_volume"))
    figure = None
    if bins and any(r["total"]["targets"] for r in size_rows):
        if len(size_rows) <= plots.MAX_LEGEND_ENTRIES:
            rates = {r["name"]: [_rate(c) for c in r["cells"]] for r in size_rows}
            caption = "one line per label/region"
        else:  # too many lines to tell apart: every label/region's objects together
            found = np.sum([[c["found"] for c in r["cells"]] for r in size_rows], axis=0)
            targets = np.sum([[c["targets"] for c in r["cells"]] for r in size_rows], axis=0)
            rates = {"all": [f / t if t else math.nan for f, t in zip(found, targets, strict=True)]}
            caption = f"the objects of all {len(size_rows)} labels/regions together"
        figure = {"src": _data_uri(plots.detection_rate_plot(bins, rates, unit)), "caption": caption}
    return {
        "rows": rows,
        "lesion_metrics": lesion_metrics,
        "bins": bins,
        "unit": unit,
        "size_rows": size_rows,
        "small": small,
        "figure": figure,
        "protocol": spec.get("protocol"),
    }


def _rate(cell: dict) -> float:
    return cell["recall"] if cell["targets"] and cell["recall"] is not None else math.nan


def _case_rows(rows: list[dict], metrics: Sequence[str]) -> tuple[list[dict], bool]:
    """The rows of the per-case table: all of them, or the :data:`MAX_TABLE_ROWS` worst ones."""
    if len(rows) <= MAX_TABLE_ROWS:
        return rows, False
    metric = ranking_metric(list(metrics))
    sign = 1.0 if metric in DISTANCE_METRICS else -1.0

    def badness(row: dict) -> tuple[int, float]:
        if row["error"]:
            return 0, 0.0
        value = row.get(metric) if metric else None
        return (1, -sign * float(value)) if _finite(value) else (2, 0.0)

    return sorted(rows, key=badness)[:MAX_TABLE_ROWS], True


def render_report(result: ReportData) -> str:
    """Render the HTML report of an evaluation as a string.

    Parameters
    ----------
    result
        Rows and summary, such as what :func:`segdice.evaluate` returned (see :class:`ReportData`).

    Returns
    -------
    str
        A complete HTML document with every image inlined.
    """
    summary = result.summary
    rows = result.per_case
    items = [item["name"] for item in summary["items"]]
    case_metrics = list(summary["inputs"]["metrics"])  # the per-case table: every metric of the rows
    metrics = label_metrics(summary)  # the label table and the plots: all but the across-label ones
    units = {m: metric_unit(m, summary) for m in case_metrics}
    titles = {m: f"{m} ({units[m]})" if units[m] else m for m in case_metrics}
    distance_unit = metric_unit("hd", summary)  # also the unit of the NSD tolerance
    tolerance = summary["definitions"].get("nsd_tolerance", "")
    plain = {
        m: PLAIN_DEFINITIONS[m].format(unit=distance_unit, tolerance=tolerance)
        for m in case_metrics
        if m in PLAIN_DEFINITIONS
    }
    across_item = (summary.get("across_labels") or {}).get("item")
    across_lines = [
        {"metric": m, "title": titles[m], "stats": summary["results"][across_item][m]}
        for m in across_label_metrics(summary)
        if across_item in summary["results"]
    ]
    grouped = _rows_by_item(rows)
    table_rows, capped = _case_rows(rows, metrics)
    ranked = ranking_metric(metrics)
    detection = _detection(summary)
    object_columns = {
        k: v for k, v in _CASE_OBJECT_COLUMNS.items() if detection is not None and rows and k in rows[0]
    }
    template = _environment().get_template("report.html")
    return template.render(
        detection=detection,
        object_columns=object_columns,
        summary=summary,
        metrics=metrics,
        case_metrics=case_metrics,
        across_lines=across_lines,
        titles=titles,
        labels=_label_table(summary, metrics),
        across=_across_labels(summary, metrics),
        worst_labels=worst_items(summary, 5) if len(items) > 1 else [],
        ranked=ranked,
        ranked_order="highest" if ranked in DISTANCE_METRICS else "lowest",
        box_figures=_box_figures(grouped, items, metrics, titles),
        scatter=_scatter_figure(rows, metrics, len(items)),
        worst=_worst_cases(rows) if "dice" in metrics else [],
        rows=table_rows,
        n_rows=len(rows),
        capped=capped,
        plain=plain,
        colours={k: _hex(v) for k, v in plots.OVERLAY_COLOURS.items()},
    )


def write_report(result: ReportData, path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_report(result), encoding="utf-8")
    return path
