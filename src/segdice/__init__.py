"""segdice: Dice-family losses, overlap and boundary metrics, and a folder evaluator for segmentation.

The public API is re-exported here; see the documentation for the formulas and conventions.

Every name is resolved on first use (PEP 562): ``import segdice`` loads no torch, evaluator, report,
SciPy or matplotlib, so that ``segdice --help`` answers at once and a training script pays only for
the parts it uses. ``from segdice import DiceLoss`` and ``segdice.DiceLoss`` give the same object.
"""

from __future__ import annotations

from segdice._lazy import lazy_attributes
from segdice._version import __version__

# Public name -> the module that defines it.
_NAMES: dict[str, str] = {
    "SegDiceError": "segdice._checks",
    "DiceCELoss": "segdice.losses",
    "DiceFocalLoss": "segdice.losses",
    "DiceLoss": "segdice.losses",
    "GeneralizedDiceLoss": "segdice.losses",
    "JaccardLoss": "segdice.losses",
    "TverskyLoss": "segdice.losses",
    "FocalLoss": "segdice.losses",
    "LovaszLoss": "segdice.losses",
    "ClDiceLoss": "segdice.losses",
    "dice_ce_loss": "segdice.losses",
    "dice_focal_loss": "segdice.losses",
    "dice_loss": "segdice.losses",
    "generalized_dice_loss": "segdice.losses",
    "jaccard_loss": "segdice.losses",
    "tversky_loss": "segdice.losses",
    "focal_loss": "segdice.losses",
    "lovasz_loss": "segdice.losses",
    "cldice_loss": "segdice.losses",
    "SegmentationMetrics": "segdice.metrics.streaming",
    "EvaluationResult": "segdice.evaluation",
    "evaluate": "segdice.evaluation",
    "ComparisonResult": "segdice.comparison",
    "compare": "segdice.comparison",
    "run_demo": "segdice.demo",
}
# Subpackages reachable as attributes after a bare `import segdice` (e.g. `segdice.metrics.dice_score`).
_SUBMODULES = frozenset({"comparison", "demo", "evaluation", "io", "losses", "metrics", "report", "stats"})

__all__ = ["__version__", *sorted(_NAMES)]


__getattr__, __dir__ = lazy_attributes(__name__, _NAMES, _SUBMODULES)
