"""``--help`` answers without NumPy, torch, SciPy or matplotlib, and is still complete.

Each help runs in a fresh interpreter, through the console script's entry point and through ``python -m
segdice``, and that interpreter then prints every module it holds (``sys.modules``, so a module loaded by
``importlib.import_module`` counts too). ``segdice info`` itself imports torch: it shows the detector
sees a heavy import when there is one.

The lazy packages (``segdice.metrics``, ``segdice.evaluation``, ``segdice.comparison``) keep every public name
they had, each the object its defining module holds.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _subprocess import SRC, run

HEAVY = ("numpy", "torch", "scipy", "matplotlib")
MARKER = "--- modules ---"

# Runs the command line on sys.argv[1:] as the console script or `python -m segdice` would, then prints
# every loaded module after MARKER on stderr, whatever the command's exit.
RUNNER = f"""
import runpy, sys
entry, args = sys.argv[1], sys.argv[2:]
sys.argv = ["segdice", *args]
try:
    if entry == "script":
        from segdice.cli import main
        main()
    else:
        runpy.run_module("segdice", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
else:
    code = 0
print({MARKER!r}, *sorted(sys.modules), sep="\\n", file=sys.stderr)
sys.exit(code)
"""

HELPS = [
    ("--help",),
    ("evaluate", "--help"),
    ("compare", "--help"),
    ("demo", "--help"),
    ("info", "--help"),
    ("--version",),
]


def run_cli(entry: str, *args: str) -> tuple[int, str, set[str]]:
    """``(exit code, stdout, loaded modules)`` of one fresh run of the command line."""
    proc = run([sys.executable, "-c", RUNNER, entry, *args], timeout=300)  # the timeout only catches a hang
    _, sep, modules = proc.stderr.partition(MARKER)
    assert sep, f"the runner did not finish: {proc.stderr[-2000:]}"
    return proc.returncode, proc.stdout, set(modules.split())


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("args", HELPS, ids=" ".join)
@pytest.mark.parametrize("entry", ["script", "python -m"])
def test_help_loads_no_numpy_torch_scipy_or_matplotlib(entry, args):
    code, stdout, modules = run_cli(entry, *args)
    assert code == 0
    assert stdout.strip()
    assert "segdice" in modules  # the runner really ran segdice
    heavy = heavy_in(modules)
    assert not heavy, f"segdice {' '.join(args)} loads {len(heavy)} heavy modules: {', '.join(heavy[:8])}"


def test_the_detector_sees_torch_when_a_command_imports_it():
    code, stdout, modules = run_cli("script", "info")  # `segdice info` reports torch's threads and CUDA
    assert code == 0
    assert "torch threads" in stdout
    assert "torch" in heavy_in(modules)


def test_evaluate_help_shows_the_library_metric_names_whole():
    from segdice.evaluation import ALL_METRICS, DEFAULT_METRICS

    _, stdout, _ = run_cli("script", "evaluate", "--help")
    text = " ".join(stdout.split())  # help lines wrap; the words do not change
    assert f"[default: {','.join(DEFAULT_METRICS)}]" in text
    assert f"Comma-separated, from: {', '.join(ALL_METRICS)}." in text


def test_compare_help_shows_the_library_defaults():
    import inspect

    from segdice.comparison import CORRECTIONS, TESTS, compare

    _, stdout, _ = run_cli("python -m", "compare", "--help")
    text = " ".join(stdout.split())
    defaults = inspect.signature(compare).parameters
    for name in ("test", "correction", "alpha", "resamples", "seed"):
        option_help = text.split(f"--{name} ", 1)[1].split(" --", 1)[0]
        assert f"[default: {defaults[name].default}]" in option_help, option_help
    assert ", ".join(TESTS) in text
    assert ", ".join(CORRECTIONS) in text


@pytest.mark.parametrize(
    ("command", "usage", "arguments"),
    [
        ("evaluate", "Usage: segdice evaluate [OPTIONS] PRED GT", ["PRED", "GT"]),
        ("compare", "Usage: segdice compare [OPTIONS] RUNS...", ["RUNS"]),
        ("demo", "Usage: segdice demo [OPTIONS]", []),
    ],
)
def test_usage_line_and_arguments_in_plain_names(command, usage, arguments):
    from typer.testing import CliRunner

    from segdice.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == usage
    assert "{" not in result.output and "<" not in result.output  # Typer's "{PRED}" and "PRED <path>"
    if arguments:
        start = lines.index("Arguments:")
        names = [line.split()[0] for line in lines[start + 1 : start + 1 + len(arguments)]]
        assert names == arguments
    # "  -o, --out PATH   help", "  --binarize   help", "  --progress / --no-progress   help"
    option = re.compile(r"^  (?:-\w, )?(--[a-z0-9-]+)(?: / --[a-z0-9-]+)?(?: ([A-Z]+))?(?:  |$)")
    values = {m[1]: m[2] for m in map(option.match, lines) if m}
    if command == "evaluate":  # every value in plain words; a flag has none
        assert values["--out"] == "PATH"
        assert values["--labels"] == values["--metrics"] == "TEXT"
        assert values["--workers"] == values["--dilation"] == "INTEGER"
        assert values["--nsd-tolerance"] == "NUMBER"
        assert values["--binarize"] is None and values["--progress"] is None
    if command == "demo":
        assert values["--out"] == "PATH" and values["--epochs"] == "INTEGER" and values["--quick"] is None


# --- the lazy packages -------------------------------------------------------------------------------------

# The public names of segdice.metrics before it became lazy (plus the two metric-name tuples), spelled out
# here so that a name dropped from the package fails this test.
METRICS_NAMES = {
    "segdice.metrics.instances": [
        "BRATS_CHALLENGES", "BRATS_REGIONS", "BRATS_WORST_CASE", "INSTANCE_METRICS", "BratsLesionScores",
        "InstanceMatching", "InstanceScores", "aggregated_jaccard_index", "brats_lesion_scores",
        "instance_scores", "label_components", "match_instances", "panoptic_quality",
    ],
    "segdice.metrics.overlap": [
        "METRICS", "accuracy", "balanced_accuracy", "dice_score", "false_discovery_rate",
        "false_negative_rate", "false_omission_rate", "false_positive_rate", "fbeta_score",
        "fowlkes_mallows_index", "generalized_dice_score", "informedness", "iou_score", "markedness",
        "matthews_corrcoef", "negative_predictive_value", "precision", "prevalence_threshold", "recall",
        "relative_volume_difference", "score_from_counts", "sensitivity", "specificity", "volume_similarity",
    ],
    "segdice.metrics.streaming": ["SegmentationMetrics"],
    "segdice.metrics.surface": [
        "BOUNDARY_METRICS", "average_surface_distance", "boundary_iou", "boundary_metrics",
        "hausdorff_distance", "mean_average_surface_distance", "surface_dice", "surface_distances",
    ],
    "segdice.metrics.topology": ["cldice_score"],
    "segdice.stats": ["confusion"],
}  # fmt: skip
EVALUATION_NAMES = {
    "segdice.evaluation._run": ["evaluate"],
    "segdice.evaluation.result": ["EvaluationResult"],
    "segdice.evaluation._metric_names": ["ALL_METRICS", "DEFAULT_METRICS"],
}
COMPARISON_NAMES = {
    "segdice.comparison._run": ["compare"],
    "segdice.comparison.result": ["COMPARISON_COLUMNS", "ComparisonResult", "higher_is_better"],
    "segdice.comparison._choices": [
        "CORRECTIONS", "DEFAULT_ALPHA", "DEFAULT_CORRECTION", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "DEFAULT_TEST",
        "TESTS",
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("segdice.metrics", METRICS_NAMES),
        ("segdice.evaluation", EVALUATION_NAMES),
        ("segdice.comparison", COMPARISON_NAMES),
    ],
)
def test_lazy_package_keeps_every_public_name(package, names):
    module = importlib.import_module(package)
    expected = sorted(name for group in names.values() for name in group)
    assert sorted(module.__all__) == expected
    assert set(expected) <= set(dir(module))
    for home, group in names.items():
        defining = importlib.import_module(home)
        for name in group:
            assert getattr(module, name) is getattr(defining, name), f"{package}.{name}"
    namespace: dict = {}
    exec(f"from {package} import *", namespace)  # the star import of a lazy package
    assert set(expected) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


@pytest.mark.parametrize("package", ["segdice.metrics", "segdice.evaluation", "segdice.comparison"])
def test_type_checking_imports_name_exactly_the_lazy_names(package):
    """The ``if TYPE_CHECKING:`` block (read by type checkers and the API reference) and the lazy table agree."""
    path = SRC / Path(*package.split(".")) / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    typed = {(alias.name, node.module) for node in block.body for alias in node.names}
    module = importlib.import_module(package)
    assert typed == set(module._NAMES.items())


def test_metric_names_and_checks_load_no_torch():
    program = (
        "import sys\n"
        "from segdice.evaluation import ALL_METRICS, DEFAULT_METRICS\n"
        "from segdice.metrics import BOUNDARY_METRICS, METRICS\n"
        "import segdice._checks as checks\n"
        "checks.check_number('x', 1, minimum=0)\n"
        "checks.check_spacing('spacing', [1, 2], 2)\n"
        "print(len(ALL_METRICS), len(METRICS) + len(BOUNDARY_METRICS))\n"
        "print(*sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy', 'matplotlib')))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    counts, heavy = proc.stdout.split("\n")[:2]
    from segdice.evaluation import ALL_METRICS
    from segdice.metrics import BOUNDARY_METRICS, METRICS

    assert counts == f"{len(ALL_METRICS)} {len(METRICS) + len(BOUNDARY_METRICS)}"
    assert heavy == ""
    # gds: the generalized Dice of every label at once, an evaluator key of its own (one row per case)
    assert set(ALL_METRICS) == (set(METRICS) - {"fbeta"}) | {"gds"} | set(BOUNDARY_METRICS)
