"""The ``segdice`` command: ``segdice evaluate | demo | info``.

Each subcommand is a thin layer over the Python API: it parses options, calls the library, and turns
:class:`~segdice.SegDiceError` into a clean message with exit code 2 instead of a traceback.
"""

from __future__ import annotations

import importlib.metadata
import sys
from typing import Annotated

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - exercised only without the cli extra
    raise SystemExit(
        "The segdice command needs the 'cli' extra (typer, rich): pip install 'segdice[cli]'"
    ) from exc

from segdice import __version__

app = typer.Typer(
    name="segdice",
    help="Dice-family losses, metrics and evaluation for image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"segdice {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version_callback, is_eager=True
        ),
    ] = False,
) -> None:
    """Dice-family losses, metrics and evaluation for image segmentation."""


# Packages whose presence decides what segdice can do; shown by `segdice info` for bug reports.
_REPORTED_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "nibabel",
    "pillow",
    "tifffile",
    "matplotlib",
    "jinja2",
    "typer",
    "rich",
)


@app.command()
def info() -> None:
    """Show the versions of segdice, Python and the packages it uses (paste this into bug reports)."""
    table = Table(title=f"segdice {__version__}", show_header=True)
    table.add_column("package")
    table.add_column("version")
    table.add_row("python", sys.version.split()[0])
    for name in _REPORTED_PACKAGES:
        try:
            ver = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            ver = "[dim]not installed[/dim]"
        table.add_row(name, ver)
    import torch

    table.add_row("torch threads", str(torch.get_num_threads()))
    table.add_row("CUDA available", str(torch.cuda.is_available()))
    console.print(table)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
