"""segdice.compare: paired statistics and rankings against SciPy and hand-written references."""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import segdice
from segdice import SegDiceError
from segdice.comparison import COMPARISON_COLUMNS, compare
from segdice.io import save_mask
from segdice.report.tables import read_case_csv, write_case_csv, write_summary_json

# --- building runs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The columns and summary of a real `segdice evaluate` run, to write synthetic runs in its exact schema."""
    root = tmp_path_factory.mktemp("template")
    (root / "gt").mkdir()
    (root / "pred").mkdir()
    mask = np.zeros((6, 6), np.uint8)
    mask[1:4, 1:4] = 1
    save_mask(root / "gt" / "a.npy", mask)
    save_mask(root / "pred" / "a.npy", mask)
    segdice.evaluate(root / "pred", root / "gt", out=root / "run", metrics="dice,hd95", workers=1)
    columns, rows = read_case_csv(root / "run" / "per_case.csv")
    summary = json.loads((root / "run" / "summary.json").read_text())
    return columns, rows[0], summary


def write_run(folder: Path, template, values: dict, *, gt_voxels=None) -> Path:
    """A run folder whose per_case.csv holds ``values[item][metric][case_index]``."""
    columns, row0, summary = template
    items = list(values)
    metrics = list(values[items[0]])
    n_cases = len(values[items[0]][metrics[0]])
    columns = [c for c in columns if c not in ("dice", "hd95")] + metrics
    rows = []
    for k in range(n_cases):
        for i, item in enumerate(items):
            row = dict.fromkeys(columns)
            row.update({c: row0[c] for c in columns if c in row0 and c not in metrics})
            row.update(
                case=f"case{k:04d}",
                item=item,
                labels=str(i + 1),
                gt_voxels=10 + k if gt_voxels is None else gt_voxels[k],
                missing_pred=False,
                error="",
            )
            for metric in metrics:
                row[metric] = float(values[item][metric][k])
            rows.append(row)
    folder.mkdir(parents=True)
    write_case_csv(folder / "per_case.csv", columns, rows)
    meta = copy.deepcopy(summary)
    meta["counts"]["cases"] = n_cases
    meta["items"] = [{"name": item, "labels": [i + 1], "region": False} for i, item in enumerate(items)]
    meta["inputs"]["metrics"] = metrics
    meta["inputs"]["labels"] = list(range(1, len(items) + 1))
    write_summary_json(folder / "summary.json", meta)
    return folder


def rows_by(result, item, metric, a, b):
    (row,) = [
        r
        for r in result.comparisons
        if (r["item"], r["metric"], r["run_a"], r["run_b"]) == (item, metric, a, b)
    ]
    return row


