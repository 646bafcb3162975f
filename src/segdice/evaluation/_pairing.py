"""Pair prediction files with ground-truth files by case name.

A case name is the file name without its supported suffix (``.nii.gz`` is one suffix) and without an
optional user suffix such as ``_pred`` or ``_seg``. Ground truth defines the cases: a case without a
prediction is *missing* (scored as the worst case by the evaluator); a prediction without ground truth
is reported as an extra and not scored. Formats may differ between the two sides (``.npy`` predictions
against ``.nii.gz`` ground truth pair fine).

Layouts: folders are searched one level deep, or through every sub-folder with ``recursive`` (BraTS
keeps one folder per case); ``pred_glob``/``gt_glob`` choose which files are masks. When several
prediction files give one case name (nnU-Net writes ``case.nii.gz`` beside ``case.npz``), the one in
the ground truth's format is taken; otherwise the ambiguity is an error that names the files and the
option that resolves it. A ground-truth entry that is not a readable file (a folder named like a mask,
a dangling link) stays a case, so the evaluator reports it as an error row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

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


def _matches(relative: PurePosixPath, pattern: str | None) -> bool:
    """Glob ``pattern`` against the file name, or against the relative path if it holds a ``/``."""
    if pattern is None:
        return True
    return fnmatchcase(str(relative) if "/" in pattern else relative.name, pattern)


def _mask_entries(folder: Path, pattern: str | None, recursive: bool) -> list[Path]:
    """Entries of ``folder`` whose name has a mask suffix (and matches ``pattern``), sorted.

    Hidden names are skipped. An entry with a mask suffix is kept even when it is not a readable file
    (a folder, a dangling link), so that the evaluator reports it instead of dropping it. With
    ``recursive``, other sub-folders are searched too (symbolic links to folders are followed once).
    """
    found: list[Path] = []
    seen: set[Path] = set()

    def visit(current: Path) -> None:
        seen.add(current.resolve())
        for path in sorted(current.iterdir()):
            if path.name.startswith("."):
                continue
            if split_suffix(path)[1]:
                if _matches(PurePosixPath(path.relative_to(folder).as_posix()), pattern):
                    found.append(path)
            elif recursive and path.is_dir() and path.resolve() not in seen:
                visit(path)

    visit(folder)
    return found


def _index_folder(
    folder: Path, user_suffix: str, side: str, pattern: str | None = None, recursive: bool = False
) -> dict[str, list[Path]]:
    """Case name to its files (several when names collide; the caller decides)."""
    index: dict[str, list[Path]] = {}
    for path in _mask_entries(folder, pattern, recursive):
        index.setdefault(case_name(path, user_suffix), []).append(path)
    return index


def _ambiguity(side: str, name: str, folder: Path, paths: list[Path]) -> SegDiceError:
    files = ", ".join(path.relative_to(folder).as_posix() for path in paths)
    example = split_suffix(paths[0])[1].lower()
    return SegDiceError(
        f"{side}: {len(paths)} files give the case name {name!r}: {files}; choose which files are masks "
        f"with --{side}-glob (API: {side}_glob), e.g. --{side}-glob '*{example}', or tell the names apart "
        f"with --{side}-suffix"
    )


def _pick_prediction(name: str, gt: Path, folder: Path, candidates: list[Path] | None) -> Path | None:
    """The prediction of a case; among several, the one in the ground truth's format (nnU-Net: .npz)."""
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    gt_format = split_suffix(gt)[1].lower()
    same = [path for path in candidates if split_suffix(path)[1].lower() == gt_format]
    if len(same) == 1:
        return same[0]
    raise _ambiguity("pred", name, folder, candidates)


def pair_cases(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    pred_suffix: str = "",
    gt_suffix: str = "",
    pred_glob: str | None = None,
    gt_glob: str | None = None,
    recursive: bool = False,
) -> tuple[list[CasePair], list[Path]]:
    """Pair predictions with ground truth.

    Parameters
    ----------
    pred, gt
        Files or folders (hidden files are skipped). A ground-truth file with a prediction folder
        picks the matching file from the folder.
    pred_suffix, gt_suffix
        Stripped from the end of file stems before matching, e.g. ``"_pred"`` and ``"_seg"``.
    pred_glob, gt_glob
        Only files matching this pattern are masks (``fnmatch`` on the file name, or on the path
        relative to the folder when the pattern holds a ``/``), e.g. ``"*-seg.nii.gz"``.
    recursive
        Search sub-folders too (BraTS keeps one folder per case); case names are file names, so they
        must be unique across sub-folders.

    Returns
    -------
    cases : list of CasePair
        One per ground-truth entry, sorted by case name. An entry that is not a readable file (a
        folder, a dangling link) is kept: scoring reports it.
    extras : list of pathlib.Path
        Prediction files without ground truth.

    Raises
    ------
    SegDiceError
        If a path does not exist, a folder holds no mask file, two ground-truth files (or several
        predictions of which none or several share the ground truth's format) give the same case
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
        candidates = _index_folder(pred, pred_suffix, "pred", pred_glob, recursive).get(name)
        return [CasePair(name, gt, _pick_prediction(name, gt, pred, candidates))], []
    if pred.is_file():
        raise SegDiceError(
            f"pred: {pred} is a file but gt: {gt} is a folder; pass two files or two folders "
            "(or a ground-truth file with a prediction folder)"
        )
    gt_index = _index_folder(gt, gt_suffix, "gt", gt_glob, recursive)
    if not gt_index:
        where = f"the folder {gt} and its sub-folders hold" if recursive else f"the folder {gt} holds"
        matching = f" matching {gt_glob!r}" if gt_glob else ""
        hint = "" if recursive else " (pass --recursive to search sub-folders)"
        raise SegDiceError(
            f"gt: {where} no mask file{matching}{hint}; expected files ending in {', '.join(SUPPORTED_SUFFIXES)}"
        )
    for name, paths in gt_index.items():
        if len(paths) > 1:
            raise _ambiguity("gt", name, gt, paths)
    pred_index = _index_folder(pred, pred_suffix, "pred", pred_glob, recursive)
    cases = [
        CasePair(
            name, gt_index[name][0], _pick_prediction(name, gt_index[name][0], pred, pred_index.get(name))
        )
        for name in sorted(gt_index)
    ]
    extras = [path for name in sorted(pred_index) if name not in gt_index for path in pred_index[name]]
    return cases, extras
