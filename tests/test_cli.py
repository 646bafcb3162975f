"""The `segdice` command line: version, help, and exit codes."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import segdice
from segdice.cli import app

runner = CliRunner()


def test_version_flag_prints_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"segdice {segdice.__version__}"


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "info" in result.output


def test_unknown_command_is_a_usage_error():
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def test_info_lists_core_packages():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0
    for name in ("torch", "numpy", "scipy"):
        assert name in result.output


def test_console_script_is_installed_and_runs():
    # The module entry point behaves like the installed `segdice` script.
    proc = subprocess.run(
        [sys.executable, "-c", "from segdice.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"segdice {segdice.__version__}"


def _fresh_python(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet) and return its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_torch(flag):
    # What the console script does (it imports segdice.cli, which runs segdice/__init__), then which
    # heavy modules that loaded.
    code = (
        "import sys\n"
        f"sys.argv = ['segdice', {flag!r}]\n"
        "from segdice.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
        "heavy = ('torch', 'scipy', 'matplotlib', 'segdice.evaluation', 'segdice.report', 'segdice.losses')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    assert _fresh_python(code).splitlines()[-1] == "[]"


def test_python_dash_m_segdice_runs_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "segdice", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"segdice {segdice.__version__}"


def test_evaluate_help_shows_the_evaluators_metric_names():
    from segdice.evaluation import ALL_METRICS, DEFAULT_METRICS

    result = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # compare on single spaces: the help is laid out in a box
    assert f"[default: {','.join(DEFAULT_METRICS)}]" in text
    assert f"from: {', '.join(ALL_METRICS)}." in text


# The optional packages `segdice info` must list, and the modules they import as.
OPTIONAL_PACKAGES = {
    "SimpleITK": "SimpleITK",
    "highdicom": "highdicom",
    "scikit-image": "skimage",
    "connected-components-3d": "cc3d",
    "torchmetrics": "torchmetrics",
    "distributed": "distributed",
    "nibabel": "nibabel",
    "pillow": "PIL",
    "tifffile": "tifffile",
    "matplotlib": "matplotlib",
    "jinja2": "jinja2",
    "pytorch-lightning": "pytorch_lightning",
}


def _extras() -> dict[str, list[str]]:
    """The extras of pyproject.toml: name -> the distribution names it requires (versions cut off)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text("utf-8"))["project"]
    extras = project["optional-dependencies"]
    return {
        name: [re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower() for req in reqs]
        for name, reqs in extras.items()
    }


def test_info_lists_optional_packages_with_version_and_extra_without_importing_them():
    code = (
        "import sys, runpy; sys.argv = ['segdice', 'info']\n"
        "try:\n    runpy.run_module('segdice', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "import json; print('MODULES=' + json.dumps(sorted(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    text, _, modules = proc.stdout.rpartition("MODULES=")
    loaded = set(json.loads(modules))
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    extras = _extras()
    for name, module in OPTIONAL_PACKAGES.items():
        assert name in lines, f"{name} missing from segdice info:\n{text}"
        try:
            expected = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = "not installed"
        line = " ".join(lines[name][1:])
        assert line.startswith(expected), line
        extra = lines[name][-1]
        assert extra.startswith("segdice[") and extra.endswith("]"), line
        assert name.lower() in extras[extra[len("segdice[") : -1]], f"{extra} does not bring {name}"
        assert module not in loaded, f"segdice info imported {module}"
