"""Rankings of several runs per item and metric, and how stable they are under resampling of the cases.

* **aggregate-then-rank**: rank the runs by their mean over cases.
* **rank-then-aggregate**: rank the runs on every case (ties share their mean rank), average each run's
  ranks over the cases, and rank those mean ranks. A case where any run's value is NaN is left out.

Rank 1 is the best run; tied runs share the best of their ranks (1, 1, 3). Stability: both rankings are
recomputed on every bootstrap resample of the cases (the resamples of the paired differences), giving
how often each run holds each rank and Kendall's tau-b between the full-data ranking and each resampled one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["case_ranks", "kendall_tau_b", "rank_frequencies", "rank_scores"]


def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis, higher score better: 1 + the number of strictly better runs.

    NaN scores (a run without one defined value) rank last.

    Examples
    --------
    >>> rank_scores(np.array([0.7, 0.9, 0.7, np.nan])).tolist()
    [2, 1, 2, 4]
    """
    undefined = np.isnan(scores)
    s = np.where(undefined, -np.inf, scores)
    ranks = np.ones(s.shape, dtype=np.int16)
    for j in range(s.shape[-1]):  # one pass per run: no [..., R, R] temporary
        ranks += s[..., j : j + 1] > s
    # every NaN run ranks after all defined ones (a -inf score would only tie with them)
    n_defined = np.sum(~undefined, axis=-1, keepdims=True, dtype=np.int16)
    return np.where(undefined, n_defined + 1, ranks)


def case_ranks(scores: np.ndarray) -> np.ndarray:
    """Per-case ranks along the last axis (higher score better), ties sharing their mean rank.

    A case where any run is NaN gets NaN ranks for every run.

    Examples
    --------
    >>> case_ranks(np.array([[0.5, 0.9, 0.5], [0.1, np.nan, 0.2]])).tolist()
    [[2.5, 1.0, 2.5], [nan, nan, nan]]
    """
    better = np.sum(scores[..., None, :] > scores[..., :, None], axis=-1)
    tied = np.sum(scores[..., None, :] == scores[..., :, None], axis=-1) - 1
    ranks = 1.0 + better + tied / 2.0
    undefined = np.isnan(scores).any(axis=-1, keepdims=True)
    return np.where(undefined, np.nan, ranks)


def kendall_tau_b(reference: np.ndarray, rankings: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between ``reference [..., R]`` and every ranking ``rankings [B, ..., R]``.

    ``tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2))`` over the ``n0 = R (R - 1) / 2`` pairs of runs, with
    ``C`` / ``D`` the concordant / discordant pairs and ``n1`` / ``n2`` the pairs tied in either ranking
    (:func:`scipy.stats.kendalltau`'s default variant, computed for all resamples at once). NaN when either
    ranking ties every run.

    Examples
    --------
    >>> kendall_tau_b(np.array([1, 2, 3]), np.array([[1, 2, 3], [3, 2, 1], [1, 3, 2]])).round(4).tolist()
    [1.0, -1.0, 0.3333]
    """
    # integer ranks stay small integers: their signs are computed in int16, a quarter of the memory traffic
    exact = all(np.issubdtype(np.asarray(x).dtype, np.integer) for x in (reference, rankings))
    dtype = np.int16 if exact else np.float64
    reference = np.asarray(reference, dtype=dtype)
    rankings = np.asarray(rankings, dtype=dtype)
    n_runs = reference.shape[-1]
    shape = np.broadcast_shapes(reference.shape, rankings.shape)[:-1]
    score = np.zeros(shape, dtype=np.int32)
    tied_ref = np.zeros(shape, dtype=np.int32)
    tied_other = np.zeros(shape, dtype=np.int32)
    for i in range(n_runs):
        for j in range(i + 1, n_runs):
            sx = np.sign(reference[..., i] - reference[..., j])
            sy = np.sign(rankings[..., i] - rankings[..., j])
            score += sx * sy
            tied_ref += sx == 0
            tied_other += sy == 0
    pairs = n_runs * (n_runs - 1) / 2
    denominator = np.sqrt((pairs - tied_ref) * (pairs - tied_other))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, score / denominator, np.nan)


def rank_frequencies(rankings: np.ndarray) -> np.ndarray:
    """How often each run holds each rank: ``rankings [B, ..., R]`` -> ``[..., R runs, R ranks]`` fractions.

    Examples
    --------
    >>> rank_frequencies(np.array([[1, 2], [2, 1], [1, 2], [1, 1]])).tolist()
    [[0.75, 0.25], [0.5, 0.5]]
    """
    rankings = np.asarray(rankings)
    n_runs = rankings.shape[-1]
    n_resamples = rankings.shape[0]
    # one bincount over (position, run, rank) instead of comparing against every rank
    slots = np.arange(int(np.prod(rankings.shape[1:]))).reshape(rankings.shape[1:]) * n_runs
    flat = (slots[None] + rankings.astype(np.intp) - 1).ravel()
    counts = np.bincount(flat, minlength=slots.size * n_runs)
    return counts.reshape(*rankings.shape[1:], n_runs) / n_resamples
