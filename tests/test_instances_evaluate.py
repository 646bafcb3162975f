"""`segdice evaluate --instances / --match / --protocol`: object columns, lesions.csv, summary, CLI.

Real NIfTI files written by nibabel (through ``segdice.io.save_mask``) and ``.npy`` instance maps; the
BraTS protocol is checked against the challenge algorithm written out in ``test_instances_peers``.
"""

from __future__ import annotations

import csv
import json
import math
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from segdice.cli import app
from segdice.evaluation import evaluate
from segdice.io import save_mask
from segdice.report.tables import read_case_csv

runner = CliRunner()


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _lesion_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def lesion_folders(tmp_path):
    """Two cases: label 1 with two lesions (one found, one missed) and a false positive; label 2 found."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((20, 20, 8), np.uint8)
    gt[2:6, 2:6, 2:5] = 1  # 48 voxels, found
    gt[12:15, 12:15, 2:4] = 1  # 18 voxels, missed
    gt[14:18, 2:6, 2:6] = 2
    pred = np.zeros_like(gt)
    pred[2:6, 2:5, 2:5] = 1  # 36 of the 48
    pred[10, 18, 6] = 1  # a one-voxel false positive
    pred[14:18, 2:6, 2:6] = 2
    save_mask(gt_dir / "a.nii.gz", gt, (1.0, 1.0, 2.0))
    save_mask(pred_dir / "a.nii.gz", pred, (1.0, 1.0, 2.0))
    save_mask(gt_dir / "b.nii.gz", gt, (1.0, 1.0, 2.0))  # b: no prediction at all
    return pred_dir, gt_dir


def test_component_columns_lesions_csv_and_summary(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    out = tmp_path / "out"
    result = evaluate(pred, gt, out=out, metrics="dice,hd95", instances="components", workers=1)
    rows = {(r["case"], r["item"]): r for r in result.per_case}
    a1 = rows[("a", "1")]
    assert (a1["objects_tp"], a1["objects_fp"], a1["objects_fn"]) == (1, 1, 1)
    assert (a1["tp"], a1["fp"], a1["fn"]) == (36, 1, 30)  # the voxel counts are untouched
    dice = 2 * 36 / (36 + 48)
    assert a1["lesion_dice"] == pytest.approx(dice / 3)
    assert a1["matched_dice"] == pytest.approx(dice)
    assert a1["detection_f1"] == pytest.approx(0.5)
    assert a1["pq"] == pytest.approx((36 / 48) / 2)
    b1 = rows[("b", "1")]  # missing prediction: every lesion missed
    assert (b1["objects_tp"], b1["objects_fn"], b1["lesion_dice"]) == (0, 2, 0.0)
    assert rows[("a", "2")]["lesion_dice"] == 1.0

    _, csv_rows = read_case_csv(out / "per_case.csv")
    assert csv_rows[0]["lesion_dice"] == pytest.approx(a1["lesion_dice"])
    lesions = _lesion_rows(out / "lesions.csv")
    a_rows = [r for r in lesions if r["case"] == "a" and r["item"] == "1"]
    assert [(r["side"], r["status"], r["voxels"]) for r in a_rows] == [
        ("target", "tp", "48"),
        ("target", "fn", "18"),
        ("pred", "tp", "36"),
        ("pred", "fp", "1"),
    ]
    assert float(a_rows[0]["volume"]) == 96.0  # mm³ with the (1, 1, 2) spacing
    assert a_rows[0]["matched"] == "1"
    assert [r["case"] for r in lesions] == sorted(r["case"] for r in lesions)
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["results"]["1"]["lesion_dice"]
    assert stats["n"] == 2 and stats["mean"] == pytest.approx((dice / 3 + 0) / 2)
    assert summary["inputs"]["instances"]["method"] == "hungarian"
    assert "lesion_<m>" in summary["definitions"]["instances"]


def test_match_options_reach_the_matching(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    strict = evaluate(pred, gt, metrics="dice", instances="components", match_threshold=0.8, workers=1)
    assert strict.per_case[0]["objects_tp"] == 0  # IoU 0.75 is not above 0.8
    overlap = evaluate(pred, gt, metrics="dice", instances="components", match="overlap", workers=1)
    assert overlap.per_case[0]["objects_tp"] == 1
    floor = evaluate(pred, gt, metrics="dice", instances="components", min_volume=40, workers=1)
    assert (floor.per_case[0]["objects_tp"], floor.per_case[0]["objects_fn"]) == (1, 0)  # 36 mm³ dropped
    merged = evaluate(pred, gt, metrics="dice", instances="components", match="brats", dilation=4, workers=1)
    assert merged.per_case[0]["objects_tp"] == 1 and merged.per_case[0]["objects_fn"] == 0


@pytest.mark.slow
def test_brats_protocol_equals_the_challenge_algorithm(tmp_path):
    from test_instances_peers import brats_like_case, brats_reference

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    spacing = (1.0, 1.0, 1.5)
    for seed in (0, 4):
        pred, gt = brats_like_case(seed)
        save_mask(gt_dir / f"c{seed}.nii.gz", gt.astype(np.uint8), spacing)
        save_mask(pred_dir / f"c{seed}.nii.gz", pred.astype(np.uint8), spacing)
    out = tmp_path / "out"
    result = evaluate(pred_dir, gt_dir, out=out, protocol="brats2023-met", workers=1)
    assert [r["item"] for r in result.per_case] == ["WT", "TC", "ET"] * 2
    for seed in (0, 4):
        pred, gt = brats_like_case(seed)
        expected = brats_reference(pred, gt, spacing, "MET")
        for row in (r for r in result.per_case if r["case"] == f"c{seed}"):
            want = expected[row["item"]]
            assert row["lesion_dice"] == pytest.approx(want["lesion_dice"], rel=1e-12)
            assert row["lesion_hd95"] == pytest.approx(want["lesion_hd95"], rel=1e-12)
            assert row["dice"] == pytest.approx(want["legacy_dice"], rel=1e-12)
            assert row["hd95"] == pytest.approx(want["legacy_hd95"], rel=1e-12)
            assert row["recall"] == pytest.approx(want["sensitivity"], rel=1e-12)
            assert row["specificity"] == pytest.approx(want["specificity"], rel=1e-12)
            counts = (row["objects_tp"], row["objects_fp"], row["objects_fn"])
            assert counts == (want["tp"], want["fp"], want["fn"])
    assert (out / "lesions.csv").exists()


def test_instance_label_maps_are_one_item(tmp_path):
    from segdice.metrics import panoptic_quality

    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((16, 16), np.uint16)
    gt[1:5, 1:5], gt[1:5, 5:9], gt[10:14, 10:14] = 7, 8, 300  # two touching nuclei and a third
    pred = np.zeros_like(gt)
    pred[1:5, 1:4], pred[1:5, 5:9], pred[12, 2] = 2, 1, 5
    np.save(gt_dir / "img.npy", gt)
    np.save(pred_dir / "img.npy", pred)
    result = evaluate(pred_dir, gt_dir, metrics="dice,iou", instances="labels", workers=1)
    (row,) = result.per_case
    assert row["item"] == "objects"
    expected = panoptic_quality(pred, gt, instances="labels")
    assert (row["objects_tp"], row["objects_fp"], row["objects_fn"]) == (
        expected["tp"],
        expected["fp"],
        expected["fn"],
    )
    assert row["pq"] == pytest.approx(expected["pq"])
    assert row["dice"] == pytest.approx(2 * 28 / (29 + 48))  # foreground Dice of the instance maps


def test_resume_keeps_the_lesion_rows_of_finished_cases(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    out = tmp_path / "out"
    evaluate(pred, gt, out=out, metrics="dice", instances="components", workers=1)
    first = _lesion_rows(out / "lesions.csv")
    evaluate(pred, gt, out=out, metrics="dice", instances="components", workers=1, resume=True)
    assert _lesion_rows(out / "lesions.csv") == first


def test_cli_protocol_and_usage_errors(lesion_folders, tmp_path):
    pred, gt = lesion_folders
    out = tmp_path / "cli"
    ok = runner.invoke(
        app,
        [
            "evaluate",
            str(pred),
            str(gt),
            "--out",
            str(out),
            "--protocol",
            "brats2023-gli",
            "-j",
            "1",
            "--no-progress",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "lesions.csv" in ok.output and (out / "lesions.csv").exists()
    _, rows = read_case_csv(out / "per_case.csv")
    assert {r["item"] for r in rows} == {"WT", "TC", "ET"}
    assert all(not math.isnan(r["lesion_dice"]) for r in rows)
    comps = runner.invoke(
        app,
        ["evaluate", str(pred), str(gt), "--instances", "components", "--match", "dice", "--match-threshold", "0.3",
         "--dilation", "1", "--min-volume", "2", "--metrics", "dice", "-j", "1", "--no-progress"],
    )  # fmt: skip
    assert comps.exit_code == 0, comps.output
    for args, needle in [
        (["--match", "brats"], "instances"),
        (["--protocol", "brats2024"], "protocol"),
        (["--instances", "pixels"], "instances"),
        (["--protocol", "brats2023-met", "--labels", "1"], "labels"),
        (["--protocol", "brats2023-met", "--metrics", "dice"], "metrics"),
        (["--instances", "components", "--match-threshold", "2"], "match_threshold"),
    ]:
        bad = runner.invoke(app, ["evaluate", str(pred), str(gt), "-j", "1", "--no-progress", *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert needle in bad.output, (args, bad.output)
