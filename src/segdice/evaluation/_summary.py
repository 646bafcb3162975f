"""Summary statistics of per-case scores, with a seeded percentile-bootstrap confidence interval.

NaN values (a metric undefined for a case, e.g. Dice with both masks empty under the ``nan`` policy) are
left out of every statistic and counted in ``n_nan``; ``n`` counts the values used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["BOOTSTRAP_RESAMPLES", "BOOTSTRAP_SEED", "bootstrap_ci", "describe_values"]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Resamples drawn per block: bounds memory to _BLOCK x n indices for large case counts.
_BLOCK = 250


def bootstrap_ci(
    values: np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean.

    Cases are resampled with replacement ``n_resamples`` times from a ``numpy.random.default_rng(seed)``
    stream, so the same values always give the same interval.

    Parameters
    ----------
    values
        Finite values, one per case.
    confidence
        Coverage of the interval, in (0, 1).
    n_resamples
        Number of bootstrap resamples.
    seed
        Seed of the random generator.

    Returns
    -------
    tuple of float
        ``(low, high)``; ``(nan, nan)`` for no values, ``(v, v)`` for a single value.

    Examples
    --------
    >>> bootstrap_ci(np.array([1.0, 1.0, 1.0]))
    (1.0, 1.0)
    >>> low, high = bootstrap_ci(np.arange(100.0))
    >>> bool(low < 49.5 < high)
    True
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return math.nan, math.nan
    if n == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, _BLOCK):
        stop = min(start + _BLOCK, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def describe_values(values: Iterable[float], *, n_missing: int = 0, seed: int = BOOTSTRAP_SEED) -> dict:
    """Summary statistics of one metric over cases.

    Parameters
    ----------
    values
        One value per scored case; NaN marks an undefined value.
    n_missing
        How many of those cases had no prediction (already scored as the worst case); reported only.
    seed
        Seed of the bootstrap.

    Returns
    -------
    dict
        ``mean``, ``std`` (sample standard deviation, ``ddof=1``), ``median``, ``q1``, ``q3``, ``min``,
        ``max``, ``ci_low``, ``ci_high`` (95% percentile bootstrap of the mean), ``n`` (values used),
        ``n_nan`` and ``n_missing``. Statistics of no values are NaN; ``std`` of one value is NaN.

    Examples
    --------
    >>> s = describe_values([0.5, float("nan"), 1.0, 0.0])
    >>> s["mean"], s["median"], s["n"], s["n_nan"]
    (0.5, 0.5, 3, 1)
    """
    array = np.asarray(list(values), dtype=np.float64)
    nan_mask = np.isnan(array)
    finite = array[~nan_mask]
    n = int(finite.size)
    result: dict = {}
    if n:
        q1, median, q3 = np.quantile(finite, [0.25, 0.5, 0.75])
        low, high = bootstrap_ci(finite, seed=seed)
        result.update(
            mean=float(finite.mean()),
            std=float(finite.std(ddof=1)) if n > 1 else math.nan,
            median=float(median),
            q1=float(q1),
            q3=float(q3),
            min=float(finite.min()),
            max=float(finite.max()),
            ci_low=low,
            ci_high=high,
        )
    else:
        result.update(
            dict.fromkeys(("mean", "std", "median", "q1", "q3", "min", "max", "ci_low", "ci_high"), math.nan)
        )
    result.update(n=n, n_nan=int(nan_mask.sum()), n_missing=int(n_missing))
    return result


def summarize_rows(rows: Iterable[dict], item_names: Iterable[str], metrics: Iterable[str]) -> dict:
    """Per item and metric statistics of per-case rows.

    Rows whose ``error`` is set are left out and counted in ``n_error``; rows of missing predictions
    (already scored as the worst case) are kept and counted in ``n_missing``.

    Returns
    -------
    dict
        ``{item: {metric: describe_values(...) + {"n_error": int}}}``.

    Examples
    --------
    >>> rows = [
    ...     {"item": "1", "dice": 1.0, "error": "", "missing_pred": False},
    ...     {"item": "1", "dice": 0.0, "error": "", "missing_pred": True},
    ...     {"item": "1", "dice": 0.3, "error": "unreadable", "missing_pred": False},
    ... ]
    >>> s = summarize_rows(rows, ["1"], ["dice"])["1"]["dice"]
    >>> s["mean"], s["n"], s["n_missing"], s["n_error"]
    (0.5, 2, 1, 1)
    """
    rows = list(rows)
    metrics = list(metrics)
    results: dict = {}
    for name in item_names:
        mine = [r for r in rows if r["item"] == name]
        good = [r for r in mine if not r.get("error")]
        n_error = len(mine) - len(good)
        n_missing = sum(1 for r in good if r.get("missing_pred"))
        per_metric = {}
        for metric in metrics:
            values = [math.nan if r.get(metric) is None else float(r[metric]) for r in good]
            stats = describe_values(values, n_missing=n_missing)
            stats["n_error"] = n_error
            per_metric[metric] = stats
        results[name] = per_metric
    return results
