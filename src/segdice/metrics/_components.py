"""Connected components, object tables and box arithmetic for the instance metrics.

Everything here runs once per image over the full array (label, count, find boxes, count overlaps);
the per-object work in :mod:`segdice.metrics.instances` then happens inside each object's bounding box.

Labelling uses connected-components-3d (``cc3d``) for 3-D arrays when it is installed (about 6x faster
than SciPy on a 240x240x155 BraTS volume, 12 ms against 75 ms) and ``scipy.ndimage.label`` otherwise.
Both number the components in C raster order of their first voxel, so the ids do not depend on which
one ran (checked in the tests). For 2-D arrays cc3d's 8-connected numbering differs from the raster
order and the speed-up is small (1.6 ms against 3.4 ms for 1000x1000), so SciPy labels them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = [
    "ObjectTable",
    "box_union",
    "dilate_in_box",
    "label_mask",
    "object_table",
    "overlap_table",
    "pad_box",
    "volume_of",
]

_CC3D_CONNECTIVITY = {1: 6, 2: 18, 3: 26}


@lru_cache(maxsize=1)
def _cc3d() -> Any:
    """The optional ``cc3d`` module (the `instances` extra), or None; imported on first use."""
    try:
        import cc3d
    except ImportError:  # pragma: no cover - exercised where cc3d is absent
        return None
    return cc3d


def structure(ndim: int, connectivity: int) -> np.ndarray:
    """SciPy structuring element: neighbours at squared distance <= ``connectivity``."""
    from scipy import ndimage  # imported on use: `import segdice` must not load SciPy

    return ndimage.generate_binary_structure(ndim, connectivity)


def label_mask(mask: np.ndarray, connectivity: int, *, use_cc3d: bool = True) -> tuple[np.ndarray, int]:
    """Label the connected components of a boolean mask; ids 1..n in C raster order, int32."""
    cc3d = _cc3d() if use_cc3d and mask.ndim == 3 else None
    if cc3d is not None:
        labels, n = cc3d.connected_components(
            np.ascontiguousarray(mask), connectivity=_CC3D_CONNECTIVITY[connectivity], return_N=True
        )
        return labels.astype(np.int32, copy=False), int(n)
    from scipy import ndimage

    labels = np.zeros(mask.shape, dtype=np.int32)
    n = ndimage.label(mask, structure=structure(mask.ndim, connectivity), output=labels)
    return labels, int(n)


class ObjectTable:
    """Sizes and bounding boxes of the objects of one label map (ids 1..n; gaps allowed)."""

    def __init__(self, labels: np.ndarray, n: int) -> None:
        from scipy import ndimage

        self.labels = labels
        self.n = n
        self.sizes = np.bincount(labels.reshape(-1), minlength=n + 1)[: n + 1].astype(np.int64)
        self.sizes[0] = 0
        boxes = ndimage.find_objects(labels, max_label=n) if n else []
        self.boxes: list[tuple[slice, ...] | None] = [None, *boxes]

    def ids(self) -> list[int]:
        """Ids of the objects present, ascending."""
        return [int(i) for i in np.flatnonzero(self.sizes)]


def object_table(labels: np.ndarray) -> ObjectTable:
    """Object table of a non-negative integer label map (every positive value is one object)."""
    n = int(labels.max()) if labels.size else 0
    return ObjectTable(labels, max(n, 0))


def overlap_table(pred: np.ndarray, target: np.ndarray, n_target: int) -> dict[tuple[int, int], int]:
    """Shared voxels of every (pred id, target id) pair that overlaps, from one pass over the voxels.

    The pairs are coded as ``pred_id * (n_target + 1) + target_id`` over the voxels where both maps
    are positive; a dense ``bincount`` when the code range is small, ``unique`` otherwise.
    """
    both = (pred > 0) & (target > 0)
    width = n_target + 1
    codes = pred[both].astype(np.int64) * width + target[both]
    if not codes.size:
        return {}
    top = int(codes.max()) + 1
    if top <= max(1 << 22, 8 * codes.size):
        counts = np.bincount(codes, minlength=top)
        keys = np.flatnonzero(counts)
        values = counts[keys]
    else:
        keys, values = np.unique(codes, return_counts=True)
    return {(int(k) // width, int(k) % width): int(v) for k, v in zip(keys, values, strict=True)}


def box_union(boxes: Sequence[tuple[slice, ...] | None]) -> tuple[slice, ...] | None:
    """The smallest box holding every given box (``None`` entries are skipped)."""
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    ndim = len(real[0])
    return tuple(slice(min(b[i].start for b in real), max(b[i].stop for b in real)) for i in range(ndim))


def pad_box(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Grow a box by ``pad`` voxels per side, clipped to the array."""
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape, strict=True))


def dilate_in_box(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation with the faces+edges element (the 18-neighbourhood in 3-D), ``iterations`` times.

    The box must already hold ``iterations`` voxels of margin wherever the full array does (what
    :func:`pad_box` gives): the array border then clips the dilation exactly as a dilation of the full
    volume (SciPy's ``border_value=0``) would.
    """
    if iterations <= 0:
        return mask
    from scipy import ndimage

    return ndimage.binary_dilation(
        mask, structure=structure(mask.ndim, min(2, mask.ndim)), iterations=iterations
    )


def volume_of(voxels: int, spacing: Sequence[float]) -> float:
    """Physical volume of ``voxels`` voxels, multiplied axis by axis (as ``n * sx * sy * sz``)."""
    volume = float(voxels)
    for s in spacing:
        volume *= s
    return volume


def diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The image diagonal in physical units (the default worst-case distance)."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))
