"""The object sections of summary.json and report.html (``--instances``, ``--protocol``).

Real NIfTI files (nibabel through ``segdice.io.save_mask``) and ``.npy`` maps; the expected detection
numbers are worked out by hand from the masks drawn here, the size bins by a naive loop in the test.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segdice.evaluation import evaluate
from segdice.evaluation._detection import detection_by_size
from segdice.io import save_mask
from segdice.report.html import render_report
from segdice.report.tables import read_case_csv

SPACING = (1.0, 1.0, 2.0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def lesion_folders(tmp_path):
    """Case a: label 1 has a 48-voxel lesion found (36 of its voxels), an 18-voxel lesion missed and a
    1-voxel false positive; label 2 (64 voxels) found. Case b: no prediction (every lesion missed)."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((20, 20, 8), np.uint8)
    gt[2:6, 2:6, 2:5] = 1  # 48 voxels = 96 mm³
    gt[12:15, 12:15, 2:4] = 1  # 18 voxels = 36 mm³
    gt[14:18, 2:6, 2:6] = 2  # 64 voxels = 128 mm³
    pred = np.zeros_like(gt)
    pred[2:6, 2:5, 2:5] = 1
    pred[10, 18, 6] = 1
    pred[14:18, 2:6, 2:6] = 2
    save_mask(gt_dir / "a.nii.gz", gt, SPACING)
    save_mask(pred_dir / "a.nii.gz", pred, SPACING)
    save_mask(gt_dir / "b.nii.gz", gt, SPACING)
    return pred_dir, gt_dir


