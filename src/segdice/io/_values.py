"""Label values: what a reader's array must hold, and the smallest integer type a writer needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, describe


def as_label_map(array: np.ndarray, path: Path) -> np.ndarray:
    """Return ``array`` as a native-byte-order integer array, or raise if it holds non-labels."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.byteorder not in ("=", "|"):
        array = array.astype(array.dtype.newbyteorder("="))
    if np.issubdtype(array.dtype, np.integer):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (not np.isfinite(array).all() or not (array == np.round(array)).all()):
            raise SegDiceError(
                f"{path}: got {describe(array)} with non-integer values; expected a label map of integers "
                "(threshold or arg-max probabilities first)"
            )
        return array.astype(np.int64)
    raise SegDiceError(f"{path}: got {describe(array, values=False)}; expected an integer label map")


def smallest_int(array: np.ndarray) -> np.ndarray:
    # nibabel refuses int64 images without an explicit dtype; labels rarely need more than 16 bits.
    if array.size == 0:
        return array.astype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return array.astype(dtype)
    return array.astype(np.int64)
