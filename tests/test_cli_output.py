"""What `segdice` prints, and where: results on stdout, progress and messages on stderr, nothing cut.

Run through the real console script (``python -m segdice``, stdout a pipe, so not a TTY) and through
Typer's CliRunner where a TTY is not needed.
"""

import io
import json

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from _subprocess import SEGDICE, run
from segdice.cli import SUMMARY_WORST_ITEMS, _print_table, app
from segdice.io import save_mask

runner = CliRunner()

# Names far wider than 80 columns together: a table cut at 80 columns would shorten them.
LONG_NAMES = {1: "Precentral_Gyrus_Left_Hemisphere", 2: "Precentral_Gyrus_Right_Hemisphere"}


@pytest.fixture
def two_labels(tmp_path):
    """Two cases; label 1 loses one of the 4 rows of its 4x4x2 box (Dice 2*24/(24+32)), label 2 is exact."""
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    gt = np.zeros((10, 10, 4), np.uint8)
    gt[2:6, 2:6, 1:3] = 1
    gt[6:9, 6:9, 1:3] = 2
    pred = gt.copy()
    pred[2, 2:6, 1:3] = 0
    for name in ("a", "b"):
        save_mask(gt_dir / f"{name}.nii.gz", gt, (1.0, 1.0, 2.0))
        save_mask(pred_dir / f"{name}.nii.gz", pred, (1.0, 1.0, 2.0))
    return pred_dir, gt_dir


def _names_option():
    return ",".join(f"{name}={value}" for value, name in LONG_NAMES.items())


def test_pipe_gets_whole_values_on_stdout_and_progress_on_stderr(two_labels, tmp_path):
    pred, gt = two_labels
    out = tmp_path / "out"
    proc = run(
        [*SEGDICE, "evaluate", str(pred), str(gt), "-o", str(out), "-j", "1", "--metrics", "dice,hd95",
         "--label-names", _names_option()], timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("Precentral")}
    # every name whole, on one line with its values, although the lines are wider than 80 columns
    assert set(rows) == set(LONG_NAMES.values())
    assert max(len(line) for line in lines) > 80
    assert "…" not in proc.stdout
    header = next(line for line in lines if line.startswith("label / region"))
    assert "hd95 (mm)" in header  # NIfTI spacing: millimetres
    left, right = rows[LONG_NAMES[1]], rows[LONG_NAMES[2]]
    assert float(left[1]) == pytest.approx(2 * 24 / (24 + 32), abs=1e-4)
    assert float(right[1]) == 1.0
    # the across-label mean of the two Dice values, by hand
    mean_line = next(line for line in lines if line.startswith("mean over labels")).split()
    assert float(mean_line[3]) == pytest.approx((2 * 24 / 56 + 1.0) / 2, abs=1e-4)
    assert "2 case(s): 2 scored, 0 failed" in proc.stdout
    # progress and messages are on stderr only, as plain lines a log can show
    assert "scoring cases: 2/2" in proc.stderr
    assert "scoring cases" not in proc.stdout
    assert "wrote" in proc.stderr and "wrote" not in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["foreground_mean"]["dice"] == pytest.approx((2 * 24 / 56 + 1.0) / 2)


def test_json_puts_only_the_summary_on_stdout(two_labels, tmp_path):
    pred, gt = two_labels
    out = tmp_path / "out"
    proc = run([*SEGDICE, "evaluate", str(pred), str(gt), "-o", str(out), "-j", "1", "--metrics", "dice", "--json"],
               timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)  # the whole of stdout is one JSON document
    assert printed == json.loads((out / "summary.json").read_text())
    assert printed["results"]["1"]["dice"]["mean"] == pytest.approx(2 * 24 / 56)
    assert "scoring cases: 2/2" in proc.stderr


