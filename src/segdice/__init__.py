"""segdice: Dice-family losses, overlap and boundary metrics, and a folder evaluator for segmentation.

The public API is re-exported here; see the documentation for the formulas and conventions.
"""

from segdice._checks import SegDiceError
from segdice._version import __version__
from segdice.demo import run_demo

__all__ = [
    "SegDiceError",
    "__version__",
    "run_demo",
]
