"""Check that a prediction lies on the ground truth's voxel grid, and reorient it when asked to.

Two label maps can be compared voxel by voxel only if voxel ``idx`` of one is voxel ``idx`` of the
other in the world: same shape, spacing, origin and direction (tolerance :data:`GEOMETRY_RTOL`,
relative). A prediction stored with its axes permuted or flipped (and its affine set to match) lies
on the same world grid; ``reorient`` undoes the permutation and flips with nibabel's orientation
tools (:func:`nibabel.orientations.io_orientation`), and the geometry is checked again after it.

A DICOM-SEG stores only the frames it was written with (highdicom leaves out empty ones by default),
so its volume may be a run of the ground truth's slices. When its geometry says exactly where that run
lies inside the ground-truth grid, it is placed there (the rest is background) and the note says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segdice._checks import SegDiceError
from segdice.io import Geometry, Mask

__all__ = ["GEOMETRY_RTOL", "align_prediction"]

# Headers store float32: spacing, origin and direction agree to this relative tolerance.
GEOMETRY_RTOL = 1e-4

_REORIENT_HINT = " (--reorient / reorient=True aligns predictions that differ only by axis order and flips)"


def _rounded(values: Sequence) -> tuple:
    return tuple(
        _rounded(v) if isinstance(v, (tuple, list, np.ndarray)) else round(float(v), 6) for v in values
    )


def _affine(geometry: Geometry, ndim: int) -> np.ndarray:
    """The array-index-to-world matrix, (4, ndim + 1), as nibabel's orientation tools expect."""
    affine = np.asarray(geometry.affine, dtype=np.float64)
    return affine[:, [*range(ndim), 3]]


def _orientation_change(pred: Geometry, gt: Geometry, ndim: int) -> np.ndarray | None:
    """The nibabel ``ornt`` that turns the prediction's axes into the ground truth's, or ``None`` if none."""
    from nibabel import orientations

    start = orientations.io_orientation(_affine(pred, ndim))
    end = orientations.io_orientation(_affine(gt, ndim))
    transform = orientations.ornt_transform(start, end)
    identity = np.column_stack([np.arange(ndim), np.ones(ndim)])
    return None if np.array_equal(transform, identity) else transform


def _axis_codes(geometry: Geometry, ndim: int) -> str:
    from nibabel import orientations

    return "".join(str(code) for code in orientations.aff2axcodes(_affine(geometry, ndim)))


def _reoriented(mask: Mask, transform: np.ndarray) -> tuple[np.ndarray, tuple[float, ...] | None, Geometry]:
    """Apply ``transform`` to the array; return it with its spacing and geometry after the change."""
    from nibabel import orientations

    ndim = mask.array.ndim
    array = orientations.apply_orientation(mask.array, transform)
    new_affine = _affine(mask.geometry, ndim) @ orientations.inv_ornt_aff(transform, mask.array.shape)
    full = np.eye(4)
    full[:, [*range(ndim), 3]] = new_affine
    if ndim == 2:
        full[:3, 2] = np.asarray(mask.geometry.affine)[:3, 2]
    directions = []
    for axis in range(ndim):
        column = full[:3, axis]
        directions.append(tuple(float(v) for v in column / (np.linalg.norm(column) or 1.0)))
    geometry = Geometry(
        origin=tuple(float(v) for v in full[:3, 3]),
        direction=tuple(directions),
        affine=tuple(tuple(float(v) for v in row) for row in full),
    )
    spacing = None
    if mask.spacing is not None:
        moved = [0.0] * ndim
        for axis, (target, _) in enumerate(transform):
            moved[int(target)] = mask.spacing[axis]
        spacing = tuple(moved)
    return np.ascontiguousarray(array), spacing, geometry


def _embedded(
    array: np.ndarray, spacing: tuple[float, ...] | None, geometry: Geometry, gt: Mask
) -> tuple[np.ndarray, Geometry, tuple[int, ...]] | None:
    """``array`` placed in a zero map of the ground truth's grid, if it is an exact sub-grid of it."""
    if gt.spacing is None or spacing is None or array.ndim != gt.array.ndim or gt.geometry is None:
        return None
    if not np.allclose(spacing, gt.spacing, rtol=GEOMETRY_RTOL, atol=0):
        return None
    if not np.allclose(geometry.direction, gt.geometry.direction, rtol=0, atol=GEOMETRY_RTOL):
        return None
    ndim = array.ndim
    to_index = np.linalg.pinv(_affine(gt.geometry, ndim)[:3, :ndim])
    position = to_index @ (np.asarray(geometry.origin) - np.asarray(gt.geometry.origin))
    offset = np.round(position)
    if not np.allclose(position, offset, atol=1e-3):
        return None
    start = tuple(int(v) for v in offset)
    if any(a < 0 or a + n > m for a, n, m in zip(start, array.shape, gt.array.shape, strict=True)):
        return None
    placed = np.zeros(gt.array.shape, dtype=array.dtype)
    placed[tuple(slice(a, a + n) for a, n in zip(start, array.shape, strict=True))] = array
    return placed, gt.geometry, start


