"""The `segdice` command line: version, help, and exit codes."""

import subprocess
import sys

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
