"""`evaluate(scheduler=...)` / `segdice evaluate --scheduler` on a real Dask cluster.

One real ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)`` bound to 127.0.0.1 serves
the module (started and closed by the ``cluster`` fixture). Its workers carry the test-only crash hook
(``SEGDICE_TEST_CRASH_CASE``): a case of that name kills the worker that scores it, every time. Faults
are real: a worker SIGKILLed by pid while it scores a case, a port nobody listens on, a file no reader
can parse, a subprocess whose cluster must leave no process behind. Signals are sent once a condition
holds (the scheduler shows the task on a worker), never after a fixed sleep.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import math
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

import dask  # noqa: E402

from _subprocess import (  # noqa: E402
    MARKER_ENV,
    SEGDICE_SCRIPT,
    interrupt,
    marked,
    reaped,
    run,
    start,
    wait_until,
)
from segdice import SegDiceError  # noqa: E402
from segdice.cli import app  # noqa: E402
from segdice.evaluation import evaluate  # noqa: E402
from segdice.evaluation._dask_pool import LOCAL_CLUSTER_CONFIG  # noqa: E402
from segdice.io import save_mask  # noqa: E402
from segdice.report.tables import read_case_csv, write_case_csv  # noqa: E402

runner = CliRunner()
CRASH_CASE = "zz_crash"  # sorts last: the other cases' indices are their rank
LOOPBACK = {"127.0.0.1", "::1"}
SPACING = (1.0, 1.0, 2.0)


# ---------------------------------------------------------------- the cluster and the data


@pytest.fixture(scope="module")
def cluster():
    with dask.config.set(LOCAL_CLUSTER_CONFIG):  # what `local:N` runs with: retried once, then an error row
        local = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env={"SEGDICE_TEST_CRASH_CASE": CRASH_CASE, "OMP_NUM_THREADS": "1"},
            silence_logs=50,
        )
    try:
        yield local
    finally:
        local.close(timeout=30)


@pytest.fixture(scope="module")
def client(cluster):
    connected = distributed.Client(cluster, set_as_default=False)
    try:
        connected.wait_for_workers(2, timeout=120)
        connected.run(importlib.import_module, "segdice.evaluation._run")  # the workers' first imports, once
        yield connected
    finally:
        connected.close(timeout=30)


def _blob(shape, rng, labels=(1, 2)) -> np.ndarray:
    volume = np.zeros(shape, np.uint8)
    for label in labels:
        corner = [int(rng.integers(0, n // 2)) for n in shape]
        size = [int(rng.integers(2, n // 2)) for n in shape]
        volume[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = label
    return volume


def _make_cases(root: Path, n: int, shape=(20, 18, 10), *, broken: bool = True) -> tuple[Path, Path]:
    """``n`` NIfTI pairs c00..; with ``broken``: a shape mismatch, an unparsable file, a missing prediction."""
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        gt = _blob(shape, rng)
        save_mask(gt_dir / f"c{i:02d}.nii.gz", gt, SPACING)
        save_mask(pred_dir / f"c{i:02d}.nii.gz", np.roll(gt, i % 3, axis=i % 3), SPACING)
    if broken:
        save_mask(gt_dir / "e_shape.nii.gz", _blob(shape, rng), SPACING)
        save_mask(pred_dir / "e_shape.nii.gz", _blob((*shape[:-1], shape[-1] + 1), rng), SPACING)
        save_mask(gt_dir / "e_garbage.nii.gz", _blob(shape, rng), SPACING)
        (pred_dir / "e_garbage.nii.gz").write_bytes(b"not a NIfTI file at all")
        save_mask(gt_dir / "e_missing.nii.gz", _blob(shape, rng), SPACING)
    return pred_dir, gt_dir


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_same_rows(found: list[dict], expected: list[dict]) -> None:
    assert [(r["case"], r["item"]) for r in found] == [(r["case"], r["item"]) for r in expected]
    for row, ref in zip(found, expected, strict=True):
        assert row.keys() == ref.keys()
        different = {k: (row[k], ref[k]) for k in ref if not _same(row[k], ref[k])}
        assert not different, (row["case"], row["item"], different)


def _listening(pids) -> list[tuple[int, str, int]]:
    found = []
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(pid, c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found


# ---------------------------------------------------------------- the same results as the local pool


def test_dask_gives_the_local_pools_files_value_for_value(client, tmp_path):
    pred, gt = _make_cases(tmp_path, 6)
    metrics = "dice,iou,recall,hd95,assd,nsd"
    local = evaluate(pred, gt, out=tmp_path / "local", metrics=metrics, workers=1)
    on_dask = evaluate(pred, gt, out=tmp_path / "dask", metrics=metrics, scheduler=client)
    assert on_dask.workers_started == 0  # the caller's cluster: nothing started here
    _assert_same_rows(on_dask.per_case, local.per_case)
    for name in ("per_case.csv", "summary.json"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert (tmp_path / "dask" / "report.html").exists()
    # the files were read on the workers: the broken ones are error rows there too, the others scored
    errors = {r["case"]: r["error"] for r in on_dask.per_case if r["error"]}
    assert set(errors) == {"e_shape", "e_garbage"}
    assert all(r["missing_pred"] for r in on_dask.per_case if r["case"] == "e_missing")
    # one value by hand: Dice of label 1 in case c00, whose prediction is the ground truth itself
    c00 = next(r for r in on_dask.per_case if r["case"] == "c00" and r["item"] == "1")
    assert c00["dice"] == 1.0 and c00["hd95"] == 0.0


def test_every_listening_socket_of_the_cluster_is_on_loopback(client, cluster):
    worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2
    # the scheduler, the nannies and the dashboard live in this process; the workers in their own
    found = _listening({os.getpid(), *worker_pids})
    assert len(found) >= 1 + 2 + 2, found  # scheduler + dashboard (+ nannies) here, >= one per worker
    assert {ip for _, ip, _ in found} <= LOOPBACK, found
    assert {pid for pid, _, _ in found} >= worker_pids
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    assert cluster.dashboard_link.startswith("http://127.0.0.1:")


def test_resume_on_dask_scores_only_the_cases_left(client, tmp_path):
    pred, gt = _make_cases(tmp_path, 5, broken=False)
    out = tmp_path / "out"
    full = evaluate(pred, gt, out=out, metrics="dice,hd95", workers=1)
    expected = (out / "per_case.csv").read_bytes()
    columns, rows = read_case_csv(out / "per_case.csv")
    kept = [r for r in rows if r["case"] in ("c00", "c01")]
    write_case_csv(out / "per_case.csv", columns, kept)  # as if the run had stopped after two cases
    seen: list[int] = []
    resumed = evaluate(pred, gt, out=out, metrics="dice,hd95", resume=True, scheduler=client,
                       progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen[0] == 2 and seen[-1] == 5 and len(seen) == 1 + 3  # kept, then one step per scored case
    assert (out / "per_case.csv").read_bytes() == expected
    _assert_same_rows(resumed.per_case, full.per_case)


# ---------------------------------------------------------------- schedulers that are wrong or gone


def test_a_bad_scheduler_value_exits_2_with_its_name(tmp_path):
    pred, gt = _make_cases(tmp_path, 1, broken=False)
    for value in ("local:0", "localhost:8786", "local:two"):
        result = runner.invoke(app, ["evaluate", str(pred), str(gt), "--scheduler", value, "--no-progress"])
        assert result.exit_code == 2, result.output
        assert f"scheduler: got '{value}'; expected 'tcp://host:port', 'local:N'" in result.output
        assert "Traceback" not in result.output


def _free_port() -> int:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_scheduler_exits_2_within_the_timeout(tmp_path, monkeypatch):
    pred, gt = _make_cases(tmp_path, 1, broken=False)
    address = f"tcp://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("SEGDICE_SCHEDULER_TIMEOUT", "1")
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(pred), str(gt), "-o", str(out), "--scheduler", address])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"error: scheduler: cannot reach the Dask scheduler at {address} within 1 s" in message
    assert "Traceback" not in result.output
    assert not (out / "per_case.csv").exists()


def test_without_distributed_the_error_names_the_extra(tmp_path, monkeypatch):
    pred, gt = _make_cases(tmp_path, 1, broken=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` meets when absent
    with pytest.raises(
        SegDiceError, match=r"needs the distributed package .*pip install 'segdice\[distributed\]'"
    ):
        evaluate(pred, gt, scheduler="local:2")


def test_no_module_imports_dask_at_import_time():
    """``distributed`` is optional: it may be imported only inside functions (when a scheduler is asked for)."""
    src = Path(__file__).resolve().parents[1] / "src" / "segdice"
    offenders = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    inner.inside_function = True  # type: ignore[attr-defined]
        for node in ast.walk(tree):
            if getattr(node, "inside_function", False):
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("dask", "distributed") for n in names):
                offenders.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not offenders, offenders
    assert "distributed.LocalCluster" in (src / "evaluation" / "_dask_pool.py").read_text()  # the walk saw it


def test_a_scheduler_lost_mid_run_is_a_clear_error_and_the_rows_written_stay(tmp_path, monkeypatch):
    """A cluster of its own (worker threads in this process: it starts in a second), closed mid-run."""
    pred, gt = _make_cases(tmp_path, 12, broken=False)
    out = tmp_path / "out"
    monkeypatch.setenv("SEGDICE_SCHEDULER_TIMEOUT", "1")  # also how long the client tries to reconnect
    doomed = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                                      dashboard_address=None, silence_logs=50)  # fmt: skip
    try:
        done: list[int] = []

        def close_after_three(count: int, total: int) -> None:
            done.append(count)
            if count == 3:
                doomed.close(timeout=30)

        with pytest.raises(
            SegDiceError, match=r"scheduler: lost the Dask scheduler at tcp://127\.0\.0\.1:.*--resume"
        ):
            evaluate(pred, gt, out=out, metrics="dice,hd95", scheduler=doomed.scheduler_address,
                     progress=close_after_three)  # fmt: skip
    finally:
        doomed.close(timeout=30)
    _, rows = read_case_csv(out / "per_case.csv")
    assert 3 <= len({r["case"] for r in rows}) < 12 and len(rows) == 2 * len({r["case"] for r in rows})
    resumed = evaluate(pred, gt, out=out, metrics="dice,hd95", resume=True, workers=1)
    reference = evaluate(pred, gt, metrics="dice,hd95", workers=1)
    _assert_same_rows(resumed.per_case, reference.per_case)


# ---------------------------------------------------------------- local:N from the command line


@pytest.mark.slow
def test_cli_local_cluster_on_loopback_ctrl_c_exits_130_leaves_nothing_resumes_and_bad_address_exits_2(
    client, tmp_path
):
    pred, gt = _make_cases(tmp_path, 16, shape=(32, 30, 20))
    out = tmp_path / "out"
    marker = uuid.uuid4().hex  # every process the command starts inherits it
    listeners: set[tuple[int, str, int]] = set()
    workers_seen = 0
    csv = out / "per_case.csv"
    rows_written = 0
    with reaped(start([*SEGDICE_SCRIPT, "evaluate", str(pred), str(gt), "-o", str(out), "--metrics", "dice,hd95",
                       "--scheduler", "local:2", "--no-progress"], **{MARKER_ENV: marker})) as proc:  # fmt: skip
        command = psutil.Process(proc.pid)
        while proc.poll() is None and rows_written < 1 + 2:  # the header and the first case's two labels
            with contextlib.suppress(psutil.NoSuchProcess):  # the command and its cluster's processes
                processes = [command, *command.children(recursive=True)]
                workers_seen = max(workers_seen, len(processes) - 1)
                listeners |= set(_listening(p.pid for p in processes))
            rows_written = len(csv.read_text().splitlines()) if csv.exists() else 0
            time.sleep(0.05)
        interrupt(proc)  # Ctrl-C reaches the whole process group, the workers included
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted; the finished cases are in" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert listeners, "no listening socket seen while the cluster ran"
    assert {ip for _, ip, _ in listeners} <= LOOPBACK, listeners
    assert workers_seen >= 2
    # exiting processes may take a moment; any still there after it outlived the command
    wait_until(lambda: not marked(marker), 60, "the processes of the command to exit")
    # a scheduler nobody runs, from a real command line: exit 2, one line, no traceback, within the bound
    address = f"tcp://127.0.0.1:{_free_port()}"
    done = run(
        [*SEGDICE_SCRIPT, "evaluate", str(pred), str(gt), "-o", str(tmp_path / "none"), "--scheduler", address],
        timeout=120, SEGDICE_SCHEDULER_TIMEOUT="1",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot reach the Dask scheduler at {address} within 1 s" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr + done.stdout
    reference = evaluate(pred, gt, metrics="dice,hd95", workers=1, out=tmp_path / "ref")
    _, kept = read_case_csv(csv)
    by_key = {(r["case"], r["item"]): r for r in reference.per_case}
    assert 2 <= len(kept) < len(reference.per_case)
    for row in kept:  # the rows written before the interrupt are whole and right
        _assert_same_rows([row], [by_key[row["case"], row["item"]]])
    seen: list[int] = []
    evaluate(pred, gt, out=out, metrics="dice,hd95", resume=True, scheduler=client,
             progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen[0] == len({r["case"] for r in kept})
    assert csv.read_bytes() == (tmp_path / "ref" / "per_case.csv").read_bytes()


# ---------------------------------------------------------------- dying workers (last: they restart workers)


def _evaluate_in_thread(outcome: dict, *args, **kwargs) -> threading.Thread:
    def run() -> None:
        try:
            outcome["result"] = evaluate(*args, **kwargs)
        except BaseException as exc:  # reported by the assertions of the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_a_case_that_always_kills_its_worker_is_an_error_row(client, tmp_path):
    # Two runs, so that no task can be blamed for two deaths by chance: the scheduler counts a worker's death
    # against the tasks it held, and a case already retried once (allowed-failures=1) would fail for good if
    # the crash case's death were also counted against it. Run 1 has one death only: every row must come back.
    metrics = "dice,hd95,assd,nsd"
    pred, gt = _make_cases(tmp_path / "killed", 8, shape=(48, 40, 32), broken=False)
    reference = evaluate(pred, gt, metrics=metrics, labels=[1, 2], workers=1)
    pids = client.run(os.getpid)
    outcome: dict = {}
    thread = _evaluate_in_thread(outcome, pred, gt, metrics=metrics, labels=[1, 2], scheduler=client)
    victim = None
    while victim is None and thread.is_alive():  # the first worker seen scoring a case
        for address, keys in client.processing().items():
            if address in pids and any("score_in_worker" in k for k in keys):
                victim = pids[address]
                os.kill(victim, signal.SIGKILL)
                break
        else:
            time.sleep(0.01)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert victim is not None, "no case was seen on a worker"
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE
    _assert_same_rows(outcome["result"].per_case, reference.per_case)  # the lost case was scored again
    assert outcome["result"].failed_cases == {}

    # Run 2: a case that kills every worker that scores it is an error row after its two tries.
    pred, gt = _make_cases(tmp_path / "crash", 3, shape=(48, 40, 32), broken=False)
    reference = evaluate(pred, gt, metrics=metrics, labels=[1, 2], workers=1)  # no crash here: in-process
    save_mask(gt / f"{CRASH_CASE}.nii.gz", _blob((48, 40, 32), np.random.default_rng(9)), SPACING)
    save_mask(pred / f"{CRASH_CASE}.nii.gz", _blob((48, 40, 32), np.random.default_rng(9)), SPACING)
    client.wait_for_workers(2, timeout=120)
    outcome = {}
    thread = _evaluate_in_thread(outcome, pred, gt, metrics=metrics, labels=[1, 2], scheduler=client)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    rows = outcome["result"].per_case
    _assert_same_rows([r for r in rows if r["case"] != CRASH_CASE], reference.per_case)
    crashed = [r for r in rows if r["case"] == CRASH_CASE]
    assert [r["item"] for r in crashed] == ["1", "2"]
    assert all(r["error"] == "worker died: the Dask worker scoring this case died (2 tries)" for r in crashed)
    assert all(math.isnan(r["dice"]) for r in crashed)
    assert outcome["result"].failed_cases == {CRASH_CASE: crashed[0]["error"]}
