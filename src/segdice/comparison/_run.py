"""``compare()``: read the runs, pair their cases, and compute every paired statistic and ranking."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, check_choice, check_number
from segdice._version import __version__
from segdice.comparison import _paired, _ranking
from segdice.comparison._choices import (
    CORRECTIONS,
    DEFAULT_ALPHA,
    DEFAULT_CORRECTION,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    DEFAULT_TEST,
    TESTS,
)
from segdice.comparison._runs import Run, case_order, check_same_ground_truth, load_run, run_names
from segdice.comparison._worst import empty_prediction_rows
from segdice.comparison.result import ComparisonResult, higher_is_better

__all__ = ["compare"]

CONFIDENCE = 0.95
# Bytes of bootstrap resamples held at once (resamples x items*metrics in a block x (runs + pairs)).
_BLOCK_BYTES = 1 << 27

DEFINITIONS = {
    "pairing": (
        "cases pair by name; every run must hold the same cases with the same ground-truth voxel counts per "
        "case and label/region"
    ),
    "worst_case": (
        "a missing prediction is scored by segdice evaluate as an empty prediction (Dice 0 where the ground "
        "truth has the label, distances at the image diagonal); a case that failed in a run is scored the "
        "same way again, against its ground-truth file with that run's settings; both are counted"
    ),
    "excluded": "a case that failed in every run carries no information about any run and is left out",
    "undefined": "a pair where either value is NaN (e.g. both masks empty under empty=nan) is left out; n counts the pairs used",
    "difference": "run_a minus run_b, in the metric's units, whatever the metric's direction",
    "direction": "higher is better for overlap metrics and NSD; lower is better for hd, hd95, assd, masd",
    "mean_a, mean_b": "means over the n pairs used, so that mean_diff = mean_a - mean_b",
    "ci": (
        "paired percentile bootstrap of the mean difference: cases resampled with replacement (one index "
        "matrix per call, shared by every item, metric and pair), 95% interval"
    ),
    "wilcoxon": (
        "scipy.stats.wilcoxon on the differences, its defaults: zero differences dropped; exact for n <= 50 "
        "without zeros or ties, exact over all sign flips for n <= 13 with them, otherwise the normal "
        "approximation; effect size: matched-pairs rank-biserial correlation"
    ),
    "permutation": (
        "scipy.stats.permutation_test of the mean difference, swapping run_a and run_b within pairs; exact "
        "when 2**n <= n_resamples; effect size: Cohen's d_z"
    ),
    "ttest": "scipy.stats.ttest_rel; effect size: Cohen's d_z = mean(d) / std(d, ddof=1)",
    "identical": "a series whose differences are all 0 has p = 1 and effect size 0",
    "p_corrected": "adjusted over every test of the call (all items, metrics and pairs)",
    "significant": "p_corrected < alpha",
    "wins, ties, losses": "cases where run_a is better than, equal to, worse than run_b, in the metric's direction",
    "aggregate_then_rank": "runs ranked by their mean (1 = best; ties share the best rank)",
    "rank_then_aggregate": (
        "runs ranked on every case (ties share their mean rank), ranks averaged over cases, mean ranks "
        "ranked; cases where any run is NaN are left out"
    ),
    "rank_frequency": "fraction of bootstrap resamples in which the run holds each rank (columns: rank 1, 2, ...)",
    "kendall_tau": "Kendall's tau-b between the full-data ranking and each bootstrap ranking: mean, median, 2.5% and 97.5% quantiles",
}


def _names(option: str, value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    if not names or not all(names):
        raise SegDiceError(f"{option}: got {value!r}; expected names separated by commas")
    return list(dict.fromkeys(names))


def _select(option: str, wanted: list[str] | None, runs: Sequence[Run], attribute: str) -> list[str]:
    """The items or metrics to compare: those asked for (each must be in every run), else those every run has."""
    available = [getattr(run, attribute) for run in runs]
    if wanted is None:
        common = [x for x in available[0] if all(x in other for other in available[1:])]
        if not common:
            raise SegDiceError(
                f"{option}: the runs have no {option[:-1]} in common ("
                + "; ".join(f"{run.name!r}: {', '.join(a)}" for run, a in zip(runs, available, strict=True))
                + ")"
            )
        return common
    for run, have in zip(runs, available, strict=True):
        lacking = [x for x in wanted if x not in have]
        if lacking:
            raise SegDiceError(
                f"{option}: run {run.name!r} has no {lacking}; expected names from {', '.join(have)}"
            )
    return wanted


def _paired_values(
    runs: Sequence[Run], items: Sequence[str], metrics: Sequence[str]
) -> tuple[list[str], dict[str, str], np.ndarray, np.ndarray, np.ndarray]:
    """Values ``[R, I, M, N]`` over the paired cases, with the worst-case flags ``missing``/``failed`` ``[R, I, N]``."""
    first = runs[0]
    excluded: dict[str, str] = {}
    cases = []
    for case in first.cases:
        if all(run.failed(case, item) for run in runs for item in items):
            excluded[case] = first.errors[case, items[0]]
        else:
            cases.append(case)
    if not cases:
        raise SegDiceError(
            f"runs: every case failed in every run ({len(excluded)} case(s)); nothing to compare"
        )
    values = np.empty((len(runs), len(items), len(metrics), len(cases)))
    missing = np.empty((len(runs), len(items), len(cases)), dtype=bool)
    failed = np.zeros_like(missing)
    for r, run in enumerate(runs):
        rows, cols, ms = (
            case_order(run, cases),
            [run.items.index(i) for i in items],
            [run.metrics.index(m) for m in metrics],
        )
        mine = run.values[np.ix_(rows, cols, ms)]  # [N, I, M]
        missing[r] = run.missing[np.ix_(rows, cols)].T
        rescored_cases: dict[str, dict[str, dict]] = {}
        for case, item in run.errors:
            if item not in items or case in excluded:
                continue
            n, i = cases.index(case), list(items).index(item)
            if case not in rescored_cases:  # one evaluate call scores every item of the case
                rescored_cases[case] = empty_prediction_rows(run, case)
            rescored = rescored_cases[case][item]
            mine[n, i] = [math.nan if rescored.get(m) is None else float(rescored[m]) for m in metrics]
            failed[r, i, n] = True
            missing[r, i, n] = False
        values[r] = np.moveaxis(mine, 0, -1)
    return cases, excluded, values, missing, failed


def _blocks(n_combos: int, n_resamples: int, width: int) -> list[range]:
    per_block = max(1, _BLOCK_BYTES // (8 * n_resamples * max(width, 1)))
    return [range(s, min(s + per_block, n_combos)) for s in range(0, n_combos, per_block)]


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis, NaN left out; NaN (without a warning) where nothing is defined."""
    finite = np.isfinite(values)
    n = finite.sum(axis=-1)
    total = np.sum(np.where(finite, values, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def _tau_summary(tau: np.ndarray) -> dict:
    finite = tau[np.isfinite(tau)]
    if not finite.size:
        return dict.fromkeys(("mean", "median", "q025", "q975"), math.nan)
    q025, median, q975 = np.quantile(finite, [0.025, 0.5, 0.975])
    return {"mean": float(finite.mean()), "median": float(median), "q025": float(q025), "q975": float(q975)}


def _bootstrap(
    values: np.ndarray, signs: np.ndarray, pairs: list[tuple[int, int]], n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """CIs of every pair's mean difference ``[P, I, M]`` x2 and the ranking records per item and metric."""
    n_runs, n_items, n_metrics, n_cases = values.shape
    combos = [(i, m) for i in range(n_items) for m in range(n_metrics)]
    low = np.full((len(pairs), n_items, n_metrics), np.nan)
    high = np.full_like(low, np.nan)
    rankings: list[dict] = [{} for _ in combos]
    counts = _paired.resample_counts(n_cases, n_resamples, seed)
    # float32 sums of counts x half-integer ranks are exact below 2**24 (sum <= cases x runs)
    counts32 = counts.astype(np.float32) if n_cases * n_runs < (1 << 23) else counts
    a_idx = np.array([a for a, _ in pairs], dtype=int)
    b_idx = np.array([b for _, b in pairs], dtype=int)
    for block in _blocks(len(combos), n_resamples, 2 * n_runs + len(pairs)):
        ii = np.array([combos[k][0] for k in block])
        mm = np.array([combos[k][1] for k in block])
        k = len(block)
        per_run = values[:, ii, mm, :]  # [R, K, N]
        run_means = _paired.bootstrap_means(counts, per_run.reshape(n_runs * k, n_cases).T).reshape(
            -1, n_runs, k
        )
        # where both runs are defined on every case, the mean difference is the difference of the means
        complete = np.isfinite(per_run[a_idx]).all(axis=-1) & np.isfinite(per_run[b_idx]).all(axis=-1)
        boot = run_means[:, a_idx, :] - run_means[:, b_idx, :]
        p_part, k_part = np.nonzero(~complete)
        if p_part.size:
            diffs = per_run[a_idx[p_part], k_part, :] - per_run[b_idx[p_part], k_part, :]  # [partial, N]
            boot[:, p_part, k_part] = _paired.bootstrap_means(counts, diffs.T)
        lo, hi = _paired.percentile_interval(boot.reshape(n_resamples, -1), CONFIDENCE)
        low[:, ii, mm] = lo.reshape(len(pairs), k)
        high[:, ii, mm] = hi.reshape(len(pairs), k)
        sign = signs[mm][None, :]  # [1, K]: +1 higher is better, -1 lower
        # aggregate-then-rank
        full_means = _nanmean(per_run)  # [R, K]
        full_agg = _ranking.rank_scores((full_means * sign).T)  # [K, R]
        boot_agg = _ranking.rank_scores(np.moveaxis(run_means * sign[None], 1, -1))  # [B, K, R]
        # rank-then-aggregate
        per_case = _ranking.case_ranks(np.moveaxis(per_run * sign[..., None], 0, -1))  # [K, N, R]
        full_mean_rank = _nanmean(np.moveaxis(per_case, 1, -1))  # [K, R]
        full_rta = _ranking.rank_scores(-full_mean_rank)
        # ranks are half-integers: their resampled sums are exact in float32, at half the cost
        case_ranks = np.moveaxis(per_case, 1, 0).reshape(n_cases, k * n_runs).astype(np.float32)
        boot_mean_rank = _paired.bootstrap_means(counts32, case_ranks)
        boot_rta = _ranking.rank_scores(-boot_mean_rank.reshape(n_resamples, k, n_runs))
        freq_agg = _ranking.rank_frequencies(boot_agg)
        freq_rta = _ranking.rank_frequencies(boot_rta)
        tau_agg = _ranking.kendall_tau_b(full_agg[None], boot_agg)
        tau_rta = _ranking.kendall_tau_b(full_rta[None], boot_rta)
        for j, combo in enumerate(block):
            rankings[combo] = {
                "aggregate_then_rank": {
                    "mean": full_means[:, j].tolist(),
                    "rank": full_agg[j].tolist(),
                    "rank_frequency": freq_agg[j].tolist(),
                    "kendall_tau": _tau_summary(tau_agg[:, j]),
                },
                "rank_then_aggregate": {
                    "mean_rank": full_mean_rank[j].tolist(),
                    "rank": full_rta[j].tolist(),
                    "rank_frequency": freq_rta[j].tolist(),
                    "kendall_tau": _tau_summary(tau_rta[:, j]),
                },
            }
    return low, high, rankings


def compare(
    runs: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] | None = None,
    names: str | Sequence[str] | None = None,
    metrics: str | Sequence[str] | None = None,
    items: str | Sequence[str] | None = None,
    test: str = DEFAULT_TEST,
    correction: str = DEFAULT_CORRECTION,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> ComparisonResult:
    """Compare two or more evaluation runs case by case: paired differences, tests and rankings.

    For every label/region (item), metric and pair of runs ``(a, b)`` over the ``n`` paired cases with
    ``d_i = a_i - b_i``: both means, ``mean(d)`` with a seeded paired bootstrap 95% CI, ``median(d)``, the
    test's p-value, the p-value corrected over every test of the call, an effect size and the wins / ties
    / losses of ``a`` in the metric's direction. For every item and metric, both rankings of the runs
    (aggregate-then-rank, rank-then-aggregate) with their bootstrap rank frequencies and Kendall's tau.

    Parameters
    ----------
    runs
        Two or more folders written by ``segdice evaluate --out`` on the same ground truth.
    out
        Folder for ``comparison.csv``, ``comparison.json`` and ``comparison.html``; ``None`` writes nothing.
    names
        Display names, one per run (default: the folder names).
    metrics, items
        Names (lists or comma-separated strings) to compare; default: those every run has.
    test
        ``"wilcoxon"`` (signed-rank), ``"permutation"`` (paired, of the mean difference) or ``"ttest"``
        (paired t-test).
    correction
        ``"holm"``, ``"bonferroni"``, ``"fdr_bh"`` (Benjamini-Hochberg) or ``"none"``.
    alpha
        Level at which a corrected p-value is flagged ``significant``.
    resamples
        Bootstrap resamples (and random swaps of the permutation test).
    seed
        Seed of the bootstrap and of the permutation test: the same inputs and seed give the same numbers.

    Returns
    -------
    ComparisonResult
        ``comparisons`` (the rows of ``comparison.csv``), ``rankings``, ``summary`` (``comparison.json``).

    Raises
    ------
    SegDiceError
        For invalid options, a folder that is not a complete evaluation run, runs not scored on the same
        ground truth (naming the first difference), or a failed case whose ground truth is unreadable.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from segdice import evaluate
    >>> from segdice.io import save_mask
    >>> root = Path(tempfile.mkdtemp())
    >>> for folder in ("gt", "good", "poor"):
    ...     (root / folder).mkdir()
    >>> for k in range(6):
    ...     truth = np.zeros((12, 12), np.uint8); truth[2:9, 2:9] = 1
    ...     good = np.roll(truth, 1, axis=0); poor = np.roll(truth, 2 + k % 2, axis=1)
    ...     for folder, mask in (("gt", truth), ("good", good), ("poor", poor)):
    ...         _ = save_mask(root / folder / f"case{k}.png", mask)
    >>> for model in ("good", "poor"):
    ...     _ = evaluate(root / model, root / "gt", out=root / f"run_{model}", metrics="dice", workers=1)
    >>> result = compare([root / "run_good", root / "run_poor"], names="good,poor", resamples=200)
    >>> row = result.comparisons[0]
    >>> row["run_a"], row["run_b"], row["n"], row["wins"], row["losses"]
    ('good', 'poor', 6, 6, 0)
    >>> result.rankings[0]["aggregate_then_rank"]["rank"]
    [1, 2]
    """
    if isinstance(runs, (str, os.PathLike)) or len(runs) < 2:
        raise SegDiceError(f"runs: got {runs!r}; expected two or more folders written by segdice evaluate")
    check_choice("test", test, TESTS)
    check_choice("correction", correction, CORRECTIONS)
    check_number("alpha", alpha, minimum=0, maximum=1, strict_min=True, strict_max=True)
    check_number("resamples", resamples, minimum=1, integer=True)
    check_number("seed", seed, minimum=0, integer=True)
    paths = [Path(r) for r in runs]
    display = run_names(paths, _names("names", names))
    loaded = [load_run(path, name) for path, name in zip(paths, display, strict=True)]
    item_names = _select("items", _names("items", items), loaded, "items")
    metric_names = _select("metrics", _names("metrics", metrics), loaded, "metrics")
    check_same_ground_truth(loaded, item_names)
    cases, excluded, values, missing, failed = _paired_values(loaded, item_names, metric_names)

    paired = _Paired(loaded, item_names, metric_names, cases, excluded, values, missing, failed)
    pairs = list(itertools.combinations(range(len(loaded)), 2))
    low, high, ranking_data = _bootstrap(
        values, np.where(paired.higher, 1.0, -1.0), pairs, int(resamples), int(seed)
    )
    rows = _comparison_rows(paired, pairs, low, high, test, correction, alpha, int(resamples), int(seed))
    rankings = [
        {
            "item": item_names[k // len(metric_names)],
            "metric": metric_names[k % len(metric_names)],
            "direction": "higher" if paired.higher[k % len(metric_names)] else "lower",
            "runs": [run.name for run in loaded],
            **data,
        }
        for k, data in enumerate(ranking_data)
    ]
    settings = {
        "items": list(item_names),
        "metrics": list(metric_names),
        "test": test,
        "correction": correction,
        "alpha": float(alpha),
        "confidence": CONFIDENCE,
        "n_resamples": int(resamples),
        "seed": int(seed),
        "n_tests": sum(1 for row in rows if math.isfinite(row["p_value"])),
    }
    result = ComparisonResult(
        runs=[run.name for run in loaded],
        comparisons=rows,
        rankings=rankings,
        summary=_summary(paired, settings, rows, rankings),
        values={
            run.name: {
                item: {metric: values[r, i, m] for m, metric in enumerate(metric_names)}
                for i, item in enumerate(item_names)
            }
            for r, run in enumerate(loaded)
        },
    )
    if out is not None:
        result.write(out)
    return result


@dataclass(frozen=True)
class _Paired:
    """The runs' values over the paired cases: ``values [R, I, M, N]``, worst-case flags ``[R, I, N]``."""

    runs: Sequence[Run]
    items: Sequence[str]
    metrics: Sequence[str]
    cases: list[str]
    excluded: dict[str, str]
    values: np.ndarray
    missing: np.ndarray
    failed: np.ndarray

    @property
    def higher(self) -> np.ndarray:
        """Per metric, whether higher is better."""
        return np.array([higher_is_better(m) for m in self.metrics])


def _comparison_rows(
    paired: _Paired,
    pairs: list[tuple[int, int]],
    low: np.ndarray,
    high: np.ndarray,
    test: str,
    correction: str,
    alpha: float,
    resamples: int,
    seed: int,
) -> list[dict]:
    """One row of ``comparison.csv`` per pair, item and metric (in that nesting order)."""
    values = paired.values
    n_cases = values.shape[-1]
    a = np.stack([values[i] for i, _ in pairs]).reshape(-1, n_cases)  # [P*I*M, N]
    b = np.stack([values[j] for _, j in pairs]).reshape(-1, n_cases)
    diff = a - b
    used = np.isfinite(diff)
    n_used = used.sum(axis=1)
    mean_a = _nanmean(np.where(used, a, np.nan))
    mean_b = _nanmean(np.where(used, b, np.nan))
    median = np.full(diff.shape[0], np.nan)
    has = n_used > 0
    median[has] = [float(np.median(row[mask])) for row, mask in zip(diff[has], used[has], strict=True)]
    statistic, pvalue = _paired.paired_pvalues(a, b, test, n_resamples=resamples, seed=seed)
    corrected = _paired.correct_pvalues(pvalue, correction)
    rbc = _paired.rank_biserial(diff)
    dz = _paired.cohens_dz(diff)
    wins, ties, losses = _paired.wins_ties_losses(
        diff, np.tile(paired.higher, len(pairs) * len(paired.items))
    )
    worst = paired.missing | paired.failed
    rows = []
    s = 0
    for p, (ra, rb) in enumerate(pairs):
        for i, item in enumerate(paired.items):
            for m, metric in enumerate(paired.metrics):
                rows.append(
                    {
                        "item": item,
                        "metric": metric,
                        "run_a": paired.runs[ra].name,
                        "run_b": paired.runs[rb].name,
                        "direction": "higher" if paired.higher[m] else "lower",
                        "n": int(n_used[s]),
                        "n_undefined": int(n_cases - n_used[s]),
                        "worst_a": int(np.sum(worst[ra, i] & used[s])),
                        "worst_b": int(np.sum(worst[rb, i] & used[s])),
                        "mean_a": float(mean_a[s]),
                        "mean_b": float(mean_b[s]),
                        "mean_diff": float(mean_a[s] - mean_b[s]),
                        "ci_low": float(low[p, i, m]),
                        "ci_high": float(high[p, i, m]),
                        "median_diff": float(median[s]),
                        "test": test,
                        "statistic": float(statistic[s]),
                        "p_value": float(pvalue[s]),
                        "p_corrected": float(corrected[s]),
                        "significant": bool(corrected[s] < alpha),
                        "effect_size": float(rbc[s] if test == "wilcoxon" else dz[s]),
                        "rank_biserial": float(rbc[s]),
                        "cohens_dz": float(dz[s]),
                        "wins": int(wins[s]),
                        "ties": int(ties[s]),
                        "losses": int(losses[s]),
                    }
                )
                s += 1
    return rows


def _summary(paired: _Paired, settings: dict, rows: list[dict], rankings: list[dict]) -> dict:
    """The content of ``comparison.json``."""
    per_run = {
        run.name: {
            item: {
                "n_missing": int(paired.missing[r, i].sum()),
                "n_failed": int(paired.failed[r, i].sum()),
                "metrics": {
                    metric: {
                        "mean": float(_nanmean(paired.values[r, i, m])),
                        "n": int(np.isfinite(paired.values[r, i, m]).sum()),
                    }
                    for m, metric in enumerate(paired.metrics)
                },
            }
            for i, item in enumerate(paired.items)
        }
        for r, run in enumerate(paired.runs)
    }
    inputs = [
        {
            "name": run.name,
            "path": str(run.path),
            "cases": len(run.cases),
            "items": list(run.items),
            "metrics": list(run.metrics),
            "evaluated_with": run.summary.get("segdice_version"),
            "evaluate_inputs": run.summary["inputs"],
            "evaluate_definitions": run.summary["definitions"],
        }
        for run in paired.runs
    ]
    return {
        "segdice_version": __version__,
        "inputs": {"runs": inputs},
        "settings": settings,
        "definitions": DEFINITIONS,
        "cases": {"n_paired": len(paired.cases), "paired": paired.cases, "excluded": paired.excluded},
        "runs": per_run,
        "comparisons": rows,
        "rankings": rankings,
    }
