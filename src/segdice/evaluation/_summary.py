"""Summary statistics of per-case scores, with a seeded percentile-bootstrap confidence interval.

NaN values (a metric undefined for a case, e.g. Dice with both masks empty under the ``nan`` policy) are
left out of every statistic and counted in ``n_nan``; ``n`` counts the values used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from segdice._version import __version__
from segdice.evaluation._metric_names import ACROSS_LABEL_ITEM, item_metrics
from segdice.report.digest import distance_unit

if TYPE_CHECKING:
    from segdice.evaluation._options import Options
    from segdice.evaluation._pairing import CasePair
    from segdice.evaluation._scoring import Item

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "DEFINITIONS",
    "bootstrap_ci",
    "build_summary",
    "describe_values",
    "foreground_mean",
    "summarize_rows",
]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Resamples drawn per block: bounds memory to _BLOCK x n indices for large case counts.
_BLOCK = 250

# hd95 with evaluate(hd95="pooled")
_HD95_POOLED = (
    "the 95th percentile (linear interpolation) of the surface distances of both directions pooled "
    "(medpy's hd95), surface voxels and exact Euclidean distances as for the default definition"
)

# hd95 with evaluate(surface="surfels")
_HD95_SURFELS = (
    "the larger of the two directed 95th percentiles of DeepMind's surfel distances, each weighted by its "
    "surfel's area (compute_robust_hausdorff, the HD95 BraTS reports); HD, ASSD and MASD on the same surfels"
)

# The "definitions" of summary.json that do not depend on the run, in file order. build_summary() adds
# the empty policy in use before them and the NSD tolerance in use after the NSD's definition.
DEFINITIONS: dict[str, str | dict] = {
    "gt_empty_prediction_not": "Dice and IoU 0: the false positive is always counted",
    "hd95": (
        "the larger of the two directed 95th percentiles (linear interpolation) of the distances "
        "between surface voxels (mask XOR its face-connected erosion), exact Euclidean nearest-surface "
        "distances in physical units (voxel spacing), found by a search outward from each surface voxel "
        "and a k-d tree beyond it"
    ),
    "hd": "the largest surface distance in either direction",
    "biou": "boundary IoU (Cheng et al. 2021): IoU of the inner bands of width 2% of the image diagonal",
    "cldice": "clDice from the scikit-image skeletons (MetricsReloaded's cldice)",
    "gds": (
        "generalized Dice (Sudre et al. 2017) of a case over every scored label at once (regions overlap "
        "labels and are left out; NaN when only regions are scored): 2 sum_c w_c TP_c / sum_c w_c (2TP_c + FP_c + FN_c), w_c = 1/G_c^2 with "
        "G_c the ground-truth voxels of label c; a label absent from the ground truth takes the largest "
        "weight of the present ones, every weight is 1 when the ground truth has no scored label, and "
        "both masks empty follow the empty policy (MONAI's GeneralizedDiceScore); one value per case, "
        "on the case's row whose item is 'all' (labels column empty), empty on the label rows; its "
        "statistics are results['all']['gds'], never part of foreground_mean"
    ),
    "assd": "mean of the surface distances of both directions pooled",
    "masd": "mean of the two directed mean surface distances",
    "nsd": "normalised surface Dice at the tolerance, surfel-area definition of Nikolov et al.",
    "worst_case": (
        "distance metrics with exactly one side empty: the image diagonal in physical units, "
        "sqrt(sum((shape_i * spacing_i)**2)); both sides empty: NaN"
    ),
    "missing_prediction": (
        "scored as an empty prediction (Dice 0 where the ground truth has the label, distances at "
        "the worst case) and counted in n_missing"
    ),
    "foreground_mean": (
        "per metric, the mean over labels and regions of their means over cases (nnU-Net's "
        "foreground_mean); a label whose mean is NaN is left out"
    ),
    "errors": "rows with an error are left out of the statistics and counted in n_error",
    "ignore_label": "ground-truth voxels with this label are left out of every count and surface",
    "spacing": (
        "array axis order, from the ground-truth header (NIfTI pixdim, ImageJ TIFF, .npz 'spacing'), "
        "1 per axis when the file has none; spacing_override replaces it"
    ),
    "geometry": (
        "prediction and ground truth share shape, spacing, origin and direction (relative tolerance 1e-4), "
        "else the case is an error row naming both values; with reorient, axis permutations and flips "
        "on the same world grid are undone first (noted in the rows); a spacing override skips the check"
    ),
    "labels": (
        "auto: every label > 0 present in any ground truth or prediction, less the ignore label (a label "
        "only the prediction has scores Dice 0 where it appears); values outside the scored labels and "
        "regions count as background; binarize: every value > 0 is label 1"
    ),
    "statistics": (
        "over cases, NaN left out: mean, std (ddof=1), median and quartiles (linear interpolation), min, max"
    ),
    "bootstrap": {
        "method": "percentile bootstrap of the mean over cases",
        "confidence": CONFIDENCE,
        "n_resamples": BOOTSTRAP_RESAMPLES,
        "seed": BOOTSTRAP_SEED,
    },
}
# What the overlap metrics are when both masks are empty, per policy of ``empty``.
_EMPTY_TEXTS = {"nan": "NaN: left out of the statistics and counted in n_nan", "0": "0", "1": "1"}


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


def build_summary(
    per_case: list[dict],
    pairs: Sequence[CasePair],
    extras: Sequence[Path],
    items: Sequence[Item],
    options: Options,
) -> dict:
    """The content of ``summary.json``: inputs, definitions, counts, failed cases and statistics."""
    failed: dict[str, str] = {}
    for row in per_case:
        if row["error"] and row["case"] not in failed:
            failed[row["case"]] = row["error"]
    per_item = item_metrics(options.metrics)
    results = summarize_rows(per_case, [i.name for i in items], per_item)
    across = [m for m in options.metrics if m not in per_item]
    if across:  # the across-label row of every case (gds): its own entry, never in foreground_mean
        results[ACROSS_LABEL_ITEM] = summarize_rows(per_case, [ACROSS_LABEL_ITEM], across)[ACROSS_LABEL_ITEM]
    sources = spacing_sources(per_case)
    summary = {
        "segdice_version": __version__,
        "inputs": {
            "pred": str(options.pred),
            "gt": str(options.gt),
            "pred_suffix": options.pred_suffix,
            "gt_suffix": options.gt_suffix,
            "labels": [i.ids[0] for i in items if not i.region],
            "regions": {i.name: list(i.ids) for i in items if i.region},
            "ignore_label": options.ignore_label,
            "metrics": list(options.metrics),
            "spacing_override": list(options.spacing) if options.spacing is not None else None,
            "reorient": options.reorient,
            "binarize": options.binarize,
            "recursive": options.recursive,
            "pred_glob": options.pred_glob,
            "gt_glob": options.gt_glob,
        },
        "definitions": _definitions(options),
        "counts": {
            "cases": len(pairs),
            "scored": len(pairs) - len(failed),
            "failed": len(failed),
            "missing_predictions": sum(1 for p in pairs if p.pred is None),
            "extra_predictions": len(extras),
        },
        "extra_predictions": [str(p) for p in extras],
        "failed_cases": failed,
        "items": [{"name": i.name, "labels": list(i.ids), "region": i.region} for i in items],
        "results": results,
        "foreground_mean": foreground_mean({i.name: results[i.name] for i in items}, per_item),
        "spacing_sources": sources,
        "distance_unit": distance_unit(sources),
    }
    if across:
        summary["across_labels"] = {
            "item": ACROSS_LABEL_ITEM,
            "name": "all labels",
            "labels": [i.ids[0] for i in items if not i.region],
            "metrics": across,
        }
    return summary


def spacing_sources(per_case: Iterable[dict]) -> dict[str, int]:
    """The scored cases counted by where their spacing came from (``header``, ``override``, ``none``).

    A case counts once (its rows share one spacing); failed cases are left out. A row without a
    ``spacing_source`` counts as ``header`` (a ``per_case.csv`` written before the column existed cannot be
    resumed, so no such row comes from a file).

    Examples
    --------
    >>> rows = [{"case": "a", "error": "", "spacing_source": "none"}, {"case": "a", "error": "", "spacing_source": "none"},
    ...         {"case": "b", "error": "", "spacing_source": "header"}, {"case": "c", "error": "bad file"}]
    >>> spacing_sources(rows)
    {'header': 1, 'none': 1}
    """
    by_case = {row["case"]: row.get("spacing_source") or "header" for row in per_case if not row.get("error")}
    counts: dict[str, int] = {}
    for source in by_case.values():
        counts[source] = counts.get(source, 0) + 1
    return dict(sorted(counts.items()))


def foreground_mean(results: dict, metrics: Iterable[str]) -> dict[str, float]:
    """Per metric, the mean over items of their means over cases (nnU-Net's ``foreground_mean``).

    Items whose mean is NaN (no value for any case) are left out; NaN when every item's is.

    Examples
    --------
    >>> results = {"1": {"dice": {"mean": 0.5}}, "2": {"dice": {"mean": 1.0}}, "3": {"dice": {"mean": math.nan}}}
    >>> foreground_mean(results, ["dice"])
    {'dice': 0.75}
    """
    means = {}
    for metric in metrics:
        values = [s[metric]["mean"] for s in results.values() if metric in s and not math.isnan(s[metric]["mean"])]
        means[metric] = float(np.mean(values)) if values else math.nan
    return means


def _definitions(options: Options) -> dict:
    definitions: dict = {
        "empty": options.empty_key,
        "both_empty_overlap": (
            f"overlap metrics when prediction and ground truth are both empty: {_EMPTY_TEXTS[options.empty_key]}"
        ),
    }
    for key, text in DEFINITIONS.items():
        definitions[key] = dict(text) if isinstance(text, dict) else text  # a copy: callers may edit theirs
        if key == "hd95" and options.hd95 == "pooled":
            definitions[key] = _HD95_POOLED
        if key == "hd95" and options.surface == "surfels":
            definitions[key] = _HD95_SURFELS
        if key == "nsd":  # the tolerance in use sits beside the definition it parameterises
            definitions["nsd_tolerance"] = options.nsd_tolerance
    return definitions
