"""Figures of the HTML report, returned as PNG bytes (matplotlib, headless ``Agg`` canvas).

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``, so they
touch no global state and work in worker threads and on machines without a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "OVERLAY_COLOURS",
    "accuracy_dice_scatter",
    "box_strip_plot",
    "new_figure",
    "overlay_png",
    "overlay_rgb",
    "slice_of_largest_error",
]

# Overlay colours (RGB in [0, 1]): what each voxel of a thumbnail means.
OVERLAY_COLOURS = {
    "background": (0.0, 0.0, 0.0),
    "agree": (0.62, 0.62, 0.62),
    "missed": (0.18, 0.45, 0.90),
    "extra": (0.90, 0.20, 0.15),
    "wrong label": (0.98, 0.65, 0.10),
}


def new_figure(width: float, height: float, *, constrained: bool = False) -> Figure:
    """A bare matplotlib figure on its own Agg canvas, ``width`` x ``height`` inches at 100 dpi.

    No pyplot state and no global backend switch: safe in worker threads and without a display.

    Parameters
    ----------
    width, height
        Size in inches.
    constrained
        Use matplotlib's constrained layout (for figures with several axes).

    Raises
    ------
    ImportError
        Without matplotlib (the ``report`` extra), with the command that installs it.

    Examples
    --------
    >>> figure = new_figure(2, 1)
    >>> figure.get_size_inches().tolist(), figure.dpi
    ([2.0, 1.0], 100)
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - only without the report extra
        raise ImportError("segdice plots need matplotlib: pip install 'segdice[report]'") from exc
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def box_strip_plot(values: Mapping[str, Sequence[float]], metric: str) -> bytes:
    """Box plot per label/region with every case drawn as a jittered dot.

    Parameters
    ----------
    values
        Per label/region name, the metric's per-case values (NaN values are left out).
    metric
        The metric's name, for the axis label.

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> box_strip_plot({"liver": [0.9, 0.8], "tumour": [0.4, float("nan")]}, "dice")[:4]
    b'\\x89PNG'
    """
    names = list(values)
    data = [np.asarray([v for v in values[n] if not math.isnan(v)], dtype=float) for n in names]
    figure = new_figure(max(3.5, 1.1 * len(names) + 1.5), 3.2)
    axes = figure.add_subplot()
    positions = np.arange(1, len(names) + 1)
    drawable = [(p, d) for p, d in zip(positions, data, strict=True) if d.size]
    if drawable:
        axes.boxplot(
            [d for _, d in drawable],
            positions=[p for p, _ in drawable],
            widths=0.55,
            showfliers=False,
            medianprops={"color": "#c0392b"},
        )
    rng = np.random.default_rng(0)  # jitter is cosmetic but should not change between runs
    for position, d in zip(positions, data, strict=True):
        axes.scatter(
            position + rng.uniform(-0.18, 0.18, d.size), d, s=10, alpha=0.6, color="#2c3e50", zorder=3
        )
    axes.set_xticks(positions, names, rotation=30 if len(names) > 6 else 0)
    axes.set_xlim(0.4, len(names) + 0.6)
    axes.set_ylabel(metric)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def accuracy_dice_scatter(accuracy: Sequence[float], dice: Sequence[float], names: Sequence[str]) -> bytes:
    """Pixel accuracy against Dice, one dot per case and label: the accuracy trap made visible.

    A small structure missed entirely still scores a pixel accuracy close to 1, while its Dice is 0.

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> accuracy_dice_scatter([0.999, 0.95], [0.0, 0.9], ["1", "1"])[:4]
    b'\\x89PNG'
    """
    figure = new_figure(4.8, 3.6)
    axes = figure.add_subplot()
    acc = np.asarray(accuracy, dtype=float)
    dsc = np.asarray(dice, dtype=float)
    labels = np.asarray(names, dtype=object)
    for name in dict.fromkeys(names):
        keep = (labels == name) & ~np.isnan(acc) & ~np.isnan(dsc)
        axes.scatter(dsc[keep], acc[keep], s=14, alpha=0.7, label=str(name))
    axes.set_xlabel("Dice")
    axes.set_ylabel("pixel accuracy")
    axes.set_xlim(-0.03, 1.03)
    axes.grid(alpha=0.3)
    if len(set(names)) > 1:
        axes.legend(fontsize="small", loc="lower right")
    return _png(figure)


def slice_of_largest_error(pred: np.ndarray, gt: np.ndarray) -> tuple[int | None, np.ndarray, np.ndarray]:
    """Pick the 2-D slice with the most disagreeing voxels (3-D: along the last axis).

    Returns
    -------
    tuple
        ``(index, pred_slice, gt_slice)``; ``index`` is ``None`` for 2-D input.

    Examples
    --------
    >>> gt = np.zeros((4, 4, 3), int); pred = gt.copy(); pred[:, :, 2] = 1
    >>> slice_of_largest_error(pred, gt)[0]
    2
    """
    if pred.ndim == 2:
        return None, pred, gt
    wrong = (pred != gt).reshape(-1, pred.shape[-1]).sum(axis=0)
    if not wrong.any():  # no error anywhere: show the slice with the most foreground instead
        wrong = (gt != 0).reshape(-1, gt.shape[-1]).sum(axis=0)
    index = int(np.argmax(wrong))
    return index, pred[..., index], gt[..., index]


def overlay_rgb(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Colour-code a 2-D prediction against its ground truth (see :data:`OVERLAY_COLOURS`).

    Grey: same foreground label; blue: missed (ground truth labelled, prediction background); red:
    extra (prediction labelled, ground truth background); orange: a different foreground label.

    Returns
    -------
    numpy.ndarray
        ``[*shape, 3]`` floats in [0, 1].

    Examples
    --------
    >>> overlay_rgb(np.array([[1, 0]]), np.array([[1, 1]]))[0, 1].tolist() == list(OVERLAY_COLOURS["missed"])
    True
    """
    rgb = np.zeros((*gt.shape, 3))
    p, g = pred != 0, gt != 0
    for key, mask in (
        ("agree", p & g & (pred == gt)),
        ("missed", g & ~p),
        ("extra", p & ~g),
        ("wrong label", p & g & (pred != gt)),
    ):
        rgb[mask] = OVERLAY_COLOURS[key]
    return rgb


def overlay_png(pred: np.ndarray, gt: np.ndarray, title: str = "") -> bytes:
    """Thumbnail of :func:`overlay_rgb` as a PNG image.

    Examples
    --------
    >>> overlay_png(np.eye(4, dtype=int), np.eye(4, dtype=int))[:4]
    b'\\x89PNG'
    """
    rgb = overlay_rgb(pred, gt)
    height, width = gt.shape
    scale = 2.4 / max(height, width)
    figure = new_figure(max(1.2, width * scale), max(1.2, height * scale) + (0.3 if title else 0))
    axes = figure.add_subplot()
    axes.imshow(rgb, interpolation="nearest")
    axes.set_axis_off()
    if title:
        axes.set_title(title, fontsize=8)
    return _png(figure)
