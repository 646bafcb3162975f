"""The package itself: version, error type, validation helpers."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import segdice
from segdice._checks import (
    SegDiceError,
    check_choice,
    check_finite,
    check_mode,
    check_number,
    describe,
)

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_pyproject():
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    declared = match.group(1)
    assert segdice.__version__ == declared
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", segdice.__version__)


def test_segdice_error_is_a_value_error():
    assert issubclass(segdice.SegDiceError, ValueError)
    with pytest.raises(ValueError):
        check_mode("softmax")


def test_check_mode_names_argument_and_choices():
    with pytest.raises(
        SegDiceError, match=r"mode: got 'softmax'; expected one of 'binary', 'multiclass', 'multilabel'"
    ):
        check_mode("softmax")
    assert check_mode("binary") == "binary"


def test_check_choice_accepts_members_only():
    assert check_choice("reduction", "sum", ("mean", "sum")) == "sum"
    with pytest.raises(SegDiceError, match="reduction"):
        check_choice("reduction", "avg", ("mean", "sum"))


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (-1.0, {"minimum": 0}, r"smooth: got -1.0; expected a value >= 0"),
        (0.0, {"minimum": 0, "strict_min": True}, r"expected a value > 0"),
        (2.0, {"maximum": 1}, r"expected a value <= 1"),
        (float("nan"), {}, r"expected a finite number"),
        ("1", {}, r"expected a real number"),
        (True, {}, r"expected a real number"),
        (1.5, {"integer": True}, r"expected an integer"),
    ],
)
def test_check_number_rejects(value, kwargs, message):
    with pytest.raises(SegDiceError, match=message.replace("smooth: ", "")):
        check_number("smooth", value, **kwargs)


def test_check_number_accepts_bounds_inclusive():
    assert check_number("x", 0, minimum=0, maximum=1) == 0
    assert check_number("x", 1, minimum=0, maximum=1) == 1
    assert check_number("x", np.float32(0.5), minimum=0) == np.float32(0.5)


def test_describe_reports_shape_dtype_and_range():
    t = torch.tensor([[-1.5, 2.0]])
    assert describe(t) == "a tensor of shape (1, 2), dtype torch.float32, values in [-1.5, 2]"
    assert describe(np.array([True, False])) == "an array of shape (2,), dtype bool, values in [0, 1]"
    assert describe(torch.zeros(0, 3)) == "a tensor of shape (0, 3), dtype torch.float32"
    assert describe([1, 2]) == "list [1, 2]"


def test_check_finite_counts_bad_values():
    with pytest.raises(SegDiceError, match=r"2 NaN/inf"):
        check_finite("input", torch.tensor([1.0, float("nan"), float("inf")]))
    with pytest.raises(SegDiceError, match=r"1 NaN/inf"):
        check_finite("input", np.array([np.nan, 1.0]))
    check_finite("input", torch.tensor([1, 2]))  # integer tensors are always finite


def test_import_segdice_loads_only_names():
    # A fresh interpreter: what `import segdice` alone loads (PEP 562 names resolve on first use).
    code = (
        "import sys, segdice\n"
        "heavy = ('torch', 'scipy', 'matplotlib', 'segdice.evaluation', 'segdice.report', 'segdice.losses',"
        " 'segdice.metrics', 'segdice.stats', 'segdice.demo')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_lazy_names_are_the_defining_modules_objects():
    from segdice import DiceLoss, evaluate
    from segdice.evaluation import EvaluationResult
    from segdice.losses import DiceLoss as defined

    assert DiceLoss is defined and segdice.DiceLoss is defined
    assert segdice.evaluate is evaluate and evaluate.__module__.startswith("segdice.evaluation")
    assert segdice.EvaluationResult is EvaluationResult
    assert segdice.SegDiceError is SegDiceError
    # the function keeps its name; the module is segdice.evaluation, so nothing shadows anything
    assert callable(segdice.evaluate) and segdice.evaluation.__name__ == "segdice.evaluation"


def test_every_public_name_resolves_and_is_listed():
    for name in segdice.__all__:
        assert getattr(segdice, name) is not None, name
    assert set(segdice.__all__) <= set(dir(segdice))
    assert {"metrics", "stats", "losses"} <= set(dir(segdice))
    assert segdice.metrics.dice_score.__module__ == "segdice.metrics.overlap"
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = segdice.no_such_name


def test_no_merge_conflict_markers_in_tracked_files():
    # A merge that committed its conflict markers once broke the docs build; catch it at the source.
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=False).stdout
    if not files:
        import pytest

        pytest.skip("not a git checkout")
    bad = []
    for name in files.splitlines():
        path = root / name
        if path.suffix not in {".py", ".md", ".yml", ".yaml", ".toml", ".html", ".cfg", ".txt", ""} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                bad.append(f"{name}:{number}")
    assert not bad, f"merge conflict markers: {bad}"
