"""Figures of the comparison report, as PNG bytes: paired scatter, differences with CIs, rank stability.

Every text that comes from the user (run, label and metric names) is drawn with ``parse_math=False``, so a
name holding ``$`` is shown as written and never parsed as matplotlib math text. Figures are built on
:func:`segdice.report.plots.new_figure` (the ``Agg`` canvas, never ``pyplot``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from segdice.report.plots import new_figure

__all__ = ["difference_plot", "paired_scatter", "rank_stability_plot"]

# Rows of the difference plot at most; the caption says which rows are shown.
MAX_DIFFERENCE_ROWS = 40
# Cases drawn as dots per row of the difference plot at most (a fixed random sample beyond).
MAX_DOTS_PER_ROW = 300
# Above this many points a paired-scatter panel becomes a density image (log10 count per bin).
MAX_SCATTER_POINTS = 20000
_DENSITY_BINS = 120
_COLUMNS = 3


def _to_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def paired_scatter(values: Mapping[str, Sequence[float]], metric: str, lower_is_better: bool) -> bytes:
    """Every other run against the first, one dot per case and label/region, with the line of equality.

    Beyond :data:`MAX_SCATTER_POINTS` points a panel shows their density (log10 count per bin) instead.

    Parameters
    ----------
    values
        Per run name (the first is the reference), the metric's values: the same cases in the same order.
    metric
        The metric's name, for the axes.
    lower_is_better
        Whether smaller values are better (distances): said in the panel titles.

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> paired_scatter({"a": [0.5, 0.8], "b$x$": [0.6, float("nan")]}, "dice", False)[:4]
    b'\\x89PNG'
    """
    names = list(values)
    reference = np.asarray(values[names[0]], dtype=float)
    others = names[1:]
    n_cols = min(_COLUMNS, len(others))
    n_rows = math.ceil(len(others) / n_cols)
    figure = new_figure(3.0 * n_cols + 0.4, 3.0 * n_rows + 0.3)
    # fixed spacing for the short, size-8 labels: a third cheaper to draw than constrained layout
    figure.subplots_adjust(wspace=0.4, hspace=0.45)
    finite = np.concatenate([np.asarray(values[n], dtype=float) for n in names])
    finite = finite[np.isfinite(finite)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    pad = 0.04 * (hi - lo or 1.0)
    better = "below" if lower_is_better else "above"
    edges = np.linspace(lo - pad, hi + pad, _DENSITY_BINS + 1)
    for k, name in enumerate(others):
        axes = figure.add_subplot(n_rows, n_cols, k + 1)
        other = np.asarray(values[name], dtype=float)
        keep = np.isfinite(reference) & np.isfinite(other)
        if keep.sum() > MAX_SCATTER_POINTS:  # a density image stays readable (and fast) for 10^5 points
            density, _, _ = np.histogram2d(reference[keep], other[keep], bins=(edges, edges))
            shown = np.full(density.shape, np.nan)  # empty bins stay blank (NaN is not drawn)
            np.log10(density, out=shown, where=density > 0)
            axes.imshow(
                shown.T, origin="lower", extent=(edges[0], edges[-1], edges[0], edges[-1]),
                cmap="Blues", aspect="equal", interpolation="nearest",
            )  # fmt: skip
        else:
            axes.scatter(
                reference[keep], other[keep], s=9, alpha=0.55, color="#2c6fbb", edgecolors="none", zorder=2
            )
        axes.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999", lw=0.8, zorder=3)
        axes.set_xlim(lo - pad, hi + pad)
        axes.set_ylim(lo - pad, hi + pad)
        axes.set_aspect("equal")
        axes.set_xlabel(f"{_short(names[0])}: {metric}", parse_math=False, fontsize=8)
        axes.set_ylabel(f"{_short(name)}: {metric}", parse_math=False, fontsize=8)
        axes.set_title(f"{_short(name, 20)} better {better} the line", parse_math=False, fontsize=8)
        axes.tick_params(labelsize=7)
    return _to_png(figure)


def difference_plot(rows: Sequence[Mapping], differences: Sequence[Sequence[float]], metric: str) -> bytes:
    """One row per comparison: the per-case differences as dots, their mean and its bootstrap CI.

    Parameters
    ----------
    rows
        Comparison rows with ``run_a``, ``run_b``, ``item``, ``mean_diff``, ``ci_low``, ``ci_high`` and
        ``significant`` (at most :data:`MAX_DIFFERENCE_ROWS` are drawn, in the order given; at most
        :data:`MAX_DOTS_PER_ROW` dots per row, a fixed random sample of the cases beyond that).
    differences
        Per row, the per-case differences ``a - b`` (NaN left out).
    metric
        The metric's name, for the axis.

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> row = {"run_a": "a", "run_b": "b", "item": "1", "mean_diff": 0.1, "ci_low": 0.0, "ci_high": 0.2,
    ...        "significant": False}
    >>> difference_plot([row], [[0.0, 0.2, 0.1]], "dice")[:4]
    b'\\x89PNG'
    """
    rows = list(rows)[:MAX_DIFFERENCE_ROWS]
    figure = new_figure(7.5, 0.9 + 0.32 * len(rows))
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter and sample: the same inputs draw the same picture
    positions = np.arange(len(rows))[::-1]
    dots_x, dots_y = [], []
    for y, row, diff in zip(positions, rows, differences, strict=False):
        d = np.asarray(diff, dtype=float)
        d = d[np.isfinite(d)]
        if d.size > MAX_DOTS_PER_ROW:
            d = rng.choice(d, MAX_DOTS_PER_ROW, replace=False)
        dots_x.append(d)
        dots_y.append(y + rng.uniform(-0.18, 0.18, d.size))
        colour = "#c0392b" if row["significant"] else "#2c3e50"
        if math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]):
            axes.plot([row["ci_low"], row["ci_high"]], [y, y], color=colour, lw=2.2, zorder=2)
        if math.isfinite(row["mean_diff"]):
            axes.plot([row["mean_diff"]], [y], "o", color=colour, ms=4.5, zorder=3)
    if dots_x:  # one collection for every row: one draw call
        axes.scatter(
            np.concatenate(dots_x), np.concatenate(dots_y), s=5, color="#bbb", edgecolors="none", zorder=1
        )
    axes.axvline(0.0, color="#777", lw=0.8, ls="--")
    labels = [f"{_short(r['run_a'], 18)} − {_short(r['run_b'], 18)} · {_short(r['item'], 18)}" for r in rows]
    axes.set_yticks(positions, labels=labels, parse_math=False, fontsize=7)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel(f"paired difference of {metric} (run a − run b)", parse_math=False, fontsize=8)
    axes.tick_params(axis="x", labelsize=7)
    return _to_png(figure)


def rank_stability_plot(
    runs: Sequence[str], frequencies: np.ndarray, ranks: Sequence[float], title: str
) -> bytes:
    """Blob plot: how often each run holds each rank over the bootstrap resamples.

    Parameters
    ----------
    runs
        Run names (x axis).
    frequencies
        ``[runs, ranks]`` fractions (rows sum to 1).
    ranks
        The full-data rank of each run (marked with a cross).
    title
        Drawn above the plot (as text, never math).

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> rank_stability_plot(["a", "b"], np.array([[0.8, 0.2], [0.2, 0.8]]), [1, 2], "dice")[:4]
    b'\\x89PNG'
    """
    frequencies = np.asarray(frequencies, dtype=float)
    n_runs = len(runs)
    figure = new_figure(max(3.2, 0.65 * n_runs + 1.4), max(2.6, 0.42 * n_runs + 1.2))
    axes = figure.add_subplot()
    x, y = np.meshgrid(np.arange(n_runs), np.arange(1, n_runs + 1), indexing="ij")
    shown = frequencies > 0
    axes.scatter(
        x[shown], y[shown], s=420 * frequencies[shown], color="#2c6fbb", alpha=0.7, edgecolors="none"
    )
    axes.scatter(np.arange(n_runs), ranks, marker="x", color="#c0392b", s=28, zorder=3)
    axes.set_xticks(
        np.arange(n_runs),
        labels=[_short(r, 16) for r in runs],
        parse_math=False,
        fontsize=7,
        rotation=30,
        ha="right",
    )
    axes.set_yticks(np.arange(1, n_runs + 1))
    axes.set_ylim(n_runs + 0.6, 0.4)
    axes.set_xlim(-0.6, n_runs - 0.4)
    axes.set_ylabel("rank (1 = best)", fontsize=8)
    axes.set_title(title, parse_math=False, fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    return _to_png(figure)
