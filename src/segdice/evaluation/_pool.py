"""Worker processes for the evaluator: a fork-server pool, and a bounded, streaming map over it."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager

__all__ = ["map_tasks", "worker_pool"]


def _init_worker() -> None:
    # Each worker scores one case at a time; intra-op threads would only fight the other workers.
    import torch

    torch.set_num_threads(1)


@contextmanager
def worker_pool(workers: int, n_tasks: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of worker processes, or ``None`` when one process is enough.

    Workers never fork the caller (its threads, such as a progress bar's, may hold locks). Where the
    platform has it, a fork server imports the scoring code (torch, SciPy) once and forks every worker
    from that clean process, which halves the pool's start-up against spawning each worker afresh.
    """
    if workers <= 1 or n_tasks <= 1:
        yield None
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # SciPy's ndimage and spatial are imported lazily by the boundary metrics: preload them too
        context.set_forkserver_preload(["segdice.evaluation._scoring", "scipy.ndimage", "scipy.spatial"])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, n_tasks), mp_context=context, initializer=_init_worker
    ) as pool:
        yield pool


def map_tasks(
    function: Callable,
    args: Sequence[tuple],
    pool: ProcessPoolExecutor | None,
    workers: int,
    on_result: Callable[[int, object], None],
) -> None:
    """Call ``on_result(i, function(*args[i]))`` for every task, in completion order.

    With a pool, at most two tasks per worker are queued at once, so an interrupt leaves little
    work to cancel and results stream out as they finish.

    Examples
    --------
    >>> found = {}
    >>> map_tasks(pow, [(2, 3), (3, 2)], None, 1, found.__setitem__)
    >>> found
    {0: 8, 1: 9}
    """
    if pool is None:
        for index, arg in enumerate(args):
            on_result(index, function(*arg))
        return
    window = 2 * workers
    pending: dict[Future, int] = {}
    next_index = 0
    try:
        while next_index < len(args) or pending:
            while next_index < len(args) and len(pending) < window:
                pending[pool.submit(function, *args[next_index])] = next_index
                next_index += 1
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_result(pending.pop(future), future.result())
    except BaseException:
        for future in pending:
            future.cancel()
        raise