# --- p-values, effect sizes, differences --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_cases", "grid"),
    # continuous values; values on a coarse grid (ties and zero differences: SciPy's other methods)
    [(12, 0.0), (80, 0.0), (12, 0.05), (30, 0.05), (80, 0.05)],
)
@pytest.mark.parametrize("test", ["wilcoxon", "ttest", "permutation"])
def test_p_values_and_numbers_match_scipy_on_the_paired_values(tmp_path, template, n_cases, grid, test):
    rng = np.random.default_rng(n_cases)
    base = rng.uniform(0.5, 0.9, n_cases)
    runs = {
        "A": base + rng.normal(0, 0.05, n_cases),
        "B": base + 0.03 + rng.normal(0, 0.05, n_cases),
        "C": base.copy(),
    }
    if grid:
        runs = {name: np.round(v / grid) * grid for name, v in runs.items()}
    runs["C"][3] = np.nan  # undefined in one run: that pair is left out of every A/C and B/C statistic
    hd = {name: 10 * (1 - v) for name, v in runs.items()}
    folders = [
        write_run(tmp_path / name, template, {"1": {"dice": runs[name], "hd95": hd[name]}}) for name in runs
    ]
    result = compare(folders, test=test, correction="none", resamples=999, seed=3)
    assert len(result.comparisons) == 3 * 2
    for a, b in itertools.combinations("ABC", 2):
        for metric, data in (("dice", runs), ("hd95", hd)):
            row = rows_by(result, "1", metric, a, b)
            keep = np.isfinite(data[a]) & np.isfinite(data[b])
            x, y = data[a][keep], data[b][keep]
            d = x - y
            if test == "wilcoxon":
                expected = stats.wilcoxon(d)
            elif test == "ttest":
                expected = stats.ttest_rel(x, y)
            else:
                expected = stats.permutation_test(
                    (x, y),
                    lambda u, v, axis: np.mean(u - v, axis=axis),
                    permutation_type="samples",
                    vectorized=True,
                    n_resamples=999,
                    rng=np.random.default_rng(3),
                )
            assert row["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-15)
            assert row["p_corrected"] == row["p_value"]
            assert row["n"] == keep.sum() and row["n_undefined"] == n_cases - keep.sum()
            assert row["mean_a"] == pytest.approx(x.mean()) and row["mean_b"] == pytest.approx(y.mean())
            assert row["mean_diff"] == pytest.approx(d.mean())
            assert row["median_diff"] == pytest.approx(np.median(d))
            assert row["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
            # rank-biserial, written out: ranks of |d| among the nonzero differences
            nz = d[d != 0]
            ranks = stats.rankdata(np.abs(nz))
            plus, minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
            assert row["rank_biserial"] == pytest.approx((plus - minus) / (plus + minus))
            assert row["effect_size"] == (row["rank_biserial"] if test == "wilcoxon" else row["cohens_dz"])
            better = d > 0 if metric == "dice" else d < 0
            worse = d < 0 if metric == "dice" else d > 0
            assert (row["wins"], row["ties"], row["losses"]) == (better.sum(), (d == 0).sum(), worse.sum())
            assert row["direction"] == ("higher" if metric == "dice" else "lower")
            assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]


def test_identical_runs_have_p_one_and_no_effect(tmp_path, template):
    values = np.linspace(0.2, 0.9, 20)
    folders = [write_run(tmp_path / n, template, {"1": {"dice": values}}) for n in ("A", "B")]
    (row,) = compare(folders, resamples=50).comparisons
    assert (row["p_value"], row["effect_size"], row["mean_diff"], row["ties"]) == (1.0, 0.0, 0.0, 20)
    assert (row["ci_low"], row["ci_high"]) == (0.0, 0.0)


def _holm(p):
    """Holm's step-down procedure, written out with a loop."""
    order = sorted(range(len(p)), key=lambda k: p[k])
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for position, k in enumerate(order):
        running = max(running, min(1.0, (m - position) * p[k]))
        adjusted[k] = running
    return adjusted


def _benjamini_hochberg(p):
    m = len(p)
    adjusted = [0.0] * m
    for k in range(m):
        adjusted[k] = min(
            1.0, min(p[j] * m / (sum(1 for q in p if q <= p[j])) for j in range(m) if p[j] >= p[k])
        )
    return adjusted


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "fdr_bh"])
def test_correction_over_every_test_of_the_call(tmp_path, template, correction):
    rng = np.random.default_rng(5)
    n = 25
    base = rng.uniform(0.3, 0.9, (6, n))
    shifts = np.array([0.0, 0.01, 0.02, 0.04, 0.08, 0.2])
    runs = {}
    for name, scale in (("A", 0.0), ("B", 1.0), ("C", 0.5)):
        runs[name] = {
            str(i): {
                "dice": base[i] + scale * shifts[i] + rng.normal(0, 0.05, n),
                "hd95": rng.normal(5, 1, n) + scale,
            }
            for i in range(6)
        }
    folders = [write_run(tmp_path / name, template, runs[name]) for name in runs]
    result = compare(folders, correction=correction, alpha=0.05, resamples=50)
    assert len(result.comparisons) == 6 * 2 * 3
    p = [r["p_value"] for r in result.comparisons]
    if correction == "holm":
        expected = _holm(p)
    elif correction == "bonferroni":
        expected = [min(1.0, len(p) * q) for q in p]
    else:
        expected = _benjamini_hochberg(p)
    assert [r["p_corrected"] for r in result.comparisons] == pytest.approx(expected, rel=1e-12)
    assert [r["significant"] for r in result.comparisons] == [q < 0.05 for q in expected]
    assert result.summary["settings"]["n_tests"] == len(p)


