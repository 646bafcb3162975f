"""report.html at many labels and with hostile names: paged plots, capped tables, the across-label mean,
thumbnails in the radiological convention, and names that are never math text."""

from __future__ import annotations

import base64
import io
import itertools
import math
import re

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segdice import evaluate
from segdice.io import save_mask
from segdice.report import CaseView, plots
from segdice.report import html as report_html


def _image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_box_plots_page_by_rows_and_keep_a_readable_height():
    values = {f"label_{k}": [0.1 * (k % 10), 0.5, 0.9] for k in range(95)}
    pages = plots.box_plot_pages(values, "dice")
    assert len(pages) == math.ceil(95 / plots.BOXES_PER_FIGURE) == 3
    heights = [_image(p).shape[0] for p in pages]
    widths = [_image(p).shape[1] for p in pages]
    assert max(heights) < 1000 and len(set(widths)) == 1 and widths[0] <= 700
    assert heights[0] == heights[1] > heights[2]  # the last page holds 15 rows only
    # one label: a short figure, not a tall one
    assert _image(plots.box_plot_pages({"only": [0.2, 0.4]}, "dice")[0]).shape[0] < 200


def test_math_text_names_are_drawn_as_text():
    hostile = {"$\\frac$": [0.5], "$x^2$": [0.2, 0.3], "a $ b": [0.1], "_hidden": [0.4]}
    assert plots.plain_text("$\\frac$") == "\\$\\frac\\$"
    for data in (
        *plots.box_plot_pages(hostile, "$\\frac$ (mm)"),
        plots.accuracy_dice_scatter([0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4], list(hostile)),
        plots.overlay_png(np.eye(6, dtype=int), np.eye(6, dtype=int), title="$\\frac$"),
    ):
        assert _image(data).size


def test_label_names_with_math_text_do_not_stop_the_report(tmp_path):
    gt = np.zeros((12, 12), np.uint8)
    gt[2:6, 2:6] = 1
    gt[7:10, 7:10] = 2
    pred = gt.copy()
    pred[2, 2:6] = 0
    for side, array in (("gt", gt), ("pred", pred)):
        (tmp_path / side).mkdir()
        save_mask(tmp_path / side / "a.png", array)
    result = evaluate(
        tmp_path / "pred", tmp_path / "gt", out=tmp_path / "out", workers=1,
        label_names={"$\\frac$": 1, "<b>$x$</b>": 2},
    )  # fmt: skip
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert result.files["report"].exists()
    assert "$\\frac$" in page and "&lt;b&gt;$x$&lt;/b&gt;" in page


def _fake_result(n_items: int, n_cases: int, *, dice=None):
    """Rows and a summary shaped as the evaluator writes them (only the fields the report reads)."""
    from segdice.evaluation._summary import build_summary  # the real summary, from plain rows

    rows = []
    for case in range(n_cases):
        for item in range(n_items):
            value = dice(case, item) if dice else (case + 1) / (n_cases + 1)
            rows.append(
                {
                    "case": f"c{case:03d}", "item": f"L{item:03d}", "labels": str(item + 1), "n_voxels": 100,
                    "gt_voxels": 10, "pred_voxels": 10, "tp": 5, "fp": 5, "fn": 5, "tn": 85,
                    "empty_gt": False, "empty_pred": False, "missing_pred": False, "error": "",
                    "pred_file": "", "gt_file": "", "dice": value,
                }
            )  # fmt: skip

    class Item:
        def __init__(self, k):
            self.name, self.ids, self.region = f"L{k:03d}", (k + 1,), False

    class Options:
        pred = gt = "."
        pred_suffix = gt_suffix = ""
        ignore_label = None
        metrics = ("dice",)
        spacing = None
        empty_key = "nan"
        nsd_tolerance = 1.0
        reorient = binarize = recursive = False
        pred_glob = gt_glob = None
        hd95, surface = "max", "voxels"

    class Pair:
        pred = "x"

    summary = build_summary(rows, [Pair()] * n_cases, [], [Item(k) for k in range(n_items)], Options())

    class Result:
        per_case = rows

    Result.summary = summary
    return Result


