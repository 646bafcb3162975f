"""The worst-case values of a case that failed in one run: its scores for an empty prediction.

``segdice evaluate`` scores a missing prediction as an empty one (Dice 0 where the ground truth has the
label, distances at the image diagonal); its rows are already in ``per_case.csv``. A case that *failed* in a
run (unreadable prediction, shape mismatch) has NaN rows instead. To count it as that run's worst case, the
case is scored again by :func:`segdice.evaluate` itself, against the same ground-truth file with the run's
own settings and no prediction, so the worst case is defined in one place only.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from segdice._checks import SegDiceError
from segdice.comparison._runs import Run

__all__ = ["empty_prediction_rows"]


def _evaluate_options(run: Run) -> dict:
    """The keyword arguments that reproduce the run's scoring settings."""
    summary = run.summary
    inputs, definitions = summary["inputs"], summary["definitions"]
    label_items = [item for item in summary["items"] if not item.get("region")]
    options: dict = {
        "labels": [int(item["labels"][0]) for item in label_items],
        "label_names": {str(item["name"]): int(item["labels"][0]) for item in label_items},
        "regions": {
            str(item["name"]): list(item["labels"]) for item in summary["items"] if item.get("region")
        },
        "ignore_label": inputs.get("ignore_label"),
        "metrics": list(run.metrics),
        "empty": str(definitions.get("empty", "nan")),
        "spacing": inputs.get("spacing_override"),
        "workers": 1,
    }
    if definitions.get("nsd_tolerance") is not None:
        options["nsd_tolerance"] = float(definitions["nsd_tolerance"])
    return options


def empty_prediction_rows(run: Run, case: str) -> dict[str, dict]:
    """Score ``case`` of ``run`` with no prediction; return its rows by item name.

    Raises
    ------
    SegDiceError
        If the case's ground-truth file cannot be read from here (moved, or on another machine).
    """
    from segdice.evaluation import evaluate

    gt_file = run.gt_files[case]
    error = next(text for (failed, _), text in run.errors.items() if failed == case)
    if not gt_file or not Path(gt_file).is_file():
        raise SegDiceError(
            f"run {run.name!r}: case {case!r} failed ({error}); counting it as the "
            f"worst case means scoring an empty prediction against its ground truth {gt_file!r}, which is not a "
            "file here (run segdice compare where the ground truth is, or re-run segdice evaluate)"
        )
    with tempfile.TemporaryDirectory() as no_predictions, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # out=None writes no report: nothing to warn about
        result = evaluate(no_predictions, gt_file, **_evaluate_options(run))
    rows = {row["item"]: row for row in result.per_case}
    for item, row in rows.items():
        if row.get("gt_voxels") is None:  # the ground truth itself could not be read
            raise SegDiceError(
                f"run {run.name!r}: case {case!r} failed, and scoring an empty prediction against {gt_file!r} "
                f"failed too: {row['error']}"
            )
        if item not in run.items:
            raise SegDiceError(f"run {run.name!r}: re-scoring case {case!r} gave an unknown item {item!r}")
    return rows
