"""segdice: Dice-family losses, overlap and boundary metrics, and a folder evaluator for segmentation.

The public API is re-exported here; see the documentation for the formulas and conventions.
"""

from segdice._checks import SegDiceError
from segdice._version import __version__
from segdice.evaluation import EvaluationResult, evaluate
from segdice.losses import (
    DiceCELoss,
    DiceFocalLoss,
    DiceLoss,
    GeneralizedDiceLoss,
    JaccardLoss,
    TverskyLoss,
    dice_ce_loss,
    dice_focal_loss,
    dice_loss,
    generalized_dice_loss,
    jaccard_loss,
    tversky_loss,
)
from segdice.metrics.streaming import SegmentationMetrics

__all__ = [
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "EvaluationResult",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "SegDiceError",
    "SegmentationMetrics",
    "TverskyLoss",
    "__version__",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_loss",
    "evaluate",
    "generalized_dice_loss",
    "jaccard_loss",
    "run_demo",
    "tversky_loss",
]


def __getattr__(name: str):
    # The demo pulls in SciPy's ndimage (~0.3 s at import); load it on first use so that `import segdice`
    # in a training script pays only for what it uses.
    if name == "run_demo":
        from segdice.demo import run_demo

        return run_demo
    raise AttributeError(f"module 'segdice' has no attribute {name!r}")