# --- the bootstrap interval --------------------------------------------------------------------------


def test_paired_bootstrap_ci_covers_the_true_difference_at_its_nominal_rate(tmp_path, template):
    """Many simulated datasets (one per item) with a known mean difference of -0.3.

    The cases vary much more between each other (sd 2) than the runs differ within a case (sd 0.3), as in
    segmentation; an interval that resampled the two runs independently would be ~7x too wide and cover
    about always, which the upper bound rejects (shown on the same data below).
    """
    rng = np.random.default_rng(11)
    n_sims, n_cases, true_diff = 300, 40, -0.3
    case_effect = rng.normal(0, 2, (n_sims, n_cases))
    a = case_effect + rng.normal(0, 0.3, (n_sims, n_cases))
    b = case_effect - true_diff + rng.normal(0, 0.3, (n_sims, n_cases))
    b[n_sims // 2 :, 0] = np.nan  # half the datasets have an undefined pair: the other code path
    fa = write_run(tmp_path / "A", template, {f"s{k}": {"dice": a[k]} for k in range(n_sims)})
    fb = write_run(tmp_path / "B", template, {f"s{k}": {"dice": b[k]} for k in range(n_sims)})
    result = compare([fa, fb], correction="none", resamples=1000, seed=1)
    low = np.array([r["ci_low"] for r in result.comparisons])
    high = np.array([r["ci_high"] for r in result.comparisons])
    covered = (low <= true_diff) & (true_diff <= high)
    for part in (covered[: n_sims // 2], covered[n_sims // 2 :], covered):
        assert 0.88 <= part.mean() <= 0.98, part.mean()

    # the same check on an unpaired bootstrap of the same data covers too often: the bound can fail
    counts_a = rng.integers(0, n_cases, (1000, n_cases))
    counts_b = rng.integers(0, n_cases, (1000, n_cases))
    clean = np.nan_to_num(b, nan=np.nanmean(b))
    unpaired = np.take_along_axis(a[:, None, :], counts_a[None], axis=2).mean(-1) - np.take_along_axis(
        clean[:, None, :], counts_b[None], axis=2
    ).mean(-1)
    lo, hi = np.quantile(unpaired, [0.025, 0.975], axis=1)
    assert ((lo <= true_diff) & (true_diff <= hi)).mean() > 0.98


def test_interval_agrees_with_scipy_paired_percentile_bootstrap(tmp_path, template):
    """Same data, independent resamples: the two intervals differ only by Monte Carlo error."""
    rng = np.random.default_rng(8)
    base = rng.uniform(0.3, 0.9, 60)
    a, b = base + rng.normal(0, 0.05, 60), base + 0.02 + rng.normal(0, 0.05, 60)
    folders = [write_run(tmp_path / n, template, {"1": {"dice": v}}) for n, v in (("A", a), ("B", b))]
    (row,) = compare(folders, resamples=20000, seed=5).comparisons
    theirs = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    width = theirs.high - theirs.low
    assert row["ci_low"] == pytest.approx(theirs.low, abs=0.05 * width)
    assert row["ci_high"] == pytest.approx(theirs.high, abs=0.05 * width)


def test_the_seed_fixes_the_interval(tmp_path, template):
    rng = np.random.default_rng(2)
    folders = [write_run(tmp_path / n, template, {"1": {"dice": rng.uniform(0, 1, 30)}}) for n in ("A", "B")]
    first = compare(folders, resamples=300, seed=7).comparisons[0]
    again = compare(folders, resamples=300, seed=7).comparisons[0]
    other = compare(folders, resamples=300, seed=8).comparisons[0]
    assert (first["ci_low"], first["ci_high"]) == (again["ci_low"], again["ci_high"])
    assert (first["ci_low"], first["ci_high"]) != (other["ci_low"], other["ci_high"])


# --- rankings ----------------------------------------------------------------------------------------


def test_clear_ranking_is_stable_and_ties_share_the_best_rank(tmp_path, template):
    rng = np.random.default_rng(4)
    base = rng.uniform(0.3, 0.6, 15)
    values = {"best": base + 0.3, "middle": base + 0.1, "twin": base + 0.1, "worst": base}
    folders = [
        write_run(tmp_path / n, template, {"1": {"dice": v, "hd95": 10 - 10 * v}}) for n, v in values.items()
    ]
    result = compare(folders, resamples=200)
    for ranking in result.rankings:
        for kind in ("aggregate_then_rank", "rank_then_aggregate"):
            data = ranking[kind]
            assert data["rank"] == [1, 2, 2, 4], (ranking["metric"], kind)
            assert data["rank_frequency"] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
            assert data["kendall_tau"]["mean"] == pytest.approx(1.0)
    assert result.rankings[0]["aggregate_then_rank"]["mean"] == pytest.approx(
        [v.mean() for v in values.values()]
    )


@pytest.mark.parametrize("metric", ["dice", "hd95"])
def test_rank_frequencies_match_the_binomial_answer(tmp_path, template, metric):
    """Run A beats B by 1 on case 0 and loses by 1e-6 on the others (5 cases).

    A resample ranks A first by its mean iff it draws case 0 at least once: 1 - (4/5)**5; by mean case
    ranks iff it draws case 0 at least 3 times out of 5: P(Binomial(5, 1/5) >= 3).
    """
    n = 5
    b = np.full(n, 0.5)
    a = b - 1e-6
    a[0] = 1.5
    if metric == "hd95":  # lower is better: the same story mirrored
        a, b = -a + 10, -b + 10
    folders = [write_run(tmp_path / name, template, {"1": {metric: v}}) for name, v in (("A", a), ("B", b))]
    (ranking,) = compare(folders, resamples=20000, seed=0).rankings
    agg, rta = ranking["aggregate_then_rank"], ranking["rank_then_aggregate"]
    p_agg = 1 - (1 - 1 / n) ** n
    p_rta = stats.binom.sf(2, n, 1 / n)
    assert agg["rank"] == [1, 2]
    assert agg["rank_frequency"][0] == pytest.approx([p_agg, 1 - p_agg], abs=0.015)
    assert agg["kendall_tau"]["mean"] == pytest.approx(2 * p_agg - 1, abs=0.03)
    assert rta["rank"] == [2, 1]  # A wins one case of five
    assert rta["mean_rank"] == pytest.approx([1.8, 1.2])
    assert rta["rank_frequency"][0] == pytest.approx([p_rta, 1 - p_rta], abs=0.01)


@given(
    st.lists(
        st.lists(st.sampled_from([0.1, 0.5, 0.5, 0.9, np.nan]), min_size=2, max_size=6),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=60, deadline=None)
def test_ranks_match_scipy_rankdata(table):
    from segdice.comparison._ranking import case_ranks, rank_scores

    width = min(len(row) for row in table)
    scores = np.array([row[:width] for row in table])
    for row, ours in zip(scores, rank_scores(scores), strict=True):
        defined = ~np.isnan(row)
        # competition ranks, best first: scipy's "min" method on the negated scores; NaN after all others
        expected = np.full(width, defined.sum() + 1)
        expected[defined] = stats.rankdata(-row[defined], method="min")
        assert ours.tolist() == expected.tolist()
    for row, ours in zip(scores, case_ranks(scores), strict=True):
        if np.isnan(row).any():
            assert np.isnan(ours).all()
        else:
            assert ours.tolist() == stats.rankdata(-row, method="average").tolist()


def test_kendall_tau_matches_scipy_with_ties():
    from segdice.comparison._ranking import kendall_tau_b

    rng = np.random.default_rng(0)
    for n_runs in (2, 3, 5, 8):
        reference = rng.integers(1, n_runs + 1, n_runs)
        rankings = rng.integers(1, n_runs + 1, (200, n_runs))
        ours = kendall_tau_b(reference, rankings)
        theirs = np.array([stats.kendalltau(reference, r).statistic for r in rankings])
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)  # NaN where either ties every run


# --- real evaluate runs: ground truth, worst cases ---------------------------------------------------


def _box(shape, lo, hi):
    mask = np.zeros(shape, np.uint8)
    mask[lo[0] : hi[0], lo[1] : hi[1]] = 1
    return mask


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Three real runs on one ground truth: 'good', 'shifted', and 'broken' whose case c2 is missing and c3 fails."""
    tmp_path = tmp_path_factory.mktemp("evaluated")
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    truths = {f"c{k}": _box((16, 16), (2 + k % 3, 3), (10, 11 + k % 2)) for k in range(6)}
    for name, mask in truths.items():
        save_mask(gt_dir / f"{name}.npy", mask)
    runs = {}
    for model, shift in (("good", 0), ("shifted", 2), ("broken", 1)):
        folder = tmp_path / model
        folder.mkdir()
        for name, mask in truths.items():
            if model == "broken" and name == "c2":
                continue  # missing: evaluate scores an empty prediction
            pred = np.roll(mask, shift, axis=1)
            if model == "broken" and name == "c3":
                pred = np.zeros((8, 8), np.uint8)  # shape mismatch: the case fails
            save_mask(folder / f"{name}.npy", pred)
        runs[model] = tmp_path / f"run_{model}"
        segdice.evaluate(folder, gt_dir, out=runs[model], metrics="dice,hd95,nsd", workers=1)
    return gt_dir, runs


def test_worst_cases_are_scored_like_a_missing_prediction_and_counted(evaluated):
    _, runs = evaluated
    result = compare(
        [runs["good"], runs["broken"], runs["shifted"]], names="good,broken,shifted", resamples=100
    )
    cases = result.summary["cases"]["paired"]
    assert cases == [f"c{k}" for k in range(6)]
    broken = result.values["broken"]["1"]
    diagonal = math.hypot(16, 16)
    for case in ("c2", "c3"):  # missing, failed: both the worst case of an empty prediction
        k = cases.index(case)
        assert broken["dice"][k] == 0.0 and broken["nsd"][k] == 0.0
        assert broken["hd95"][k] == pytest.approx(diagonal)
    assert result.summary["runs"]["broken"]["1"]["n_missing"] == 1
    assert result.summary["runs"]["broken"]["1"]["n_failed"] == 1
    row = rows_by(result, "1", "dice", "good", "broken")
    assert (row["n"], row["worst_a"], row["worst_b"]) == (6, 0, 2)
    # good is perfect: it wins the two worst cases and the four shifted ones
    assert (row["wins"], row["ties"], row["losses"]) == (6, 0, 0)
    hd = rows_by(result, "1", "hd95", "good", "broken")
    assert (hd["wins"], hd["losses"], hd["direction"]) == (6, 0, "lower")
    assert hd["mean_diff"] < 0  # good minus broken: good has the smaller distances


def test_runs_on_different_ground_truth_are_refused(evaluated, tmp_path):
    gt_dir, runs = evaluated
    other_gt = tmp_path / "gt2"
    other_gt.mkdir()
    for path in sorted(gt_dir.iterdir()):
        mask = np.load(path)
        if path.stem == "c4":
            mask[0, 0] = 1  # one more ground-truth voxel
        np.save(other_gt / path.name, mask)
    segdice.evaluate(other_gt, other_gt, out=tmp_path / "run_other", metrics="dice,hd95,nsd", workers=1)
    with pytest.raises(
        SegDiceError, match=r"case 'c4', item '1' has gt_voxels \d+ in 'run_good' but \d+ in 'run_other'"
    ):
        compare([runs["good"], tmp_path / "run_other"])

    fewer = tmp_path / "gt3"
    fewer.mkdir()
    for path in sorted(gt_dir.iterdir())[:-1]:
        np.save(fewer / path.name, np.load(path))
    segdice.evaluate(fewer, fewer, out=tmp_path / "run_fewer", metrics="dice,hd95,nsd", workers=1)
    with pytest.raises(SegDiceError, match="case 'c5' is in 'run_good' but not in 'run_fewer'"):
        compare([runs["good"], tmp_path / "run_fewer"])


def test_bad_folders_and_options_are_refused(evaluated, tmp_path):
    _, runs = evaluated
    good, shifted = runs["good"], runs["shifted"]
    with pytest.raises(SegDiceError, match="expected two or more"):
        compare([good])
    with pytest.raises(SegDiceError, match="does not exist"):
        compare([good, tmp_path / "nowhere"])
    with pytest.raises(SegDiceError, match=r"has no per_case\.csv"):
        compare([good, evaluated[0]])
    with pytest.raises(SegDiceError, match="test"):
        compare([good, shifted], test="mannwhitney")
    with pytest.raises(SegDiceError, match="correction"):
        compare([good, shifted], correction="sidak")
    with pytest.raises(SegDiceError, match="alpha"):
        compare([good, shifted], alpha=1.5)
    with pytest.raises(SegDiceError, match="names"):
        compare([good, shifted], names="only-one")
    with pytest.raises(SegDiceError, match=r"metrics: run 'run_good' has no \['iou'\]"):
        compare([good, shifted], metrics="dice,iou")
    with pytest.raises(SegDiceError, match="items"):
        compare([good, shifted], items="liver")
    # an interrupted run: fewer cases in the CSV than its summary counts
    cut = tmp_path / "cut"
    cut.mkdir()
    lines = (shifted / "per_case.csv").read_text().splitlines()
    (cut / "per_case.csv").write_text("\n".join(lines[:3]) + "\n")
    (cut / "summary.json").write_text((shifted / "summary.json").read_text())
    with pytest.raises(SegDiceError, match="incomplete"):
        compare([good, cut])


def test_outputs_hold_every_number(evaluated, tmp_path):
    _, runs = evaluated
    out = tmp_path / "cmp"
    result = compare([runs["good"], runs["shifted"], runs["broken"]], out=out, names="a,b,c", resamples=100)
    with open(out / "comparison.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == list(COMPARISON_COLUMNS)
    assert len(rows) == 3 * 3  # 3 pairs x 1 item x 3 metrics
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["settings"] == {**result.summary["settings"]}
    assert saved["settings"]["test"] == "wilcoxon" and saved["settings"]["n_resamples"] == 100
    assert [r["run_a"] for r in saved["comparisons"]] == [r["run_a"] for r in result.comparisons]
    assert [run["name"] for run in saved["inputs"]["runs"]] == ["a", "b", "c"]
    for row, back in zip(result.comparisons, rows, strict=True):
        for key in ("mean_diff", "ci_low", "ci_high", "p_value", "p_corrected"):
            assert float(back[key]) == pytest.approx(row[key], nan_ok=True)
    assert (out / "comparison.html").is_file()


# --- the HTML page -----------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects the tags, attributes and text of a page."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_names_are_text_in_the_html(tmp_path, template):
    rng = np.random.default_rng(9)
    base = rng.uniform(0.4, 0.8, 12)
    # "$\\frac$" is invalid math text: drawing it fails unless names are drawn as plain text
    hostile = ["<script>alert(1)</script>", "$\\frac$ & <b>bold</b>", "plain"]
    folders = [
        write_run(
            tmp_path / f"r{k}",
            template,
            {"<img src=x onerror=alert(2)> $\\frac$": {"dice": base + 0.05 * k, "hd95": 5 - base}},
        )
        for k in range(3)
    ]
    compare(folders, names=hostile, out=tmp_path / "out", resamples=100)
    page = _Page()
    page.feed((tmp_path / "out" / "comparison.html").read_text(encoding="utf-8"))
    tags = [tag for tag, _ in page.tags]
    assert tags.count("script") == 1  # the page's own sorting script, nothing injected
    assert "b" not in tags
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert images and all(attrs["src"].startswith("data:image/png;base64,") for attrs in images)
    assert not any("onerror" in attrs for _, attrs in page.tags)
    text = "".join(page.text)
    for name in hostile:
        assert name in text
    assert "<img src=x onerror=alert(2)> $\\frac$" in text
    assert not any(attrs.get("href", "").startswith(("http:", "https:")) for _, attrs in page.tags)
