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
    "BOXES_PER_FIGURE",
    "MAX_LEGEND_ENTRIES",
    "OVERLAY_COLOURS",
    "accuracy_dice_scatter",
    "box_plot_pages",
    "detection_rate_plot",
    "new_figure",
    "overlay_png",
    "overlay_rgb",
    "plain_text",
    "radiological_view",
    "slice_of_largest_error",
]

# Horizontal box plots hold at most this many labels per figure (about 9 inches tall); more labels
# make more figures, so a page never holds one image thousands of pixels tall.
BOXES_PER_FIGURE = 40
# A legend with more entries than this is not drawn: the colours would repeat and mean nothing.
MAX_LEGEND_ENTRIES = 10

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


def plain_text(text: str) -> str:
    """``text`` as matplotlib must draw it: every ``$`` escaped, so a name is never parsed as math text.

    A label called ``$\\frac$`` would otherwise be handed to the math-text parser and fail the figure.

    Examples
    --------
    >>> plain_text("$x$ and $5")
    '\\\\$x\\\\$ and \\\\$5'
    """
    return str(text).replace("$", r"\$")


def _png(figure, *, tight: bool = True) -> bytes:
    buffer = io.BytesIO()
    # "tight" measures the drawn figure and draws it again: for figures laid out by hand, skip it.
    figure.savefig(buffer, format="png", bbox_inches="tight" if tight else None)
    # A palette of 64 colours holds these flat-coloured figures without visible loss and makes the
    # PNG about four times smaller: a report with hundreds of labels stays a few megabytes.
    from PIL import Image  # Pillow comes with matplotlib

    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small = io.BytesIO()
    image.save(small, format="PNG", optimize=True)
    return small.getvalue()


