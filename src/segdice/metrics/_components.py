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
    "merge_by_dilation",
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
            np.ascontiguousarray(mask),
            connectivity=_CC3D_CONNECTIVITY[connectivity],
            return_N=True,
            out_dtype=np.uint32,
        )
        if n < 2**31 - 1:  # reinterpret in place: no copy of the volume
            return labels.view(np.int32), int(n)
        return labels.astype(np.int64), int(n)  # pragma: no cover - beyond int32 ids
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
        boxes = ndimage.find_objects(labels, max_label=n) if n else []
        self.boxes: list[tuple[slice, ...] | None] = [None, *boxes]
        # Sizes counted inside each box: the boxes of lesions or nuclei hold a tiny share of the voxels,
        # so this beats a bincount over the whole array (which also needs an intp copy of it).
        box_voxels = sum(math.prod(s.stop - s.start for s in box) for box in boxes if box is not None)
        if box_voxels > 2 * labels.size:  # many large, interleaved objects: one pass is cheaper
            self.sizes = np.bincount(labels.reshape(-1), minlength=n + 1)[: n + 1].astype(np.int64)
            self.sizes[0] = 0
            return
        self.sizes = np.zeros(n + 1, dtype=np.int64)
        for i, box in enumerate(boxes, start=1):
            if box is not None:
                self.sizes[i] = np.count_nonzero(labels[box] == i)

    @classmethod
    def from_parts(
        cls, labels: np.ndarray, boxes: list[tuple[slice, ...] | None], sizes: np.ndarray
    ) -> ObjectTable:
        """A table whose boxes and sizes are already known (``boxes[0]`` and ``sizes[0]`` unused)."""
        table = cls.__new__(cls)
        table.labels, table.n, table.boxes, table.sizes = labels, len(boxes) - 1, boxes, sizes
        return table

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


def merge_by_dilation(table: ObjectTable, dilation: int) -> ObjectTable:
    """Objects whose dilations touch become one object of their own voxels (BraTS's lesion grouping).

    The same grouping as dilating the whole mask ``dilation`` times (faces+edges element) and labelling
    the result with full connectivity, without touching the whole volume: every object is dilated inside
    its padded box, and two objects join (union-find) when one's dilation lies within one full-connectivity
    step of the other's, found through a map of the dilations written so far. Groups are numbered in C
    raster order of the first voxel of their dilation, as the labelling of the dilated mask numbers them.
    """
    from scipy import ndimage

    labels = table.labels
    shape, ndim = labels.shape, labels.ndim
    step = structure(ndim, ndim)
    owner = np.zeros(shape, dtype=np.int32)
    parent = list(range(table.n + 1))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[int, int] = {}
    for i in table.ids():
        box = pad_box(table.boxes[i], dilation + 1, shape)
        grown = dilate_in_box(labels[box] == i, dilation)
        near = ndimage.binary_dilation(grown, structure=step)
        for j in np.unique(owner[box][near]).tolist():
            if j and root(j) != root(i):
                parent[root(j)] = root(i)
        owner[box][grown] = i
        local = np.unravel_index(int(np.flatnonzero(grown)[0]), grown.shape)
        first[i] = int(
            np.ravel_multi_index(tuple(c + s.start for c, s in zip(local, box, strict=True)), shape)
        )
    groups: dict[int, list[int]] = {}
    for i in table.ids():
        groups.setdefault(root(i), []).append(i)
    ordered = sorted(groups.values(), key=lambda members: min(first[m] for m in members))
    lut = np.zeros(table.n + 1, dtype=np.int32)
    boxes: list[tuple[slice, ...] | None] = [None]
    sizes = np.zeros(len(ordered) + 1, dtype=np.int64)
    for new_id, members in enumerate(ordered, start=1):
        lut[members] = new_id
        boxes.append(box_union([table.boxes[m] for m in members]))
        sizes[new_id] = int(table.sizes[members].sum())
    merged = np.zeros(shape, dtype=np.int32)
    for i in table.ids():  # inside each object's box only
        box = table.boxes[i]
        merged[box][labels[box] == i] = lut[i]
    return ObjectTable.from_parts(merged, boxes, sizes)


def volume_of(voxels: int, spacing: Sequence[float]) -> float:
    """Physical volume of ``voxels`` voxels, multiplied axis by axis (as ``n * sx * sy * sz``)."""
    volume = float(voxels)
    for s in spacing:
        volume *= s
    return volume


def diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The image diagonal in physical units (the default worst-case distance)."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))
