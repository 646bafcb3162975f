"""`segdice evaluate` on the command line: options, outputs, exit codes."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from _subprocess import SEGDICE_SCRIPT, data_rows, interrupt, reaped, run, start, wait_until
from segdice.cli import app
from segdice.evaluation import _run as evaluate_run
from segdice.io import save_mask
from segdice.report.tables import read_case_csv

runner = CliRunner()


@pytest.fixture
def folders(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((10, 10, 4), np.uint8)
    gt[2:6, 2:6, 1:3] = 1
    gt[6:9, 6:9, 1:3] = 2
    pred = gt.copy()
    pred[2, 2:6, 1:3] = 0
    for name in ("a", "b"):
        save_mask(gt_dir / f"{name}_seg.nii.gz", gt, (1.0, 1.0, 2.0))
        save_mask(pred_dir / f"{name}.nii.gz", pred, (1.0, 1.0, 2.0))
    return pred_dir, gt_dir


def test_evaluate_writes_outputs_and_prints_the_summary(folders, tmp_path):
    pred, gt = folders
    out = tmp_path / "report"
    result = runner.invoke(
        app,
        [
            "evaluate", str(pred), str(gt), "--out", str(out), "--gt-suffix", "_seg", "-j", "1",
            "--label-names", "liver=1,tumour=2", "--region", "all=1,2", "--metrics", "dice,hd95,nsd",
            "--nsd-tolerance", "2", "--no-progress",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "liver" in result.output and "tumour" in result.output and "all" in result.output
    assert "2 case(s): 2 scored, 0 failed" in result.output
    _, rows = read_case_csv(out / "per_case.csv")
    assert [(r["case"], r["item"]) for r in rows] == [
        (c, i) for c in ("a", "b") for i in ("liver", "tumour", "all")
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["definitions"]["nsd_tolerance"] == 2.0
    # the distances come from a surface search, not a distance transform: the definition must say so
    assert "distance transform" not in summary["definitions"]["hd95"]
    assert summary["inputs"]["regions"] == {"all": [1, 2]}
    assert (out / "report.html").exists()
    liver = [r["dice"] for r in rows if r["item"] == "liver"]
    # the prediction lost one of the 4 rows of the 4x4x2 box: Dice = 2*24 / (24 + 32)
    assert liver == pytest.approx([48 / 56, 48 / 56])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "dice,bogus"], "metrics: got unknown ['bogus']"),
        (["--labels", "one,two"], "labels: got 'one' in 'one,two'"),
        (["--region", "WT"], "--region: got 'WT'; expected NAME=VALUE"),
        (["--spacing", "1,x"], "--spacing: got '1,x'"),
        (["--empty", "2"], "empty: got '2'"),
        (["--label-names", "liver:1"], "label_names: got 'liver:1'; expected NAME=VALUE pairs"),
    ],
)
def test_usage_errors_exit_2_with_one_line(folders, args, message):
    pred, gt = folders
    result = runner.invoke(app, ["evaluate", str(pred), str(gt), "-j", "1", "--no-progress", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_folder_exits_2(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_failed_cases_exit_1_only_with_strict(folders, tmp_path):
    pred, gt = folders
    (pred / "b.nii.gz").write_bytes(b"broken")
    base = [
        "evaluate",
        str(pred),
        str(gt),
        "--gt-suffix",
        "_seg",
        "-j",
        "1",
        "--metrics",
        "dice",
        "--no-progress",
    ]
    lenient = runner.invoke(app, base)
    assert lenient.exit_code == 0
    assert "failed: b:" in lenient.output
    strict = runner.invoke(app, [*base, "--strict"])
    assert strict.exit_code == 1


def test_labels_none_scores_only_regions(folders):
    pred, gt = folders
    result = runner.invoke(
        app,
        ["evaluate", str(pred), str(gt), "--gt-suffix", "_seg", "-j", "1", "--labels", "none",
         "--region", "WT=1,2", "--metrics", "dice", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "WT" in result.output


def test_metrics_default_is_the_evaluators(folders, tmp_path):
    # The command has no default of its own: without --metrics it scores segdice.evaluation's
    # DEFAULT_METRICS, the set the documentation promises.
    from segdice.evaluation import DEFAULT_METRICS

    assert DEFAULT_METRICS == ("dice", "iou", "precision", "recall", "hd95", "assd", "nsd")
    pred, gt = folders
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["evaluate", str(pred), str(gt), "--gt-suffix", "_seg", "-j", "1", "-o", str(out), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    columns, _ = read_case_csv(out / "per_case.csv")
    assert columns[-len(DEFAULT_METRICS) :] == list(DEFAULT_METRICS)
    assert json.loads((out / "summary.json").read_text())["inputs"]["metrics"] == list(DEFAULT_METRICS)


def test_interrupt_exits_130_and_points_to_resume(folders, tmp_path, monkeypatch):
    pred, gt = folders

    def interrupted(pair, spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_run, "score_case", interrupted)
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(pred),
            str(gt),
            "--gt-suffix",
            "_seg",
            "-j",
            "1",
            "-o",
            str(tmp_path / "o"),
            "--no-progress",
        ],
    )
    assert result.exit_code == 130
    assert "--resume" in result.output


@pytest.mark.slow  # a fresh interpreter importing torch
def test_console_script_runs_end_to_end(folders, tmp_path):
    pred, gt = folders
    proc = run(
        [*SEGDICE_SCRIPT, "evaluate", str(pred), str(gt), "--gt-suffix", "_seg", "-j", "1",
         "-o", str(tmp_path / "o"), "--metrics", "dice,hd95"],
        timeout=900,  # only catches a hang
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "report.html").exists()


@pytest.mark.slow  # a real Ctrl-C on a real pool of spawned workers
def test_ctrl_c_keeps_finished_rows_and_resume_completes(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    rng = np.random.default_rng(0)
    n_cases = 24
    for i in range(n_cases):
        gt = np.zeros((40, 40, 24), np.uint8)
        first = int(rng.integers(2, 16))
        gt[first : first + 20, 5:30, 4:20] = 1
        save_mask(gt_dir / f"c{i:02d}.nii.gz", gt, (1.0, 1.0, 2.0))
        save_mask(pred_dir / f"c{i:02d}.nii.gz", np.roll(gt, 2, axis=1), (1.0, 1.0, 2.0))
    out = tmp_path / "out"
    command = [*SEGDICE_SCRIPT, "evaluate", str(pred_dir), str(gt_dir), "-j", "2", "-o", str(out),
               "--no-progress"]  # fmt: skip
    csv_path = out / "per_case.csv"
    with reaped(start(command)) as proc:  # a failed wait below leaves no process behind
        # Wait for the condition (a few cases on disk), however long a loaded machine takes to start the
        # pool; the deadline only catches a hang, and a run that ends early stops the wait at once.
        wait_until(lambda: proc.poll() is not None or data_rows(csv_path) > 2, 900, "a few cases on disk")
        interrupt(proc)  # the terminal sends Ctrl-C to the whole process group (the run may have just ended)
        _, stderr = proc.communicate(timeout=900)
    assert proc.returncode in (0, 130), stderr
    _, rows = read_case_csv(csv_path)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr
    assert 2 <= len(rows) < n_cases
    assert all(not r["error"] for r in rows)

    command[command.index("-j") + 1] = "1"  # the rest in one process: no second pool to spawn
    done = run([*command, "--resume"], timeout=900)
    assert done.returncode == 0, done.stderr
    _, rows = read_case_csv(csv_path)
    assert sorted(r["case"] for r in rows) == [f"c{i:02d}" for i in range(n_cases)]
