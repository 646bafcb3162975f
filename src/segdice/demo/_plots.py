"""PNG plots of the demo: training curves and example predictions (matplotlib's Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from segdice.report.plots import new_figure

__all__ = ["pick_examples", "plot_examples", "plot_training_curves"]

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def plot_training_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    baseline: tuple[str, Mapping[str, float]] | None = None,
) -> Path:
    """Training loss, validation Dice and validation accuracy per epoch, one line per method.

    ``baseline`` is ``(name, {"val_dice": ..., "val_accuracy": ...})`` of an untrained predictor, drawn
    as a dashed horizontal line: its accuracy is the bar every model clears without finding a lesion.
    """
    fig = new_figure(13, 3.8, constrained=True)
    panels = (
        ("loss", "Training loss", "loss (each method's own)"),
        ("val_dice", "Validation Dice (lesion, global)", "Dice"),
        ("val_accuracy", "Validation pixel accuracy", "accuracy"),
    )
    axes = fig.subplots(1, 3)
    for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
        for colour, (name, history) in zip(_COLOURS, histories.items(), strict=False):
            values = history[key]
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, color=colour, label=name)
        if baseline is not None and key in baseline[1]:
            ax.axhline(baseline[1][key], color="grey", linestyle="--", linewidth=1, label=baseline[0])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[0].legend()
    axes[2].legend()
    fig.savefig(path, dpi=100)
    return path


def pick_examples(masks: np.ndarray, k: int = 4) -> list[int]:
    """Indices of ``k`` validation slices with lesions, from the smallest lesion load to the largest."""
    load = masks.reshape(len(masks), -1).sum(axis=1)
    with_lesion = np.flatnonzero(load > 0)
    if with_lesion.size == 0:
        return list(range(min(k, len(masks))))
    ordered = with_lesion[np.argsort(load[with_lesion], kind="stable")]
    picks = np.linspace(0, len(ordered) - 1, num=min(k, len(ordered))).round().astype(int)
    return [int(ordered[i]) for i in dict.fromkeys(picks)]


_RED = np.array([0.95, 0.15, 0.1])
_GREEN = np.array([0.2, 0.95, 0.2])


def _tile(image: np.ndarray, fill: np.ndarray | None, outline: np.ndarray | None, colour, zoom: int):
    """One RGB tile: the grey image, ``fill`` blended in ``colour``, ``outline``'s border in green."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if fill is not None:
        rgb[fill == 1] = 0.35 * rgb[fill == 1] + 0.65 * colour
    rgb = rgb.repeat(zoom, axis=0).repeat(zoom, axis=1)
    if outline is not None and outline.any():
        big = outline.repeat(zoom, axis=0).repeat(zoom, axis=1) == 1
        # The border is drawn after zooming so that it stays one screen pixel thin.
        border = big & ~ndimage.binary_erosion(big)
        rgb[border] = _GREEN
    return rgb


def plot_examples(
    images: np.ndarray,
    target: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    indices: Sequence[int],
    path: Path,
    zoom: int = 2,
) -> Path:
    """Image, ground truth and each method's prediction side by side for the slices ``indices``.

    The grid is composed as one RGB array and drawn on a single axes: dozens of matplotlib axes would
    cost seconds of every demo run. Ground truth is filled green; predictions are filled red with the
    ground truth outlined in green.
    """
    columns = ["image", "ground truth", *predictions]
    size = images.shape[-1] * zoom
    gap = 6
    rows = []
    for i in indices:
        tiles = [
            _tile(images[i, 0], None, None, None, zoom),
            _tile(images[i, 0], target[i], None, _GREEN, zoom),
            *(_tile(images[i, 0], p[i], target[i], _RED, zoom) for p in predictions.values()),
        ]
        row = np.ones((size, len(tiles) * (size + gap) - gap, 3))
        for k, tile in enumerate(tiles):
            row[:, k * (size + gap) : k * (size + gap) + size] = tile
        rows.append(row)
    grid = np.ones((len(rows) * (size + gap) - gap, rows[0].shape[1], 3))
    for r, row in enumerate(rows):
        grid[r * (size + gap) : r * (size + gap) + size] = row
    height, width = grid.shape[:2]
    fig = new_figure((width + 60) / 100, (height + 55) / 100)
    ax = fig.add_axes((60 / (width + 60), 25 / (height + 55), width / (width + 60), height / (height + 55)))
    ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    for k, title in enumerate(columns):
        ax.text(k * (size + gap) + size / 2, -6, title, ha="center", va="bottom", fontsize=9)
    for r, i in enumerate(indices):
        ax.text(
            -6, r * (size + gap) + size / 2, f"slice {i}", ha="right", va="center", fontsize=8, rotation=90
        )
    ax.text(
        0,
        height + 8,
        "green: ground truth, red: prediction",
        va="top",
        fontsize=8,
    )
    fig.savefig(path, dpi=100)
    return path
