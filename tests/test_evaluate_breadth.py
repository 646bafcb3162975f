"""The evaluator's new metric keys (the confusion family, biou, cldice) and --hd95 pooled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from segdice import SegDiceError
from segdice.cli import app
from segdice.evaluation import ALL_METRICS, evaluate
from segdice.io import save_mask
from segdice.metrics import boundary_iou, cldice_score

runner = CliRunner()


@pytest.fixture
def case(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((20, 24), np.uint8)
    gt[3:12, 4:20] = 1
    gt[14:17, 2:22] = 2  # a thin structure
    pred = gt.copy()
    pred[3:5, 4:20] = 0
    pred[15, 10:13] = 0
    pred[18, 5:9] = 1
    save_mask(gt_dir / "a.npy", gt)
    save_mask(pred_dir / "a.npy", pred)
    return pred_dir, gt_dir, pred, gt


def test_new_keys_are_evaluator_metrics():
    for key in (
        "mcc",
        "npv",
        "fpr",
        "fnr",
        "fdr",
        "for",
        "ba",
        "fmi",
        "bm",
        "mk",
        "pt",
        "vs",
        "rvd",
        "biou",
        "cldice",
    ):
        assert key in ALL_METRICS


def test_evaluate_confusion_family_biou_cldice(case):
    pred_dir, gt_dir, pred, gt = case
    result = evaluate(pred_dir, gt_dir, metrics="mcc,vs,rvd,npv,biou,cldice,hd95", workers=1)
    rows = {r["item"]: r for r in result.per_case}
    for label in (1, 2):
        p, t = pred == label, gt == label
        tp, fp, fn, tn = (int(v) for v in ((p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum()))
        row = rows[str(label)]
        mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        assert row["mcc"] == pytest.approx(mcc, rel=1e-12)
        assert row["vs"] == pytest.approx(1 - abs(fp - fn) / (2 * tp + fp + fn), rel=1e-12)
        assert row["rvd"] == pytest.approx((fp - fn) / (tp + fn), rel=1e-12)
        assert row["npv"] == pytest.approx(tn / (tn + fn), rel=1e-12)
        assert row["biou"] == pytest.approx(boundary_iou(p, t), rel=1e-12)
        assert row["cldice"] == pytest.approx(cldice_score(p, t), rel=1e-12)


def test_hd95_pooled_equals_medpy(case, tmp_path):
    from medpy.metric.binary import hd95

    pred_dir, gt_dir, pred, gt = case
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "evaluate", str(pred_dir), str(gt_dir), "--out", str(out), "--metrics", "hd95,mcc,biou",
            "--hd95", "pooled", "-j", "1", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {
        r["item"]: r for r in evaluate(pred_dir, gt_dir, metrics="hd95", workers=1, hd95="pooled").per_case
    }
    for label in (1, 2):
        assert rows[str(label)]["hd95"] == pytest.approx(hd95(pred == label, gt == label), rel=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert "pooled" in summary["definitions"]["hd95"]
    default = {r["item"]: r for r in evaluate(pred_dir, gt_dir, metrics="hd95", workers=1).per_case}
    assert default["1"]["hd95"] != rows["1"]["hd95"]  # the two definitions differ on this case


def test_hd95_bad_choice(case):
    pred_dir, gt_dir, _, _ = case
    with pytest.raises(SegDiceError, match="hd95"):
        evaluate(pred_dir, gt_dir, metrics="hd95", workers=1, hd95="mean")
    result = runner.invoke(app, ["evaluate", str(pred_dir), str(gt_dir), "--hd95", "mean", "--no-progress"])
    assert result.exit_code == 2 and "hd95" in result.output


def test_surface_surfels_equals_deepmind(case, tmp_path):
    from surface_distance import compute_robust_hausdorff, compute_surface_distances

    pred_dir, gt_dir, pred, gt = case
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "evaluate", str(pred_dir), str(gt_dir), "--out", str(out), "--metrics", "hd95",
            "--surface", "surfels", "-j", "1", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {
        r["item"]: r
        for r in evaluate(pred_dir, gt_dir, metrics="hd95", workers=1, surface="surfels").per_case
    }
    for label in (1, 2):
        distances = compute_surface_distances(gt == label, pred == label, (1.0, 1.0))
        assert rows[str(label)]["hd95"] == pytest.approx(compute_robust_hausdorff(distances, 95), rel=1e-9)
    assert "surfel" in json.loads((out / "summary.json").read_text())["definitions"]["hd95"]
    with pytest.raises(SegDiceError, match="surface"):
        evaluate(pred_dir, gt_dir, metrics="hd95", workers=1, hd95="pooled", surface="surfels")
