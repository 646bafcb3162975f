"""The ``segdice`` command: ``segdice evaluate | compare | demo | info``.

Each subcommand is a thin layer over the Python API: it parses options, calls the library, and turns
:class:`~segdice.SegDiceError` into a clean message with exit code 2 instead of a traceback. Defaults
come from the library (:data:`segdice.evaluation.DEFAULT_METRICS`), never from here.

The library is imported inside the commands, not at the top: ``segdice --help`` and ``segdice
--version`` must answer without importing torch (about a second on its own).
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

try:
    import typer
    from rich.console import Console
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - exercised only without the cli extra
    raise SystemExit(
        "The segdice command needs the 'cli' extra (typer, rich): pip install 'segdice[cli]'"
    ) from exc

from typer.core import TyperCommand

from segdice._version import __version__

if TYPE_CHECKING:
    from segdice.comparison import ComparisonResult
    from segdice.evaluation import EvaluationResult

app = typer.Typer(
    name="segdice",
    help="Dice-family losses, metrics and evaluation for image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: every default shown whole, flags as --x/--no-x without a type metavar, and
    # wrapped to the terminal rather than cut inside a box.
    rich_markup_mode=None,
)
# Results go to stdout, everything else (progress, messages, errors) to stderr: `segdice evaluate
# --json | jq` reads only the summary.
console = Console()
err_console = Console(stderr=True)
# Beyond this many labels/regions, the terminal shows the across-label mean and the worst ones only.
SUMMARY_MAX_ITEMS = 20
SUMMARY_WORST_ITEMS = 10


# The metavar of an option's value in --help, by the Python type Typer found: plain words, never Python's.
_METAVARS = {"Path": "PATH", "str": "TEXT", "int": "INTEGER", "float": "NUMBER", "list[str]": "TEXT"}


class _Command(TyperCommand):
    """A command whose --help names values in plain words (``--out PATH``, argument ``PRED``): Typer
    would write ``<path>``, ``<str>`` or ``<list[str]>``. Flags show no metavar at all.

    Only the public Click-style API of Typer's command and parameters is used (Typer 0.29 carries its own
    copy of Click, so these are not :mod:`click` classes): the metavars are the parameters' own
    ``metavar``; the usage line comes from ``collect_usage_pieces`` and the Arguments/Options sections from
    ``format_options`` with each parameter's ``get_help_record``, an argument's help text put under its
    plain name (Typer would append the Python type to the name, and put braces around it in the usage
    line).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is not None or getattr(param, "is_flag", False):
                continue
            if param.param_type_name == "argument":
                param.metavar = (param.name or "").upper()
            else:
                kind = param.bare_type() if hasattr(param, "bare_type") else ""
                param.metavar = _METAVARS.get(kind, "VALUE")

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":  # "PRED", "RUNS..."
                pieces.append(
                    (param.metavar or (param.name or "").upper()) + ("..." if param.nargs != 1 else "")
                )
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((param.metavar or (param.name or "").upper(), record[1]))
            else:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


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


# Packages whose presence decides what segdice can do, each with the extra of pyproject.toml that brings it
# ("" for a requirement); shown by `segdice info` for bug reports (tests/test_cli.py checks the extras).
_REPORTED_PACKAGES = {
    "torch": "",
    "numpy": "",
    "scipy": "",
    "nibabel": "io",
    "pillow": "io",
    "tifffile": "io",
    "matplotlib": "report",
    "jinja2": "report",
    "typer": "cli",
    "rich": "cli",
    "SimpleITK": "itk",
    "highdicom": "dicom",
    "scikit-image": "skeletons",
    "connected-components-3d": "instances",
    "distributed": "distributed",
    "torchmetrics": "peers",
    "pytorch-lightning": "test",
}


@app.command(cls=_Command, short_help="Show the versions of segdice, Python and the packages it uses.")
def info() -> None:
    """Show the versions of segdice, Python and the packages it uses (paste this into bug reports).

    Versions come from the installed packages' metadata: nothing but torch (for its threads and CUDA) is
    imported, so the command stays quick.
    """
    rows = [["python", sys.version.split()[0], ""]]
    for name, extra in _REPORTED_PACKAGES.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        rows.append([name, version, f"segdice[{extra}]" if extra else "required"])
    import torch

    rows.append(["torch threads", str(torch.get_num_threads()), ""])
    rows.append(["CUDA available", "yes" if torch.cuda.is_available() else "no", ""])
    _print_table(console, f"segdice {__version__}", ["package", "version", "installed by"], rows)


