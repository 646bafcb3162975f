"""Pair prediction files with ground-truth files by case name.

A case name is the file name without its supported suffix (``.nii.gz`` is one suffix) and without an
optional user suffix such as ``_pred`` or ``_seg``. Ground truth defines the cases: a case without a
prediction is *missing* (scored as the worst case by the evaluator); a prediction without ground truth
is reported as an extra and not scored. Formats may differ between the two sides (``.npy`` predictions
against ``.nii.gz`` ground truth pair fine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segdice._checks import SegDiceError
from segdice.io import SUPPORTED_SUFFIXES, split_suffix

__all__ = ["CasePair", "case_name", "pair_cases"]


@dataclass(frozen=True)
class CasePair:
    """One case: its name, its ground-truth file and its prediction file (``None`` when missing)."""

    name: str
    gt: Path
    pred: Path | None


def case_name(path: str | os.PathLike[str], user_suffix: str = "") -> str:
    """The case name of a file: its name less the format suffix and ``user_suffix`` (if it ends so).

    Examples
    --------
    >>> case_name("/data/case_001_pred.nii.gz", "_pred")
    'case_001'
    >>> case_name("case_001.png")
    'case_001'
    """
    stem = split_suffix(path)[0]
    if user_suffix and stem.endswith(user_suffix) and len(stem) > len(user_suffix):
        stem = stem[: -len(user_suffix)]
    return stem


def _index_folder(folder: Path, user_suffix: str, side: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or not split_suffix(path)[1]:
            continue
        name = case_name(path, user_suffix)
        if name in index:
            raise SegDiceError(
                f"{side}: two files give the case name {name!r}: {index[name].name} and {path.name}; "
                "keep one, or use a suffix option to tell them apart"
            )
        index[name] = path
    return index


def pair_cases(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    pred_suffix: str = "",
    gt_suffix: str = "",
) -> tuple[list[CasePair], list[Path]]:
    """Pair predictions with ground truth.

    Parameters
    ----------
    pred, gt
        Files or folders (not searched recursively; hidden files are skipped). A ground-truth file
        with a prediction folder picks the matching file from the folder.
    pred_suffix, gt_suffix
        Stripped from the end of file stems before matching, e.g. ``"_pred"`` and ``"_seg"``.

    Returns
    -------
    cases : list of CasePair
        One per ground-truth file, sorted by case name.
    extras : list of pathlib.Path
        Prediction files without ground truth.

    Raises
    ------
    SegDiceError
        If a path does not exist, a folder holds no supported file, two files map to the same case
        name, or a file is paired with a folder of ground truth.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name in ("gt/a_seg.nii.gz", "gt/b_seg.nii.gz", "pred/a.npy", "pred/z.npy"):
    ...     (root / name).parent.mkdir(exist_ok=True)
    ...     (root / name).touch()
    >>> cases, extras = pair_cases(root / "pred", root / "gt", gt_suffix="_seg")
    >>> [(c.name, c.pred.name if c.pred else None) for c in cases], [p.name for p in extras]
    ([('a', 'a.npy'), ('b', None)], ['z.npy'])
    """
    pred, gt = Path(pred), Path(gt)
    for side, path in (("gt", gt), ("pred", pred)):
        if not path.exists():
            raise SegDiceError(f"{side}: {path} does not exist; expected a mask file or a folder of them")
        if path.is_file() and not split_suffix(path)[1]:
            raise SegDiceError(
                f"{side}: {path} has an unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
            )
    if gt.is_file():
        name = case_name(gt, gt_suffix)
        if pred.is_file():
            return [CasePair(name, gt, pred)], []
        match = _index_folder(pred, pred_suffix, "pred").get(name)
        return [CasePair(name, gt, match)], []
    if pred.is_file():
        raise SegDiceError(
            f"pred: {pred} is a file but gt: {gt} is a folder; pass two files or two folders "
            "(or a ground-truth file with a prediction folder)"
        )
    gt_index = _index_folder(gt, gt_suffix, "gt")
    if not gt_index:
        raise SegDiceError(
            f"gt: the folder {gt} holds no mask file; expected files ending in {', '.join(SUPPORTED_SUFFIXES)}"
        )
    pred_index = _index_folder(pred, pred_suffix, "pred")
    cases = [CasePair(name, gt_index[name], pred_index.get(name)) for name in sorted(gt_index)]
    extras = [pred_index[name] for name in sorted(pred_index) if name not in gt_index]
    return cases, extras