@pytest.mark.slow
def test_quiet_prints_nothing_on_stdout_but_failures_on_stderr(two_labels, tmp_path):
    pred, gt = two_labels
    (gt / "c.nii.gz").write_bytes(b"not a nifti file")
    (pred / "c.nii.gz").write_bytes(b"not a nifti file")
    proc = run(
        [*SEGDICE, "evaluate", str(pred), str(gt), "-j", "1", "--metrics", "dice", "--quiet"], timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "failed: c:" in proc.stderr
    assert "scoring cases" not in proc.stderr
    quiet_json = run([*SEGDICE, "evaluate", str(pred), str(gt), "-j", "1", "--metrics", "dice", "-q", "--json"],
                     timeout=240)  # fmt: skip
    assert json.loads(quiet_json.stdout)["counts"]["failed"] == 1


def test_many_labels_collapse_to_the_mean_and_the_worst(tmp_path):
    # 25 labels, each a 5x5 block; the prediction drops k-1 pixels of label k, so Dice falls with k:
    # Dice_k = 2 (25 - m) / (50 - m), m = k - 1. The worst ones are the highest labels.
    gt = np.zeros((25, 25), np.uint8)
    pred = np.zeros_like(gt)
    dice = {}
    for k in range(1, 26):
        r, c = divmod(k - 1, 5)
        gt[5 * r : 5 * r + 5, 5 * c : 5 * c + 5] = k
        block = np.full(25, k, np.uint8)
        block[: k - 1] = 0
        pred[5 * r : 5 * r + 5, 5 * c : 5 * c + 5] = block.reshape(5, 5)
        dice[k] = 2 * (25 - (k - 1)) / (50 - (k - 1))
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    np.save(tmp_path / "gt" / "x.npy", gt)
    np.save(tmp_path / "pred" / "x.npy", pred)
    result = runner.invoke(
        app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "-j", "1", "--metrics", "dice",
              "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("label / region"))
    body = [line.split() for line in lines[start + 1 :] if line and not line.startswith("1 case(s)")]
    assert body[0][:3] == ["mean", "over", "labels"]
    assert float(body[0][3]) == pytest.approx(np.mean(list(dice.values())), abs=1e-4)
    shown = [int(row[0]) for row in body[1:]]
    assert shown == list(range(25, 25 - SUMMARY_WORST_ITEMS, -1))
    for row in body[1:]:
        assert float(row[1]) == pytest.approx(dice[int(row[0])], abs=1e-4)
    assert "25 labels/regions" in result.stdout


@pytest.mark.parametrize("command", [[], ["evaluate"], ["demo"], ["info"], ["compare"]])
def test_help_is_complete_in_plain_words(command):
    proc = run([*SEGDICE, *command, "--help"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for python_word in ("<bool>", "<str>", "<int>", "<path>", "list[str]", "None", "…"):
        assert python_word not in text, (python_word, text)
    if command == ["evaluate"]:
        # the whole default, whatever the terminal width (words may wrap, never be cut)
        assert "[default: dice,iou,precision,recall,hd95,assd,nsd]" in " ".join(text.split())
        for option in ("--quiet", "--json", "--progress / --no-progress", "--strict / --no-strict"):
            assert option in text
    if not command:
        for name in ("evaluate", "demo", "info"):
            assert name in text


def test_plain_table_and_terminal_table_keep_every_value():
    header = ["label / region", "dice"]
    rows = [["Precentral_Gyrus_Left_Hemisphere_with_a_very_long_name", "0.8571"], ["b", "1"]]
    pipe = Console(file=io.StringIO(), width=40)
    _print_table(pipe, "title", header, rows)
    plain = pipe.file.getvalue().splitlines()
    assert plain[2].split() == rows[0] and plain[3].split() == rows[1]
    # a terminal too narrow for the table gets the same plain lines (the terminal wraps them itself)
    narrow = Console(file=io.StringIO(), width=40, force_terminal=True)
    _print_table(narrow, "title", header, rows)
    assert narrow.file.getvalue().splitlines() == plain
    # a wide terminal gets a Rich table with each value whole
    wide = Console(file=io.StringIO(), width=200, force_terminal=True, color_system=None)
    _print_table(wide, "title", header, rows)
    drawn = wide.file.getvalue()
    assert rows[0][0] in drawn and "0.8571" in drawn and drawn.splitlines() != plain


def test_progress_in_a_pipe_is_a_line_per_tenth_of_the_work():
    from segdice._progress import PLAIN_STEPS, ProgressBars

    stream = io.StringIO()
    with ProgressBars(True, Console(file=stream)) as bars:
        step = bars.task("scoring cases", total=25)
        step(completed=0)
        for _ in range(25):
            step()
    lines = stream.getvalue().splitlines()
    # a line at the start, then one each time done * 10 // 25 grows: 3, 5, 8, 10, 13, 15, 18, 20, 23, 25
    expected = [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25]
    assert PLAIN_STEPS == 10
    assert lines == [f"scoring cases: {d}/25" for d in expected]
