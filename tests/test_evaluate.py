"""segdice.evaluate: values against independent references, pairing, failures, statistics, resume."""

import json
import math
import statistics
import sys

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _evaluate_reference import boundary, diagonal, overlap
from segdice import SegDiceError, evaluate
from segdice.evaluation import _run as evaluate_run
from segdice.evaluation._summary import bootstrap_ci, describe_values
from segdice.io import save_mask
from segdice.report.tables import read_case_csv

ALL = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "hd", "hd95", "assd", "masd", "nsd")
OVERLAP = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
DISTANCE = ("hd", "hd95", "assd", "masd", "nsd")


def _blob_case(rng, shape=(24, 20, 12), labels=(1, 2, 3)):
    """A ground truth with one box per label, and a prediction that shifts and trims the boxes."""
    gt = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)
    for label in labels:
        lo = [int(rng.integers(0, n // 2)) for n in shape]
        size = [int(rng.integers(2, max(3, n // 2))) for n in shape]
        box = tuple(slice(a, a + s) for a, s in zip(lo, size, strict=True))
        gt[box] = label
        shift = [int(rng.integers(-2, 3)) for _ in shape]
        moved = tuple(slice(max(0, a + d), a + s + d) for a, s, d in zip(lo, size, shift, strict=True))
        pred[moved] = label
    return pred, gt


def _folders(tmp_path, cases, suffix=".nii.gz", spacing=(0.8, 1.1, 2.5)):
    (tmp_path / "pred").mkdir(exist_ok=True)
    (tmp_path / "gt").mkdir(exist_ok=True)
    for name, (pred, gt) in cases.items():
        save_mask(tmp_path / "gt" / f"{name}{suffix}", gt, spacing)
        if pred is not None:
            save_mask(tmp_path / "pred" / f"{name}{suffix}", pred, spacing)
    return tmp_path / "pred", tmp_path / "gt"


def _rows(result, case=None, item=None):
    return [
        r
        for r in result.per_case
        if (case is None or r["case"] == case) and (item is None or r["item"] == item)
    ]


def _assert_matches_reference(row, pred_mask, gt_mask, spacing, empty_value=math.nan, tolerance=1.0):
    expected = {
        **overlap(pred_mask, gt_mask, empty_value),
        **boundary(pred_mask, gt_mask, spacing, tolerance),
    }
    for metric in ALL:
        if metric in row:
            assert row[metric] == pytest.approx(expected[metric], rel=1e-5, abs=1e-5, nan_ok=True), metric
    for count in ("tp", "fp", "fn", "tn"):
        assert row[count] == expected[count]


def test_every_metric_matches_the_references_with_header_spacing(tmp_path):
    rng = np.random.default_rng(1)
    cases = {f"case_{i:03d}": _blob_case(rng) for i in range(3)}
    spacing = (0.8, 1.1, 2.5)
    pred, gt = _folders(tmp_path, cases, spacing=spacing)
    result = evaluate(pred, gt, metrics=ALL, workers=1, nsd_tolerance=1.5)
    assert len(result.per_case) == 3 * 3
    for name, (p, g) in cases.items():
        for label in (1, 2, 3):
            (row,) = _rows(result, name, str(label))
            _assert_matches_reference(row, p == label, g == label, spacing, tolerance=1.5)
            assert row["n_voxels"] == g.size
            assert row["gt_voxels"] == int((g == label).sum())
            assert row["pred_voxels"] == int((p == label).sum())
            assert row["error"] == "" and row["missing_pred"] is False


def test_regions_are_unions_and_names_are_applied(tmp_path):
    rng = np.random.default_rng(2)
    cases = {"a": _blob_case(rng), "b": _blob_case(rng)}
    pred, gt = _folders(tmp_path, cases, suffix=".npz", spacing=(1.0, 1.0, 3.0))
    result = evaluate(
        pred,
        gt,
        labels=[1, 2, 3],
        label_names={"liver": 1, "tumour": 2},
        regions={"WT": [1, 2, 3], "TC": (2, 3)},
        metrics=("dice", "hd95", "nsd"),
        workers=1,
    )
    assert [r["item"] for r in _rows(result, "a")] == ["liver", "tumour", "3", "WT", "TC"]
    assert [r["labels"] for r in _rows(result, "a")] == ["1", "2", "3", "1+2+3", "2+3"]
    for name, (p, g) in cases.items():
        for item, ids in (("WT", (1, 2, 3)), ("TC", (2, 3)), ("tumour", (2,))):
            (row,) = _rows(result, name, item)
            _assert_matches_reference(row, np.isin(p, ids), np.isin(g, ids), (1.0, 1.0, 3.0))
    assert result.summary["inputs"]["regions"] == {"WT": [1, 2, 3], "TC": [2, 3]}


def test_ignore_label_leaves_voxels_out_of_counts_and_surfaces(tmp_path):
    rng = np.random.default_rng(3)
    p, g = _blob_case(rng, labels=(1,))
    g[:, :, :2] = 255  # an unannotated band
    p[:, :, 0] = 1  # predictions inside it must not count
    pred, gt = _folders(tmp_path, {"c": (p, g)}, suffix=".npy", spacing=None)
    result = evaluate(pred, gt, ignore_label=255, metrics=ALL, workers=1)
    assert [r["item"] for r in result.per_case] == ["1"]  # 255 is not a label under auto
    valid = g != 255
    (row,) = result.per_case
    counts = overlap((p == 1)[valid], (g == 1)[valid])
    for key in ("tp", "fp", "fn", "tn"):
        assert row[key] == counts[key]
    assert row["dice"] == pytest.approx(counts["dice"])
    distances = boundary((p == 1) & valid, (g == 1) & valid, None)
    for metric in DISTANCE:
        assert row[metric] == pytest.approx(distances[metric], rel=1e-5, abs=1e-5)


def test_missing_prediction_is_the_worst_case_and_counted(tmp_path):
    rng = np.random.default_rng(4)
    p, g = _blob_case(rng, labels=(1, 2))
    spacing = (0.5, 0.5, 2.0)
    pred, gt = _folders(tmp_path, {"have": (p, g), "lost": (None, g)}, spacing=spacing)
    result = evaluate(pred, gt, metrics=("dice", "hd95", "assd", "nsd"), workers=1)
    worst = diagonal(g.shape, spacing)
    for row in _rows(result, "lost"):
        assert row["missing_pred"] is True and row["error"] == ""
        assert row["dice"] == 0.0 and row["nsd"] == 0.0
        assert row["hd95"] == pytest.approx(worst) and row["assd"] == pytest.approx(worst)
        assert row["pred_file"] == ""
    stats = result.summary["results"]["1"]["dice"]
    assert stats["n"] == 2 and stats["n_missing"] == 1
    assert stats["mean"] == pytest.approx(np.mean([_rows(result, "have", "1")[0]["dice"], 0.0]))
    assert result.summary["counts"]["missing_predictions"] == 1
    assert result.n_failed == 0


def test_bad_cases_become_error_rows_and_never_stop_the_run(tmp_path):
    rng = np.random.default_rng(5)
    good = _blob_case(rng, labels=(1,))
    pred, gt = _folders(
        tmp_path, {"good": good, "shape": good, "spacing": good, "broken": good, "stray": good}
    )
    save_mask(pred / "shape.nii.gz", np.zeros((3, 3, 3), np.uint8), (0.8, 1.1, 2.5))
    save_mask(pred / "spacing.nii.gz", good[0], (0.8, 1.1, 3.0))
    (pred / "broken.nii.gz").write_bytes(b"garbage")
    stray = good[0].copy()
    stray[0, 0, 0] = 9
    save_mask(pred / "stray.nii.gz", stray, (0.8, 1.1, 2.5))

    result = evaluate(pred, gt, metrics=("dice", "hd95"), workers=1)
    errors = {r["case"]: r["error"] for r in result.per_case}
    assert errors["good"] == ""
    assert "shape mismatch: prediction (3, 3, 3) vs ground truth (24, 20, 12)" in errors["shape"]
    assert "spacing mismatch" in errors["spacing"] and "3.0" in errors["spacing"]
    assert "broken.nii.gz: cannot read the file" in errors["broken"]
    assert set(result.failed_cases) == {"shape", "spacing", "broken"}
    assert math.isnan(_rows(result, "broken")[0]["dice"])
    # A stray predicted label fails nothing (DESIGN §7): "auto" scores it, Dice 0 where it appears.
    assert errors["stray"] == ""
    assert (
        _rows(result, "stray", "9")[0]["dice"] == 0.0 and _rows(result, "stray", "9")[0]["pred_voxels"] == 1
    )
    assert _rows(result, "stray", "1")[0]["dice"] == pytest.approx(overlap(stray == 1, good[1] == 1)["dice"])
    stats = result.summary["results"]["1"]["dice"]
    assert stats["n"] == 2 and stats["n_error"] == 3
    assert stats["mean"] == pytest.approx(
        np.mean([r["dice"] for r in _rows(result, None, "1") if not r["error"]])
    )


def test_spacing_override_replaces_headers_and_their_check(tmp_path):
    rng = np.random.default_rng(6)
    p, g = _blob_case(rng, labels=(1,))
    pred, gt = _folders(tmp_path, {"c": (p, g)}, spacing=(1.0, 1.0, 1.0))
    save_mask(pred / "c.nii.gz", p, (9.0, 9.0, 9.0))
    result = evaluate(pred, gt, metrics=("hd95", "assd"), spacing=(0.5, 2.0, 1.5), workers=1)
    (row,) = result.per_case
    assert row["error"] == ""
    expected = boundary(p == 1, g == 1, (0.5, 2.0, 1.5))
    assert row["hd95"] == pytest.approx(expected["hd95"], rel=1e-5)
    isotropic = evaluate(pred, gt, metrics="hd95", spacing=(0.5,), workers=1)
    assert isotropic.per_case[0]["hd95"] == pytest.approx(
        boundary(p == 1, g == 1, (0.5,) * 3)["hd95"], rel=1e-5
    )
    bad = evaluate(pred, gt, metrics="hd95", spacing=(1.0, 1.0), workers=1)
    assert "spacing: got 2 value(s)" in bad.per_case[0]["error"]


@pytest.mark.parametrize(("empty", "expected"), [("nan", math.nan), ("0", 0.0), ("1", 1.0)])
def test_empty_policy(tmp_path, empty, expected):
    g = np.zeros((6, 6), np.uint8)
    g[1:3, 1:3] = 1
    only_fp = np.zeros_like(g)
    only_fp[4, 4] = 2
    cases = {"both_empty_for_2": (g.copy(), g.copy()), "fp_on_empty_gt": (only_fp, np.where(g == 1, 0, g))}
    cases["fp_on_empty_gt"][1][0, 0] = 2  # label 2 in gt somewhere else, so auto finds it... then empty it
    cases["fp_on_empty_gt"][1][0, 0] = 0
    pred, gt = _folders(tmp_path, cases, suffix=".png", spacing=None)
    result = evaluate(pred, gt, labels=[1, 2], metrics=("dice", "iou", "hd95"), empty=empty, workers=1)
    both = _rows(result, "both_empty_for_2", "2")[0]
    assert both["dice"] == pytest.approx(expected, nan_ok=True)
    assert both["iou"] == pytest.approx(expected, nan_ok=True)
    assert math.isnan(both["hd95"])  # distances with both sides empty are always NaN
    assert both["empty_gt"] and both["empty_pred"]
    fp = _rows(result, "fp_on_empty_gt", "2")[0]
    assert fp["dice"] == 0.0 and fp["empty_gt"] and not fp["empty_pred"]  # the false positive is seen
    assert fp["hd95"] == pytest.approx(diagonal(g.shape))
    stats = result.summary["results"]["2"]["dice"]
    assert stats["n_nan"] == (1 if empty == "nan" else 0)
    assert result.summary["definitions"]["empty"] == empty


def test_auto_labels_are_the_union_over_all_ground_truth(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    a[1:4, 1:4] = 1
    b = np.zeros((8, 8), np.uint8)
    b[2:6, 2:6] = 5
    pred, gt = _folders(tmp_path, {"a": (a, a), "b": (b, b)}, suffix=".png", spacing=None)
    result = evaluate(pred, gt, metrics="dice", workers=1)
    assert [(r["case"], r["item"]) for r in result.per_case] == [
        ("a", "1"),
        ("a", "5"),
        ("b", "1"),
        ("b", "5"),
    ]
    assert math.isnan(_rows(result, "a", "5")[0]["dice"])
    assert result.summary["inputs"]["labels"] == [1, 5]


def test_pairing_with_suffixes_mixed_formats_and_extras(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    g = np.zeros((6, 6), np.uint8)
    g[1:4, 1:4] = 1
    save_mask(tmp_path / "gt" / "c1_seg.nii.gz", g)
    save_mask(tmp_path / "gt" / "c2_seg.png", g)
    save_mask(tmp_path / "pred" / "c1_pred.npy", g)
    save_mask(tmp_path / "pred" / "c2_pred.tif", g)
    save_mask(tmp_path / "pred" / "orphan_pred.npy", g)
    (tmp_path / "pred" / "README.txt").write_text("ignored")
    result = evaluate(
        tmp_path / "pred", tmp_path / "gt", pred_suffix="_pred", gt_suffix="_seg", metrics="dice", workers=1
    )
    assert [(r["case"], r["dice"]) for r in result.per_case] == [("c1", 1.0), ("c2", 1.0)]
    assert result.summary["counts"]["extra_predictions"] == 1
    assert result.summary["extra_predictions"][0].endswith("orphan_pred.npy")
    # A single pair of files works too.
    single = evaluate(
        tmp_path / "pred" / "c1_pred.npy",
        tmp_path / "gt" / "c1_seg.nii.gz",
        gt_suffix="_seg",
        metrics="dice",
        workers=1,
    )
    assert single.per_case[0]["case"] == "c1"


def test_duplicate_case_names_are_a_usage_error(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    g = np.ones((2, 2), np.uint8)
    save_mask(tmp_path / "gt" / "c.nii.gz", g)
    save_mask(tmp_path / "gt" / "c.npy", g)
    with pytest.raises(
        SegDiceError,
        match=r"gt: 2 files give the case name 'c': c.nii.gz, c.npy; choose which files are masks with --gt-glob",
    ):
        evaluate(tmp_path / "pred", tmp_path / "gt", workers=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": "dice,foo"}, r"metrics: got unknown \['foo'\]"),
        ({"empty": "maybe"}, r"empty: got 'maybe'; expected one of 'nan', '0', '1'"),
        ({"nsd_tolerance": 0}, r"nsd_tolerance: got 0; expected a value > 0"),
        ({"workers": 0}, r"workers: got 0; expected a value >= 1"),
        ({"labels": [0, 1]}, r"labels: 0 is the background"),
        ({"labels": "1,x"}, r"labels: got 'x' in '1,x'; expected integers or ranges separated by commas"),
        ({"spacing": (1.0, -1.0)}, r"spacing: got -1.0; expected a value > 0"),
        ({"regions": {"WT": []}}, r"regions\['WT'\]: got \[\]; expected a non-empty list"),
        ({"label_names": {"a": 1, "b": 1}}, r"label_names: label 1 is named twice"),
        ({"labels": [1], "regions": {"1": [1]}}, r"the name '1' is used by both"),
        ({"resume": True}, r"resume: needs out"),
    ],
)
def test_bad_arguments_raise_segdice_error(tmp_path, kwargs, message):
    g = np.ones((2, 2), np.uint8)
    pred, gt = _folders(tmp_path, {"c": (g, g)}, suffix=".npy", spacing=None)
    with pytest.raises(SegDiceError, match=message):
        evaluate(pred, gt, **{"workers": 1, **kwargs})


def test_missing_inputs_and_background_only_are_usage_errors(tmp_path):
    with pytest.raises(SegDiceError, match=r"gt: .* does not exist"):
        evaluate(tmp_path, tmp_path / "nope", workers=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SegDiceError, match="holds no mask file"):
        evaluate(tmp_path, tmp_path / "empty", workers=1)
    z = np.zeros((3, 3), np.uint8)
    pred, gt = _folders(tmp_path, {"c": (z, z)}, suffix=".npy", spacing=None)
    with pytest.raises(SegDiceError, match="nothing to evaluate"):
        evaluate(pred, gt, workers=1)


def test_outputs_on_disk_match_the_returned_tables(tmp_path):
    rng = np.random.default_rng(7)
    cases = {f"c{i}": _blob_case(rng, shape=(16, 16, 6), labels=(1, 2)) for i in range(4)}
    cases["gone"] = (None, cases["c0"][1])
    pred, gt = _folders(tmp_path, cases)
    result = evaluate(pred, gt, out=tmp_path / "out", metrics=("dice", "hd95"), workers=1)
    columns, rows = read_case_csv(tmp_path / "out" / "per_case.csv")
    assert columns[:3] == ["case", "item", "labels"] and columns[-2:] == ["dice", "hd95"]
    assert len(rows) == len(result.per_case) == 10
    for written, returned in zip(rows, result.per_case, strict=True):
        for key, value in returned.items():
            assert (
                written[key] == pytest.approx(value, nan_ok=True)
                if isinstance(value, float)
                else written[key] == value
            )

    def no_nan(text):
        raise AssertionError(f"non-standard JSON constant {text}")

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=no_nan)
    assert summary["segdice_version"] == result.summary["segdice_version"]
    dice = [r["dice"] for r in rows if r["item"] == "1"]
    stats = summary["results"]["1"]["dice"]
    assert stats["mean"] == pytest.approx(statistics.fmean(dice))
    assert stats["std"] == pytest.approx(statistics.stdev(dice))
    assert stats["median"] == pytest.approx(statistics.median(dice))
    assert [stats["q1"], stats["q3"]] == pytest.approx(np.percentile(dice, [25, 75]).tolist())
    assert (stats["min"], stats["max"]) == (min(dice), max(dice))
    assert stats["n"] == 5 and stats["n_missing"] == 1 and stats["n_nan"] == 0
    assert stats["ci_low"] <= stats["mean"] <= stats["ci_high"]
    assert summary["definitions"]["nsd_tolerance"] == 1.0
    assert summary["definitions"]["bootstrap"]["seed"] == 0
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


def test_resume_scores_only_the_cases_not_yet_written(tmp_path, monkeypatch):
    rng = np.random.default_rng(8)
    cases = {f"c{i}": _blob_case(rng, shape=(12, 12, 5), labels=(1,)) for i in range(5)}
    pred, gt = _folders(tmp_path, cases)
    out = tmp_path / "out"
    scored = []
    interrupt = {"armed": True}
    real_score = evaluate_run.score_case

    def spy(pair, spec):
        scored.append(pair.name)
        if pair.name == "c3" and interrupt.pop("armed", False):
            raise KeyboardInterrupt  # Ctrl-C in the middle of a run
        return real_score(pair, spec)

    monkeypatch.setattr(evaluate_run, "score_case", spy)
    with pytest.raises(KeyboardInterrupt):
        evaluate(pred, gt, out=out, metrics=("dice", "hd95"), labels=[1], workers=1)
    _, rows = read_case_csv(out / "per_case.csv")
    assert [r["case"] for r in rows] == ["c0", "c1", "c2"]  # every finished case is on disk

    scored.clear()
    result = evaluate(pred, gt, out=out, metrics=("dice", "hd95"), labels=[1], workers=1, resume=True)
    assert scored == ["c3", "c4"]
    _, rows = read_case_csv(out / "per_case.csv")
    assert [r["case"] for r in rows] == ["c0", "c1", "c2", "c3", "c4"]
    fresh = evaluate(pred, gt, metrics=("dice", "hd95"), labels=[1], workers=1)
    assert [r["dice"] for r in result.per_case] == [r["dice"] for r in fresh.per_case]

    with pytest.raises(SegDiceError, match="resume with the same metrics"):
        evaluate(pred, gt, out=out, metrics="dice", labels=[1], workers=1, resume=True)


def test_resume_rescores_failed_cases(tmp_path, monkeypatch):
    g = np.zeros((6, 6), np.uint8)
    g[1:4, 1:4] = 1
    pred, gt = _folders(tmp_path, {"a": (g, g), "b": (g, g)}, suffix=".npy", spacing=None)
    (pred / "b.npy").write_bytes(b"junk")
    first = evaluate(pred, gt, out=tmp_path / "out", metrics="dice", workers=1)
    assert first.n_failed == 1
    save_mask(pred / "b.npy", g)  # fixed
    calls = []
    real_score = evaluate_run.score_case
    monkeypatch.setattr(evaluate_run, "score_case", lambda p, s: calls.append(p.name) or real_score(p, s))
    second = evaluate(pred, gt, out=tmp_path / "out", metrics="dice", workers=1, resume=True)
    assert calls == ["b"] and second.n_failed == 0


def test_progress_callback_counts_cases(tmp_path):
    g = np.zeros((6, 6), np.uint8)
    g[1:4, 1:4] = 1
    pred, gt = _folders(tmp_path, dict.fromkeys("abc", (g, g)), suffix=".npy", spacing=None)
    seen = []
    evaluate(pred, gt, metrics="dice", workers=1, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3, 3)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.slow  # spawning workers that import torch takes seconds on a loaded 2-core machine
def test_two_workers_give_the_same_rows_as_one(tmp_path):
    rng = np.random.default_rng(9)
    cases = {f"c{i}": _blob_case(rng, shape=(16, 16, 8)) for i in range(4)}
    pred, gt = _folders(tmp_path, cases)
    serial = evaluate(pred, gt, metrics=("dice", "hd95", "nsd"), workers=1)
    parallel = evaluate(pred, gt, out=tmp_path / "out", metrics=("dice", "hd95", "nsd"), workers=2)
    assert parallel.per_case == serial.per_case
    _, rows = read_case_csv(tmp_path / "out" / "per_case.csv")
    assert [(r["case"], r["item"]) for r in rows] == [(r["case"], r["item"]) for r in serial.per_case]


# --- statistics ---------------------------------------------------------------------------------


def test_bootstrap_ci_is_seeded_and_agrees_with_scipy():
    values = np.random.default_rng(10).normal(0.7, 0.1, size=60)
    low, high = bootstrap_ci(values)
    assert (low, high) == bootstrap_ci(values)  # reproducible
    reference = scipy.stats.bootstrap(
        (values,), np.mean, n_resamples=20_000, method="percentile", random_state=np.random.default_rng(1)
    ).confidence_interval
    sem = values.std(ddof=1) / np.sqrt(values.size)
    assert low == pytest.approx(reference.low, abs=0.15 * sem)
    assert high == pytest.approx(reference.high, abs=0.15 * sem)
    # Normal theory: the interval is about mean +- 1.96 standard errors.
    assert (high - low) == pytest.approx(2 * 1.96 * sem, rel=0.15)


def test_describe_values_edge_cases():
    none = describe_values([float("nan"), float("nan")], n_missing=1)
    assert none["n"] == 0 and none["n_nan"] == 2 and none["n_missing"] == 1 and math.isnan(none["mean"])
    one = describe_values([0.25])
    assert (one["mean"], one["ci_low"], one["ci_high"], one["n"]) == (0.25, 0.25, 0.25, 1)
    assert math.isnan(one["std"])
    constant = describe_values([0.5] * 7)
    assert (constant["ci_low"], constant["ci_high"], constant["std"]) == (0.5, 0.5, 0.0)


def test_without_the_report_extra_csv_and_json_are_still_written(tmp_path, monkeypatch):
    g = np.zeros((6, 6), np.uint8)
    g[1:4, 1:4] = 1
    pred, gt = _folders(tmp_path, {"a": (g, g)}, suffix=".npy", spacing=None)
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if jinja2 were not installed
    with pytest.warns(RuntimeWarning, match=r"report.html not written.*segdice\[report\]"):
        result = evaluate(pred, gt, out=tmp_path / "out", metrics="dice", workers=1)
    assert (tmp_path / "out" / "summary.json").exists() and (tmp_path / "out" / "per_case.csv").exists()
    assert not (tmp_path / "out" / "report.html").exists()
    assert "report" not in result.files


@settings(max_examples=25)
@given(
    maps=st.lists(
        st.tuples(
            hnp.arrays(np.uint8, (7, 9), elements=st.integers(0, 3)),
            hnp.arrays(np.uint8, (7, 9), elements=st.integers(0, 3)),
        ),
        min_size=1,
        max_size=3,
    ),
    empty=st.sampled_from(["nan", "0", "1"]),
)
def test_generated_label_maps_match_the_references(tmp_path_factory, maps, empty):
    # Random maps hit the corner cases hand-made ones miss: single voxels, labels in one map only,
    # masks touching the border, empty classes.
    root = tmp_path_factory.mktemp("gen")
    pred, gt = _folders(root, {f"c{i}": pair for i, pair in enumerate(maps)}, suffix=".npy", spacing=None)
    result = evaluate(
        pred, gt, labels=[1, 2, 3], regions={"fg": [1, 2, 3]}, metrics=ALL, empty=empty, workers=1
    )
    empty_value = {"nan": math.nan, "0": 0.0, "1": 1.0}[empty]
    for i, (p, g) in enumerate(maps):
        for item, ids in (("1", (1,)), ("2", (2,)), ("3", (3,)), ("fg", (1, 2, 3))):
            (row,) = _rows(result, f"c{i}", item)
            _assert_matches_reference(row, np.isin(p, ids), np.isin(g, ids), None, empty_value)


def test_large_and_negative_label_values(tmp_path):
    g = np.zeros((10, 10), np.int32)
    g[1:5, 1:5] = 70_000  # beyond the lookup-table range
    g[6:9, 6:9] = 1000
    g[0, :] = -1  # an ignore label below zero
    p = g.copy()
    p[1, 1:5] = 0
    p[0, 0] = 70_000  # under the ignore label: left out
    p[9, 9] = 123  # a stray label
    pred, gt = _folders(tmp_path, {"c": (p, g)}, suffix=".npy", spacing=None)
    result = evaluate(pred, gt, ignore_label=-1, metrics=("dice", "hd95"), workers=1)
    # "auto" takes the labels of both sides (123 only in the prediction; 70000 under the ignore label
    # alone would not count).
    assert [r["item"] for r in result.per_case] == ["123", "1000", "70000"]
    valid = g != -1
    for row, label in zip(result.per_case, (123, 1000, 70_000), strict=True):
        expected = overlap((p == label)[valid], (g == label)[valid])
        assert row["dice"] == pytest.approx(expected["dice"])
        assert row["error"] == ""
