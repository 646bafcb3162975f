"""Paired statistics of two runs over the same cases: bootstrap intervals, tests, effect sizes, corrections.

Everything works on many series at once (one series = one item, metric and pair of runs), with NaN marking a
case where a value is undefined; such a case is left out of its series. The bootstrap draws one matrix of
resampled cases per call and reuses it for every series, as counts (how often each case is drawn in each
resample), so that a resampled mean is one matrix product.
"""

from __future__ import annotations

import numpy as np

from segdice._checks import SegDiceError
from segdice.comparison._choices import CORRECTIONS, TESTS

__all__ = [
    "bootstrap_means",
    "cohens_dz",
    "correct_pvalues",
    "paired_pvalues",
    "percentile_interval",
    "rank_biserial",
    "resample_counts",
    "wins_ties_losses",
]

# Resamples drawn per block while building the count matrix (bounds the index buffer).
_DRAW_BLOCK = 1000
# Series per matrix product: bounds the (resamples x series) buffer.
_SERIES_BLOCK = 256
# SciPy's Wilcoxon uses its exact null distribution up to this size (without zeros or ties).
_WILCOXON_EXACT_MAX = 50
# With zeros or ties, SciPy's Wilcoxon switches to its (exact, 2**n sign flips) permutation test up to here.
_WILCOXON_PERMUTATION_MAX = 13
# Bytes of resampled data a vectorised permutation test may hold at once.
_PERMUTATION_BYTES = 1 << 27


