"""Checks that turn a metric's mask argument into a boolean array, shared by the surface and instance metrics."""

from __future__ import annotations

import numpy as np

from segdice._checks import SegDiceError, describe


def binary_mask(name: str, x: np.ndarray, *, hint: str) -> np.ndarray:
    """``x != 0`` for a bool or 0/1 array; a :class:`SegDiceError` naming ``name`` for anything else.

    ``hint`` ends the message for values other than 0 and 1, and says what to call instead (a label map has
    its own entry point in each caller).
    """
    if x.dtype == bool:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected a binary mask (bool or 0/1)")
    mask = x != 0
    if np.count_nonzero(x[mask] != 1):
        raise SegDiceError(f"{name}: got {describe(x)}; expected a binary mask with values 0 and 1 {hint}")
    return mask
