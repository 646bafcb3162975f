"""Instance ids as the input has them: huge ids kept in the rows and lesions.csv, float ids checked."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from segdice import SegDiceError
from segdice.evaluation import evaluate
from segdice.metrics import instance_scores, match_instances

BIG = 2**40


def _maps() -> tuple[np.ndarray, np.ndarray]:
    """pred: objects 2**40 (matches target 9) and 70000 (a false positive); target: 9 and 2**40 + 5
    (missed). The ids above 2**24 make the tables renumber both maps."""
    pred = np.zeros((10, 10), np.int64)
    target = np.zeros_like(pred)
    pred[1:4, 1:4] = BIG
    pred[7:9, 1:3] = 70000
    target[1:4, 1:4] = 9
    target[6:9, 6:9] = BIG + 5
    return pred, target


def test_rows_carry_the_input_ids():
    pred, target = _maps()
    s = instance_scores(pred, target, instances="labels", metrics=("dice",))
    rows = {(r["side"], r["id"]): r for r in s.rows}
    assert set(rows) == {("target", 9), ("target", BIG + 5), ("pred", BIG), ("pred", 70000)}
    assert rows[("target", 9)]["matched"] == (BIG,) and rows[("target", 9)]["status"] == "tp"
    assert rows[("pred", BIG)]["matched"] == (9,) and rows[("pred", BIG)]["voxels"] == 9
    assert rows[("target", BIG + 5)]["status"] == "fn" and rows[("target", BIG + 5)]["matched"] == ()
    assert rows[("pred", 70000)]["status"] == "fp" and rows[("pred", 70000)]["voxels"] == 4
    assert (s.tp, s.fp, s.fn) == (1, 1, 1)


def test_small_ids_are_never_renumbered():
    pred = np.array([[0, 70000, 70000, 0, 3]])
    target = np.array([[0, 5, 5, 0, 0]])
    s = instance_scores(pred, target, instances="labels", metrics=("iou",))
    assert [(r["side"], r["id"], r["matched"]) for r in s.rows] == [
        ("target", 5, (70000,)),
        ("pred", 3, ()),
        ("pred", 70000, (5,)),
    ]
    assert match_instances(pred, target, instances="labels").pairs == [((70000,), 5, 1.0)]


def test_lesions_csv_has_the_file_ids(tmp_path):
    pred, target = _maps()
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    np.save(tmp_path / "gt" / "img.npy", target)
    np.save(tmp_path / "pred" / "img.npy", pred)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate(tmp_path / "pred", tmp_path / "gt", metrics="dice", instances="labels", workers=1, out=out)
    with open(out / "lesions.csv", newline="", encoding="utf-8") as handle:
        rows = {(r["side"], int(r["id"])): r for r in csv.DictReader(handle)}
    assert set(rows) == {("target", 9), ("target", BIG + 5), ("pred", BIG), ("pred", 70000)}
    assert rows[("target", 9)]["matched"] == str(BIG)
    assert rows[("pred", BIG)]["matched"] == "9"


@pytest.mark.parametrize("bad", [1e20, -1e20, 2.0**53 + 2, np.inf, np.nan, 2.5])
def test_float_ids_that_are_no_ids_are_refused(bad):
    target = np.zeros((4, 4))
    target[1:3, 1:3] = 1.0
    pred = target.copy()
    pred[0, 0] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a cast either
        with pytest.raises(SegDiceError, match=r"pred: .*finite whole numbers \(\|x\| <= 2\*\*53"):
            instance_scores(pred, target, instances="labels")


def test_float_ids_up_to_2_53_are_ids():
    target = np.zeros((4, 4))
    target[1:3, 1:3] = 2.0**53
    s = instance_scores(target.copy(), target, instances="labels", metrics=("dice",))
    assert [(r["side"], r["id"]) for r in s.rows] == [("target", 2**53), ("pred", 2**53)]
    assert s.lesion_dice == 1.0
