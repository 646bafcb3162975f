"""What :func:`segdice.compare` returns, and the files it writes."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError
from segdice.metrics import BOUNDARY_METRICS
from segdice.report.tables import write_case_csv, write_summary_json

__all__ = ["COMPARISON_COLUMNS", "ComparisonResult", "higher_is_better"]

#: Columns of ``comparison.csv``: one row per item, metric and pair of runs.
COMPARISON_COLUMNS: tuple[str, ...] = (
    "item",
    "metric",
    "run_a",
    "run_b",
    "direction",
    "n",
    "n_undefined",
    "worst_a",
    "worst_b",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci_low",
    "ci_high",
    "median_diff",
    "test",
    "statistic",
    "p_value",
    "p_corrected",
    "significant",
    "effect_size",
    "rank_biserial",
    "cohens_dz",
    "wins",
    "ties",
    "losses",
)

# The boundary metrics that are distances (lower is better): all but the surface Dice, an overlap score.
_SURFACE_DICE = "nsd"
_LOWER_IS_BETTER = frozenset(m for m in BOUNDARY_METRICS if m != _SURFACE_DICE)
# Lesion-wise columns (``lesion_hd95``) take the direction of the metric they are built on.
_LESION_PREFIX = "lesion_"


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better: False for distances (hd, hd95, assd, masd).

    Examples
    --------
    >>> higher_is_better("dice"), higher_is_better("hd95"), higher_is_better("nsd")
    (True, False, True)
    """
    base = metric[len(_LESION_PREFIX) :] if metric.startswith(_LESION_PREFIX) else metric
    return base not in _LOWER_IS_BETTER


@dataclass
class ComparisonResult:
    """What :func:`segdice.compare` returns.

    Attributes
    ----------
    runs
        The run names, in the order given.
    comparisons
        One dict per item, metric and pair of runs, with the columns of ``comparison.csv``
        (:data:`COMPARISON_COLUMNS`).
    rankings
        One dict per item and metric: both rankings, their bootstrap rank frequencies and Kendall's tau.
    summary
        The content of ``comparison.json``: the above plus the inputs, settings, definitions and cases.
    values
        ``values[run][item][metric]``: the paired per-case values (worst cases substituted) as a NumPy
        array, in the order of ``summary["cases"]["paired"]``.
    out
        The output folder, or ``None`` when nothing was written.
    files
        The files written, by kind (``"csv"``, ``"json"``, ``"html"``).
    """

    runs: list[str]
    comparisons: list[dict]
    rankings: list[dict]
    summary: dict
    values: dict[str, dict[str, dict[str, np.ndarray]]]
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def significant(self) -> list[dict]:
        """The comparison rows whose corrected p-value is below ``alpha``."""
        return [row for row in self.comparisons if row["significant"]]

    def write(self, out: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``comparison.csv``, ``comparison.json`` and (with matplotlib and Jinja2) ``comparison.html``.

        Raises
        ------
        SegDiceError
            If ``out`` exists and is not a folder, or cannot be created.
        """
        folder = Path(out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise SegDiceError(
                f"out: {folder} exists and is not a folder; expected a folder for the comparison"
            ) from None
        except OSError as exc:
            raise SegDiceError(f"out: cannot create {folder} ({exc.strerror})") from None
        self.out = folder
        csv_path, json_path = folder / "comparison.csv", folder / "comparison.json"
        write_case_csv(csv_path, COMPARISON_COLUMNS, self.comparisons)
        write_summary_json(json_path, self.summary)
        self.files = {"csv": csv_path, "json": json_path}
        try:
            import jinja2  # noqa: F401
            import matplotlib  # noqa: F401
        except ImportError as exc:  # matplotlib/jinja2 come with the "report" extra
            warnings.warn(
                f"comparison.html not written: {exc}; pip install 'segdice[report]'",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            from segdice.report.comparison import write_comparison_report

            self.files["html"] = write_comparison_report(
                self.summary, self.values, folder / "comparison.html"
            )
        return self.files
