"""The evaluator key ``gds``: one generalized Dice per case over every scored label, on its own row.

Cases are real NIfTI files (nibabel through ``segdice.io.save_mask``). Every value is checked against the
formula written out below (Sudre et al. 2017 with MONAI's rule for absent classes) and against MONAI's
``compute_generalized_dice`` (what its ``GeneralizedDiceScore`` computes), called in the test.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from segdice import SegDiceError
from segdice.cli import app
from segdice.evaluation import ALL_METRICS, evaluate
from segdice.io import save_mask
from segdice.report.tables import read_case_csv

runner = CliRunner()
SHAPE = (12, 10, 6)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def naive_gds(pred, gt, labels, *, empty=math.nan):
    """2 sum_c w_c |P_c & G_c| / sum_c w_c (|P_c| + |G_c|), w_c = 1/|G_c|^2; an absent class takes the
    largest weight of the present ones, all weights 1 when none is present; nothing anywhere: ``empty``."""
    inter = [int(np.sum((pred == c) & (gt == c))) for c in labels]
    sizes = [int(np.sum(gt == c)) for c in labels]
    both = [int(np.sum(pred == c)) + int(np.sum(gt == c)) for c in labels]
    present = [1.0 / g**2 for g in sizes if g > 0]
    fill = max(present) if present else 1.0
    weights = [1.0 / g**2 if g > 0 else fill for g in sizes]
    num = 2 * sum(w * i for w, i in zip(weights, inter, strict=True))
    den = sum(w * b for w, b in zip(weights, both, strict=True))
    return num / den if den else empty


def _cases(root, seeds=(0, 1, 2, 3)):
    """Random label maps with labels 1-3; seed 2 has no label 3 in the ground truth (a false positive
    there), seed 3 is empty on both sides."""
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    arrays = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        gt = rng.choice(4, size=SHAPE, p=[0.6, 0.25, 0.1, 0.05]).astype(np.uint8)
        pred = np.where(rng.random(SHAPE) < 0.3, rng.integers(0, 4, SHAPE), gt).astype(np.uint8)
        if seed == 2:
            gt[gt == 3] = 0
        if seed == 3:
            gt[:], pred[:] = 0, 0
        save_mask(gt_dir / f"c{seed}.nii.gz", gt, (1.0, 1.0, 2.0))
        save_mask(pred_dir / f"c{seed}.nii.gz", pred, (1.0, 1.0, 2.0))
        arrays[f"c{seed}"] = (pred, gt)
    return pred_dir, gt_dir, arrays


def _gds_rows(result):
    return {r["case"]: r for r in result.per_case if r["item"] == "all"}


def test_gds_is_a_metric_key():
    assert "gds" in ALL_METRICS


def test_one_row_per_case_against_the_formula_and_empty_elsewhere(tmp_path):
    pred, gt, arrays = _cases(tmp_path)
    out = tmp_path / "out"
    result = evaluate(pred, gt, out=out, metrics="dice,gds", workers=1)
    across = _gds_rows(result)
    assert list(across) == ["c0", "c1", "c2", "c3"]
    for case, (p, g) in arrays.items():
        want = naive_gds(p, g, (1, 2, 3))
        got = across[case]["gds"]
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12), case
        assert across[case]["labels"] == "" and across[case]["dice"] is None
    for row in result.per_case:
        if row["item"] != "all":
            assert row["gds"] is None and row["dice"] is not None
    # read back from per_case.csv: the same values, empty cells as None
    _, rows = read_case_csv(out / "per_case.csv")
    back = {r["case"]: r["gds"] for r in rows if r["item"] == "all"}
    assert back["c0"] == across["c0"]["gds"] and math.isnan(back["c3"])
    assert all(r["gds"] is None for r in rows if r["item"] != "all")
    summary = json.loads((out / "summary.json").read_text())
    stats = summary["results"]["all"]["gds"]
    values = [naive_gds(*arrays[c], (1, 2, 3)) for c in ("c0", "c1", "c2")]
    assert stats["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    assert (stats["n"], stats["n_nan"]) == (3, 1)
    assert "gds" not in summary["foreground_mean"]  # the all row is not a label
    label_means = [summary["results"][k]["dice"]["mean"] for k in ("1", "2", "3")]
    assert summary["foreground_mean"]["dice"] == pytest.approx(np.mean(label_means))
    assert "gds" not in summary["results"]["1"] and [i["name"] for i in summary["items"]] == ["1", "2", "3"]
    assert summary["across_labels"] == {
        "item": "all",
        "name": "all labels",
        "labels": [1, 2, 3],
        "metrics": ["gds"],
    }
    assert "1/G_c^2" in summary["definitions"]["gds"]
    html = (out / "report.html").read_text()
    assert 'id="across-gds"' in html and "gds over all scored labels" in html


def test_gds_equals_monai(tmp_path):
    import torch
    from monai.metrics import compute_generalized_dice

    pred, gt, arrays = _cases(tmp_path)
    result = evaluate(pred, gt, metrics="gds", empty="1", workers=1)  # MONAI gives 1 where all is empty
    across = _gds_rows(result)

    def one_hot(a):
        return (
            torch.nn.functional.one_hot(torch.from_numpy(a.astype(np.int64)), 4).movedim(-1, 0)[None].double()
        )

    for case, (p, g) in arrays.items():
        theirs = compute_generalized_dice(
            one_hot(p), one_hot(g), include_background=False, weight_type="square", sum_over_classes=True
        )
        assert across[case]["gds"] == pytest.approx(float(theirs.reshape(-1)[0]), rel=1e-7), (
            case
        )  # MONAI adds an epsilon


def test_labels_ignore_label_and_regions_choose_what_gds_weighs(tmp_path):
    pred, gt, arrays = _cases(tmp_path, seeds=(0, 1))
    subset = _gds_rows(evaluate(pred, gt, metrics="gds", labels=[1, 3], workers=1))
    for case, (p, g) in arrays.items():
        assert subset[case]["gds"] == pytest.approx(naive_gds(p, g, (1, 3)), rel=1e-12)
    ignored = _gds_rows(evaluate(pred, gt, metrics="gds", labels=[1, 2], ignore_label=3, workers=1))
    for case, (p, g) in arrays.items():
        keep = g != 3
        assert ignored[case]["gds"] == pytest.approx(naive_gds(p[keep], g[keep], (1, 2)), rel=1e-12)
    # regions overlap the labels: gds weighs the scored labels only, with or without regions
    plain = _gds_rows(evaluate(pred, gt, metrics="dice,gds", workers=1))
    regions = evaluate(pred, gt, metrics="dice,gds", regions={"fg": [1, 2, 3]}, workers=1)
    assert {c: r["gds"] for c, r in _gds_rows(regions).items()} == {c: r["gds"] for c, r in plain.items()}
    assert regions.summary["across_labels"]["labels"] == [1, 2, 3]
    only_regions = evaluate(pred, gt, metrics="dice,gds", labels=[], regions={"fg": [1, 2, 3]}, workers=1)
    assert all(math.isnan(r["gds"]) for r in _gds_rows(only_regions).values())  # no label to weigh
    assert only_regions.summary["across_labels"]["labels"] == []


def test_resume_error_rows_and_a_label_called_all(tmp_path):
    pred, gt, arrays = _cases(tmp_path, seeds=(0, 1, 2))
    (pred / "c1.nii.gz").write_bytes(b"broken")
    out = tmp_path / "out"
    first = evaluate(pred, gt, out=out, metrics="dice,gds", workers=1)
    broken = _gds_rows(first)["c1"]
    assert broken["error"] and math.isnan(broken["gds"])
    assert first.summary["results"]["all"]["gds"]["n_error"] == 1
    resumed = evaluate(pred, gt, out=out, metrics="dice,gds", workers=1, resume=True)
    assert [(r["case"], r["item"]) for r in resumed.per_case] == [
        (r["case"], r["item"]) for r in first.per_case
    ]
    for case in ("c0", "c2"):
        assert _gds_rows(resumed)[case]["gds"] == pytest.approx(
            naive_gds(*arrays[case], (1, 2, 3)), rel=1e-12
        )
    assert resumed.summary["results"]["all"] == first.summary["results"]["all"]
    with pytest.raises(SegDiceError, match="'all'"):
        evaluate(pred, gt, metrics="gds", label_names={"all": 1}, workers=1)
    assert evaluate(pred, gt, metrics="dice", label_names={"all": 1}, workers=1).per_case[0]["item"] == "all"


def test_cli_metrics_with_gds_and_compare(tmp_path):
    pred, gt, _ = _cases(tmp_path, seeds=(0, 1))
    out = tmp_path / "cli"
    ok = runner.invoke(
        app,
        ["evaluate", str(pred), str(gt), "--out", str(out), "--metrics", "mcc,gds,biou,cldice", "-j", "1", "--no-progress"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "gds over all labels (one value per case, row 'all'): mean" in ok.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["all"]["gds"]["n"] == 2
    assert set(summary["foreground_mean"]) == {"mcc", "biou", "cldice"}
    from segdice import compare

    other = tmp_path / "cli2"
    assert (
        runner.invoke(
            app,
            [
                "evaluate",
                str(gt),
                str(gt),
                "--out",
                str(other),
                "--metrics",
                "dice,gds",
                "-j",
                "1",
                "--no-progress",
            ],
        ).exit_code
        == 0
    )
    first = runner.invoke(
        app,
        [
            "evaluate",
            str(pred),
            str(gt),
            "--out",
            str(out),
            "--metrics",
            "dice,gds",
            "-j",
            "1",
            "--no-progress",
        ],
    )
    assert first.exit_code == 0, first.output
    comparison = compare([out, other], names=["model", "truth"])
    compared = {(c["item"], c["metric"]) for c in comparison.comparisons}
    assert compared == {("1", "dice"), ("2", "dice"), ("3", "dice")}  # gds and its row are not compared
