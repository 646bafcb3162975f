"""``segdice demo``: on imbalanced segmentation, pixel accuracy lies and Dice tells the truth.

The demo generates a deterministic synthetic dataset of MRI-like slices whose small lesions cover 0.1-1%
of the pixels, trains a tiny U-Net on the CPU with cross-entropy, :class:`segdice.DiceLoss` and
:class:`segdice.DiceCELoss`, scores them and the trivial "all background" predictor with segdice's
metrics, and writes a report folder: ``results.json``, PNG plots and the HTML report of
:func:`segdice.evaluate` for the best model's validation predictions.

Only the loss differs between the trained models: same initial weights, same batches, same schedule.
With PyTorch's default initialisation and this short budget, cross-entropy (a mean over pixels that are
99.7% background) typically settles on "background everywhere" and scores like the trivial predictor,
while both Dice-based losses find most lesions. Cross-entropy is not hopeless: in our trials, initialising
the output bias to the lesion prior (as the focal-loss paper does) let it find lesions too. The demo keeps
the default initialisation because that is what a newcomer's first model uses.
"""

from segdice.demo._run import DemoConfig, DemoResult, run_demo
from segdice.demo._text import demo_story, demo_table

__all__ = ["DemoConfig", "DemoResult", "demo_story", "demo_table", "run_demo"]
