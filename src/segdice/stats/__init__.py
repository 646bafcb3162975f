"""The one core of segdice: per-class overlap statistics, soft and hard, without one-hot tensors.

Losses and metrics never compute overlap on their own; they ask this package.

Soft statistics (differentiable, for losses; :mod:`segdice.stats.soft`), per class ``c`` and reduction
group (image or batch)::

    I = sum(p * g)      P = sum(p)      G = sum(g)        (squared=True: sum(p**2), sum(g**2))

Hard counts (for metrics; :mod:`segdice.stats.counts`): ``TP, FP, FN, TN`` per class as int64, the
multiclass confusion matrix from a single ``bincount(target * C + pred)``.
"""

from segdice.stats.counts import confusion
from segdice.stats.soft import SoftStats, check_soft_inputs, pool_soft_stats, soft_stats

__all__ = ["SoftStats", "check_soft_inputs", "confusion", "pool_soft_stats", "soft_stats"]
