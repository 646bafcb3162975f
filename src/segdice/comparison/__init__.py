"""Paired comparison of evaluation runs: is model B really better than model A?

:func:`compare` reads two or more folders written by ``segdice evaluate``, pairs their cases, and gives per
label/region, metric and pair of runs the paired mean difference with a bootstrap interval, a paired test
with multiple-testing correction, an effect size and wins / ties / losses, plus rankings of the runs with
their bootstrap stability.
"""

from segdice.comparison._paired import CORRECTIONS, TESTS
from segdice.comparison._run import compare
from segdice.comparison.result import COMPARISON_COLUMNS, ComparisonResult, higher_is_better

__all__ = ["COMPARISON_COLUMNS", "CORRECTIONS", "TESTS", "ComparisonResult", "compare", "higher_is_better"]
