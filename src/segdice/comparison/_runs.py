"""Read the runs written by ``segdice evaluate`` and check that they were scored on the same ground truth.

A run is a folder holding ``per_case.csv`` (one row per case and label/region) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError
from segdice.report.digest import label_metrics
from segdice.report.tables import read_case_csv

__all__ = ["Run", "case_order", "check_same_ground_truth", "load_run", "run_names"]

# Columns a per-case CSV must have for its rows to be paired and checked.
_REQUIRED_COLUMNS = ("case", "item", "labels", "gt_voxels", "missing_pred", "error", "gt_file")


@dataclass(frozen=True)
class Run:
    """One evaluation run, as arrays over its cases (in CSV order), items and metrics.

    Attributes
    ----------
    values
        ``float64 [cases, items, metrics]``; NaN where the CSV cell is NaN or empty.
    gt_voxels
        ``float64 [cases, items]``; NaN where the row failed before counting.
    missing
        ``bool [cases, items]``: no prediction (evaluate scored an empty one).
    errors
        ``{(case, item): text}`` for the rows that failed (evaluate leaves them out of its statistics).
    labels
        Per item, the label ids as the CSV writes them (``"1"``, ``"1+2"``).
    gt_files
        Per case, the ground-truth file the run scored against.
    """

    name: str
    path: Path
    summary: dict
    cases: tuple[str, ...]
    items: tuple[str, ...]
    metrics: tuple[str, ...]
    values: np.ndarray
    gt_voxels: np.ndarray
    missing: np.ndarray
    errors: dict[tuple[str, str], str]
    labels: tuple[str, ...]
    gt_files: dict[str, str]

    def failed(self, case: str, item: str) -> bool:
        """Whether the row could not be scored cleanly."""
        return (case, item) in self.errors


def run_names(paths: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """Display names: the given ones, else the folder names (the paths as given when two folders share a name)."""
    if names is not None:
        names = [str(n) for n in names]
        if len(names) != len(paths):
            raise SegDiceError(
                f"names: got {len(names)} name(s) {names} for {len(paths)} runs; expected one per run"
            )
        if any(not n.strip() for n in names):
            raise SegDiceError(f"names: got {names}; expected non-empty names")
        if len(set(names)) != len(names):
            raise SegDiceError(f"names: got {names}; expected every name to be different")
        return names
    folder_names = [p.resolve().name or str(p) for p in paths]
    if len(set(folder_names)) == len(folder_names):
        return folder_names
    given = [str(p) for p in paths]
    if len(set(given)) != len(given):
        raise SegDiceError(f"runs: got the same folder twice ({given}); expected different runs")
    return given


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegDiceError(
            f"run {path.parent}: cannot read {path.name} ({exc}); expected the JSON written by segdice evaluate"
        ) from None
    ok = isinstance(summary, dict) and all(
        isinstance(summary.get(k), dict) for k in ("inputs", "counts", "definitions")
    )
    if (
        not ok
        or not isinstance(summary.get("items"), list)
        or not isinstance(summary["inputs"].get("metrics"), list)
    ):
        raise SegDiceError(
            f"run {path.parent}: {path.name} lacks 'inputs', 'counts', 'definitions' or 'items'; "
            "expected the summary.json written by segdice evaluate"
        )
    return summary


def load_run(path: str | Path, name: str) -> Run:
    """Read one run folder.

    Raises
    ------
    SegDiceError
        If the folder, ``per_case.csv`` or ``summary.json`` is missing or not what ``segdice evaluate``
        writes, or if the run is incomplete (fewer cases in the CSV than the summary counts).
    """
    path = Path(path)
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a folder"
        raise SegDiceError(
            f"run {name!r}: {path} {what}; expected a folder written by segdice evaluate --out"
        )
    csv_path, summary_path = path / "per_case.csv", path / "summary.json"
    for file in (csv_path, summary_path):
        if not file.is_file():
            raise SegDiceError(
                f"run {name!r}: {path} has no {file.name}; expected a folder written by segdice evaluate --out"
            )
    summary = _read_summary(summary_path)
    try:
        columns, rows = read_case_csv(csv_path)
    except (OSError, UnicodeDecodeError) as exc:
        raise SegDiceError(f"run {name!r}: cannot read {csv_path} ({exc})") from None
    missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SegDiceError(
            f"run {name!r}: {csv_path} has no column(s) {missing}; expected the per_case.csv of segdice evaluate"
        )
    items = tuple(str(item["name"]) for item in summary["items"])
    # gds (one value per case over all labels, on the rows of the across-label item) is not compared
    metrics = tuple(m for m in label_metrics(summary) if m in columns)
    across = (summary.get("across_labels") or {}).get("item")
    case_index: dict[str, int] = {}
    for row in rows:
        case_index.setdefault(row["case"], len(case_index))
    expected = summary["counts"].get("cases")
    if expected != len(case_index):
        raise SegDiceError(
            f"run {name!r}: {csv_path} holds {len(case_index)} case(s) but summary.json counts {expected}; "
            "the run is incomplete (interrupted?): finish it with segdice evaluate --resume"
        )
    item_index = {item: i for i, item in enumerate(items)}
    shape = (len(case_index), len(items))
    values = np.full((*shape, len(metrics)), np.nan)
    gt_voxels = np.full(shape, np.nan)
    missing = np.zeros(shape, dtype=bool)
    seen = np.zeros(shape, dtype=bool)
    labels: list[str | None] = [None] * len(items)
    errors: dict[tuple[str, str], str] = {}
    gt_files: dict[str, str] = {}
    for row in rows:
        case, item = row["case"], row["item"]
        if across is not None and item == across and item not in item_index:
            continue
        if item not in item_index:
            raise SegDiceError(
                f"run {name!r}: {csv_path} has item {item!r}, which its summary.json does not list"
            )
        c, i = case_index[case], item_index[item]
        if seen[c, i]:
            raise SegDiceError(f"run {name!r}: {csv_path} has two rows for case {case!r}, item {item!r}")
        seen[c, i] = True
        values[c, i] = [math.nan if row[m] is None else row[m] for m in metrics]
        if row["gt_voxels"] is not None:
            gt_voxels[c, i] = row["gt_voxels"]
        missing[c, i] = bool(row["missing_pred"])
        if row["error"]:
            errors[case, item] = row["error"]
        if labels[i] is None:
            labels[i] = row["labels"]
        gt_files.setdefault(case, row["gt_file"])
    if not seen.all():
        c, i = np.argwhere(~seen)[0]
        raise SegDiceError(
            f"run {name!r}: {csv_path} has no row for case {list(case_index)[c]!r}, item {items[i]!r}"
        )
    return Run(
        name=name, path=path, summary=summary, cases=tuple(case_index), items=items, metrics=metrics,
        values=values, gt_voxels=gt_voxels, missing=missing, errors=errors,
        labels=tuple(str(x) for x in labels), gt_files=gt_files,
    )  # fmt: skip


def check_same_ground_truth(runs: Sequence[Run], items: Sequence[str]) -> None:
    """Refuse runs that were not scored against the same ground truth.

    Every run must hold the same cases, and for every case and compared item the same label ids
    (``labels``) and the same number of ground-truth voxels (``gt_voxels``; rows that failed before
    counting are not compared).

    Raises
    ------
    SegDiceError
        Naming the first difference found.
    """
    first = runs[0]
    reference = set(first.cases)
    for run in runs[1:]:
        mine = set(run.cases)
        if mine != reference:
            only_first = [c for c in first.cases if c not in mine]
            only_run = [c for c in run.cases if c not in reference]
            case, holder, lacker = (
                (only_first[0], first.name, run.name) if only_first else (only_run[0], run.name, first.name)
            )
            raise SegDiceError(
                f"runs {first.name!r} and {run.name!r} were not scored against the same ground truth: "
                f"case {case!r} is in {holder!r} but not in {lacker!r} "
                f"({len(reference)} vs {len(mine)} cases); compare runs of the same ground-truth folder"
            )
    first_items = [first.items.index(item) for item in items]
    for run in runs[1:]:
        for i, item in zip(first_items, items, strict=True):
            mine = run.labels[run.items.index(item)]
            if mine != first.labels[i]:
                raise SegDiceError(
                    f"runs {first.name!r} and {run.name!r} were not scored against the same ground truth: "
                    f"item {item!r} is label(s) {first.labels[i]!r} in {first.name!r} but {mine!r} in {run.name!r}"
                )
        order = case_order(run, first.cases)
        theirs = run.gt_voxels[np.ix_(order, [run.items.index(item) for item in items])]
        ours = first.gt_voxels[:, first_items]
        # a row that failed before counting has no count to compare
        differ = (ours != theirs) & ~np.isnan(ours) & ~np.isnan(theirs)
        if differ.any():
            c, i = np.argwhere(differ)[0]
            raise SegDiceError(
                f"runs {first.name!r} and {run.name!r} were not scored against the same ground truth: "
                f"case {first.cases[c]!r}, item {items[i]!r} has gt_voxels {int(ours[c, i])} in "
                f"{first.name!r} but {int(theirs[c, i])} in {run.name!r}"
            )


def case_order(run: Run, cases: Sequence[str]) -> np.ndarray:
    """Indices into ``run``'s cases that put them in the order of ``cases``."""
    index = {case: k for k, case in enumerate(run.cases)}
    return np.array([index[case] for case in cases], dtype=np.intp)
