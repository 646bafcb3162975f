"""Imported by the evaluator's fork server only (a preload module): the fork server dies with its owner.

:func:`segdice.evaluation._pool.LocalPool` names its own process id in ``SEGDICE_POOL_OWNER`` before the
fork server starts; a process whose parent is that owner asks the kernel for SIGKILL when the owner dies
(Linux), so no fork server outlives a main process killed by any signal. Imported anywhere else (the
owner itself, a worker forked later), the ids do not match and nothing happens.
"""

from __future__ import annotations

import os

from segdice.evaluation._pool import set_parent_death_signal

if os.environ.get("SEGDICE_POOL_OWNER") == str(os.getppid()):
    set_parent_death_signal()
