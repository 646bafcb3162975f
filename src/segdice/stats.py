"""The one core of segdice: per-class overlap statistics, soft and hard, without one-hot tensors.

Losses and metrics never compute overlap on their own; they ask this module.

Soft statistics (differentiable, for losses), per class ``c`` and reduction group (image or batch)::

    I = sum(p * g)      P = sum(p)      G = sum(g)        (squared=True: sum(p**2), sum(g**2))

Hard counts (for metrics): ``TP, FP, FN, TN`` per class as int64, the multiclass confusion matrix from a
single ``bincount(target * C + pred)``.
"""

from __future__ import annotations

# --- soft statistics (losses) -------------------------------------------------------------------


# --- hard counts (metrics) ----------------------------------------------------------------------
