"""`segdice compare` on the command line: outputs, --json, exit codes and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import segdice
from segdice.cli import app
from segdice.io import save_mask

runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real evaluation runs on one ground truth, and one on a ground truth with a different case."""
    root = tmp_path_factory.mktemp("runs")
    for folder in ("gt", "gt_other", "exact", "shifted"):
        (root / folder).mkdir()
    for k in range(8):
        truth = np.zeros((16, 16), np.uint8)
        truth[3 : 9 + k % 3, 4:12] = 1
        save_mask(root / "gt" / f"c{k}.png", truth)
        save_mask(root / "gt_other" / f"c{k if k else 99}.png", truth)
        save_mask(root / "exact" / f"c{k}.png", truth)
        save_mask(root / "shifted" / f"c{k}.png", np.roll(truth, 1 + k % 2, axis=1))
    for name, pred, gt in (("a", "exact", "gt"), ("b", "shifted", "gt"), ("other", "gt_other", "gt_other")):
        segdice.evaluate(root / pred, root / gt, out=root / f"run_{name}", metrics="dice,hd95", workers=1)
    return root


def test_compare_prints_a_table_and_writes_the_outputs(runs, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(
        app,
        ["compare", str(runs / "run_a"), str(runs / "run_b"), "--out", str(out), "--names", "exact,shifted",
         "--resamples", "200"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "exact" in result.output and "shifted" in result.output and "hd95" in result.output
    assert "8 paired case(s)" in result.output
    assert {p.name for p in out.iterdir()} == {"comparison.csv", "comparison.json", "comparison.html"}


def test_json_output_reflects_every_option(runs):
    result = runner.invoke(
        app,
        ["compare", str(runs / "run_a"), str(runs / "run_b"), "--json", "--names", "x,y", "--metrics", "dice",
         "--items", "1", "--test", "ttest", "--correction", "bonferroni", "--alpha", "0.1",
         "--resamples", "150", "--seed", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"] == {
        "items": ["1"],
        "metrics": ["dice"],
        "test": "ttest",
        "correction": "bonferroni",
        "alpha": 0.1,
        "confidence": 0.95,
        "n_resamples": 150,
        "seed": 3,
        "n_tests": 1,
    }
    (row,) = data["comparisons"]
    assert (row["run_a"], row["run_b"], row["n"], row["wins"], row["losses"]) == ("x", "y", 8, 8, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run_a", "run_other"], "not scored against the same ground truth"),
        (["run_a", "nowhere"], "does not exist"),
        (["run_a"], "two or more"),
        (["run_a", "run_b", "--test", "anova"], "test"),
        (["run_a", "run_b", "--correction", "sidak"], "correction"),
        (["run_a", "run_b", "--metrics", "iou"], "iou"),
        (["run_a", "run_b", "--resamples", "0"], "resamples"),
    ],
)
def test_usage_errors_exit_2_with_a_clean_message(runs, args, message):
    argv = ["compare", *[str(runs / a) if a.startswith(("run_", "nowhere")) else a for a in args]]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_console_script_exits_2_without_a_traceback(runs):
    completed = subprocess.run(
        [sys.executable, "-m", "segdice.cli", "compare", str(runs / "run_a"), str(runs / "run_other")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "case 'c0' is in 'run_a' but not in 'run_other'" in completed.stderr.replace("\n", " ")
    assert "Traceback" not in completed.stderr + completed.stdout
