"""The ``segdice`` command: ``segdice evaluate | demo | info``.

Each subcommand is a thin layer over the Python API: it parses options, calls the library, and turns
:class:`~segdice.SegDiceError` into a clean message with exit code 2 instead of a traceback.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
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
from segdice._checks import SegDiceError

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


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("segdice-demo"),
    quick: Annotated[bool, typer.Option("--quick", help="Sub-minute smoke run on smaller data.")] = False,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", help="Training epochs per method (default: 12)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of data, weights and batches.")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", help="Torch CPU threads.")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Pixel accuracy vs Dice on synthetic lesions: train a tiny U-Net with 3 losses, in minutes on a CPU."""
    from segdice.demo import demo_story, demo_table, run_demo

    try:
        result = run_demo(
            out,
            quick=quick,
            epochs=epochs,
            seed=seed,
            device=device,
            threads=threads,
            progress=progress,
            console=err_console,
        )
    except SegDiceError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(demo_table(result))
    for line in demo_story(result):
        console.print(line, markup=False, highlight=False)
    console.print(
        f"Report: {result.out}/ (results.json, training_curves.png, examples.png, evaluation/report.html)",
        markup=False,
        highlight=False,
    )


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