def box_plot_pages(
    values: Mapping[str, Sequence[float]], metric: str, *, per_figure: int = BOXES_PER_FIGURE
) -> list[bytes]:
    """Horizontal box plots of one metric, one row per label/region, at most ``per_figure`` per image.

    Each row is a box (quartiles, median line, whiskers at 1.5 IQR) with every case drawn as a dot on
    it. The height grows with the rows of the figure, never with the label count: 200 labels give
    five images of 40 rows, each of a readable height, all on the same value axis.

    Parameters
    ----------
    values
        Per label/region name, the metric's per-case values (NaN values are left out).
    metric
        The axis title (the metric's name, with its unit).
    per_figure
        Rows per image.

    Returns
    -------
    list of bytes
        PNG images, the first label at the top of the first image.

    Examples
    --------
    >>> pages = box_plot_pages({str(k): [0.5, 0.7] for k in range(45)}, "dice")
    >>> len(pages), pages[0][:4]
    (2, b'\\x89PNG')
    """
    names = list(values)
    data = {n: np.asarray([v for v in values[n] if not math.isnan(v)], dtype=float) for n in names}
    finite = [d for d in data.values() if d.size]
    low_all = min((float(d.min()) for d in finite), default=0.0)
    high_all = max((float(d.max()) for d in finite), default=1.0)
    margin = 0.04 * (high_all - low_all) if high_all > low_all else 0.05 * max(abs(high_all), 1.0)
    from matplotlib.collections import LineCollection

    rng = np.random.default_rng(0)  # jitter is cosmetic but should not change between runs
    # Room for the names on the left: about 0.055 inch per character at the tick font size.
    longest = max((len(n) for n in names), default=1)
    width, left = 6.4, min(0.4, 0.05 + 0.055 * min(longest, 60) / 6.4)
    pages = []
    for start in range(0, len(names), per_figure):
        chunk = names[start : start + per_figure]
        height = 0.7 + 0.2 * max(len(chunk), 2)
        figure = new_figure(width, height)
        figure.subplots_adjust(left=left, right=0.98, top=1 - 0.12 / height, bottom=0.5 / height)
        axes = figure.add_subplot()
        positions = np.arange(len(chunk))[::-1]  # the first label on top
        # A handful of artists per figure, not several per label: boxes as one bar call, medians,
        # whiskers and caps as one line collection, and every case of every label as one scatter.
        boxes, segments, dots_x, dots_y = [], [], [], []
        for y, name in zip(positions, chunk, strict=True):
            d = data[name]
            if not d.size:
                continue
            q1, median, q3 = np.percentile(d, [25, 50, 75])
            reach = 1.5 * (q3 - q1)
            low, high = d[d >= q1 - reach].min(), d[d <= q3 + reach].max()
            boxes.append((y, q1, q3))
            segments += [
                [(median, y - 0.3), (median, y + 0.3)],
                [(low, y), (q1, y)],
                [(q3, y), (high, y)],
                [(low, y - 0.15), (low, y + 0.15)],
                [(high, y - 0.15), (high, y + 0.15)],
            ]
            dots_x.append(d)
            dots_y.append(y + rng.uniform(-0.2, 0.2, d.size))
        if boxes:
            ys, q1s, q3s = (np.asarray(v, dtype=float) for v in zip(*boxes, strict=True))
            axes.barh(
                ys, q3s - q1s, left=q1s, height=0.6, color="#dfe8f1", edgecolor="#34495e", linewidth=0.8
            )
            colours = ["#c0392b" if k % 5 == 0 else "#34495e" for k in range(len(segments))]
            axes.add_collection(LineCollection(segments, colors=colours, linewidths=0.9, zorder=2))
            axes.scatter(
                np.concatenate(dots_x), np.concatenate(dots_y), s=5, alpha=0.5, color="#2c3e50", zorder=3
            )
        axes.set_yticks(positions, [plain_text(n) for n in chunk], fontsize=7)
        axes.set_ylim(-0.7, len(chunk) - 0.3)
        axes.set_xlim(low_all - margin, high_all + margin)
        axes.set_xlabel(plain_text(metric), fontsize=8)
        axes.tick_params(axis="x", labelsize=7)
        axes.grid(axis="x", alpha=0.3)
        pages.append(_png(figure, tight=False))
    return pages


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
    distinct = list(dict.fromkeys(names))
    finite = ~np.isnan(acc) & ~np.isnan(dsc)
    if 1 < len(distinct) <= MAX_LEGEND_ENTRIES:  # a colour per label, named in the legend
        for name in distinct:
            keep = (labels == name) & finite
            # a leading space: matplotlib's legend leaves out labels that start with "_"
            axes.scatter(dsc[keep], acc[keep], s=14, alpha=0.7, label=" " + plain_text(name))
        axes.legend(fontsize="small", loc="lower right")
    else:  # one label, or too many to tell apart by colour: one colour, no legend
        axes.scatter(dsc[finite], acc[finite], s=10, alpha=0.5, color="#2c3e50")
    axes.set_xlabel("Dice")
    axes.set_ylabel("pixel accuracy")
    axes.set_xlim(-0.03, 1.03)
    axes.grid(alpha=0.3)
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


def radiological_view(
    direction: Sequence[Sequence[float]] | None, ndim: int
) -> tuple[tuple[int, ...], tuple[bool, ...]] | None:
    """How to lay a 3-D volume out for display in the radiological convention, from its geometry.

    The returned view puts the volume's axes in the order (rows, columns, slices) = (anterior to
    posterior, patient's right to patient's left, inferior to superior): an axial slice ``view[:, :, k]``
    then shows the patient's right on the viewer's left and the front at the top, as a scanner console
    does. Each array axis is matched to the world axis (RAS+) its direction is closest to.

    Parameters
    ----------
    direction
        One unit vector ``(x, y, z)`` in RAS+ world coordinates per array axis (``Mask.geometry``),
        or ``None`` when the file stores no orientation.
    ndim
        The number of array axes.

    Returns
    -------
    tuple or None
        ``(axes, flips)``: transpose the array by ``axes``, then reverse the view's axes where ``flips``
        is true. ``None`` without a 3-D geometry (the array is shown as stored).

    Examples
    --------
    An array stored in RAS+ order (the NIfTI default): its first axis runs to the patient's right, so
    it becomes the columns, reversed; its second axis runs to the front, so it becomes the rows, reversed.

    >>> radiological_view(((1, 0, 0), (0, 1, 0), (0, 0, 1)), 3)
    ((1, 0, 2), (True, True, False))
    >>> radiological_view(None, 3) is None
    True
    """
    if direction is None or ndim != 3:
        return None
    vectors = np.asarray(direction, dtype=float)
    if vectors.shape[0] != 3 or vectors.shape[1] < 3:
        return None
    world = np.argmax(np.abs(vectors[:, :3]), axis=1)  # the world axis each array axis follows
    if sorted(world.tolist()) != [0, 1, 2]:  # two array axes along one world axis: no safe layout
        return None
    axis_of = {int(w): a for a, w in enumerate(world.tolist())}
    axes = (axis_of[1], axis_of[0], axis_of[2])  # rows: y (A-P), columns: x (R-L), slices: z (I-S)
    flips = (
        bool(vectors[axis_of[1], 1] > 0),  # rows must run toward posterior (-y)
        bool(vectors[axis_of[0], 0] > 0),  # columns must run toward the patient's left (-x)
        bool(vectors[axis_of[2], 2] < 0),  # slices run upward (+z)
    )
    return axes, flips


