"""The self-contained HTML report: one file, plots inlined as base64 PNG, rendered by Jinja2.

Autoescaping is on for the whole template, so file names, case names and error texts are always
text, never markup (a file called ``<script>alert(1)</script>.npy`` shows up as those characters).
"""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from segdice._checks import SegDiceError
from segdice.io import read_mask
from segdice.report import plots

__all__ = ["ReportData", "render_report", "write_report"]


class ReportData(Protocol):
    """What the report is drawn from: per-case rows and the summary, as an evaluation returns them.

    :class:`segdice.EvaluationResult` is one; the report needs nothing else, so it never imports the
    evaluator.
    """

    per_case: list[dict]
    summary: dict


TEMPLATE_DIR = Path(__file__).parent / "templates"
N_WORST = 5
# The per-case table stops here; per_case.csv always has every row.
MAX_TABLE_ROWS = 5000


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


def _values(rows: list[dict], item: str, metric: str) -> list[float]:
    return [
        float(r[metric]) for r in rows if r["item"] == item and not r["error"] and r.get(metric) is not None
    ]


def _worst_cases(rows: list[dict], items: list[str]) -> list[dict]:
    """The cases with the lowest mean Dice over labels/regions, each with an overlay thumbnail."""
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        if not row["error"]:
            by_case.setdefault(row["case"], []).append(row)
    ranked = []
    for case, mine in by_case.items():
        dice = [r["dice"] for r in mine if r.get("dice") is not None and not math.isnan(r["dice"])]
        if dice:
            ranked.append((float(np.mean(dice)), case, mine))
    ranked.sort(key=lambda t: (t[0], t[1]))
    worst = []
    for mean_dice, case, mine in ranked[:N_WORST]:
        entry = {
            "case": case,
            "mean_dice": mean_dice,
            "dice": {r["item"]: r["dice"] for r in mine},
            "pred_file": mine[0]["pred_file"] or "(missing: scored as empty)",
            "gt_file": mine[0]["gt_file"],
            "image": None,
            "slice": None,
        }
        entry["image"], entry["slice"] = _thumbnail(mine[0]["pred_file"], mine[0]["gt_file"])
        worst.append(entry)
    return worst


def _thumbnail(pred_file: str, gt_file: str) -> tuple[str | None, int | None]:
    try:
        gt = read_mask(gt_file).array
        pred = read_mask(pred_file).array if pred_file else np.zeros_like(gt)
    except SegDiceError:
        return None, None
    if gt.shape != pred.shape or gt.ndim not in (2, 3):
        return None, None
    index, pred_slice, gt_slice = plots.slice_of_largest_error(pred, gt)
    return _data_uri(plots.overlay_png(pred_slice, gt_slice)), index


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
    metrics = summary["inputs"]["metrics"]
    figures = []
    for metric in metrics:
        values = {item: _values(rows, item, metric) for item in items}
        if any(values.values()):
            caption = f"{metric} per label/region: box = quartiles, line = median, dots = cases"
            figures.append({"caption": caption, "src": _data_uri(plots.box_strip_plot(values, metric))})
    scatter_rows = [r for r in rows if not r["error"] and r.get("n_voxels")]
    if "dice" in metrics and scatter_rows:
        accuracy = [(r["tp"] + r["tn"]) / r["n_voxels"] for r in scatter_rows]
        png = plots.accuracy_dice_scatter(
            accuracy, [r["dice"] for r in scatter_rows], [r["item"] for r in scatter_rows]
        )
        figures.append(
            {
                "caption": (
                    "pixel accuracy vs Dice, one dot per case and label/region: a structure missed entirely "
                    "keeps an accuracy near 1 while its Dice is 0"
                ),
                "src": _data_uri(png),
            }
        )
    table = [
        {"item": item, "metric": metric, **summary["results"][item][metric]}
        for item in items
        for metric in metrics
    ]
    template = _environment().get_template("report.html")
    return template.render(
        summary=summary,
        metrics=metrics,
        rows=rows[:MAX_TABLE_ROWS],
        n_rows=len(rows),
        table=table,
        figures=figures,
        worst=_worst_cases(rows, items) if "dice" in metrics else [],
        colours={k: _hex(v) for k, v in plots.OVERLAY_COLOURS.items()},
    )


def write_report(result: ReportData, path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_report(result), encoding="utf-8")
    return path
