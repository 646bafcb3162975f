"""`segdice evaluate` under faults: exit codes, signals, dead workers, orphans, locks, cut rows, full disks.

Every hostile situation is built here for real: a subprocess killed by SIGKILL/SIGTERM/SIGINT while its
pool runs (processes found by pid through /proc), a worker that dies (the test-only
``SEGDICE_TEST_CRASH_CASE`` hook, or SIGKILL of a real worker pid), a row cut inside its last field, a
non-UTF-8 CSV, a tiny tmpfs that fills up, a lock held by another holder. Signals are sent only once a
condition holds (rows on disk, workers present), never after a fixed sleep.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from _subprocess import (
    SEGDICE,
    assert_all_gone,
    data_rows,
    descendants,
    interrupt,
    reaped,
    run,
    running,
    start,
    wait_until,
    workers_of,
)
from segdice.cli import app
from segdice.evaluation import evaluate
from segdice.io import save_mask
from segdice.report.tables import read_case_csv

runner = CliRunner()
LINUX = sys.platform.startswith("linux")
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


# ---------------------------------------------------------------- data and reference helpers (processes: _subprocess)


def _make_cases(root: Path, n: int, size: int = 24, *, bad: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """``n`` NIfTI pairs c00..; the predictions of the cases in ``bad`` have the wrong shape."""
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    rng = np.random.default_rng(7)
    for i in range(n):
        gt = np.zeros((size, size, size // 2), np.uint8)
        a = int(rng.integers(1, size // 3))
        gt[a : a + size // 2, 2 : size - 3, 2 : size // 2 - 2] = 1
        gt[1:4, 1:4, 1:4] = 2
        pred = np.roll(gt, int(rng.integers(1, 3)), axis=1)
        if i in bad:
            pred = pred[:-1]
        save_mask(gt_dir / f"c{i:02d}.nii.gz", gt, (1.0, 1.0, 2.0))
        save_mask(pred_dir / f"c{i:02d}.nii.gz", pred, (1.0, 1.0, 2.0))
    return pred_dir, gt_dir


def _command(pred: Path, gt: Path, out: Path, *extra: str) -> list[str]:
    return [*SEGDICE, "evaluate", str(pred), str(gt), "-o", str(out),
            "--metrics", "dice,hd95", "--no-progress", *extra]  # fmt: skip


def _reference(pred: Path, gt: Path) -> dict[tuple[str, str], dict]:
    """Rows of an in-process run, by (case, item): what every robust run must reproduce."""
    result = evaluate(pred, gt, metrics="dice,hd95", workers=1)
    return {(r["case"], r["item"]): r for r in result.per_case}


def _same_values(row: dict, ref: dict) -> bool:
    return all(
        (math.isnan(row[k]) and math.isnan(ref[k])) or row[k] == ref[k] for k in ("dice", "hd95")
    ) and all(row[k] == ref[k] for k in ("tp", "fp", "fn", "error"))


POOL_ALWAYS = {"SEGDICE_POOL_START": "always"}


# ---------------------------------------------------------------- exit codes and messages (in-process)


def test_no_case_scored_exits_1_with_a_message(tmp_path):
    pred, gt = _make_cases(tmp_path, 2, 12, bad=(0, 1))
    result = runner.invoke(app, ["evaluate", str(pred), str(gt), "-j", "1", "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "no case could be scored (2 failed)" in result.output
    assert "Traceback" not in result.output


def test_some_cases_failed_exits_0_and_1_with_strict(tmp_path):
    pred, gt = _make_cases(tmp_path, 2, 12, bad=(0,))
    args = ["evaluate", str(pred), str(gt), "-j", "1", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "--strict"]).exit_code == 1


def test_out_that_is_a_file_or_below_a_file_exits_2(tmp_path):
    pred, gt = _make_cases(tmp_path, 1, 12)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    expected = {
        blocker: f"error: out: {blocker} is a file; expected a folder",
        blocker / "sub": f"error: out: cannot write {blocker / 'sub'}: Not a directory",
    }
    for out, message in expected.items():
        result = runner.invoke(
            app, ["evaluate", str(pred), str(gt), "-o", str(out), "-j", "1", "--no-progress"]
        )
        assert result.exit_code == 2, result.output
        assert message in result.output.replace("\n", "")
        assert "Traceback" not in result.output


@pytest.mark.skipif(not LINUX, reason="flock")
def test_an_out_folder_in_use_is_refused_with_exit_2(tmp_path):
    import fcntl

    pred, gt = _make_cases(tmp_path, 1, 12)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".segdice.lock", "a+b") as holder:  # another run holds the folder
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = runner.invoke(
            app, ["evaluate", str(pred), str(gt), "-o", str(out), "-j", "1", "--no-progress"]
        )
        assert result.exit_code == 2, result.output
        assert "is in use by another segdice evaluate run" in result.output.replace("\n", "")
        assert not (out / "per_case.csv").exists()
    # released: the next run gets it, and leaves no temporary file behind
    assert evaluate(pred, gt, out=out, workers=1).n_failed == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".segdice.lock",
        "per_case.csv",
        "report.html",
        "summary.json",
    ]


def test_resume_drops_a_row_cut_inside_its_last_field_and_rescores_it(tmp_path):
    pred, gt = _make_cases(tmp_path, 3, 16)
    out = tmp_path / "out"
    full = evaluate(pred, gt, out=out, metrics="dice,hd95", workers=1)
    csv_path = out / "per_case.csv"
    text = csv_path.read_text(encoding="utf-8")
    last = text.rstrip("\r\n").rsplit("\n", 1)[1]
    value = last.rsplit(",", 1)[1]
    assert len(value) > 2 and "." in value  # a number like 2.0 or 1.4142...: cut it to "N."
    cut = text[: text.rindex(last)] + last[: last.rindex(",") + 1] + value[: value.index(".") + 1]
    csv_path.write_text(cut, encoding="utf-8")  # what a kill or a full disk leaves: `...,2.`
    _, rows = read_case_csv(csv_path)
    assert len(rows) == len(full.per_case) - 1  # the cut row is not read as 2.0

    seen = []
    resumed = evaluate(pred, gt, out=out, metrics="dice,hd95", workers=1, resume=True,
                       progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen[0] == 2  # two cases kept, the cut one scored again
    assert resumed.per_case == full.per_case
    assert read_case_csv(csv_path)[1] == full.per_case


def test_resume_of_a_non_utf8_csv_is_a_clean_error(tmp_path):
    pred, gt = _make_cases(tmp_path, 1, 12)
    out = tmp_path / "out"
    out.mkdir()
    (out / "per_case.csv").write_bytes(b"case,item\n\xff\xfe,1\n")
    result = runner.invoke(
        app, ["evaluate", str(pred), str(gt), "-o", str(out), "--resume", "-j", "1", "--no-progress"]
    )
    assert result.exit_code == 2, result.output
    assert "not UTF-8 text (byte 10 is 0xff)" in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_resume_of_a_csv_from_before_the_spacing_source_column_names_the_column_and_what_to_do(tmp_path):
    pred, gt = _make_cases(tmp_path, 2, 12)
    out = tmp_path / "out"
    args = ["evaluate", str(pred), str(gt), "-o", str(out), "--metrics", "dice", "-j", "1", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    csv_path = out / "per_case.csv"
    with open(csv_path, newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    drop = table[0].index("spacing_source")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:  # the file of an earlier segdice
        csv.writer(handle).writerows([cell for i, cell in enumerate(line) if i != drop] for line in table)
    old = csv_path.read_bytes()
    result = runner.invoke(app, [*args, "--resume"])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert f"error: resume: {csv_path} has no spacing_source column: an earlier version of segdice" in text
    assert "run without --resume to score every case again" in text and "new output folder" in text
    assert "same metrics" not in text and "Traceback" not in result.output
    assert csv_path.read_bytes() == old  # refused before anything was written
    assert runner.invoke(app, args).exit_code == 0  # the advice works: a fresh file, with the column
    columns, rows = read_case_csv(csv_path)
    assert "spacing_source" in columns and len(rows) == 4


def test_formula_cells_are_neutralised_and_read_back(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    mask = np.zeros((6, 6), np.uint8)
    mask[1:4, 1:4] = 1
    names = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "'quoted", "plain"]
    for name in names:
        save_mask(gt_dir / f"{name}.png", mask)
        save_mask(pred_dir / f"{name}.png", mask)
    out = tmp_path / "out"
    evaluate(pred_dir, gt_dir, out=out, metrics="dice", workers=1)
    raw = (out / "per_case.csv").read_text(encoding="utf-8").splitlines()[1:]
    first_cells = sorted(line.split(",", 1)[0] for line in raw)
    assert first_cells == sorted(["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "''quoted", "plain"])
    assert sorted(r["case"] for r in read_case_csv(out / "per_case.csv")[1]) == sorted(names)
    seen = []
    evaluate(pred_dir, gt_dir, out=out, metrics="dice", workers=1, resume=True,
             progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen[0] == len(names)  # every case kept on resume: the names read back exactly


@pytest.mark.skipif(not LINUX, reason="control characters in file names")
def test_control_characters_in_names_never_reach_the_terminal(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    gt_dir.mkdir()
    pred_dir.mkdir()
    name = "evil\x1b[2J\x07name"
    save_mask(gt_dir / f"{name}.png", np.ones((4, 4), np.uint8))
    save_mask(pred_dir / f"{name}.png", np.ones((5, 4), np.uint8))  # a shape mismatch: a printed failure
    result = runner.invoke(app, ["evaluate", str(pred_dir), str(gt_dir), "-j", "1", "--no-progress"])
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "evil\\x1b[2J\\x07name" in result.output


def test_a_small_job_with_two_workers_starts_no_pool(tmp_path):
    pred, gt = _make_cases(tmp_path, 2, 12)
    one = evaluate(pred, gt, metrics="dice,hd95", workers=1)
    two = evaluate(pred, gt, metrics="dice,hd95", workers=2)
    assert two.workers_started == 0 and one.workers_started == 0
    assert two.per_case == one.per_case


def test_an_interrupted_pool_leaves_no_executor_thread_for_the_exit_hook(monkeypatch):
    """The executor's manager thread is joined (or unregistered) before the interrupt leaves the pool:
    one still running at exit can close its wake-up pipe while the interpreter's exit hook writes to
    it, and a clean SIGTERM then ends with a traceback (seen in CI)."""
    import concurrent.futures.process
    import time

    from segdice.evaluation._pool import LocalPool

    monkeypatch.setenv("SEGDICE_POOL_START", "always")
    before = set(concurrent.futures.process._threads_wakeups)
    pool = LocalPool(workers=2)
    with pytest.raises(KeyboardInterrupt), pool:
        for _ in pool.imap(time.sleep, [(0.2,)] * 8):
            raise KeyboardInterrupt  # as the SIGTERM handler does, with tasks still in flight
    assert pool.started >= 1
    left = [t for t in concurrent.futures.process._threads_wakeups if t not in before]
    assert not any(thread.is_alive() for thread in left)


@pytest.mark.skipif(not LINUX, reason="mounts a tmpfs")
def test_a_full_disk_is_a_clean_error_and_the_rows_written_stay_valid(tmp_path):
    """ENOSPC for real: the output folder on an 8 KiB tmpfs (needs root; skipped otherwise)."""
    pred, gt = _make_cases(tmp_path, 40, 10)
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        out = disk / "out"
        result = runner.invoke(
            app, ["evaluate", str(pred), str(gt), "-o", str(out), "-j", "1", "--no-progress",
                  "--metrics", "dice,hd95"],
        )  # fmt: skip
        text = result.output.replace("\n", "")
        assert result.exit_code == 2, result.output
        assert f"error: out: cannot write {out / 'per_case.csv'}: No space left on device" in text
        assert "rerun with --resume" in text and "Traceback" not in text
        saved = tmp_path / "saved"
        saved.mkdir()
        shutil.copy(out / "per_case.csv", saved / "per_case.csv")
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    _, rows = read_case_csv(saved / "per_case.csv")
    reference = _reference(pred, gt)
    assert 2 <= len(rows) < len(reference)
    assert all(_same_values(r, reference[r["case"], r["item"]]) for r in rows)
    done = evaluate(pred, gt, out=saved, metrics="dice,hd95", workers=1, resume=True)
    assert len(done.per_case) == len(reference) and done.n_failed == 0


# ---------------------------------------------------------------- real processes, real signals


@needs_proc
@pytest.mark.slow
def test_sigkill_of_the_main_process_leaves_no_worker_or_fork_server(tmp_path):
    pred, gt = _make_cases(tmp_path, 60, 24)
    out = tmp_path / "out"
    with reaped(start(_command(pred, gt, out, "-j", "2"), **POOL_ALWAYS)) as proc:
        wait_until(lambda: data_rows(out / "per_case.csv") >= 1 and len(workers_of(proc.pid)) >= 2,
                   240, "rows on disk and two workers")  # fmt: skip
        family = descendants(proc.pid)
        assert len(family) >= 3  # the fork server, two workers (and the resource tracker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert_all_gone(family)


@needs_proc
@pytest.mark.slow
def test_sigterm_exits_143_keeps_rows_and_resume_continues(tmp_path):
    pred, gt = _make_cases(tmp_path, 40, 24)
    out = tmp_path / "out"
    command = _command(pred, gt, out, "-j", "2")
    proc = start(command, **POOL_ALWAYS)
    wait_until(lambda: data_rows(out / "per_case.csv") >= 2, 240, "two rows on disk")
    family = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)  # what a batch scheduler or `kill` sends, to the whole group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "interrupted; the finished cases are in" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert_all_gone(family)
    _, kept = read_case_csv(out / "per_case.csv")
    reference = _reference(pred, gt)
    assert kept and all(_same_values(r, reference[r["case"], r["item"]]) for r in kept)

    done = run([*command, "--resume"], timeout=300)
    assert done.returncode == 0, done.stderr
    _, rows = read_case_csv(out / "per_case.csv")
    assert len(rows) == len(reference)
    assert all(_same_values(r, reference[r["case"], r["item"]]) for r in rows)


@needs_proc
@pytest.mark.slow
def test_ctrl_c_never_hangs_ten_times_in_a_row(tmp_path):
    """Ctrl-C to the process group of a running pool, ten times, each resuming the last: every run
    exits 130 within the bound, keeps its rows and leaves no process."""
    pred, gt = _make_cases(tmp_path, 60, 24)
    out = tmp_path / "out"
    command = _command(pred, gt, out, "-j", "2")
    reference = _reference(pred, gt)
    kept = 0
    for attempt in range(10):
        with reaped(start([*command, "--resume"] if attempt else command, **POOL_ALWAYS)) as proc:
            # a new row on disk with the pool's workers up: the interrupt lands mid-run
            # ... or the run has already ended: near the end of the work a resumed run can finish before the
            # test sees its workers, and then there is nothing left to interrupt (the check below breaks out)
            wait_until(lambda kept=kept, proc=proc: proc.poll() is not None
                       or (data_rows(out / "per_case.csv") > kept and len(workers_of(proc.pid)) >= 1),
                       240, f"a new row (attempt {attempt})")  # fmt: skip
            if proc.poll() is not None:
                _, stderr = proc.communicate()
                assert proc.returncode == 0, (attempt, proc.returncode, stderr)
                break
            family = descendants(proc.pid)
            interrupt(proc)
            _, stderr = proc.communicate(timeout=60)  # a hang fails here
        if proc.returncode == 0:
            break  # the work ran out before the interrupt: nothing more to interrupt
        assert proc.returncode == 130, (attempt, stderr)
        assert "--resume" in stderr and "Traceback" not in stderr
        assert_all_gone(family)
        _, rows = read_case_csv(out / "per_case.csv")
        assert len(rows) > kept
        assert all(_same_values(r, reference[r["case"], r["item"]]) for r in rows)
        kept = len(rows)
    assert attempt >= 5  # most of the ten runs were interrupted mid-run
    done = run([*command, "--resume", "-j", "1"], timeout=300)
    assert done.returncode == 0, done.stderr
    _, rows = read_case_csv(out / "per_case.csv")
    assert sorted((r["case"], r["item"]) for r in rows) == sorted(reference)


@needs_proc
@pytest.mark.slow
def test_a_worker_that_dies_fails_only_its_case(tmp_path):
    pred, gt = _make_cases(tmp_path, 12, 16)
    out = tmp_path / "out"
    proc = start(_command(pred, gt, out, "-j", "2"), SEGDICE_TEST_CRASH_CASE="c03", **POOL_ALWAYS)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr  # one failed case, others scored: not --strict
    assert "BrokenProcessPool" not in stderr and "Traceback" not in stderr
    assert "failed: c03: worker died: its worker process exited with code 70" in stderr.replace("\n", "")
    _, rows = read_case_csv(out / "per_case.csv")
    reference = _reference(pred, gt)
    assert sorted((r["case"], r["item"]) for r in rows) == sorted(reference)
    for row in rows:
        if row["case"] == "c03":
            assert row["error"].startswith("worker died") and math.isnan(row["dice"])
        else:
            assert _same_values(row, reference[row["case"], row["item"]])


@needs_proc
@pytest.mark.slow
def test_a_case_whose_worker_died_has_the_rows_of_a_case_that_could_not_be_read(tmp_path):
    pred, gt = _make_cases(tmp_path, 4, 12, bad=(1,))
    out = tmp_path / "out"
    command = [*SEGDICE, "evaluate", str(pred), str(gt), "-o", str(out), "--metrics", "dice,gds",
               "--no-progress", "-j", "2"]  # fmt: skip
    proc = start(command, SEGDICE_TEST_CRASH_CASE="c03", **POOL_ALWAYS)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    _, rows = read_case_csv(out / "per_case.csv")

    def cells(case: str) -> list[tuple[str, list[str], list[str]]]:
        """Per row: its item, the metric cells left empty and those that hold NaN."""
        mine = [r for r in rows if r["case"] == case]
        return [(r["item"], [m for m in ("dice", "gds") if r[m] is None],
                 [m for m in ("dice", "gds") if r[m] is not None and math.isnan(r[m])]) for r in mine]  # fmt: skip

    # labels 1 and 2, then the across-label row "all": gds belongs to "all" alone, dice to the labels alone
    expected = [("1", ["gds"], ["dice"]), ("2", ["gds"], ["dice"]), ("all", ["dice"], ["gds"])]
    assert cells("c01") == expected  # the shape mismatch: read in the worker, an error row
    assert cells("c03") == expected  # the worker died twice: the same rows, another reason

    def rest(case: str) -> list[dict]:
        """Every other cell of its rows (NaN as text, so that equal rows compare equal)."""
        skip = ("case", "error", "pred_file", "gt_file")
        return [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k not in skip}
                for r in rows if r["case"] == case]  # fmt: skip

    assert rest("c03") == rest("c01")
    assert all(r["error"].startswith("worker died") for r in rows if r["case"] == "c03")


@needs_proc
@pytest.mark.slow
def test_sigkill_of_a_real_worker_mid_run_loses_no_case(tmp_path):
    pred, gt = _make_cases(tmp_path, 40, 24)
    out = tmp_path / "out"
    with reaped(start(_command(pred, gt, out, "-j", "2"), **POOL_ALWAYS)) as proc:
        wait_until(lambda: data_rows(out / "per_case.csv") >= 2 and len(workers_of(proc.pid)) >= 2,
                   240, "rows on disk and two workers")  # fmt: skip
        victim = min(workers_of(proc.pid))
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "BrokenProcessPool" not in stderr and "Traceback" not in stderr
    assert not running(victim)
    _, rows = read_case_csv(out / "per_case.csv")
    reference = _reference(pred, gt)
    assert sorted((r["case"], r["item"]) for r in rows) == sorted(reference)
    # the cases in flight on the killed worker were retried on a fresh one: no case lost
    assert all(_same_values(r, reference[r["case"], r["item"]]) for r in rows)
