"""What an evaluation returns. A leaf module: it imports nothing from segdice."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EvaluationResult"]


@dataclass
class EvaluationResult:
    """What :func:`~segdice.evaluation.evaluate` returns.

    Attributes
    ----------
    per_case
        One dict per case x label/region, with the columns of ``per_case.csv``.
    summary
        The content of ``summary.json``: statistics per label/region and metric, the definitions
        used, the inputs and counts.
    out
        The output folder, or ``None`` when nothing was written.
    files
        Name -> path of every file written (``per_case``, ``summary``, ``report``).
    workers_started
        Worker processes started for this run: 0 when every case was scored in the calling process
        (one worker asked for, or too little work to pay for starting a pool) or on a Dask cluster
        this run did not start; ``N`` for ``scheduler="local:N"``.

    Examples
    --------
    >>> result = EvaluationResult(per_case=[], summary={"failed_cases": {"a": "unreadable"}})
    >>> result.n_failed, result.failed_cases
    (1, {'a': 'unreadable'})
    """

    per_case: list[dict]
    summary: dict
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    workers_started: int = 0

    @property
    def failed_cases(self) -> dict[str, str]:
        """Cases with an error, mapped to the error text."""
        return dict(self.summary["failed_cases"])

    @property
    def n_failed(self) -> int:
        """How many cases could not be scored cleanly."""
        return len(self.summary["failed_cases"])
