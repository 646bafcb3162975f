"""Progress bars for the evaluator and the demo: Rich bars when asked for, silence otherwise.

Rich comes with the ``cli`` extra; without it the bars are silent rather than an error, because a
progress bar is never what a run is for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ProgressBars"]


class ProgressBars:
    """A context manager holding any number of bars, one per :meth:`task`.

    Parameters
    ----------
    enabled
        Draw bars; when false (tests, library use) every callback does nothing.
    console
        The Rich console to draw on (default: Rich's own, on stdout).

    Examples
    --------
    >>> with ProgressBars(False) as bars:
    ...     step = bars.task("Training", total=3)
    ...     step(info="loss 0.5"); step(completed=3)
    """

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self._bar = None
        if not enabled:
            return
        try:
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
        if self._bar is None:
            return lambda **_: None
        bar, task_id = self._bar, self._bar.add_task(description, total=total, info="")

        def update(*, completed: int | None = None, **fields: Any) -> None:
            if completed is None:
                bar.update(task_id, advance=1, **fields)
            else:
                bar.update(task_id, completed=completed, **fields)

        return update
