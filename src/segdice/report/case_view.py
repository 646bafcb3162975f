"""What the report draws a case's picture from: its two label maps as they were scored, and their layout.

The evaluator builds these (it alone knows ``--labels``, regions, ``--binarize``, ``--ignore-label`` and
``--reorient``); the report only draws them, so a thumbnail always shows what the numbers measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CaseReader", "CaseView"]


@dataclass(frozen=True)
class CaseView:
    """A case's prediction and ground truth as the scores saw them.

    Attributes
    ----------
    pred, gt
        Label maps of one shape, on the ground truth's grid (a reoriented prediction already turned).
        A voxel holds the label it was scored as, 0 for background: values outside the scored labels and
        regions, and the voxels of the ignore label, are 0 on both sides; with ``binarize`` every
        foreground voxel is 1.
    spacing
        Voxel size per array axis, or ``None`` (1 per axis).
    direction
        One unit vector (RAS+) per array axis, or ``None`` when the file stores no orientation.

    Examples
    --------
    >>> view = CaseView(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8), None, None)
    >>> int((view.pred != view.gt).sum())  # every voxel missed
    4
    """

    pred: np.ndarray
    gt: np.ndarray
    spacing: tuple[float, ...] | None = None
    direction: Sequence[Sequence[float]] | None = None


#: ``read_case(case_name)`` -> the case's :class:`CaseView`, or ``None`` when it cannot be read.
CaseReader = Callable[[str], "CaseView | None"]
