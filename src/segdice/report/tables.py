"""CSV and JSON writers for evaluation results.

``per_case.csv`` is written row by row as cases finish (each write is flushed), so an interrupted run
keeps every case it computed, and read back by :func:`read_case_csv` to resume. ``summary.json`` is
strict JSON: NaN and infinity are written as ``null``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from segdice._checks import SegDiceError

__all__ = [
    "CASE_COLUMNS",
    "CaseCSVWriter",
    "read_case_csv",
    "to_json_safe",
    "write_case_csv",
    "write_summary_json",
]

# The schema of per_case.csv: the columns before the metric columns, in file order, with the type each
# is read back as. Every other column is a metric and reads back as float.
CASE_COLUMNS: dict[str, type] = {
    "case": str,
    "item": str,
    "labels": str,
    "n_voxels": int,
    "gt_voxels": int,
    "pred_voxels": int,
    "tp": int,
    "fp": int,
    "fn": int,
    "tn": int,
    "empty_gt": bool,
    "empty_pred": bool,
    "missing_pred": bool,
    "error": str,
    "pred_file": str,
    "gt_file": str,
}


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float; nan/inf as words
    return str(value)


def _parse(column: str, text: str) -> Any:
    kind = CASE_COLUMNS.get(column, float)
    if kind is str:
        return text
    if text == "":
        return None
    if kind is bool:
        return text == "True"
    return kind(text)


class CaseCSVWriter:
    """Append rows to a per-case CSV file, flushing after every case.

    Parameters
    ----------
    path
        The CSV file.
    columns
        Column order; rows may not have other keys.
    append
        Keep the existing file and add rows after it (its header must equal ``columns``);
        otherwise the file is created with a header.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
    >>> with CaseCSVWriter(path, ["case", "dice"]) as writer:
    ...     writer.write_rows([{"case": "a", "dice": 0.5}])
    >>> read_case_csv(path)
    (['case', 'dice'], [{'case': 'a', 'dice': 0.5}])
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        new = not (append and self.path.exists())
        self._file = open(self.path, "w" if new else "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self.columns)
            self._file.flush()

    def write_rows(self, rows: Iterable[dict]) -> None:
        """Write rows and flush them to disk."""
        for row in rows:
            self._writer.writerow([_format(row.get(column)) for column in self.columns])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> CaseCSVWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_case_csv(path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[dict]) -> None:
    """Write a whole per-case CSV atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with CaseCSVWriter(tmp, columns) as writer:
        writer.write_rows(rows)
    os.replace(tmp, path)


def read_case_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict]]:
    """Read a per-case CSV written by :class:`CaseCSVWriter`, with typed values.

    Returns
    -------
    columns : list of str
        The header.
    rows : list of dict
        Counts as ``int``, flags as ``bool``, metrics as ``float`` (``nan`` kept), empty cells as ``None``.
        A last line cut short by an interruption is dropped.

    Raises
    ------
    SegDiceError
        If the file has no header.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            columns = next(reader)
        except StopIteration:
            raise SegDiceError(f"{path}: empty file; expected a per-case CSV with a header") from None
        rows = []
        for record in reader:
            if len(record) != len(columns):
                continue  # a row cut short when the run was killed mid-write
            try:
                rows.append({c: _parse(c, v) for c, v in zip(columns, record, strict=True)})
            except ValueError:
                continue
    return columns, rows


def to_json_safe(value: Any) -> Any:
    """Replace NaN/inf by ``None`` (JSON ``null``) and paths by strings, recursively.

    Examples
    --------
    >>> to_json_safe({"mean": float("nan"), "n": [1, float("inf")]})
    {'mean': None, 'n': [1, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary_json(path: str | os.PathLike[str], summary: dict) -> None:
    """Write the summary as indented, strict JSON (``null`` for NaN)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_json_safe(summary), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
