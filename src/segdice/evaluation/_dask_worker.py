"""A Dask preload for the workers of ``local:N``: each worker ignores Ctrl-C.

Ctrl-C reaches the whole process group, and the workers of a ``LocalCluster`` are in it: left alone,
each would print a ``KeyboardInterrupt`` traceback while the main process already handles the
interrupt once (it cancels the tasks and closes the cluster, which stops the workers). Dask calls
:func:`dask_setup` in every worker it starts, restarted ones included; importing this module does nothing.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["dask_setup"]


def dask_setup(worker: object) -> None:
    """Ignore SIGINT in this worker process (Dask runs a worker's preloads on its main thread)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