def test_across_label_mean_and_label_rows_in_the_page():
    # label k has Dice k/10 in every case: its mean is k/10, and the mean over labels (0+...+0.9)/10
    result = _fake_result(10, 3, dice=lambda case, item: item / 10)
    page = report_html.render_report(result)
    mean_row = re.search(r'<tr class="mean"><th>mean over labels</th><td></td><td>([^<]+)</td>', page)
    assert mean_row and float(mean_row.group(1)) == pytest.approx(0.45)
    assert result.summary["foreground_mean"]["dice"] == pytest.approx(0.45)
    body = page[page.index('id="labels-table"') :]
    body = body[: body.index("</table>")]
    assert body.count("<tr><td>L0") == 10  # one row per label


def test_case_table_is_capped_to_the_worst_rows(monkeypatch):
    monkeypatch.setattr(report_html, "MAX_TABLE_ROWS", 7)
    # Dice = (case * 5 + item) / 100: the 7 lowest rows are those of the 7 lowest values
    result = _fake_result(5, 4, dice=lambda case, item: (case * 5 + item) / 100)
    page = report_html.render_report(result)
    table = page[page.index('id="cases-table"') :]
    table = table[: table.index("</table>")]
    shown = [float(v) for v in re.findall(r"<tr><td>c\d+</td><td>L\d+</td><td>([^<]+)</td>", table)]
    assert sorted(shown) == [v / 100 for v in range(7)]
    assert "the 7 with the lowest dice are shown" in page


def _display_by_nibabel(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The volume laid out (rows to posterior, columns to the patient's left, slices up), by nibabel."""
    current = nib.orientations.io_orientation(affine)
    wanted = nib.orientations.axcodes2ornt(("P", "L", "S"))
    return nib.orientations.apply_orientation(volume, nib.orientations.ornt_transform(current, wanted))


@settings(max_examples=25, deadline=None)
@given(
    permutation=st.sampled_from(list(itertools.permutations(range(3)))),
    signs=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
    spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 2.5])] * 3),
)
def test_radiological_view_matches_nibabel(permutation, signs, spacing):
    rotation = np.zeros((3, 3))
    for axis, (world, sign) in enumerate(zip(permutation, signs, strict=True)):
        rotation[world, axis] = sign
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    direction = [tuple(rotation[:, axis]) for axis in range(3)]  # unit vector per array axis
    axes, flips = plots.radiological_view(direction, 3)
    view = np.transpose(volume, axes)
    for axis, flip in enumerate(flips):
        if flip:
            view = np.flip(view, axis)
    np.testing.assert_array_equal(view, _display_by_nibabel(volume, affine))


def test_radiological_view_needs_a_3d_geometry():
    assert plots.radiological_view(None, 3) is None
    assert plots.radiological_view(((1, 0, 0), (0, 1, 0)), 2) is None
    # two array axes along the same world axis: no safe layout, shown as stored
    assert plots.radiological_view(((1, 0, 0), (1, 0, 0), (0, 0, 1)), 3) is None


def test_thumbnail_shows_the_slice_with_the_error_never_an_empty_one():
    gt = np.zeros((16, 16, 9), np.uint8)
    gt[4:12, 4:12, 2:7] = 1
    pred = gt.copy()
    pred[4:12, 4:8, 5] = 0  # 32 voxels missed on slice 5 only
    identity = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    thumb = report_html._thumbnail(CaseView(pred, gt, (1.0, 1.0, 1.0), identity))
    assert thumb["image"] and "slice 5 " in thumb["where"] + " "
    pixels = _image(base64.b64decode(thumb["image"].split(",", 1)[1]))
    missed = np.array([round(255 * c) for c in plots.OVERLAY_COLOURS["missed"]])
    agree = np.array([round(255 * c) for c in plots.OVERLAY_COLOURS["agree"]])
    assert (np.abs(pixels.astype(int) - missed).sum(axis=2) < 30).any()
    assert (np.abs(pixels.astype(int) - agree).sum(axis=2) < 30).any()
    # both masks empty everywhere: no picture at all, rather than a black square
    empty = np.zeros_like(gt)
    assert report_html._thumbnail(CaseView(empty, empty, (1.0, 1.0, 1.0), identity))["image"] is None
    assert report_html._thumbnail(None)["image"] is None  # a case that could not be read


def test_many_labels_report_stays_small_and_uses_one_colour_scatter():
    result = _fake_result(120, 4, dice=lambda case, item: ((case * 7 + item) % 10) / 10)
    page = report_html.render_report(result)
    figures = re.findall(r'alt="box plot of dice per label, part (\d+)"', page)
    assert figures == ["1", "2", "3"]  # 120 labels / 40 per figure
    assert "all labels in one colour" in page
    assert len(page.encode()) < 3_000_000
