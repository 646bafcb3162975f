"""PNG plots of the demo: training curves and example predictions (matplotlib's Agg canvas, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["pick_examples", "plot_examples", "plot_training_curves"]

_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - only without the report extra
        raise ImportError("segdice demo plots need matplotlib: pip install 'segdice[report]'") from exc
    # A bare Figure with its own Agg canvas: no pyplot state, no global backend switch, thread-safe.
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_training_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    baseline: tuple[str, Mapping[str, float]] | None = None,
) -> Path:
    """Training loss, validation Dice and validation accuracy per epoch, one line per method.

    ``baseline`` is ``(name, {"val_dice": ..., "val_accuracy": ...})`` of an untrained predictor, drawn
    as a dashed horizontal line: its accuracy is the bar every model clears without finding a lesion.
    """
    fig = _figure(13, 3.8)
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


def plot_examples(
    images: np.ndarray,
    target: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    indices: Sequence[int],
    path: Path,
) -> Path:
    """Image, ground truth and each method's prediction side by side for the slices ``indices``."""
    from matplotlib.colors import ListedColormap

    fill = {True: ListedColormap(["limegreen"]), False: ListedColormap(["red"])}
    columns = ["image", "ground truth", *predictions]
    fig = _figure(2.2 * len(columns), 2.3 * len(indices) + 0.3)
    axes = np.asarray(fig.subplots(len(indices), len(columns), squeeze=False))
    for row, i in enumerate(indices):
        image = images[i, 0]
        masks = [None, target[i], *(p[i] for p in predictions.values())]
        for col, (title, mask) in enumerate(zip(columns, masks, strict=True)):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", interpolation="nearest")
            if mask is not None:
                # Ground truth filled green; predictions filled red with the ground truth outlined in green.
                overlay = np.ma.masked_where(mask != 1, mask)
                ax.imshow(overlay, cmap=fill[col == 1], alpha=0.7, interpolation="nearest")
                if col > 1 and target[i].any():
                    ax.contour(target[i] == 1, levels=[0.5], colors="limegreen", linewidths=0.8)
            if row == 0:
                ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"slice {i}", fontsize=8)
    fig.savefig(path, dpi=100)
    return path
