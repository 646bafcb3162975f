"""Where the evaluator's tasks run: in this process, or in worker processes started only when they pay.

The backend interface is one method, ``imap(function, args)``: it calls ``function(*args[i])`` for
every task and yields ``(i, result)`` as tasks finish (completion order). A task whose worker process
died, and died again when retried on its own, yields ``(i, TaskLost(reason))`` instead of a result, so
one bad case never ends the run. :class:`LocalPool` is the local backend; the cluster backend
(``segdice.evaluation._dask_pool.DaskPool``, a Dask scheduler) offers the same method (:class:`TaskPool`).

Fault handling of the local pool:

- the first task of every :meth:`LocalPool.imap` call runs in this process and is timed; the workers start
  only when the tasks left would take longer here than in the pool by more than its start-up cost
  (:data:`POOL_START_COST_S`), so a small job never waits for a pool;
- workers ignore SIGINT (Ctrl-C reaches the whole process group; the caller handles it once) and exit
  when the process that started the pool dies, by any signal, SIGKILL included: the kernel's parent-death
  signal (Linux) plus a watchdog thread for other systems and for a parent that died before it was set;
- a worker that dies breaks a ``ProcessPoolExecutor`` for every task in flight: the pool is rebuilt, the
  tasks in flight are retried one at a time, and only the one that kills its worker again is lost;
- an interrupted pool is torn down without waiting on its queues (``shutdown(wait=False,
  cancel_futures=True)``), its workers killed and joined with a bound.
"""

from __future__ import annotations

import concurrent.futures.process
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

__all__ = ["POOL_START_COST_S", "LocalPool", "TaskLost", "TaskPool", "set_parent_death_signal"]

# Seconds from "start the pool" to the first result of a trivial task with 2 workers: the fork server
# imports torch, SciPy and the scoring code, then forks the workers. Measured in fresh interpreters on the
# shared 2-core machine (the `_TIMED_START` of `python benchmarks/evaluate.py --adaptive`): 2.4-5.0 s
# (median 4.1) over 10 starts at a load average of 2.5-2.7, and 2.8-6.8 s in the review before (the old
# 10 s came from 8.5-24.8 s measured at load 9-15, 4-7 times oversubscribed). Set near the high end: an
# overestimate only starts the pool a little late on big jobs, while an underestimate starts it where it
# does not pay, and on a busy machine the workers get less than a core each (at load 3-3.7, 4.0 here
# started a pool on 120 cases of 128x128x96 and took 27 s against 16-19 s with -j 1). The pool starts when
# it would save _START_MARGIN times this: 9 s, i.e. 18 s of work here with 2 workers.
POOL_START_COST_S = 6.0
_START_MARGIN = 1.5
# Tasks timed in this process before the pool may start: the first also pays for lazy imports (SciPy's
# ndimage on the first distance metric) and cold caches, so one sample alone overestimates a task.
_MIN_SAMPLES = 2
# How the pool starts: "adaptive" (the rule above) or "always" (as soon as there are 2 workers; tests
# and benchmarks use it to exercise the pool on small inputs). Not a user option.
_START_ENV = "SEGDICE_POOL_START"
# How often a worker's watchdog checks that the process that owns the pool is still alive.
_WATCHDOG_PERIOD_S = 0.5
# How long an interrupted pool waits for a killed worker or its manager thread.
_TEARDOWN_TIMEOUT_S = 5.0
# Pools in a row that may break before finishing a task before the remaining tasks are given up.
_MAX_FRUITLESS_POOLS = 3
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass(frozen=True)
class TaskLost:
    """The result of a task whose worker process died, twice: ``reason`` says how it died."""

    reason: str


