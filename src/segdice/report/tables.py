"""CSV and JSON writers for evaluation results.

``per_case.csv`` is written case by case as cases finish (one unbuffered write per case, synced to
disk), so an interrupted run keeps every case it computed, and read back by :func:`read_case_csv` to
resume; a row cut short by a kill or a full disk is recognised and dropped. ``summary.json`` is strict
JSON: NaN and infinity are written as ``null``. Whole files are written to a temporary file of their own
(never a name shared with another run) and renamed over the target.

Text cells that a spreadsheet would run as a formula (beginning with ``= + - @``, a tab or a carriage
return) are written with a leading ``'``; so is a cell that already begins with ``'``, which keeps the
mapping reversible: :func:`read_case_csv` removes exactly one such ``'``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from segdice._checks import SegDiceError

__all__ = [
    "CASE_COLUMNS",
    "COUNT_COLUMNS",
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
    "note": str,
    "pred_file": str,
    "gt_file": str,
    "spacing_source": str,  # where the distances' spacing came from: header, override or none (voxels)
}


# Columns after the metric columns that hold counts, read back as int (``--instances``: objects per case
# and label/region; empty in the rows of a case that could not be scored). Every other one is a float.
COUNT_COLUMNS: dict[str, type] = {"objects_tp": int, "objects_fp": int, "objects_fn": int}


# First characters that make a spreadsheet read a cell as a formula, plus the quote that neutralises them.
_FORMULA_STARTS = frozenset("=+-@\t\r'")


def _neutralise(text: str) -> str:
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def _restore(text: str) -> str:
    return text[1:] if text[:1] == "'" and text[1:2] in _FORMULA_STARTS else text


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float; nan/inf as words
    if isinstance(value, str):
        return _neutralise(value)
    return str(value)


def _parse(column: str, text: str) -> Any:
    kind = CASE_COLUMNS.get(column) or COUNT_COLUMNS.get(column, float)
    if kind is str:
        return _restore(text)
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
        # Unbuffered: a failed write (a full disk) leaves nothing queued that a later flush or close
        # would try again, so the error is raised once, where the rows were written.
        self._file = open(self.path, "wb" if new else "ab", buffering=0)  # noqa: SIM115
        if new:
            self._write_all(self._encode([self.columns]))

    def _encode(self, records: Iterable[Sequence[str]]) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerows(records)
        return text.getvalue().encode("utf-8")

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._file.write(view) :]
        os.fsync(self._file.fileno())

    def write_rows(self, rows: Iterable[dict]) -> None:
        """Write rows (one write, synced to disk).

        Raises
        ------
        OSError
            When the disk is full or the file cannot be written; the rows written before stay valid
            and a partial last row is dropped by :func:`read_case_csv`.
        """
        self._write_all(self._encode([_format(row.get(column)) for column in self.columns] for row in rows))

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> CaseCSVWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _replace_atomically(path: Path, write: Any) -> None:
    """Call ``write(temporary_path)`` on a fresh temporary file beside ``path``, then rename it over
    ``path``; on any error the temporary file is removed and ``path`` is left as it was."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(name))
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_case_csv(path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[dict]) -> None:
    """Write a whole per-case CSV atomically (a temporary file of its own, renamed over ``path``)."""

    def write(tmp: Path) -> None:
        with CaseCSVWriter(tmp, columns) as writer:
            writer.write_rows(rows)

    _replace_atomically(Path(path), write)


def read_case_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict]]:
    """Read a per-case CSV written by :class:`CaseCSVWriter`, with typed values.

    Returns
    -------
    columns : list of str
        The header.
    rows : list of dict
        Counts (:data:`CASE_COLUMNS`, :data:`COUNT_COLUMNS`) as ``int``, flags as ``bool``, metrics as ``float`` (``nan`` kept), empty cells as ``None``.
        A last row cut short by an interruption or a full disk is dropped: the file does not end with a
        line end (or ends inside a quoted cell), or a row has the wrong number of cells, or a cell does
        not read back as its column's type.

    Raises
    ------
    SegDiceError
        If the file has no header or is not UTF-8 text.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SegDiceError(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); expected a per-case CSV "
            "written by segdice; move it away or choose another output folder"
        ) from None
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records:
        raise SegDiceError(f"{path}: empty file; expected a per-case CSV with a header")
    if not text.endswith("\n") or text.count('"') % 2:
        records.pop()  # the last row was cut: the process died or the disk filled up while writing it
        if not records:
            raise SegDiceError(f"{path}: the header is cut short; expected a per-case CSV with a header")
    columns, rows = records[0], []
    for record in records[1:]:
        if len(record) != len(columns):
            continue
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
    """Write the summary as indented, strict JSON (``null`` for NaN), atomically."""
    text = json.dumps(to_json_safe(summary), indent=2, allow_nan=False) + "\n"
    _replace_atomically(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
