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
    s = np.where(np.isnan(scores), -np.inf, scores)
    better = s[..., None, :] > s[..., :, None]  # [..., r, other]: is `other` better than r?
    ranks = 1 + better.sum(axis=-1)
    # a NaN run is beaten by a -inf one only in name: rank every NaN run after all defined ones
    n_defined = np.sum(~np.isnan(scores), axis=-1, keepdims=True)
    return np.where(np.isnan(scores), n_defined + 1, ranks)


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
    reference = np.asarray(reference, dtype=np.float64)
    rankings = np.asarray(rankings, dtype=np.float64)
    n_runs = reference.shape[-1]
    shape = np.broadcast_shapes(reference.shape, rankings.shape)[:-1]
    score = np.zeros(shape)
    tied_ref = np.zeros(shape)
    tied_other = np.zeros(shape)
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
    n_runs = rankings.shape[-1]
    levels = np.arange(1, n_runs + 1)
    return np.mean(rankings[..., None] == levels, axis=0)