class TaskPool(Protocol):
    """What the evaluator needs of a backend: ``imap`` and how many worker processes it started."""

    started: int

    def imap(self, function: Callable, args: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        """Yield ``(i, function(*args[i]))`` (or ``(i, TaskLost(...))``) for every task, as each ends."""
        ...


def set_parent_death_signal(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux); ``False`` elsewhere.

    Examples
    --------
    >>> isinstance(set_parent_death_signal(0), bool)  # 0 clears the setting
    True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _watch_owner(owner: int, parent: int) -> None:
    while True:
        time.sleep(_WATCHDOG_PERIOD_S)
        if os.getppid() != parent or not _alive(owner):
            os._exit(1)


def _init_worker(owner: int) -> None:
    """Worker start-up: ignore Ctrl-C, die with the pool's owner, one torch thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the parent is the fork server (which dies with the owner) or, when spawned, the owner itself
    set_parent_death_signal()
    threading.Thread(target=_watch_owner, args=(owner, os.getppid()), daemon=True).start()
    if not _alive(owner):  # the owner died before the death signal was set
        os._exit(1)
    import torch

    # Each worker scores one case at a time; intra-op threads would only fight the other workers.
    torch.set_num_threads(1)


def _pool_context() -> multiprocessing.context.BaseContext:
    """A fork server where the platform has one (workers fork from a clean process that has imported
    the scoring code once); spawn elsewhere. Never fork: the caller's threads may hold locks."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # _pool_guard makes the fork server die with this process too (it reads the owner from the
    # environment); SciPy's ndimage and spatial are imported lazily by the boundary metrics.
    os.environ["SEGDICE_POOL_OWNER"] = str(os.getpid())
    context.set_forkserver_preload(
        ["segdice.evaluation._pool_guard", "segdice.evaluation._scoring", "scipy.ndimage", "scipy.spatial"]
    )
    return context


def _death_text(exitcode: int | None) -> str:
    if exitcode is None:
        return "its worker process died"
    if exitcode < 0:
        try:
            return f"its worker process was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"its worker process was killed by signal {-exitcode}"
    return f"its worker process exited with code {exitcode}"


class LocalPool:
    """Run tasks here, or in up to ``workers`` local processes once the remaining work pays for them.

    Use as a context manager: a normal exit shuts the pool down; an exception (an interrupt) kills
    its workers without waiting. :attr:`started` counts the worker processes started so far (0 when
    every task ran in this process).

    Examples
    --------
    >>> with LocalPool(workers=2) as pool:
    ...     found = dict(pool.imap(pow, [(2, 3), (3, 2)]))
    >>> found, pool.started  # two tiny tasks never pay for a pool
    ({0: 8, 1: 9}, 0)
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.started = 0
        self._always = os.environ.get(_START_ENV, "adaptive") == "always"
        self._executor: ProcessPoolExecutor | None = None
        self._processes: dict[int, multiprocessing.Process] = {}

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self._shutdown()
        else:
            self._teardown()

    def worth_starting(
        self, remaining: int, seconds_per_task: float | None, samples: int = _MIN_SAMPLES
    ) -> bool:
        """Whether a pool would finish ``remaining`` tasks sooner than this process, start-up included.

        Here they take ``remaining * t``; in ``w = min(workers, remaining)`` workers about
        ``POOL_START_COST_S + remaining * t / w``. Start when the saving, ``remaining * t * (1 - 1/w)``,
        exceeds the start-up cost by the margin. One task left never pays; nor does anything before
        ``_MIN_SAMPLES`` tasks have been timed here (``samples``).

        Examples
        --------
        >>> pool = LocalPool(workers=2)
        >>> pool.worth_starting(1, 100.0), pool.worth_starting(10, 0.05), pool.worth_starting(10, 5.0)
        (False, False, True)
        >>> pool.worth_starting(10, 5.0, samples=1)  # the first task alone may have paid for imports
        False
        """
        if self.workers <= 1 or remaining < 1 or self._executor is not None:
            return False
        if self._always:
            return True
        if seconds_per_task is None or samples < _MIN_SAMPLES:
            return False
        share = min(self.workers, remaining)
        saving = remaining * seconds_per_task * (1.0 - 1.0 / share)
        return saving > _START_MARGIN * POOL_START_COST_S

    def imap(self, function: Callable, args: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        """Yield ``(i, function(*args[i]))`` for every task as it finishes (``TaskLost`` if its worker died).

        Tasks run here, timed, until :meth:`worth_starting` says the rest should go to the pool.
        ``function`` and ``args`` must be picklable (top-level functions).
        """
        todo = deque(range(len(args)))
        fastest: float | None = None
        timed = 0
        while todo and self._executor is None and not self.worth_starting(len(todo), fastest, timed):
            index = todo.popleft()
            began = time.perf_counter()
            result = function(*args[index])
            # the fastest task so far: the first one also pays for lazy imports and cold caches
            elapsed = time.perf_counter() - began
            fastest = elapsed if fastest is None else min(fastest, elapsed)
            timed += 1
            yield index, result
        if todo:
            if self._executor is None:
                self._start(len(todo))
            yield from self._pool_map(function, args, todo)

    def _start(self, tasks: int) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=min(self.workers, tasks),
            mp_context=_pool_context(),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )

    def _submit(self, function: Callable, arg: tuple) -> Future:
        assert self._executor is not None
        future = self._executor.submit(function, *arg)
        # the executor starts its workers on demand: keep every one, to report and to kill them
        for pid, process in getattr(self._executor, "_processes", {}).items():
            if pid not in self._processes:
                self._processes[pid] = process
                self.started += 1
        return future

    def _pool_map(
        self, function: Callable, args: Sequence[tuple], todo: deque[int]
    ) -> Iterator[tuple[int, object]]:
        window = 2 * self.workers  # a few queued tasks per worker: little to cancel on an interrupt
        pending: dict[Future, int] = {}
        suspects: deque[int] = deque()  # tasks in flight when a worker died: retried one at a time
        alone = False  # whether the one task pending is such a retry
        fruitless = 0  # pools in a row that broke before finishing any task
        while todo or pending or suspects:
            broken = False
            try:
                if not pending:
                    alone = bool(suspects)
                    if alone:
                        pending[self._submit(function, args[suspects[0]])] = suspects[0]
                        suspects.popleft()
                while not alone and todo and len(pending) < window:
                    pending[self._submit(function, args[todo[0]])] = todo[0]
                    todo.popleft()
            except BrokenProcessPool:  # broken before we saw it: the task stays at the head of its queue
                broken = True
            if not broken:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:  # the culprit found: progress too
                            fruitless = 0
                            yield index, TaskLost(self._death_reason())
                        else:
                            suspects.append(index)
                        continue
                    fruitless = 0
                    yield index, result
            if broken:
                for future, index in pending.items():
                    if future.done() and future.exception() is None:
                        fruitless = 0
                        yield index, future.result()
                    else:
                        suspects.append(index)
                pending.clear()
                self._teardown()
                fruitless += 1
                if fruitless > _MAX_FRUITLESS_POOLS:  # workers die at start-up: give up on the rest
                    reason = "worker died: worker processes keep dying before finishing any task"
                    for index in (*suspects, *todo):
                        yield index, TaskLost(reason)
                    return
                if todo or suspects:
                    self._start(len(todo) + len(suspects))

    def _death_reason(self) -> str:
        """How the dead worker died: the first that neither ran nor was stopped by the executor."""
        codes = [p.exitcode for p in self._processes.values() if p.exitcode not in (None, 0)]
        chosen = next((c for c in codes if c != -signal.SIGTERM), codes[0] if codes else None)
        return f"worker died: {_death_text(chosen)} while scoring this case (retried once)"

    def _shutdown(self) -> None:
        """End of the work: let the workers exit, then make sure none is left."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._kill_left()

    def _teardown(self) -> None:
        """Interrupt or broken pool: stop at once. Waiting on the executor could block on a queue lock
        that a dead or killed worker held, so nothing here waits without a bound."""
        executor, self._executor = self._executor, None
        # taken before shutdown(wait=False), which drops the executor's reference to it
        manager = getattr(executor, "_executor_manager_thread", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self._kill_left()
        if manager is not None:
            # it ends once it sees its workers gone. Left running, it could close its wake-up pipe
            # while the interpreter's exit hook writes to it: a traceback after a clean interrupt
            manager.join(_TEARDOWN_TIMEOUT_S)
            if manager.is_alive():
                # still stuck (on a queue lock a killed worker held): the interpreter joins every
                # manager thread without a bound at exit, so take this one off that list
                getattr(concurrent.futures.process, "_threads_wakeups", {}).pop(manager, None)

    def _kill_left(self) -> None:
        processes, self._processes = list(self._processes.values()), {}
        for process in processes:
            if process.exitcode is None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    process.kill()
        for process in processes:
            with contextlib.suppress(OSError, ValueError, AttributeError, AssertionError):
                process.join(_TEARDOWN_TIMEOUT_S)
