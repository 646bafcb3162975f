"""Where a label map lies in the world: :class:`Geometry`, and its construction from file headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Where a label map lies in the world (RAS+ millimetres).

    The world position of voxel ``idx`` (a tuple of array indices) is
    ``origin + sum_a idx[a] * spacing[a] * direction[a]``.

    Attributes
    ----------
    origin
        World coordinates ``(x, y, z)`` of the centre of the first voxel.
    direction
        One unit vector ``(x, y, z)`` per array axis, in array axis order: ``direction[a]`` is the
        world direction of a step along ``array.shape[a]``.
    affine
        The 4 x 4 matrix from ``(i0, i1, i2, 1)`` array indices to world coordinates: the NIfTI affine
        as stored in the file, or the same matrix built from the ITK / DICOM header. For a 2-D map
        the third column is the unit normal of the plane.
    """

    origin: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    affine: tuple[tuple[float, ...], ...]


# LPS+ (ITK, DICOM) to RAS+ (NIfTI): negate x and y.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def geometry_from_affine(affine: np.ndarray, ndim: int) -> Geometry:
    """Origin and per-array-axis unit directions from a 4 x 4 affine (columns in array axis order)."""
    affine = np.asarray(affine, dtype=np.float64)
    directions = []
    for axis in range(ndim):
        column = affine[:3, axis]
        norm = float(np.linalg.norm(column))
        directions.append(tuple(float(v) for v in (column / norm if norm > 0 else np.eye(3)[axis])))
    return Geometry(
        origin=tuple(float(v) for v in affine[:3, 3]),
        direction=tuple(directions),
        affine=tuple(tuple(float(v) for v in row) for row in affine),
    )


def affine_from_lps(origin: Sequence[float], columns: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """A RAS+ affine from an LPS+ origin and LPS+ unit direction columns given in array axis order.

    ``columns`` is 3 x n (n = 2 or 3 array axes); a 2-D map gets the plane normal as third column.
    """
    columns = LPS_TO_RAS @ np.asarray(columns, dtype=np.float64)
    affine = np.eye(4)
    for axis in range(columns.shape[1]):
        affine[:3, axis] = columns[:, axis] * spacing[axis]
    if columns.shape[1] == 2:
        normal = np.cross(columns[:, 0], columns[:, 1])
        affine[:3, 2] = normal / (np.linalg.norm(normal) or 1.0)
    affine[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=np.float64)
    return affine