def align_prediction(
    gt: Mask, pred: Mask, *, reorient: bool = False, compare_headers: bool = True
) -> tuple[np.ndarray, tuple[float, ...] | None, str]:
    """The prediction's labels on the ground truth's voxel grid, its spacing, and what was done.

    Parameters
    ----------
    gt, pred
        The two masks as :func:`segdice.io.read_mask` returns them.
    reorient
        Undo axis permutations and flips that map the prediction's grid onto the ground truth's
        (both need a geometry: NIfTI, MHA/NRRD, DICOM-SEG).
    compare_headers
        Compare spacing, origin and direction; ``False`` when the caller overrides the spacing and
        takes the arrays voxel by voxel.

    Returns
    -------
    array : numpy.ndarray
        The prediction, reoriented if needed.
    spacing : tuple of float or None
        The prediction's spacing, in the order of the returned array's axes.
    note : str
        ``""``, or what was done, e.g. ``"reoriented the prediction from LPS to RAS"``.

    Raises
    ------
    SegDiceError
        For a shape, spacing, origin or direction mismatch; the message names both values.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from segdice.io import Geometry, Mask
    >>> def mask(array, affine):
    ...     geometry = Geometry((0.0, 0.0, 0.0), ((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)), affine)
    ...     return Mask(array, (1.0, 1.0, 1.0), Path("x.nii"), geometry)
    >>> truth = np.arange(8).reshape(2, 2, 2)
    >>> flipped = np.eye(4); flipped[0, 0], flipped[0, 3] = -1.0, 1.0  # axis 0 stored backwards
    >>> eye = tuple(map(tuple, np.eye(4)))
    >>> array, spacing, note = align_prediction(
    ...     mask(truth, eye), mask(truth[::-1], tuple(map(tuple, flipped))), reorient=True)
    >>> bool((array == truth).all()), note
    (True, 'reoriented the prediction from LAS to RAS')
    """
    array, spacing, geometry = pred.array, pred.spacing, pred.geometry
    ndim = gt.array.ndim
    can_orient = gt.geometry is not None and geometry is not None and array.ndim == ndim and ndim in (2, 3)
    transform = _orientation_change(geometry, gt.geometry, ndim) if can_orient else None
    note = ""
    hint = _REORIENT_HINT if transform is not None else ""
    if reorient and transform is not None:
        before = _axis_codes(geometry, ndim)
        array, spacing, geometry = _reoriented(pred, transform)
        note = f"reoriented the prediction from {before} to {_axis_codes(geometry, ndim)}"
        hint = ""
    after = "after reorienting, " if note else ""
    if array.shape != gt.array.shape and geometry is not None and pred.path.suffix.lower() == ".dcm":
        found = _embedded(array, spacing, geometry, gt)
        if found is not None:
            stored = "x".join(str(n) for n in array.shape)
            array, geometry, start = found
            placed = f"placed the DICOM-SEG's {stored} voxels at {start} in the ground-truth grid"
            note = f"{note}; {placed}" if note else placed
    if array.shape != gt.array.shape:
        raise SegDiceError(
            f"{after}shape mismatch: prediction {tuple(array.shape)} vs ground truth {gt.array.shape}{hint}"
        )
    if not compare_headers:
        return array, spacing, note
    if (
        gt.spacing is not None
        and spacing is not None
        and not np.allclose(spacing, gt.spacing, rtol=GEOMETRY_RTOL, atol=0)
    ):
        raise SegDiceError(
            f"{after}spacing mismatch: prediction {_rounded(spacing)} vs ground truth {_rounded(gt.spacing)} "
            f"(override with --spacing if intended){hint}"
        )
    if gt.geometry is None or geometry is None:
        return array, spacing, note
    # A ten-thousandth of a voxel, so that an origin at 0 still has a tolerance.
    atol = GEOMETRY_RTOL * max(gt.spacing or (1.0,))
    if not np.allclose(geometry.origin, gt.geometry.origin, rtol=GEOMETRY_RTOL, atol=atol):
        raise SegDiceError(
            f"{after}origin mismatch: prediction {_rounded(geometry.origin)} vs ground truth "
            f"{_rounded(gt.geometry.origin)} (world mm, RAS+; --spacing scores the arrays voxel by voxel "
            f"regardless of the headers){hint}"
        )
    if not np.allclose(geometry.direction, gt.geometry.direction, rtol=0, atol=GEOMETRY_RTOL):
        raise SegDiceError(
            f"{after}direction mismatch: prediction {_rounded(geometry.direction)} vs ground truth "
            f"{_rounded(gt.geometry.direction)} (a unit vector per array axis, RAS+){hint}"
        )
    return array, spacing, note
