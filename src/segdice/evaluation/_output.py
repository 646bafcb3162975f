"""The output folder of one evaluation: created, checked and locked for the length of the run.

One folder is written by one run at a time: ``OUT/.segdice.lock`` holds an exclusive ``flock`` (released
by the kernel when the process ends, however it ends), and a second run on the same folder is refused
at once with a message that says so. Every problem with the folder itself (a file in its place, no
permission, a read-only or full file system) is a :class:`~segdice.SegDiceError` naming ``out``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from segdice._checks import SegDiceError

__all__ = ["LOCK_NAME", "locked_output_folder", "output_error"]

LOCK_NAME = ".segdice.lock"


# Errors that mean "no room": the rows written stay valid, a rerun with --resume continues after them.
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def output_error(path: Path, exc: OSError) -> SegDiceError:
    """The message for an operating-system error while writing ``path`` (the folder or a file in it).

    Examples
    --------
    >>> print(output_error(Path("o"), OSError(errno.ENOSPC, "No space left on device", "o/per_case.csv")))
    out: cannot write o/per_case.csv: No space left on device; the rows already written are kept: free some space and rerun with --resume
    """
    where = exc.filename if exc.filename is not None else path
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _NO_ROOM:
        advice = "the rows already written are kept: free some space and rerun with --resume"
    else:
        advice = "expected a folder this process can create and write to"
    return SegDiceError(f"out: cannot write {where}: {reason}; {advice}")


@contextmanager
def locked_output_folder(out: Path) -> Iterator[Path]:
    """Create ``out`` if needed and hold its lock while the block runs.

    Raises
    ------
    SegDiceError
        If ``out`` is a file, cannot be created or written, or another run holds its lock.
    """
    if out.exists() and not out.is_dir():
        raise SegDiceError(f"out: {out} is a file; expected a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK_NAME, "a+b")  # noqa: SIM115 - held open for the whole run
    except OSError as exc:
        raise output_error(out, exc) from None
    try:
        _lock(handle, out)
        yield out
    finally:
        handle.close()  # closing releases the lock


def _lock(handle, out: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one run per folder is then the user's care
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SegDiceError(
            f"out: {out} is in use by another segdice evaluate run (it holds {out / LOCK_NAME}); "
            "wait for it to finish, or choose another output folder"
        ) from None
    except OSError as exc:
        raise output_error(out, exc) from None
