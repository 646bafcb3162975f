"""Label lists, label ranges and label names as users write them: inline, in a CSV, in a dataset.json.

* A label list is integers and ranges separated by commas: ``"1-3,5"`` is ``[1, 2, 3, 5]``.
* Label names come inline (``"liver=1,tumour=2"``), from a CSV file of ``value,name`` rows (a header
  row is skipped), or from an nnU-Net ``dataset.json``: its ``labels`` object maps names to values
  (nnU-Net v2, ``{"liver": 1}``) or values to names (v1, ``{"1": "liver"}``); a name mapped to a list
  of values is a region (nnU-Net's region-based training), and background (0) is left out.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from segdice._checks import SegDiceError

__all__ = ["parse_label_list", "read_label_names"]

# A range may span at most this many labels (a typo such as 1-100000000 must not build a huge list).
_MAX_RANGE = 1 << 16
_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")


def parse_label_list(option: str, text: str) -> list[int]:
    """Integers and inclusive ranges separated by commas, in the order given (duplicates removed).

    Examples
    --------
    >>> parse_label_list("--region", "1-3, 5")
    [1, 2, 3, 5]
    >>> parse_label_list("--labels", "-1,2")
    [-1, 2]
    """
    values: list[int] = []
    expected = "integers or ranges separated by commas, e.g. 1,2,3 or 1-3"
    parts = [part for part in str(text).split(",") if part.strip()]
    if not parts:
        raise SegDiceError(f"{option}: got {text!r}; expected {expected}")
    for part in parts:
        match = _RANGE.match(part)
        if match is None:
            raise SegDiceError(f"{option}: got {part.strip()!r} in {text!r}; expected {expected}")
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if high < low or high - low >= _MAX_RANGE:
            raise SegDiceError(
                f"{option}: the range {part.strip()!r} is empty or spans more than {_MAX_RANGE} labels; "
                f"expected {expected}"
            )
        values.extend(range(low, high + 1))
    return list(dict.fromkeys(values))


def read_label_names(
    source: Mapping | str | os.PathLike[str],
) -> tuple[dict[int, str], dict[str, tuple[int, ...]]]:
    """Label names, and the regions a dataset.json defines, from any of the accepted sources.

    Parameters
    ----------
    source
        A mapping (``{"liver": 1}`` or ``{1: "liver"}``), an inline string ``"liver=1,tumour=2"``, or
        the path of a ``.csv`` (``value,name``) or ``.json`` (nnU-Net ``dataset.json``) file.

    Returns
    -------
    names : dict
        Label value to display name.
    regions : dict
        Region name to its label values (from lists in a dataset.json; empty otherwise).

    Raises
    ------
    SegDiceError
        For a file that cannot be read or parsed, a value that is not an integer, or a label named twice.

    Examples
    --------
    >>> read_label_names("liver=1,tumour=2")
    ({1: 'liver', 2: 'tumour'}, {})
    """
    if isinstance(source, Mapping):
        return _names_from_pairs(source.items(), "label_names"), {}
    text = os.fspath(source)
    if "=" in text:  # inline pairs first: a long list is no file name (and may be too long for one)
        try:
            return _inline_names(text), {}
        except SegDiceError as inline_error:
            if not _is_file(Path(text)):  # neither pairs nor a file: say what pairs look like
                raise inline_error from None
    path = Path(text)
    if path.suffix.lower() in (".csv", ".json", ".tsv") or _is_file(path):
        if not _is_file(path):
            raise SegDiceError(f"label_names: {path} is not a file; expected a .csv or a dataset.json")
        if path.suffix.lower() == ".json":
            return _from_dataset_json(path)
        return _from_csv(path), {}
    return _inline_names(text), {}


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False where the system cannot even look (a name too long, a bad character)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _inline_names(text: str) -> dict[int, str]:
    """Names from ``"liver=1,tumour=2"`` (``"1=liver"`` too)."""
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.rpartition("=")
        if not sep or not name.strip():
            raise SegDiceError(
                f"label_names: got {part.strip()[:80]!r}; expected NAME=VALUE pairs such as liver=1,tumour=2, "
                "or the path of a .csv (value,name) or an nnU-Net dataset.json"
            )
        name, value = name.strip(), value.strip()
        if _is_int(name) and not _is_int(value):  # "1=liver" as well as "liver=1"
            name, value = value, name
        pairs.append((name, value))
    return _names_from_pairs(pairs, "label_names")


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _as_label(where: str, value: object) -> int:
    if isinstance(value, bool):
        raise SegDiceError(f"{where}: got {value!r}; expected an integer label")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise SegDiceError(f"{where}: got {value!r}; expected an integer label") from None
    return number


def _names_from_pairs(pairs: Iterable[tuple[object, object]], where: str) -> dict[int, str]:
    names: dict[int, str] = {}
    for key, value in pairs:
        # Accept name -> label ({"liver": 1}, as on the command line) and label -> name ({1: "liver"}).
        name, label = (key, value) if isinstance(key, str) else (value, key)
        if not isinstance(name, str) or not name:
            raise SegDiceError(f"{where}: got {key!r}: {value!r}; expected name=label pairs like liver=1")
        label = _as_label(f"{where}[{name!r}]", label)
        if label in names:
            raise SegDiceError(f"{where}: label {label} is named twice ({names[label]!r} and {name!r})")
        names[label] = name
    return names


def _from_csv(path: Path) -> dict[int, str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SegDiceError(f"label_names: cannot read {path} ({type(exc).__name__}: {exc})") from exc
    names: dict[int, str] = {}
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) < 2 or not cells[1]:
            raise SegDiceError(
                f"label_names: {path} line {number}: got {row!r}; expected two columns, value,name"
            )
        try:
            label = int(cells[0])
        except ValueError:
            if not names and number == 1:
                continue  # a header row such as "value,name"
            raise SegDiceError(
                f"label_names: {path} line {number}: got {cells[0]!r}; expected an integer label value "
                "in the first column (value,name)"
            ) from None
        if label in names:
            raise SegDiceError(
                f"label_names: {path} line {number}: label {label} is named twice "
                f"({names[label]!r} and {cells[1]!r})"
            )
        names[label] = cells[1]
    return {label: name for label, name in names.items() if label != 0}


def _from_dataset_json(path: Path) -> tuple[dict[int, str], dict[str, tuple[int, ...]]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SegDiceError(f"label_names: cannot read {path} ({type(exc).__name__}: {exc})") from exc
    labels = document.get("labels") if isinstance(document, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise SegDiceError(
            f"label_names: {path} has no 'labels' object; expected an nnU-Net dataset.json such as "
            '{"labels": {"background": 0, "liver": 1}}'
        )
    names: dict[int, str] = {}
    regions: dict[str, tuple[int, ...]] = {}
    version_one = all(str(key).strip().isdigit() for key in labels)  # {"0": "background", "1": "liver"}
    for key, value in labels.items():
        where = f"label_names: {path} labels[{key!r}]"
        if version_one:
            name, values = str(value), [key]
        else:
            name, values = str(key), value if isinstance(value, list) else [value]
        ids = tuple(sorted({_as_label(where, v) for v in values}))
        if not ids:
            raise SegDiceError(f"{where}: got an empty list; expected a label or a list of labels")
        if isinstance(value, list) and not version_one:
            if ids != (0,):
                regions[name] = tuple(i for i in ids if i != 0)
            continue
        if ids[0] == 0:
            continue  # background
        if ids[0] in names:
            raise SegDiceError(f"{where}: label {ids[0]} is named twice ({names[ids[0]]!r} and {name!r})")
        names[ids[0]] = name
    return names, regions
