"""Running ``segdice`` in real child processes, signalling them, and checking that nothing outlives them.

One home for what the command-line, robustness and Dask tests share: the two ways to launch the command
line, the environment that points a child at this checkout, a process started in a group of its own (so
that a signal reaches it and its workers, and nobody else), a bounded wait for a condition (signals are
sent once something holds, never after a fixed sleep), a guard that kills what a failed test left
running, and the process tree read from ``/proc`` (or, with psutil, the processes that inherited a marker).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: ``python -m segdice`` (runs ``segdice/__main__.py``).
SEGDICE = (sys.executable, "-m", "segdice")
#: The console script's entry point, ``segdice.cli.main``, as the installed ``segdice`` calls it.
SEGDICE_SCRIPT = (sys.executable, "-c", "import sys; from segdice.cli import main; sys.exit(main())")
#: Environment variable every process of a command inherits, to find them all (see :func:`marked`).
MARKER_ENV = "SEGDICE_TEST_MARKER"


def segdice_env(**extra: str) -> dict[str, str]:
    """This environment with this checkout's ``src`` first on ``PYTHONPATH``, plus ``extra``."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC), **extra}


def run(command: Sequence[str], *, timeout: float, **env: str) -> subprocess.CompletedProcess:
    """Run ``command`` to its end (text output captured, no check of the exit code); the timeout only
    catches a hang."""
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False, env=segdice_env(**env)
    )


def start(command: Sequence[str], **env: str) -> subprocess.Popen:
    """Start ``command`` in a session (and process group) of its own, text pipes for stdout and stderr, with
    the default actions for SIGINT and SIGTERM whatever this process inherited."""
    return subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the signals go to it alone
        preexec_fn=_default_signal_actions,
        env=segdice_env(**env),
    )


def _default_signal_actions() -> None:
    # A test run started in the background by a non-interactive shell (`cmd &` in a script) ignores SIGINT,
    # a child inherits that, and Python keeps an ignored SIGINT at startup: the Ctrl-C tests would see a run
    # that never notices its interrupt and exits 0.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``proc``, whose process group is killed (SIGKILL) and reaped on the way out if it still runs: a
    failed wait or assertion leaves no process behind."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


def interrupt(proc: subprocess.Popen) -> None:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group (nothing if it has just ended)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds (a hang)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def data_rows(csv_path: Path) -> int:
    """Complete data lines of a CSV on disk (the header excluded; 0 while there is no file)."""
    try:
        text = csv_path.read_text(encoding="utf-8")
    except OSError:
        return 0
    return max(0, text.count("\n") - 1)


# ---------------------------------------------------------------- the process tree, from /proc (Linux)


def ppid_map() -> dict[int, int]:
    """Every process's parent, by pid."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = stat.rsplit(b")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: children, their children, ..."""
    parents = ppid_map()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: an init that reaps late keeps it listed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def assert_all_gone(pids: set[int], timeout: float = 60.0) -> None:
    """Wait (bounded) until none of ``pids`` runs."""
    wait_until(lambda: not any(running(p) for p in pids), timeout, f"processes {sorted(pids)} to exit")


def workers_of(pid: int) -> set[int]:
    """Worker processes of a running evaluation: children of its fork server (or its own, when spawned)."""
    parents = ppid_map()

    def children(parent: int) -> set[int]:
        return {child for child, p in parents.items() if p == parent and running(child)}

    workers = set()
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" in cmdline:
            continue
        workers |= children(child) if b"forkserver" in cmdline else {child}
    return workers


# ---------------------------------------------------------------- processes that inherited a marker (psutil)


def marked(marker: str) -> list:
    """The live processes whose environment holds ``MARKER_ENV=marker`` (psutil ``Process`` objects)."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER_ENV) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