def resample_counts(n_cases: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each case is drawn in each bootstrap resample.

    Parameters
    ----------
    n_cases
        Number of paired cases ``N``.
    n_resamples
        Number of resamples ``B``.
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same resamples.

    Returns
    -------
    numpy.ndarray
        ``float64 [B, N]``; every row sums to ``N`` (one resample of ``N`` cases with replacement).

    Examples
    --------
    >>> counts = resample_counts(4, 3, seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    """
    rng = np.random.default_rng(seed)
    counts = np.empty((n_resamples, n_cases), dtype=np.float64)
    for start in range(0, n_resamples, _DRAW_BLOCK):
        stop = min(start + _DRAW_BLOCK, n_resamples)
        drawn = rng.integers(0, n_cases, size=(stop - start, n_cases))
        drawn += np.arange(stop - start)[:, None] * n_cases  # one bincount for the whole block
        counts[start:stop] = np.bincount(drawn.ravel(), minlength=(stop - start) * n_cases).reshape(
            stop - start, n_cases
        )
    return counts


def bootstrap_means(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The mean of every series in every resample, NaN cases left out.

    ``mean_b = sum_i c_bi v_i w_i / sum_i c_bi w_i`` with ``c_bi`` the count of case ``i`` in resample ``b``
    and ``w_i`` = 1 where ``v_i`` is finite: resample the cases, then average the defined values, as the
    full-data mean does.

    Parameters
    ----------
    counts
        ``[B, N]`` from :func:`resample_counts`.
    values
        ``[N, S]``: one column per series, NaN where undefined.

    Returns
    -------
    numpy.ndarray
        ``[B, S]``; NaN where a resample drew no defined value of the series. float32 when both inputs
        are (exact for counts and half-integer ranks: their sums stay below 2**24).

    Examples
    --------
    >>> counts = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    >>> bootstrap_means(counts, np.array([[1.0], [np.nan], [4.0]])).ravel().tolist()
    [2.0, 2.5]
    """
    n_cases = counts.shape[1]
    finite = np.isfinite(values)
    out = np.empty((counts.shape[0], values.shape[1]), dtype=np.result_type(counts, values))
    complete = finite.all(axis=0)
    full = np.flatnonzero(complete)
    part = np.flatnonzero(~complete)
    for start in range(0, full.size, _SERIES_BLOCK):
        columns = full[start : start + _SERIES_BLOCK]
        out[:, columns] = counts @ values[:, columns] / n_cases
    for start in range(0, part.size, _SERIES_BLOCK):
        columns = part[start : start + _SERIES_BLOCK]
        weights = finite[:, columns].astype(out.dtype)
        sums = counts @ np.where(finite[:, columns], values[:, columns], 0.0)
        drawn = counts @ weights
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, columns] = np.where(drawn > 0, sums / drawn, np.nan)
    return out


def percentile_interval(resampled: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of every column of ``resampled`` ``[B, S]`` (NaN resamples ignored).

    Examples
    --------
    >>> low, high = percentile_interval(np.arange(101.0)[:, None], 0.9)
    >>> round(float(low[0]), 6), round(float(high[0]), 6)
    (5.0, 95.0)
    """
    tail = (1.0 - confidence) / 2.0
    if np.isnan(resampled).any():
        low, high = np.nanquantile(resampled, [tail, 1.0 - tail], axis=0)
    else:
        low, high = np.quantile(resampled, [tail, 1.0 - tail], axis=0)
    return low, high


def _mask_groups(finite: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Series (rows of ``finite [S, N]``) grouped by which cases they define: ``[(series, cases)]``."""
    if finite.all():
        return [(np.arange(finite.shape[0]), np.arange(finite.shape[1]))]
    packed = np.packbits(finite, axis=1)
    _, inverse = np.unique(packed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    groups = []
    for g in range(int(inverse.max()) + 1):
        series = np.flatnonzero(inverse == g)
        groups.append((series, np.flatnonzero(finite[series[0]])))
    return groups


def _wilcoxon_methods(d: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """The rows of ``d [S, n]`` grouped by the method ``scipy.stats.wilcoxon(row)`` picks for each one alone.

    SciPy's default (``method="auto"``) looks at the whole batch when it decides, so rows are tested in
    groups that each get the method of their own data: the exact null distribution for n <= 50 without
    zeros or ties; with zeros or ties, the exact permutation distribution for n <= 13, else the normal
    approximation (as for every n > 50).
    """
    rows = np.arange(d.shape[0])
    n = d.shape[1]
    if n > _WILCOXON_EXACT_MAX:
        return [("asymptotic", rows)]
    magnitudes = np.sort(np.abs(d), axis=1)
    irregular = (magnitudes[:, 0] == 0) | np.any(magnitudes[:, 1:] == magnitudes[:, :-1], axis=1)
    fallback = "permutation" if n <= _WILCOXON_PERMUTATION_MAX else "asymptotic"
    groups = [("exact", rows[~irregular]), (fallback, rows[irregular])]
    return [(method, members) for method, members in groups if members.size]


def _signed_rank_permutation(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SciPy's Wilcoxon permutation p-value (n <= 13, with zeros or ties), all ``2**n`` sign flips at once.

    ``scipy.stats.wilcoxon(row, method=PermutationMethod())`` enumerates the same ``2**n`` sign flips of
    the differences (zeros dropped, ties at their mean rank) but recomputes the ranks for each flip, about a
    second per row; the ranks do not change under a flip, so the null distribution of ``R+`` is one product
    of the flip patterns with the ranks. The two-sided p-value and its relative tolerance (100 machine
    epsilons) are those of :func:`scipy.stats.permutation_test`.
    """
    from scipy.stats import rankdata

    n = d.shape[1]
    ranks = rankdata(np.abs(d), axis=1) - np.sum(d == 0, axis=1, keepdims=True)
    ranks = np.where(d != 0, ranks, 0.0)
    plus = np.sum(np.where(d > 0, ranks, 0.0), axis=1)
    minus = np.sum(np.where(d < 0, ranks, 0.0), axis=1)
    # every subset of the cases counted positive: a flip of the others' signs
    patterns = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
    null = patterns.astype(np.float64) @ ranks.T  # [2**n, rows]
    gamma = np.abs(np.finfo(np.float64).eps * 100 * plus)
    less = np.mean(null <= plus + gamma, axis=0)
    greater = np.mean(null >= plus - gamma, axis=0)
    return np.minimum(plus, minus), np.clip(2 * np.minimum(less, greater), 0.0, 1.0)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_pvalues(
    a: np.ndarray, b: np.ndarray, test: str, *, n_resamples: int = 9999, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-values of the paired test of every series: ``a[s]`` against ``b[s]``.

    Parameters
    ----------
    a, b
        ``[S, N]`` paired values; a case where either is NaN is left out of that series.
    test
        ``"wilcoxon"`` (:func:`scipy.stats.wilcoxon` on ``a - b``, its defaults: zero differences
        dropped, exact null distribution for n <= 50 without ties or zeros), ``"permutation"``
        (:func:`scipy.stats.permutation_test` of the mean difference, swapping within pairs,
        ``n_resamples`` random swaps from ``seed``; exact when ``2**n <= n_resamples``) or ``"ttest"``
        (:func:`scipy.stats.ttest_rel`).
    n_resamples, seed
        For the permutation test only.

    Returns
    -------
    statistic, pvalue : numpy.ndarray
        ``[S]`` each. A series whose differences are all 0 gets p = 1 (no evidence of a difference) and
        statistic NaN; one with fewer than 2 defined pairs gets NaN.

    Examples
    --------
    >>> a = np.array([[0.9, 0.8, 0.7, 0.95, 0.85, 0.9, 0.75, 0.8]])
    >>> b = a - np.array([0.1, 0.2, 0.1, 0.15, 0.1, 0.2, 0.12, 0.1])
    >>> _, p = paired_pvalues(a, b, "wilcoxon")
    >>> float(p[0])  # exact: all 8 differences positive
    0.0078125
    """
    from scipy import stats

    if test not in TESTS:
        raise SegDiceError(f"test: got {test!r}; expected one of {', '.join(TESTS)}")
    diff = a - b
    n_series = diff.shape[0]
    statistic = np.full(n_series, np.nan)
    pvalue = np.full(n_series, np.nan)
    for series, cases in _mask_groups(np.isfinite(diff)):
        n = cases.size
        if n < 2:
            continue
        d = diff[np.ix_(series, cases)]
        identical = ~np.any(d != 0, axis=1)
        pvalue[series[identical]] = 1.0
        series, d = series[~identical], d[~identical]
        if not series.size:
            continue
        x, y = a[np.ix_(series, cases)], b[np.ix_(series, cases)]
        if test == "wilcoxon":
            for method, rows in _wilcoxon_methods(d):
                if method == "permutation":
                    stat, p = _signed_rank_permutation(d[rows])
                else:
                    result = stats.wilcoxon(d[rows], axis=1, method=method)
                    stat, p = result.statistic, result.pvalue
                statistic[series[rows]], pvalue[series[rows]] = stat, p
        elif test == "ttest":
            result = stats.ttest_rel(x, y, axis=1)
            statistic[series], pvalue[series] = result.statistic, result.pvalue
        else:
            batch = max(1, _PERMUTATION_BYTES // (8 * d.size))
            result = stats.permutation_test(
                (x, y),
                _mean_difference,
                permutation_type="samples",
                vectorized=True,
                n_resamples=n_resamples,
                batch=batch,
                axis=1,
                rng=np.random.default_rng(seed),
            )
            statistic[series], pvalue[series] = result.statistic, result.pvalue
    return statistic, pvalue


def rank_biserial(diff: np.ndarray) -> np.ndarray:
    """Matched-pairs rank-biserial correlation of every row of ``diff [S, N]`` (NaN left out).

    ``r = (R+ - R-) / (R+ + R-)``, with ``R+`` (``R-``) the sum of the ranks of ``|d|`` over the positive
    (negative) differences, zero differences dropped as in the Wilcoxon test (ties get their mean rank).
    In [-1, 1]: +1 when every nonzero difference is positive. 0 when every difference is 0.

    Examples
    --------
    >>> rank_biserial(np.array([[1.0, 2.0, -3.0, 0.0]])).round(4).tolist()
    [0.0]
    """
    from scipy.stats import rankdata

    out = np.zeros(diff.shape[0])
    for series, cases in _mask_groups(np.isfinite(diff)):
        if not cases.size:
            out[series] = np.nan
            continue
        d = diff[np.ix_(series, cases)]
        # zeros take the lowest ranks; shifting by their count gives the ranks among nonzero differences
        ranks = rankdata(np.abs(d), axis=1) - np.sum(d == 0, axis=1, keepdims=True)
        plus = np.sum(np.where(d > 0, ranks, 0.0), axis=1)
        minus = np.sum(np.where(d < 0, ranks, 0.0), axis=1)
        total = plus + minus
        with np.errstate(invalid="ignore", divide="ignore"):
            out[series] = np.where(total > 0, (plus - minus) / total, 0.0)
    return out


def cohens_dz(diff: np.ndarray) -> np.ndarray:
    """Cohen's ``d_z`` of every row of ``diff [S, N]``: ``mean(d) / std(d, ddof=1)`` (NaN left out).

    0 when every difference is 0; NaN with fewer than 2 pairs or when the differences are all equal
    but not 0 (no spread to scale by).

    Examples
    --------
    >>> float(cohens_dz(np.array([[1.0, 2.0, 3.0]]))[0])
    2.0
    """
    out = np.full(diff.shape[0], np.nan)
    for series, cases in _mask_groups(np.isfinite(diff)):
        if cases.size < 2:
            continue
        d = diff[np.ix_(series, cases)]
        mean, std = d.mean(axis=1), d.std(axis=1, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[series] = np.where(std > 0, mean / std, np.where(np.all(d == 0, axis=1), 0.0, np.nan))
    return out


def wins_ties_losses(
    diff: np.ndarray, higher_is_better: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cases where the first run is better / equal / worse, per row of ``diff = a - b [S, N]`` (NaN left out).

    ``higher_is_better [S]`` gives each series' direction (False for distances).

    Examples
    --------
    >>> w, t, l = wins_ties_losses(np.array([[1.0, 0.0, -2.0, 3.0]]), np.array([False]))
    >>> w.tolist(), t.tolist(), l.tolist()
    ([1], [1], [2])
    """
    signed = np.where(np.asarray(higher_is_better)[:, None], diff, -diff)
    return (
        np.sum(signed > 0, axis=1),
        np.sum(signed == 0, axis=1),
        np.sum(signed < 0, axis=1),
    )


def correct_pvalues(pvalues: np.ndarray, method: str) -> np.ndarray:
    """Adjust p-values for multiple testing over every finite entry of ``pvalues`` (NaN kept).

    * ``"holm"``: step-down Holm-Bonferroni, ``p_(k) -> max_{j<=k} min(1, (m - j + 1) p_(j))``;
      controls the family-wise error rate.
    * ``"bonferroni"``: ``min(1, m p)``; family-wise error rate, more conservative than Holm.
    * ``"fdr_bh"``: Benjamini-Hochberg (:func:`scipy.stats.false_discovery_control`); controls the false
      discovery rate (for independent or positively dependent tests).
    * ``"none"``: unchanged.

    Examples
    --------
    >>> correct_pvalues(np.array([0.01, 0.04, 0.03]), "holm").round(4).tolist()
    [0.03, 0.06, 0.06]
    """
    if method not in CORRECTIONS:
        raise SegDiceError(f"correction: got {method!r}; expected one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=np.float64)
    out = p.copy()
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if method == "none" or m == 0:
        return out
    values = p[finite]
    if method == "bonferroni":
        out[finite] = np.minimum(1.0, values * m)
    elif method == "holm":
        order = np.argsort(values, kind="stable")
        stepped = np.minimum(1.0, np.maximum.accumulate(values[order] * (m - np.arange(m))))
        adjusted = np.empty(m)
        adjusted[order] = stepped
        out[finite] = adjusted
    else:
        from scipy.stats import false_discovery_control

        out[finite] = false_discovery_control(values, method="bh")
    return out
