"""Read the runs written by ``segdice evaluate`` and check that they were scored on the same ground truth.

A run is a folder holding ``per_case.csv`` (one row per case and label/region) and ``summary.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segdice._checks import SegDiceError
from segdice.report.tables import read_case_csv

__all__ = ["Run", "check_same_ground_truth", "load_run", "run_names"]

# Columns a per-case CSV must have for its rows to be paired and checked.
_REQUIRED_COLUMNS = ("case", "item", "labels", "gt_voxels", "missing_pred", "error", "gt_file")


@dataclass(frozen=True)
class Run:
    """One evaluation run: its rows by ``(case, item)``, and what its summary says about how it was scored."""

    name: str
    path: Path
    summary: dict
    rows: dict[tuple[str, str], dict]
    cases: tuple[str, ...]
    items: tuple[str, ...]
    metrics: tuple[str, ...]

    def failed(self, case: str, item: str) -> bool:
        """Whether the row could not be scored cleanly (evaluate leaves such rows out of its statistics)."""
        return bool(self.rows[case, item]["error"])


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
    by_key: dict[tuple[str, str], dict] = {}
    cases: dict[str, None] = {}
    for row in rows:
        key = (row["case"], row["item"])
        if key in by_key:
            raise SegDiceError(f"run {name!r}: {csv_path} has two rows for case {key[0]!r}, item {key[1]!r}")
        by_key[key] = row
        cases[row["case"]] = None
    expected = summary["counts"].get("cases")
    if expected != len(cases):
        raise SegDiceError(
            f"run {name!r}: {csv_path} holds {len(cases)} case(s) but summary.json counts {expected}; "
            "the run is incomplete (interrupted?): finish it with segdice evaluate --resume"
        )
    items = tuple(str(item["name"]) for item in summary["items"])
    for case in cases:
        for item in items:
            if (case, item) not in by_key:
                raise SegDiceError(f"run {name!r}: {csv_path} has no row for case {case!r}, item {item!r}")
    metrics = tuple(m for m in summary["inputs"]["metrics"] if m in columns)
    return Run(
        name=name, path=path, summary=summary, rows=by_key, cases=tuple(cases), items=items, metrics=metrics
    )


def _same_count(a: object, b: object) -> bool:
    if a is None or b is None:  # a row that failed before counting: nothing to compare
        return True
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


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
    for case in first.cases:
        for item in items:
            ref = first.rows[case, item]
            for run in runs[1:]:
                row = run.rows[case, item]
                for column in ("labels", "gt_voxels"):
                    if not _same_count(ref[column], row[column]):
                        raise SegDiceError(
                            f"runs {first.name!r} and {run.name!r} were not scored against the same ground "
                            f"truth: case {case!r}, item {item!r} has {column} {ref[column]!r} in "
                            f"{first.name!r} but {row[column]!r} in {run.name!r}"
                        )