def _printable(text: str) -> str:
    r"""``text`` with control characters (from file and case names) shown as escapes, never sent raw.

    Examples
    --------
    >>> _printable("case\x1b[31m\nnext")
    'case\\x1b[31m\\nnext'
    """
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(
        f"[bold red]error:[/bold red] {escape(_printable(message))}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=code)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (rows kept, workers stopped)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


# Exit codes of `segdice evaluate` (DESIGN §7).
_EXIT_NOTHING_SCORED = 1  # no case could be scored, or (--strict) any case failed
_EXIT_USAGE = 2
_EXIT_SIGINT = 130  # 128 + SIGINT, as shells report it
_EXIT_SIGTERM = 143  # 128 + SIGTERM


def _named(option: str, text: str) -> tuple[str, str]:
    from segdice._checks import SegDiceError

    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise SegDiceError(f"{option}: got {text!r}; expected NAME=VALUE, e.g. WT=1,2,3")
    return name.strip(), value.strip()


def _parse_label_options(
    labels: str, label_names: str | None, region: list[str] | None
) -> tuple[str | list[int], str | None, dict[str, str]]:
    """``--labels``, ``--label-names`` and ``--region`` as :func:`segdice.evaluate` takes them.

    Label lists and region members stay text (``"1,2"``, ``"1-3"``) and label names stay inline pairs
    or a file path: :func:`segdice.evaluate` parses them, so the API and the command line accept the
    same forms.
    """
    if labels.strip().lower() == "auto":
        label_list: str | list[int] = "auto"
    elif labels.strip().lower() == "none":
        label_list = []
    else:
        label_list = labels
    names = label_names.strip() if label_names and label_names.strip() else None
    regions: dict[str, str] = {}
    for text in region or []:
        name, value = _named("--region", text)
        regions[name] = value
    return label_list, names, regions


def _parse_spacing(spacing: str | None) -> list[float] | None:
    """``--spacing 0.8,0.8,3`` as a list of numbers (checked further by :func:`segdice.evaluate`)."""
    from segdice._checks import SegDiceError

    if spacing is None:
        return None
    try:
        return [float(v) for v in spacing.split(",")]
    except ValueError:
        raise SegDiceError(f"--spacing: got {spacing!r}; expected numbers separated by commas") from None


def _summary_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]], str]:
    """The terminal summary: a header, one row per label/region (means over cases) and a closing note.

    Up to :data:`SUMMARY_MAX_ITEMS` labels/regions every one is shown, then their mean; beyond, the
    across-label mean first and the :data:`SUMMARY_WORST_ITEMS` worst (the files have every label).
    """
    from segdice.report.digest import label_metrics, metric_unit, ranking_metric, worst_items

    summary = result.summary
    metrics = label_metrics(summary)  # gds is one value per case over all labels: a line under the table
    header = ["label / region"]
    for metric in metrics:
        unit = metric_unit(metric, summary)
        header.append(f"{metric} ({unit})" if unit else metric)
    header += ["cases", "missing", "errors"]

    def fmt(value: float | None) -> str:
        return "nan" if value is None or math.isnan(value) else f"{value:.4g}"

    def row(name: str) -> list[str]:
        stats = summary["results"][name]
        first = stats[metrics[0]] if metrics else _counts_of(summary)
        return [
            name,
            *(fmt(stats[m]["mean"]) for m in metrics),
            str(first["n"] + first["n_nan"]),
            str(first["n_missing"]),
            str(first["n_error"]),
        ]

    names = [item["name"] for item in summary["items"]]
    means = summary.get("foreground_mean", {})
    mean_row = ["mean over labels", *(fmt(means.get(m)) for m in metrics), "", "", ""]
    note = "mean over cases per label/region; std, median, quartiles and 95% CI: summary.json"
    if len(names) <= SUMMARY_MAX_ITEMS:
        rows = [row(n) for n in names] + ([mean_row] if len(names) > 1 else [])
        return header, rows, note
    worst = worst_items(summary, SUMMARY_WORST_ITEMS)
    rows = [mean_row] + [row(n) for n in worst]
    order = "lowest" if ranking_metric(metrics) not in ("hd", "hd95", "assd", "masd") else "highest"
    note = (
        f"{len(names)} labels/regions: their mean, then the {len(worst)} with the {order} mean "
        f"{ranking_metric(metrics)}; every label is in per_case.csv, summary.json and report.html. {note}"
    )
    return header, rows, note


