"""The choices and defaults of :func:`segdice.comparison.compare`, free of NumPy.

They have their one home here, where ``segdice compare --help`` can read them without loading the
statistics (NumPy, SciPy) that the comparison itself needs.
"""

from __future__ import annotations

__all__ = [
    "CORRECTIONS",
    "DEFAULT_ALPHA",
    "DEFAULT_CORRECTION",
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "DEFAULT_TEST",
    "TESTS",
]

#: The paired tests of :func:`~segdice.comparison.compare`'s ``test``.
TESTS: tuple[str, ...] = ("wilcoxon", "permutation", "ttest")
#: The multiple-testing corrections of its ``correction``.
CORRECTIONS: tuple[str, ...] = ("holm", "bonferroni", "fdr_bh", "none")

DEFAULT_TEST = "wilcoxon"
DEFAULT_CORRECTION = "holm"
DEFAULT_ALPHA = 0.05
DEFAULT_RESAMPLES = 10000
DEFAULT_SEED = 0
