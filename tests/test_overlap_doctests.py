"""The Examples sections of the metrics modules run as doctests (pytest is not run with --doctest-modules)."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "module",
    ["segdice.stats.soft", "segdice.stats.counts", "segdice.metrics.overlap", "segdice.metrics.streaming"],
)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
