"""segdice.report: CSV round trip, strict JSON, plots, and an HTML page that names cannot inject into."""

import base64
import io
import math
import re
from html.parser import HTMLParser

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from segdice import evaluate
from segdice.io import save_mask
from segdice.report import plots
from segdice.report.tables import CaseCSVWriter, read_case_csv, to_json_safe, write_case_csv

COLUMNS = ["case", "item", "labels", "tp", "empty_gt", "error", "dice", "hd95"]


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=20)
row_strategy = st.fixed_dictionaries(
    {
        "case": text,
        "item": text,
        "labels": st.sampled_from(["1", "2+3"]),
        "tp": st.one_of(st.none(), st.integers(0, 2**40)),
        "empty_gt": st.one_of(st.none(), st.booleans()),
        "error": text,
        "dice": st.floats(allow_nan=True, allow_infinity=True),
        "hd95": st.floats(allow_nan=True, allow_infinity=True),
    }
)


@given(rows=st.lists(row_strategy, max_size=5))
def test_csv_round_trip_keeps_every_value(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "per_case.csv"
    write_case_csv(path, COLUMNS, rows)
    columns, back = read_case_csv(path)
    assert columns == COLUMNS
    assert len(back) == len(rows)
    for original, read in zip(rows, back, strict=True):
        for key, value in original.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(read[key])
            else:
                assert read[key] == value, key


def test_streamed_rows_survive_a_cut_last_line(tmp_path):
    path = tmp_path / "rows.csv"
    with CaseCSVWriter(path, COLUMNS) as writer:
        writer.write_rows([{"case": "a", "item": "1", "labels": "1", "tp": 3, "dice": 0.5}])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("b,1,1,7")  # the process died in the middle of a row
    _, rows = read_case_csv(path)
    assert [r["case"] for r in rows] == ["a"]
    assert rows[0]["tp"] == 3 and rows[0]["empty_gt"] is None and rows[0]["error"] == ""


def test_json_safe_turns_non_finite_into_null():
    assert to_json_safe({"a": [math.nan, -math.inf, 1.5], "b": (2, "x")}) == {
        "a": [None, None, 1.5],
        "b": [2, "x"],
    }


def _png_array(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_plots_are_png_images():
    for data in (
        *plots.box_plot_pages({"a": [0.1, 0.5, 0.9], "empty": [math.nan]}, "dice"),
        plots.accuracy_dice_scatter([0.99, 0.5], [0.0, 0.6], ["1", "2"]),
        plots.overlay_png(np.eye(5, dtype=int), np.ones((5, 5), dtype=int)),
    ):
        image = _png_array(data)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_overlay_colours_each_kind_of_voxel():
    gt = np.array([[0, 1, 1, 2]])
    pred = np.array([[1, 1, 0, 3]])
    rgb = plots.overlay_rgb(pred, gt)
    expected = ["extra", "agree", "missed", "wrong label"]
    for column, key in enumerate(expected):
        assert tuple(rgb[0, column]) == plots.OVERLAY_COLOURS[key]
    assert tuple(plots.overlay_rgb(np.zeros((1, 1)), np.zeros((1, 1)))[0, 0]) == (0.0, 0.0, 0.0)


def test_slice_of_largest_error_picks_the_worst_slice():
    gt = np.zeros((6, 6, 5), dtype=int)
    gt[1:5, 1:5, :] = 1
    pred = gt.copy()
    pred[:, :, 1] = 0  # 16 voxels wrong
    pred[0, 0, 3] = 1  # 1 voxel wrong
    index, pred_slice, gt_slice = plots.slice_of_largest_error(pred, gt)
    assert index == 1
    np.testing.assert_array_equal(gt_slice, gt[:, :, 1])
    np.testing.assert_array_equal(pred_slice, pred[:, :, 1])
    assert plots.slice_of_largest_error(pred[:, :, 0], gt[:, :, 0])[0] is None


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.attributes = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend(attrs)


def test_html_report_is_self_contained_and_names_cannot_inject_markup(tmp_path):
    # '/' cannot appear in a file name, so the payload is a folder "<script>alert(1)<" holding a file
    # "script>.npy": its path reads .../<script>alert(1)</script>.npy.
    gt_dir = tmp_path / "gt" / "<script>alert(1)<"
    pred_dir = tmp_path / "pred" / "<script>alert(1)<"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir(parents=True)
    gt = np.zeros((12, 12), np.uint8)
    gt[2:8, 2:8] = 1
    pred = np.zeros_like(gt)
    pred[3:9, 3:7] = 1
    for name in ("script>", 'x" onmouseover="alert(2)', "<img src=x onerror=alert(3)>", "plain"):
        save_mask(gt_dir / f"{name}.npy", gt)
        save_mask(pred_dir / f"{name}.npy", pred)
    (pred_dir / "plain.npy").write_bytes(b"<b>not an array</b>")  # its error text holds markup too
    result = evaluate(
        pred_dir,
        gt_dir,
        out=tmp_path / "out",
        label_names={"<i>liver</i>": 1},
        metrics=("dice", "hd95"),
        workers=1,
    )
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert result.files["report"] == tmp_path / "out" / "report.html"

    # The page's one script is the template's fixed code: no name, path or error text inside it.
    assert html.lower().count("<script") == 1
    script = html[html.index("<script>") + len("<script>") : html.index("</script>")]
    for payload in ("alert", "liver", "onmouseover", "not an array"):
        assert payload not in script
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    html = html.replace(script, "")
    assert "<script" not in html.lower().replace("<script></script>", "")
    assert "<img src=x" not in html and "<i>liver" not in html and "<b>not" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.npy" in html  # the path is shown, as text
    assert "&#34;alert(2)" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html
    assert "&lt;i&gt;liver&lt;/i&gt;" in html

    parser = _TagCollector()
    parser.feed(html)
    assert parser.tags.count("script") == 1  # the template's own, emptied above
    assert not [name for name, _ in parser.attributes if name.startswith("on")]  # no event handlers
    sources = [value for name, value in parser.attributes if name == "src"]
    assert [v for name, v in parser.attributes if name == "href"] == ["data:,"]  # the empty favicon
    assert sources and all(v.startswith("data:image/png;base64,") for v in sources)  # nothing fetched
    for source in sources:
        assert _png_array(base64.b64decode(source.split(",", 1)[1])).size
    assert not re.search(r"""(href|src)=["']?(https?:)?//""", html)

    # The page reports what the run found.
    assert "Worst cases" in html and "Failed cases" in html and "Per case" in html
    assert html.count('alt="overlay of') == 3  # a thumbnail per scored case (fewer than five here)
    assert f"{result.summary['results']['<i>liver</i>']['dice']['mean']:.4g}" in html
