"""Run the evaluator's tasks on a Dask cluster: one task per case, read and scored on a worker.

:class:`DaskPool` offers the same ``imap(function, args)`` as :class:`~segdice.evaluation._pool.LocalPool`:
every task is submitted to the scheduler at once and ``(i, result)`` is yielded as tasks finish
(``distributed.as_completed``), so the caller streams rows to its CSV exactly as with the local pool. The
workers read the files themselves: every worker must see the paths the client sees (a shared file system).

Where the tasks run (``scheduler``):

- ``"tcp://host:port"`` (or another Dask protocol): a running scheduler, reached within
  :data:`CONNECT_TIMEOUT_S` (or ``SEGDICE_SCHEDULER_TIMEOUT`` seconds); the client is closed at the end;
- ``"local:N"``: a ``LocalCluster`` of ``N`` single-threaded worker processes that this pool starts on
  127.0.0.1 only (scheduler, workers and dashboard: Dask's defaults listen on every interface) and closes
  at the end; its workers ignore Ctrl-C (``_dask_worker``), which the main process handles once;
- a ``distributed.Client``: the caller's; its futures are cancelled on an interrupt, the client is left open.

Faults: a task whose worker dies is rescheduled by the Dask scheduler (``distributed.scheduler.allowed-failures``
times; once for ``local:N``, :data:`LOCAL_CLUSTER_CONFIG`), then it ends with ``KilledWorker``, yielded as
:class:`~segdice.evaluation._pool.TaskLost` (an error row). A task that raises on the worker (segdice
not importable there, say) is a ``TaskLost`` too. A scheduler that cannot be reached, or that is lost
mid-run, is a :class:`~segdice.SegDiceError`: the rows streamed so far stay, ``--resume`` continues.

``distributed`` is imported only here, and only when a scheduler is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence

from segdice._checks import SegDiceError
from segdice.evaluation._pool import TaskLost

__all__ = ["CONNECT_TIMEOUT_S", "LOCAL_CLUSTER_CONFIG", "DaskPool", "check_scheduler"]

#: Seconds to reach a scheduler before giving up (``SEGDICE_SCHEDULER_TIMEOUT`` overrides it).
CONNECT_TIMEOUT_S = 10.0
_TIMEOUT_ENV = "SEGDICE_SCHEDULER_TIMEOUT"
# Seconds an owned client or cluster may take to close: an interrupt never waits without a bound.
_CLOSE_TIMEOUT_S = 10.0
# Dask's own protocols (distributed.comm); "host:port" without one is refused so that typos show.
_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://\S+$")
_LOCAL = re.compile(r"^local:(\d+)$")
_INSTALL = "pip install 'segdice[distributed]'"
#: The scheduler settings of ``local:N``. A case whose worker dies is rescheduled once, as with the local
#: pool, and then fails alone: each worker holds only the task it runs (saturation 1.0; Dask's 1.1 sends
#: a second one ahead, and the scheduler counts a worker's death against every task it holds).
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
}


def check_scheduler(scheduler: object) -> object:
    """``scheduler`` checked: ``None``, a Dask address, ``"local:N"`` (N >= 1) or a ``distributed.Client``.

    Nothing is imported or contacted here.

    Raises
    ------
    SegDiceError
        For any other value.

    Examples
    --------
    >>> check_scheduler(" tcp://10.0.0.5:8786 "), check_scheduler("local:4"), check_scheduler(None)
    ('tcp://10.0.0.5:8786', 'local:4', None)
    >>> check_scheduler("local:0")
    Traceback (most recent call last):
    ...
    segdice.SegDiceError: scheduler: got 'local:0'; expected 'tcp://host:port', 'local:N' with N >= 1 workers, or a distributed.Client
    """
    if scheduler is None:
        return None
    if isinstance(scheduler, str):
        text = scheduler.strip()
        local = _LOCAL.match(text)
        if (local and int(local.group(1)) >= 1) or (not local and _ADDRESS.match(text)):
            return text
    else:
        distributed = sys.modules.get("distributed")  # a Client exists only if distributed was imported
        if distributed is not None and isinstance(scheduler, distributed.Client):
            return scheduler
    raise SegDiceError(
        f"scheduler: got {scheduler!r}; expected 'tcp://host:port', 'local:N' with N >= 1 workers, "
        "or a distributed.Client"
    )


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise SegDiceError(
            f"scheduler: running on a Dask cluster needs the distributed package ({exc}); {_INSTALL}"
        ) from None
    return distributed


def _connect_timeout() -> float:
    text = os.environ.get(_TIMEOUT_ENV, "")
    try:
        value = float(text) if text else CONNECT_TIMEOUT_S
    except ValueError:
        raise SegDiceError(f"{_TIMEOUT_ENV}: got {text!r}; expected a number of seconds > 0") from None
    if not value > 0:
        raise SegDiceError(f"{_TIMEOUT_ENV}: got {text!r}; expected a number of seconds > 0")
    return value


class DaskPool:
    """Run tasks on a Dask cluster; the same ``imap`` contract as ``LocalPool``.

    Use as a context manager: entering connects (or starts ``local:N``), leaving closes what this pool
    opened. :attr:`started` counts the worker processes it started (``N`` for ``local:N``, else 0);
    :attr:`address` is the scheduler's address once connected.
    """

    def __init__(self, scheduler: object) -> None:
        self.scheduler = check_scheduler(scheduler)
        if self.scheduler is None:
            raise SegDiceError("scheduler: got None; expected a Dask scheduler for DaskPool")
        self.started = 0
        self.address = ""
        self._client = None
        self._cluster = None
        self._owns_client = False

    def __enter__(self) -> DaskPool:
        distributed = _import_distributed()
        try:
            self._open(distributed)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._close()

    def _open(self, distributed) -> None:
        if isinstance(self.scheduler, distributed.Client):
            self._client = self.scheduler
            self.address = self._client.scheduler.address if self._client.scheduler else ""
            return
        local = _LOCAL.match(self.scheduler)  # type: ignore[arg-type]
        if local:
            self._start_local(distributed, int(local.group(1)))
            return
        timeout = _connect_timeout()
        try:
            self._client = distributed.Client(self.scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SegDiceError(
                f"scheduler: cannot reach the Dask scheduler at {self.scheduler} within {timeout:g} s "
                f"({exc}); expected a running scheduler (`dask scheduler`) "
                "reachable from this machine"
            ) from None
        self._owns_client = True
        self.address = self.scheduler  # type: ignore[assignment]

    def _start_local(self, distributed, workers: int) -> None:
        import dask

        # Loopback only: Dask's defaults listen on every interface.
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            try:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:8787",
                    silence_logs=logging.ERROR,
                    preload=["segdice.evaluation._dask_worker"],  # workers ignore Ctrl-C
                )
            except Exception as exc:  # any failure to start is one clear message
                raise SegDiceError(
                    f"scheduler: could not start a local Dask cluster of {workers} worker(s) "
                    f"({type(exc).__name__}: {exc})"
                ) from None
        self.started = workers
        self._client = distributed.Client(self._cluster, set_as_default=False)
        self._owns_client = True
        self.address = self._cluster.scheduler_address

    def imap(self, function: Callable, args: Sequence[tuple]) -> Iterator[tuple[int, object]]:
        """Yield ``(i, function(*args[i]))`` as tasks finish on the cluster (``TaskLost`` if a task was lost).

        Every task is submitted at once (the scheduler queues them); a task's future is released as
        soon as its result is here. Leaving early (an interrupt, a write error) cancels the rest.
        """
        from distributed import as_completed

        client = self._client
        run = uuid.uuid4().hex[:8]
        name = getattr(function, "__name__", "task").strip("_")
        futures = {}
        try:
            for index, arg in enumerate(args):
                future = client.submit(function, *arg, key=f"segdice-{name}-{run}-{index}", pure=False)
                futures[future] = index
            # with_results: the client fetches results on its event loop while this thread writes rows
            finished = as_completed(list(futures), loop=client.loop, with_results=True, raise_errors=False)
            for future, value in finished:
                index = futures.pop(future)
                yield index, self._outcome(future, value)
        finally:
            if futures:
                with contextlib.suppress(Exception):
                    client.cancel(list(futures))
                futures.clear()

    def _outcome(self, future, value: object) -> object:
        """The result of a finished future; a ``KilledWorker`` or an exception raised on the worker is a
        :class:`TaskLost`. Cancelled (the scheduler is gone): :class:`SegDiceError`."""
        from distributed import KilledWorker

        if future.cancelled():
            raise SegDiceError(
                f"scheduler: lost the Dask scheduler at {self.address} (the task was cancelled); the rows "
                "already written are kept: rerun with --resume"
            )
        if future.status != "error":
            return value
        # an erred future's value is (type, exception, traceback), as Dask keeps it
        exc = value[1] if isinstance(value, tuple) and len(value) == 3 else value
        if isinstance(exc, KilledWorker):
            tries = exc.allowed_failures + 1
            return TaskLost(f"worker died: the Dask worker scoring this case died ({tries} tries)")
        # raised on the worker: segdice missing there, or a result that could not be sent back
        return TaskLost(f"task failed on a Dask worker: {type(exc).__name__}: {exc}")

    def _close(self) -> None:
        """Close what this pool opened, each step bounded; a caller's client stays open."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        with _quiet_loggers(*_CLOSE_NOISE):
            if client is not None and self._owns_client:
                with contextlib.suppress(Exception):
                    client.close(timeout=_CLOSE_TIMEOUT_S)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close(timeout=_CLOSE_TIMEOUT_S)


# Closing a client while ``as_completed`` still gathers a result that finished as the interrupt came (its
# future cancelled a moment too late) fails that gather with CommClosedError, and tornado logs it, with a
# traceback, at ERROR: Dask's default logging config prints that logger to stderr. The rows it carried
# were never written, so --resume scores the case again; nothing is lost but the message.
_CLOSE_NOISE = ("tornado.application", "distributed.client")


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The named loggers at CRITICAL for the duration, their levels restored after."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