def _counts_of(summary: dict) -> dict:
    """Cases, missing and errors of a run whose rows have no per-label metric (``--metrics gds``)."""
    across = (summary.get("across_labels") or {}).get("item")
    for stats in summary["results"].get(across, {}).values():
        return stats
    return {"n": 0, "n_nan": 0, "n_missing": 0, "n_error": 0}


def _across_lines(result: EvaluationResult) -> list[str]:
    """The lines under the table for the metrics of every label at once (``gds``): one value per case."""
    from segdice.report.digest import across_label_metrics

    summary = result.summary
    item = (summary.get("across_labels") or {}).get("item")
    lines = []
    for metric in across_label_metrics(summary):
        s = summary["results"][item][metric]
        mean = "nan" if s["mean"] is None or math.isnan(s["mean"]) else f"{s['mean']:.4g}"
        lines.append(f"{metric} over all labels (one value per case, row '{item}'): mean {mean}, n {s['n']}")
    return lines


def _wide(target: Console) -> Console:
    """``target`` on a terminal; elsewhere a console on the same file that never cuts a Rich table at 80
    columns (a table takes its natural width, however wide)."""
    return target if target.is_terminal else Console(file=target.file, width=10_000)


def _print_table(target: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table on stdout: Rich on a terminal wide enough for it, plain aligned text otherwise.

    Plain text keeps every value whole and on one line, whatever the width (a pipe, a file, a narrow
    terminal, which wraps long lines itself): the first column left-aligned, the others right-aligned,
    two spaces between columns.
    """
    if target.is_terminal:
        from rich import box

        table = Table(title=escape(title), show_header=True, box=box.SIMPLE_HEAD)
        for k, name in enumerate(header):
            table.add_column(escape(name), justify="left" if k == 0 else "right", no_wrap=True)
        for cells in rows:
            table.add_row(*(escape(c) for c in cells))
        natural = Measurement.get(target, target.options.update(max_width=1_000_000), table).maximum
        if natural <= target.width:
            target.print(table)
            return
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    lines = [title]
    for cells in [header, *rows]:
        text = [
            c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        lines.append("  ".join(text).rstrip())
    target.file.write("\n".join(lines) + "\n")
    target.file.flush()


class _EvaluateCommand(_Command):
    """``segdice evaluate``, whose ``--metrics`` default and help are filled in from
    :mod:`segdice.evaluation` when the command is used: the metric names have their one home there (a
    module that loads no torch), and building the app for ``segdice --help`` must not import even that."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        from segdice.evaluation import ALL_METRICS, DEFAULT_METRICS

        for param in self.params:
            if param.name == "metrics":
                param.default = ",".join(DEFAULT_METRICS)
                param.help = f"Comma-separated, from: {', '.join(ALL_METRICS)}."
        return super().make_context(info_name, args, parent, **extra)


@app.command(
    "evaluate",
    cls=_EvaluateCommand,
    short_help="Score predicted masks against ground truth; write a CSV, a JSON summary and a report.",
)
def evaluate_command(
    pred: Annotated[Path, typer.Argument(help="Predicted mask file or folder.", show_default=False)],
    gt: Annotated[Path, typer.Argument(help="Ground-truth mask file or folder.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for per_case.csv, summary.json and report.html."),
    ] = None,
    labels: Annotated[
        str,
        typer.Option(
            help="Labels to score: 'auto' (every label in any ground truth or prediction), '1,2,3' or '1-3' "
            "(other values count as background), or 'none'."
        ),
    ] = "auto",
    label_names: Annotated[
        str | None,
        typer.Option(
            "--label-names",
            help="Display names: liver=1,tumour=2, or a CSV file of value,name rows, or an nnU-Net "
            "dataset.json (its label lists become regions).",
        ),
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region",
            help="A named union of labels scored as one mask, e.g. WT=1,2,3 or WT=1-3 (repeatable).",
        ),
    ] = None,
    binarize: Annotated[
        bool,
        typer.Option("--binarize", help="Every value > 0 is one foreground class (0/255 or instance masks)."),
    ] = False,
    reorient: Annotated[
        bool,
        typer.Option(
            "--reorient", help="Undo axis permutations and flips between prediction and ground truth grids."
        ),
    ] = False,
    recursive: Annotated[
        bool, typer.Option("--recursive", help="Search sub-folders (e.g. BraTS: one folder per case).")
    ] = False,
    pred_glob: Annotated[
        str | None,
        typer.Option("--pred-glob", help="Only prediction files matching this pattern, e.g. '*.nii.gz'."),
    ] = None,
    gt_glob: Annotated[
        str | None,
        typer.Option("--gt-glob", help="Only ground-truth files matching this pattern, e.g. '*-seg.nii.gz'."),
    ] = None,
    ignore_label: Annotated[
        int | None, typer.Option("--ignore-label", help="Ground-truth label left out of every count.")
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Comma-separated metric names (default and choices: segdice.evaluation)."),
    ] = None,
    nsd_tolerance: Annotated[
        float, typer.Option("--nsd-tolerance", help="Surface Dice tolerance, in physical units.")
    ] = 1.0,
    spacing: Annotated[
        str | None,
        typer.Option(help="Voxel spacing in array axis order, e.g. 0.8,0.8,3 (overrides the file headers)."),
    ] = None,
    empty: Annotated[
        str,
        typer.Option(help="Overlap metrics when prediction and ground truth are both empty: nan, 0 or 1."),
    ] = "nan",
    hd95: Annotated[
        str,
        typer.Option(
            "--hd95",
            help="HD percentiles: max (the larger directed one, MONAI) or pooled (both directions, medpy).",
        ),
    ] = "max",
    surface: Annotated[
        str,
        typer.Option(
            "--surface",
            help="Distance metrics on voxels (surface voxels, MONAI) or surfels (DeepMind, BraTS).",
        ),
    ] = "voxels",
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Worker processes (default: every core).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Score on a Dask cluster: tcp://host:port, or local:N (a LocalCluster of N workers on "
            "127.0.0.1). Needs segdice[distributed]; the workers must see the same paths."
        ),
    ] = None,
    pred_suffix: Annotated[
        str, typer.Option("--pred-suffix", help="Stripped from prediction file names.")
    ] = "",
    gt_suffix: Annotated[
        str, typer.Option("--gt-suffix", help="Stripped from ground-truth file names.")
    ] = "",
    resume: Annotated[bool, typer.Option(help="Skip cases already scored in OUT/per_case.csv.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when any case failed.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print no progress and no summary; failures still go to stderr."),
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="Print summary.json's content on stdout instead of the table, nothing else."
        ),
    ] = False,
    instances: Annotated[
        str | None,
        typer.Option(
            help="Object columns and lesions.csv: 'components' (connected components per label/region) "
            "or 'labels' (instance label maps)."
        ),
    ] = None,
    match: Annotated[
        str, typer.Option(help="Object matching: iou, dice (optimal one-to-one), overlap or brats.")
    ] = "iou",
    match_threshold: Annotated[
        float, typer.Option("--match-threshold", help="A pair matches when its IoU/Dice is above this.")
    ] = 0.5,
    dilation: Annotated[
        int, typer.Option(help="Dilations that merge nearby ground-truth objects (BraTS).")
    ] = 0,
    min_volume: Annotated[
        float,
        typer.Option(
            "--min-volume",
            help="Ground-truth objects of at most this volume are not counted (mm³ with the files' spacing, "
            "voxels for files without one).",
        ),
    ] = 0.0,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Score exactly as a challenge: brats2023-gli, brats2023-ssa, brats2023-men, "
            "brats2023-ped or brats2023-met."
        ),
    ] = None,
) -> None:
    """Score predicted masks against ground truth; write per-case CSV, JSON summary and an HTML report.

    Exit codes: 0 every case scored (or some failed, without --strict); 1 no case could be scored, or
    any case failed with --strict; 2 usage errors (a bad --out, an --out in use by another run); 130 / 143
    interrupted by SIGINT / SIGTERM (the finished rows are kept; rerun with --resume).
    """
    import signal

    from segdice._checks import SegDiceError
    from segdice.evaluation import DEFAULT_METRICS, evaluate

    try:  # SIGTERM (a scheduler, `kill`) is an interrupt like Ctrl-C: same clean-up, exit 143
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous = None
    try:
        label_list, names, regions = _parse_label_options(labels, label_names, region)
        result = evaluate(
            pred,
            gt,
            out=out,
            labels=label_list,
            label_names=names,
            regions=regions or None,
            ignore_label=ignore_label,
            metrics=metrics if metrics is not None else DEFAULT_METRICS,
            nsd_tolerance=nsd_tolerance,
            spacing=_parse_spacing(spacing),
            empty=empty,
            hd95=hd95,
            surface=surface,
            workers=workers,
            pred_suffix=pred_suffix,
            gt_suffix=gt_suffix,
            resume=resume,
            progress=progress and not quiet,
            reorient=reorient,
            binarize=binarize,
            recursive=recursive,
            pred_glob=pred_glob,
            gt_glob=gt_glob,
            instances=instances,
            match=match,
            match_threshold=match_threshold,
            dilation=dilation,
            min_volume=min_volume,
            protocol=protocol,
            scheduler=scheduler,
        )
    except SegDiceError as exc:
        raise _fail(str(exc), _EXIT_USAGE) from None
    except KeyboardInterrupt as exc:
        code = _EXIT_SIGTERM if isinstance(exc, _Terminated) else _EXIT_SIGINT
        where = f"; the finished cases are in {out / 'per_case.csv'}, rerun with --resume" if out else ""
        err_console.print(escape(_printable(f"interrupted{where}")), highlight=False)
        raise typer.Exit(code=code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _print_outcome(result, out, strict, quiet=quiet, json_out=json_out)


def _print_outcome(
    result: EvaluationResult, out: Path | None, strict: bool, *, quiet: bool = False, json_out: bool = False
) -> None:
    """Results on stdout (the summary table and counts, or the summary JSON), messages on stderr (the
    files written, the failed cases); exit 1 with ``strict`` when a case failed."""
    counts = result.summary["counts"]
    counts_line = (
        f"{counts['cases']} case(s): {counts['scored']} scored, {counts['failed']} failed, "
        f"{counts['missing_predictions']} missing prediction(s), {counts['extra_predictions']} extra."
    )
    if json_out:
        import json

        from segdice.report.tables import to_json_safe

        console.file.write(json.dumps(to_json_safe(result.summary), indent=2, allow_nan=False) + "\n")
        console.file.flush()
    elif not quiet:
        header, rows, note = _summary_rows(result)
        _print_table(console, "segdice evaluate: " + note, header, rows)
        for line in _across_lines(result):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(counts_line, markup=False, highlight=False, soft_wrap=True)
    if out is not None and not quiet:
        written = ", ".join(path.name for path in result.files.values()) if result.files else ""
        err_console.print(
            f"wrote {_printable(str(out))}/: {written}", markup=False, highlight=False, soft_wrap=True
        )
    if result.n_failed:
        for case, error in list(result.failed_cases.items())[:10]:
            err_console.print(
                f"failed: {_printable(f'{case}: {error}')}", markup=False, highlight=False, soft_wrap=True
            )
        if result.n_failed > 10:
            err_console.print(f"... and {result.n_failed - 10} more (see per_case.csv)", highlight=False)
        if counts["scored"] == 0:
            raise _fail(f"no case could be scored ({result.n_failed} failed)", _EXIT_NOTHING_SCORED)
        if strict:
            raise typer.Exit(code=_EXIT_NOTHING_SCORED)


@app.command(cls=_Command, short_help="Train a tiny U-Net with 3 losses: pixel accuracy vs Dice.")
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
    from segdice._checks import SegDiceError
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
        raise _fail(str(exc)) from None
    _wide(console).print(demo_table(result))
    for line in demo_story(result):
        console.print(line, markup=False, highlight=False)
    console.print(
        f"Report: {result.out}/ (results.json, training_curves.png, examples.png, evaluation/report.html)",
        markup=False,
        highlight=False,
    )


class _CompareCommand(_Command):
    """``segdice compare``, whose option defaults and choices are filled in from :mod:`segdice.comparison`
    when the command is used: they have their one home there (``DEFAULT_*``, ``TESTS``, ``CORRECTIONS``, free
    of NumPy, so that ``segdice compare --help`` loads none), and ``segdice --help`` must not import it."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        from segdice import comparison

        helps = {
            "test": f"Paired test: {', '.join(comparison.TESTS)}.",
            "correction": f"Multiple-testing correction over every test: {', '.join(comparison.CORRECTIONS)}.",
        }
        for param in self.params:
            if param.name in ("test", "correction", "alpha", "resamples", "seed"):
                param.default = getattr(comparison, f"DEFAULT_{param.name.upper()}")
            if param.name in helps:
                param.help = helps[param.name]
        return super().make_context(info_name, args, parent, **extra)


# Rows of the comparison table on the terminal at most; comparison.csv has them all.
_TERMINAL_ROWS = 40


def _comparison_table(result: ComparisonResult) -> Table:
    rows = result.comparisons
    if len(rows) > _TERMINAL_ROWS:  # the most significant first: what a reader looks for
        rows = sorted(rows, key=lambda r: (math.isnan(r["p_corrected"]), r["p_corrected"]))[:_TERMINAL_ROWS]
    settings = result.summary["settings"]
    table = Table(
        title=f"segdice compare: run a − run b ({settings['test']}, {settings['correction']} over "
        f"{settings['n_tests']} test(s))",
        show_header=True,
    )
    for name in ("label / region", "metric", "run a", "run b"):
        table.add_column(name)
    for name in ("n", "mean a", "mean b", "diff [95% CI]", "p corr.", "effect", "W/T/L"):
        table.add_column(name, justify="right")

    def fmt(value: float, digits: int = 4) -> str:
        return "–" if math.isnan(value) else f"{value:.{digits}g}"

    for r in rows:
        p = fmt(r["p_corrected"], 3)
        table.add_row(
            escape(r["item"]),
            f"{escape(r['metric'])} ({'↑' if r['direction'] == 'higher' else '↓'})",
            escape(r["run_a"]),
            escape(r["run_b"]),
            str(r["n"]),
            fmt(r["mean_a"]),
            fmt(r["mean_b"]),
            f"{fmt(r['mean_diff'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
            f"[bold]{p}[/bold]" if r["significant"] else p,
            fmt(r["effect_size"], 3),
            f"{r['wins']}/{r['ties']}/{r['losses']}",
        )
    return table


@app.command("compare", cls=_CompareCommand)
def compare_command(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Two or more folders written by segdice evaluate --out.", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for comparison.csv, comparison.json and comparison.html."),
    ] = None,
    names: Annotated[
        str | None, typer.Option(help="Run names, e.g. baseline,new (default: the folder names).")
    ] = None,
    metrics: Annotated[
        str | None, typer.Option(help="Metrics to compare, e.g. dice,hd95 (default: those every run has).")
    ] = None,
    items: Annotated[
        str | None,
        typer.Option(help="Labels/regions to compare, by name (default: those every run has)."),
    ] = None,
    # The defaults below are placeholders: _CompareCommand fills in those of segdice.compare.
    test: Annotated[str, typer.Option(help="Paired test (wilcoxon, permutation or ttest).")] = "",
    correction: Annotated[str, typer.Option(help="Multiple-testing correction over every test.")] = "",
    alpha: Annotated[float, typer.Option(help="Level of significance of the corrected p-values.")] = 0.0,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (and permutation-test swaps).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and the permutation test.")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print comparison.json on stdout instead of the table.")
    ] = False,
) -> None:
    """Is run B really better than run A? Paired tests, bootstrap CIs and rankings over the same cases.

    Exit codes: 0 compared, 2 usage errors (a folder that is not a complete evaluation run, runs scored
    on different ground truth, a bad option).
    """
    from segdice._checks import SegDiceError
    from segdice.comparison import compare

    try:
        result = compare(
            runs, out=out, names=names, metrics=metrics, items=items, test=test, correction=correction,
            alpha=alpha, resamples=resamples, seed=seed,
        )  # fmt: skip
    except SegDiceError as exc:
        raise _fail(str(exc)) from None
    if json_output:
        import json

        from segdice.report.tables import to_json_safe

        typer.echo(json.dumps(to_json_safe(result.summary), indent=2, allow_nan=False))
        return
    table = _comparison_table(result)
    if console.is_terminal:
        console.print(table)
    else:  # a pipe or a file: the whole table, never cut at 80 columns
        width = Measurement.get(console, console.options.update_width(10_000), table).maximum
        Console(width=max(width, console.width)).print(table)
    n_rows, n_significant = len(result.comparisons), len(result.significant)
    shown = (
        f"; the table shows the {_TERMINAL_ROWS} with the smallest corrected p"
        if n_rows > _TERMINAL_ROWS
        else ""
    )
    console.print(
        f"{result.summary['cases']['n_paired']} paired case(s); {n_significant} of {n_rows} comparison(s) "
        f"significant at alpha {result.summary['settings']['alpha']}{shown}",
        highlight=False,
    )
    if out is not None:
        console.print(
            f"wrote {escape(str(out))}/comparison.csv, comparison.json, comparison.html", highlight=False
        )


def main() -> None:
    """Entry point of the console script and of ``python -m segdice``."""
    app(prog_name="segdice")


if __name__ == "__main__":  # pragma: no cover
    main()