def _crop_box(pred: np.ndarray, gt: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of both masks' foreground, with a margin of a tenth of its size (>= 4 pixels)."""
    where = np.argwhere((pred != 0) | (gt != 0))
    if where.size == 0:
        return slice(None), slice(None)
    low, high = where.min(axis=0), where.max(axis=0) + 1
    pad = np.maximum(4, (high - low) // 10)
    low = np.maximum(low - pad, 0)
    high = np.minimum(high + pad, gt.shape)
    return slice(int(low[0]), int(high[0])), slice(int(low[1]), int(high[1]))


def overlay_png(pred: np.ndarray, gt: np.ndarray, title: str = "", *, aspect: float = 1.0) -> bytes:
    """Thumbnail of :func:`overlay_rgb` as a PNG image, cropped to where either mask has foreground.

    Parameters
    ----------
    pred, gt
        2-D label maps, already in display orientation (rows top to bottom).
    title
        Drawn above the image, as plain text.
    aspect
        Pixel height over pixel width (the row spacing over the column spacing).

    Examples
    --------
    >>> overlay_png(np.eye(4, dtype=int), np.eye(4, dtype=int))[:4]
    b'\\x89PNG'
    """
    rows, cols = _crop_box(pred, gt)
    rgb = overlay_rgb(pred[rows, cols], gt[rows, cols])
    height, width = rgb.shape[0] * aspect, rgb.shape[1]
    scale = 2.4 / max(height, width)
    figure = new_figure(max(1.2, width * scale), max(1.2, height * scale) + (0.3 if title else 0))
    axes = figure.add_subplot()
    axes.imshow(rgb, interpolation="nearest", aspect=aspect)
    axes.set_axis_off()
    if title:
        axes.set_title(plain_text(title), fontsize=8)
    return _png(figure)


def detection_rate_plot(bins: Sequence[str], rates: Mapping[str, Sequence[float]], unit: str) -> bytes:
    """The share of ground-truth objects found per size bin, one line per label/region.

    Parameters
    ----------
    bins
        The bin names, smallest objects first (the x axis, one tick each).
    rates
        Per label/region (or one entry for all of them), the detection rate of each bin in [0, 1];
        NaN where a bin holds no object (no point drawn).
    unit
        The volume unit, for the axis title.

    Returns
    -------
    bytes
        A PNG image.

    Examples
    --------
    >>> detection_rate_plot(["< 10", "10-100", ">= 100"], {"1": [0.5, float("nan"), 1.0]}, "voxels")[:4]
    b'\\x89PNG'
    """
    figure = new_figure(4.8, 3.2)
    axes = figure.add_subplot()
    x = np.arange(len(bins))
    for name, values in rates.items():
        y = np.asarray(values, dtype=float)
        # a leading space: matplotlib's legend leaves out labels that start with "_"
        axes.plot(x, y, marker="o", markersize=4, linewidth=1.2, label=" " + plain_text(name))
    if 1 < len(rates) <= MAX_LEGEND_ENTRIES:
        axes.legend(fontsize="small", loc="lower right")
    axes.set_xticks(x, [plain_text(b) for b in bins], fontsize=7, rotation=30 if len(bins) > 4 else 0)
    axes.set_xlim(-0.4, len(bins) - 0.6)
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel(plain_text(f"ground-truth object size ({unit})"), fontsize=8)
    axes.set_ylabel("share of objects found", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.grid(alpha=0.3)
    return _png(figure)
