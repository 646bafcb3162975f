"""Checks that turn a metric's mask or label-map argument into an array it can use, shared by the metrics."""

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


#: The largest magnitude a float label may have: above 2**53 a float no longer holds every integer.
MAX_FLOAT_LABEL = 2.0**53


def whole_float_labels(name: str, x: np.ndarray, *, expected: str) -> np.ndarray:
    """A float label map as int64 after checking every value is finite, whole and ``|x| <= 2**53``.

    ``inf`` and ``1e20`` are whole floats too, but the cast would turn them into INT64_MIN (with a
    RuntimeWarning), and above 2**53 two ids can be one float; ``expected`` names what the caller takes.
    """
    if (
        not bool(np.isfinite(x).all())
        or not np.array_equal(x, np.trunc(x))
        or (x.size and float(np.abs(x).max()) > MAX_FLOAT_LABEL)
    ):
        raise SegDiceError(
            f"{name}: got {describe(x)}; expected {expected} (|x| <= 2**53 in a float map)"
        )
    return x.astype(np.int64)
