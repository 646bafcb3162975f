"""The demo's terminal output: the Rich table and the plain-sentence conclusion, both from results.json."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from segdice.demo._scores import COLUMNS

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["demo_story", "demo_table"]


def _results(result: Any) -> dict[str, Any]:
    # A DemoResult carries the dictionary in .results; results.json loads as the dictionary itself.
    return result.results if hasattr(result, "results") else result


def demo_table(result: Any) -> Table:
    """The terminal table of a demo run: one row per method, the columns of ``results.json``.

    Parameters
    ----------
    result
        A :class:`DemoResult` or the dictionary of ``results.json``.

    Returns
    -------
    rich.table.Table
        Ready for ``rich.console.Console().print``.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from segdice.demo import DemoConfig, run_demo
    >>> with tempfile.TemporaryDirectory() as out:
    ...     _ = run_demo(out, config=DemoConfig(size=32, n_train=8, n_val=4, epochs=1))
    ...     results = json.loads((Path(out) / "results.json").read_text())
    >>> table = demo_table(results)
    >>> [column.header for column in table.columns][:4]
    ['Method', 'Accuracy', 'Dice/img', 'Dice']
    >>> table.row_count
    4
    """
    from rich import box
    from rich.table import Table

    results = _results(result)
    n_val = results["dataset"]["validation"]
    table = Table(
        title="Validation scores of the lesion class",
        caption=(
            f"{n_val['n']} validation slices, {n_val['foreground_fraction']:.2%} lesion pixels. "
            "Accuracy: pixel accuracy. Dice/img: mean of per-slice Dice. Dice, IoU, Sens. (sensitivity): "
            "counts pooled over all slices. HD95 in pixels, mean over slices (a missed lesion scores the "
            "image diagonal). Found: share of lesions touched by the prediction."
        ),
        box=box.SIMPLE_HEAD,
    )
    table.add_column("Method", no_wrap=True)
    for header, _ in COLUMNS.values():
        table.add_column(header, justify="right", no_wrap=True)
    for key, method in results["methods"].items():
        cells = []
        for column, (_, fmt) in COLUMNS.items():
            value = method["metrics"][column]
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("n/a" if missing else fmt.format(value))
        table.add_row(method["name"], *cells, style="bold" if key == results["best_method"] else None)
    return table


def demo_story(result: Any) -> list[str]:
    """The conclusion of a run in a few plain sentences, from its numbers (no claim is hard-coded).

    Parameters
    ----------
    result
        A :class:`DemoResult` or the dictionary of ``results.json``.

    Returns
    -------
    list of str
        One sentence per line.

    Examples
    --------
    >>> import tempfile
    >>> from segdice.demo import DemoConfig, run_demo
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run_demo(out, config=DemoConfig(size=32, n_train=8, n_val=4, epochs=1))
    >>> demo_story(result)[0].startswith("All background: pixel accuracy 99.")
    True
    """
    results = _results(result)
    methods = results["methods"]
    trivial = methods["all_background"]["metrics"]
    best = methods[results["best_method"]]
    lines = [
        f"{methods['all_background']['name']}: pixel accuracy {trivial['accuracy']:.2%}, yet Dice "
        f"{trivial['dice_global']:.3f} - it finds none of the {trivial['n_lesions']} lesions.",
    ]
    for key in ("cross_entropy", "dice", "dice_ce"):
        m = methods[key]["metrics"]
        lines.append(
            f"{methods[key]['name']}: accuracy {m['accuracy']:.2%}, Dice {m['dice_global']:.3f}, "
            f"{m['lesions_found']:.0%} of the lesions found."
        )
    lines.append(
        "Only the loss differs between the trained models: same initial weights, batches and schedule."
    )
    lines.append(
        f"Accuracy ranks the methods within {_spread(methods, 'accuracy'):.2%} of each other; Dice separates "
        f"them by {_spread(methods, 'dice_global'):.2f}. Best: {best['name']}."
    )
    timing = results["timing"]
    per_method = ", ".join(f"{methods[k]['name']} {s:.0f} s" for k, s in timing["train_seconds"].items())
    lines.append(
        f"Training time on {results['config']['device']} with {results['config']['threads']} thread(s): "
        f"{per_method}; {timing['total_seconds']:.0f} s in all."
    )
    return lines


def _spread(methods: dict[str, Any], column: str) -> float:
    values = [m["metrics"][column] for m in methods.values()]
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return max(values) - min(values) if values else math.nan
