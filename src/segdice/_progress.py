"""Progress for the evaluator and the demo, always on stderr: Rich bars on a terminal, plain lines in a pipe.

Progress is a message, not a result, so it never goes to stdout (``segdice evaluate --json | jq`` must
read only the summary). When stderr is not a terminal (a log file, CI, ``2>&1 | tee``), a live bar
would be drawn only once, at the end; plain lines such as ``scoring cases: 9/90`` are written instead,
at every tenth of the work, so a log shows how far a long run got.

Rich comes with the ``cli`` extra; without it progress is silent rather than an error, because a
progress bar is never what a run is for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["PLAIN_STEPS", "ProgressBars"]

# A plain-text bar writes a line each time this fraction of its total is passed (and at the end).
PLAIN_STEPS = 10


class ProgressBars:
    """A context manager holding any number of bars, one per :meth:`task`.

    Parameters
    ----------
    enabled
        Draw bars; when false (tests, library use) every callback does nothing.
    console
        The Rich console to draw on (default: a new one on stderr). A console that is not a terminal
        gets plain lines (see the module text), written to its file.

    Examples
    --------
    >>> with ProgressBars(False) as bars:
    ...     step = bars.task("Training", total=3)
    ...     step(info="loss 0.5"); step(completed=3)
    """

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self._bar = None
        self._plain: IO[str] | None = None
        if not enabled:
            return
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
        except ImportError:  # pragma: no cover - rich comes with the cli extra
            return
        console = console if console is not None else Console(stderr=True)
        if not console.is_terminal:
            self._plain = console.file
            return
        self._bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )

    def __enter__(self) -> ProgressBars:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def task(self, description: str, total: int) -> Callable[..., None]:
        """A callback for a new bar: a call advances it by one step, or sets it to ``completed=N``.

        ``info=`` sets the text beside the bar.
        """
        if self._plain is not None:
            return _plain_task(self._plain, description, total)
        if self._bar is None:
            return lambda **_: None
        bar, task_id = self._bar, self._bar.add_task(description, total=total, info="")

        def update(*, completed: int | None = None, **fields: Any) -> None:
            if completed is None:
                bar.update(task_id, advance=1, **fields)
            else:
                bar.update(task_id, completed=completed, **fields)

        return update


def _plain_task(stream: IO[str], description: str, total: int) -> Callable[..., None]:
    """The callback of a bar drawn as lines: one at the start and each time a further tenth is done."""
    state: dict[str, Any] = {"done": 0, "shown": -1, "info": ""}

    def update(*, completed: int | None = None, info: str | None = None, **_: Any) -> None:
        state["done"] = state["done"] + 1 if completed is None else completed
        if info is not None:
            state["info"] = info
        done = state["done"]
        step = min(done * PLAIN_STEPS // total, PLAIN_STEPS) if total > 0 else PLAIN_STEPS
        if step <= state["shown"]:
            return
        state["shown"] = step
        extra = f"  {state['info']}" if state["info"] else ""
        stream.write(f"{description}: {done}/{total}{extra}\n")
        stream.flush()

    return update
