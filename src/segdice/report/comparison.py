"""The self-contained HTML page of a comparison of runs: one file, plots inlined as base64 PNG, Jinja2.

It takes plain data (the ``comparison.json`` content and the paired per-case values) and knows nothing of
how they were computed. Autoescaping is on for the whole template, so run, label and case names are
always text, never markup; the plots draw them with math text off.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdice.report import comparison_plots as plots

__all__ = ["render_comparison_report", "write_comparison_report"]

TEMPLATE_DIR = Path(__file__).parent / "templates"
# Tables stop here; comparison.csv and comparison.json always have every row.
MAX_TABLE_ROWS = 5000
MAX_RANKING_ROWS = 1000


def _format_number(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    if isinstance(value, (int, np.integer)):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "–"
    return f"{value:.{digits}g}"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template, whatever its name: every name on the page is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _format_number
    return env


def _a_better(row: Mapping) -> bool:
    return row["mean_diff"] > 0 if row["direction"] == "higher" else row["mean_diff"] < 0


def _significance_matrix(rows: list[dict], runs: list[str], n_items: int) -> list[list[dict]]:
    """``cells[i][j]``: on how many items run i is significantly better than run j."""
    index = {name: k for k, name in enumerate(runs)}
    wins = np.zeros((len(runs), len(runs)), dtype=int)
    pvalue: dict[tuple[int, int], float] = {}
    for row in rows:
        a, b = index[row["run_a"]], index[row["run_b"]]
        pvalue[a, b] = pvalue[b, a] = row["p_corrected"]
        if row["significant"]:
            winner, loser = (a, b) if _a_better(row) else (b, a)
            wins[winner, loser] += 1
    cells = []
    for i in range(len(runs)):
        line = []
        for j in range(len(runs)):
            if i == j:
                line.append({"text": "", "kind": "self"})
                continue
            if n_items == 1:
                p = pvalue.get((i, j), math.nan)
                text = "better" if wins[i, j] else ("worse" if wins[j, i] else "n.s.")
                line.append({"text": f"{text} (p={_format_number(p, 2)})", "kind": text.replace(".", "")})
            else:
                kind = "better" if wins[i, j] > wins[j, i] else ("worse" if wins[j, i] > wins[i, j] else "ns")
                line.append(
                    {"text": f"{wins[i, j]} / {n_items}", "kind": kind if wins[i, j] or wins[j, i] else "ns"}
                )
        cells.append(line)
    return cells


def _ranking_text(runs: list[str], ranks: list[int]) -> str:
    order = sorted(range(len(runs)), key=lambda k: (ranks[k], k))
    text = runs[order[0]]
    for previous, current in itertools.pairwise(order):
        text += (" = " if ranks[current] == ranks[previous] else " > ") + runs[current]
    return text


def render_comparison_report(
    summary: Mapping, values: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]]
) -> str:
    """Render the comparison page as a string.

    Parameters
    ----------
    summary
        The content of ``comparison.json``: ``inputs``, ``settings``, ``cases``, ``runs``, ``comparisons``,
        ``rankings`` and ``definitions``.
    values
        ``values[run][item][metric]``: the paired per-case values, in the same case order for every run.

    Returns
    -------
    str
        A complete HTML document with every image inlined (no network access needed to view it).
    """
    settings = summary["settings"]
    runs = [run["name"] for run in summary["inputs"]["runs"]]
    items, metrics = list(settings["items"]), list(settings["metrics"])
    rows = list(summary["comparisons"])
    sections = []
    for metric in metrics:
        mine = [r for r in rows if r["metric"] == metric]
        lower = bool(mine) and mine[0]["direction"] == "lower"
        scatter = {
            run: np.concatenate([np.asarray(values[run][item][metric], dtype=float) for item in items])
            for run in runs
        }
        ordered = sorted(
            mine,
            key=lambda r: (
                math.isnan(r["p_corrected"]),
                r["p_corrected"],
                -abs(r["mean_diff"]) if math.isfinite(r["mean_diff"]) else 0,
            ),
        )
        shown = ordered[: plots.MAX_DIFFERENCE_ROWS]
        differences = [
            (
                np.asarray(values[r["run_a"]][r["item"]][metric])
                - np.asarray(values[r["run_b"]][r["item"]][metric])
            ).tolist()
            for r in shown
        ]
        rankings = [r for r in summary["rankings"] if r["metric"] == metric]
        frequency = np.mean([r["aggregate_then_rank"]["rank_frequency"] for r in rankings], axis=0)
        mean_rank = np.mean([r["aggregate_then_rank"]["rank"] for r in rankings], axis=0)
        title = f"{metric}: aggregate-then-rank over {settings['n_resamples']} resamples"
        if len(items) > 1:
            title += f", averaged over {len(items)} labels/regions"
        sections.append(
            {
                "metric": metric,
                "direction": "lower is better" if lower else "higher is better",
                "matrix": _significance_matrix(mine, runs, len(items)),
                "scatter": _data_uri(plots.paired_scatter(scatter, metric, lower)),
                "differences": _data_uri(plots.difference_plot(shown, differences, metric)),
                "n_shown": len(shown),
                "n_rows": len(mine),
                "stability": _data_uri(plots.rank_stability_plot(runs, frequency, mean_rank.tolist(), title)),
            }
        )
    ranking_rows = [
        {
            "item": r["item"],
            "metric": r["metric"],
            "aggregate": _ranking_text(runs, r["aggregate_then_rank"]["rank"]),
            "aggregate_tau": r["aggregate_then_rank"]["kendall_tau"],
            "top_stable": max(row[0] for row in r["aggregate_then_rank"]["rank_frequency"]),
            "rank_based": _ranking_text(runs, r["rank_then_aggregate"]["rank"]),
            "rank_based_tau": r["rank_then_aggregate"]["kendall_tau"],
        }
        for r in summary["rankings"][:MAX_RANKING_ROWS]
    ]
    worst = [
        {
            "name": run,
            "missing": max((summary["runs"][run][item]["n_missing"] for item in items), default=0),
            "failed": max((summary["runs"][run][item]["n_failed"] for item in items), default=0),
        }
        for run in runs
    ]
    template = _environment().get_template("comparison.html")
    return template.render(
        summary=summary,
        settings=settings,
        runs=runs,
        worst=worst,
        sections=sections,
        rows=rows[:MAX_TABLE_ROWS],
        n_rows=len(rows),
        ranking_rows=ranking_rows,
        n_rankings=len(summary["rankings"]),
        max_dots=plots.MAX_DOTS_PER_ROW,
    )


def write_comparison_report(
    summary: Mapping,
    values: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
    path: str | os.PathLike[str],
) -> Path:
    """Write :func:`render_comparison_report` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    path.write_text(render_comparison_report(summary, values), encoding="utf-8")
    return path
