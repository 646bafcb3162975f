"""Paired comparison of evaluation runs: is model B really better than model A?

:func:`compare` reads two or more folders written by ``segdice evaluate``, pairs their cases, and gives per
label/region, metric and pair of runs the paired mean difference with a bootstrap interval, a paired test
with multiple-testing correction, an effect size and wins / ties / losses, plus rankings of the runs with
their bootstrap stability.

Every name is resolved on first use (PEP 562): the choices and defaults (:data:`TESTS`,
:data:`CORRECTIONS`, ``DEFAULT_*``) load no NumPy, so that ``segdice compare --help`` can show them at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segdice._lazy import lazy_attributes

if TYPE_CHECKING:  # the names below, for type checkers and the API reference
    from segdice.comparison._choices import (
        CORRECTIONS,
        DEFAULT_ALPHA,
        DEFAULT_CORRECTION,
        DEFAULT_RESAMPLES,
        DEFAULT_SEED,
        DEFAULT_TEST,
        TESTS,
    )
    from segdice.comparison._run import compare
    from segdice.comparison.result import COMPARISON_COLUMNS, ComparisonResult, higher_is_better

# Public name -> the module that defines it.
_NAMES: dict[str, str] = {
    "COMPARISON_COLUMNS": "segdice.comparison.result",
    "CORRECTIONS": "segdice.comparison._choices",
    "ComparisonResult": "segdice.comparison.result",
    "DEFAULT_ALPHA": "segdice.comparison._choices",
    "DEFAULT_CORRECTION": "segdice.comparison._choices",
    "DEFAULT_RESAMPLES": "segdice.comparison._choices",
    "DEFAULT_SEED": "segdice.comparison._choices",
    "DEFAULT_TEST": "segdice.comparison._choices",
    "TESTS": "segdice.comparison._choices",
    "compare": "segdice.comparison._run",
    "higher_is_better": "segdice.comparison.result",
}
# Submodules reachable as attributes after a bare `import segdice.comparison`.
_SUBMODULES = frozenset({"result"})

__all__ = [
    "COMPARISON_COLUMNS",
    "CORRECTIONS",
    "DEFAULT_ALPHA",
    "DEFAULT_CORRECTION",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "DEFAULT_TEST",
    "TESTS",
    "ComparisonResult",
    "compare",
    "higher_is_better",
]


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, _SUBMODULES)