def test_summary_detection_table_pools_counts_and_means_case_f1(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    out = tmp_path / "out"
    evaluate(pred, gt, out=out, metrics="dice", instances="components", workers=1)
    summary = json.loads((out / "summary.json").read_text())
    one, two = summary["detection"]["1"], summary["detection"]["2"]
    # label 1: a has TP 1, FP 1, FN 1; b has FN 2
    assert (one["objects_tp"], one["objects_fp"], one["objects_fn"]) == (1, 1, 3)
    assert all(type(one[k]) is int for k in ("objects_tp", "objects_fp", "objects_fn", "cases"))
    assert one["precision"] == pytest.approx(1 / 2)
    assert one["recall"] == pytest.approx(1 / 4)
    assert one["f1"] == pytest.approx(2 / (2 + 1 + 3))
    assert one["mean_case_f1"] == pytest.approx((2 / (2 + 1 + 1) + 0.0) / 2)
    assert (one["n_case_f1"], one["cases"]) == (2, 2)
    # label 2: found in a, missed in b
    assert (two["objects_tp"], two["objects_fp"], two["objects_fn"]) == (1, 0, 1)
    assert two["precision"] == 1.0 and two["recall"] == 0.5
    assert "pooled" in summary["definitions"]["detection"]

    sizes = summary["detection_by_size"]
    assert sizes["unit"] == "mm³"
    assert sizes["edges"] == [10.0, 100.0, 1000.0]  # volumes 36, 96 and 128 mm³
    assert sizes["items"]["1"]["targets"] == [4, 0] and sizes["items"]["1"]["found"] == [1, 0]
    assert sizes["items"]["1"]["recall"] == [0.25, None]  # JSON null: no object in the bin
    assert sizes["items"]["2"]["targets"] == [0, 2] and sizes["items"]["2"]["found"] == [0, 1]


def test_min_volume_targets_are_reported_apart(lesion_folders):
    pred, gt = lesion_folders
    result = evaluate(pred, gt, metrics="dice", instances="components", min_volume=40, workers=1)
    one = result.summary["detection_by_size"]["items"]["1"]
    assert one["below_min_volume"] == 2  # the 36 mm³ lesion of both cases
    assert sum(one["targets"]) == 2 and sum(one["found"]) == 1


def test_object_counts_stay_ints_after_resume_and_an_error_row(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    (pred / "b.nii.gz").write_bytes(b"not a nifti file")  # case b: an error row
    out = tmp_path / "out"
    first = evaluate(pred, gt, out=out, metrics="dice", instances="components", workers=1)
    errors = [r for r in first.per_case if r["error"]]
    assert errors and all(r["objects_tp"] is None for r in errors)  # a count is an int or nothing
    _, rows = read_case_csv(out / "per_case.csv")
    assert len(rows) == 4  # the error rows read back too
    for row in rows:
        for column in ("objects_tp", "objects_fp", "objects_fn", "tp", "fp", "fn"):
            assert row[column] is None if row["error"] else type(row[column]) is int, (column, row)
    resumed = evaluate(pred, gt, out=out, metrics="dice", instances="components", workers=1, resume=True)
    kept = [r for r in resumed.per_case if r["case"] == "a"]
    assert [type(r["objects_tp"]) for r in kept] == [int, int]
    assert resumed.summary["detection"] == first.summary["detection"]
    html = (out / "report.html").read_text()
    assert not re.search(r"<td>\d+\.0</td>", html)  # no count drawn as a float
    summary = json.loads((out / "summary.json").read_text())
    assert summary["detection"]["1"]["objects_fn"] == 1 and summary["detection"]["1"]["cases"] == 1


def test_report_sections_escape_names_and_appear_only_with_objects(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    names = {"<b>bold</b>": 1, "$\\frac$ & co": 2}
    evaluate(
        pred, gt, out=tmp_path / "out", metrics="dice,hd95", instances="components", workers=1,
        label_names=names,
    )  # fmt: skip
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="detection-table"' in html and 'id="size-table"' in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&amp; co" in html
    assert "lesion-wise hd95 (mm)" in html and "F1 (pooled)" in html and "F1 (case mean)" in html
    assert "0.25 (1/4)" in html  # label 1, the 10-100 mm³ bin: 1 of 4 found
    assert 'alt="share of ground-truth objects found per object size"' in html
    assert "<th>TP objects</th>" in html  # the per-case table carries the object counts
    plain = evaluate(pred, gt, metrics="dice", workers=1)
    page = render_report(plain)
    assert "detection-table" not in page and "TP objects" not in page


def test_many_items_get_one_pooled_line_and_instance_maps_one_item(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((24, 60), np.uint8)
    for k in range(12):  # 12 labels, each one 2x2 object and one 3x3 object
        gt[1:3, 5 * k : 5 * k + 2] = k + 1
        gt[10:13, 5 * k : 5 * k + 3] = k + 1
    pred = gt.copy()
    pred[10:13] = 0  # every 9-pixel object missed, every 4-pixel one found
    np.save(gt_dir / "x.npy", gt)
    np.save(pred_dir / "x.npy", pred)
    result = evaluate(
        pred_dir, gt_dir, out=tmp_path / "out", metrics="dice", instances="components", workers=1
    )
    sizes = result.summary["detection_by_size"]
    assert sizes["unit"] == "voxels" and sizes["edges"] == [1.0, 10.0]
    assert all(v["targets"] == [2] and v["found"] == [1] for v in sizes["items"].values())
    html = (tmp_path / "out" / "report.html").read_text()
    assert "the objects of all 12 labels/regions together" in html
    assert "all sizes (voxels)" in html


def _naive_bins(volumes):
    """Decade of each volume, clipped to the decades the volumes span (at most 8 from the top)."""
    decades = []
    for v in volumes:  # the largest k with 10**k <= v, by counting up
        k = -10
        while 10.0 ** (k + 1) <= v:
            k += 1
        decades.append(k)
    top = max(decades)
    low = max(min(decades), top + 1 - 8)
    return [max(d, low) - low for d in decades], top + 1 - low


@given(
    st.lists(
        st.tuples(st.floats(1e-3, 1e9, allow_nan=False), st.booleans(), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=30,
    )
)
def test_size_bins_match_a_naive_decade_count(objects):
    rows = [
        {"item": item, "side": "target", "status": "tp" if hit else "fn", "voxels": "1", "volume": repr(v)}
        for v, hit, item in objects
    ]
    rows.append(
        {"item": "a", "side": "pred", "status": "fp", "voxels": "1", "volume": "1e12"}
    )  # not a target
    result = detection_by_size(rows, ["a", "b"])
    index, n_bins = _naive_bins([v for v, _, _ in objects])
    assert len(result["edges"]) == n_bins + 1
    for name in ("a", "b"):
        targets, found = [0] * n_bins, [0] * n_bins
        for k, (_, hit, item) in zip(index, objects, strict=True):
            if item == name:
                targets[k] += 1
                found[k] += hit
        assert result["items"][name]["targets"] == targets
        assert result["items"][name]["found"] == found
        for r, f, t in zip(result["items"][name]["recall"], found, targets, strict=True):
            assert math.isnan(r) if t == 0 else r == f / t
