"""Read (and write) label maps, their voxel spacing and their place in the world from image files.

Supported formats, chosen by suffix (``.nii.gz`` counts as one suffix):

==================================  ==========  ======================================  ==================
suffix                              library     spacing                                 origin, direction
==================================  ==========  ======================================  ==================
``.nii``, ``.nii.gz``               nibabel     header ``pixdim`` (``get_zooms()``)     the affine
``.mha``, ``.mhd`` (+ ``.raw``)     SimpleITK   ``ElementSpacing``                      yes
``.nrrd``, ``.nhdr`` (+ data file)  SimpleITK   ``space directions``                    yes
``.dcm`` (DICOM-SEG)                highdicom   pixel measures and slice positions      yes
``.png``, ``.bmp``                  Pillow      none (2-D images carry no physical      none
                                                spacing)
``.tif``, ``.tiff``                 tifffile    ImageJ stacks: z from ``spacing``,      none
                                                y/x from the resolution tags
``.npy``                            NumPy       none                                    none
``.npz``                            NumPy       an optional array named ``spacing``     none
==================================  ==========  ======================================  ==================

SimpleITK comes with the ``itk`` extra (``pip install 'segdice[itk]'``), highdicom with ``dicom``.

Axis order. Arrays are indexed as their library returns them: nibabel gives NIfTI arrays as
``(i, j, k)``, SimpleITK gives ``(z, y, x)`` (it reports spacing and size as ``x, y, z``), highdicom
gives ``(slice, row, column)``. Spacing is always returned in *array axis order*: ``spacing[a]`` is
the physical size of one step along ``array.shape[a]``, and so is every per-axis field of
:class:`Geometry`. World coordinates are RAS+ millimetres, the NIfTI convention; ITK and DICOM store
LPS+, so their ``x`` and ``y`` are negated on reading.

Safety. NumPy files are opened with ``allow_pickle=False``, so a file can never run code. Before any
large allocation each reader checks what the header declares: at most ``max_voxels`` voxels, no more
than an uncompressed file of that size can hold (or, for deflate-compressed data, 1032 times the
compressed size, the most deflate can expand), one volume, one channel. Every failure raises
:class:`~segdice.SegDiceError` naming the file, what it holds and what is expected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, check_number, check_spacing
from segdice.io._dicom import read_dicom_seg, write_dicom_seg
from segdice.io._itk import read_itk, write_itk
from segdice.io._nifti import read_nifti, write_nifti
from segdice.io._numpy import read_npy, read_npz, write_npy, write_npz
from segdice.io._raster import read_pillow, read_tiff, write_pillow, write_tiff
from segdice.io._values import as_label_map
from segdice.io._world import Geometry

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "SUPPORTED_SUFFIXES",
    "Geometry",
    "Mask",
    "read_mask",
    "save_mask",
    "split_suffix",
]


# Matched against the end of the whole file name, so ".nii.gz" is one suffix (the stem of case.nii.gz is
# "case", not "case.nii"). No entry ends another, so the order is only the order error messages list.
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm",
    ".png", ".bmp", ".tiff", ".tif", ".npy", ".npz",
)  # fmt: skip


DEFAULT_MAX_VOXELS = 2**31


@dataclass(frozen=True)
class Mask:
    """A label map read from a file.

    Attributes
    ----------
    array
        The label map, an integer NumPy array (booleans become ``uint8``).
    spacing
        Voxel size per array axis, or ``None`` when the format stores none.
    path
        The file it came from.
    geometry
        Origin and direction (see :class:`Geometry`), or ``None`` when the format stores none.
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    path: Path
    geometry: Geometry | None = None


def split_suffix(name: str | os.PathLike[str]) -> tuple[str, str]:
    """Split a file name into its stem and its supported suffix.

    Parameters
    ----------
    name
        A file name or path; only the last component is used.

    Returns
    -------
    tuple of str
        ``(stem, suffix)``; the suffix keeps its original case and is ``""`` when unsupported.

    Examples
    --------
    >>> split_suffix("case_001.nii.gz")
    ('case_001', '.nii.gz')
    >>> split_suffix("slice.PNG")
    ('slice', '.PNG')
    >>> split_suffix("notes.txt")
    ('notes.txt', '')
    """
    base = Path(name).name
    lower = base.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if lower.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)], base[-len(suffix) :]
    return base, ""


def read_mask(path: str | os.PathLike[str], *, max_voxels: int = DEFAULT_MAX_VOXELS) -> Mask:
    """Read a label map, its voxel spacing and its geometry from a file.

    Parameters
    ----------
    path
        A file of a supported format (see the module docstring).
    max_voxels
        The largest image accepted, in voxels; a larger declared size is refused before reading.

    Returns
    -------
    Mask
        The integer label map, the spacing in array axis order (or ``None``), the path, and the
        origin/direction (or ``None``).

    Raises
    ------
    SegDiceError
        If the file is missing, has an unsupported suffix, cannot be decoded, declares more voxels
        than ``max_voxels`` or than the file can hold, holds several volumes, series or a colour image,
        pickled objects, or values that are not integer labels; or if the optional library its format
        needs is not installed (the message names the extra).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = save_mask(folder / "case.npz", np.eye(3, dtype=np.uint8), spacing=(0.5, 2.0))
    >>> mask = read_mask(folder / "case.npz")
    >>> mask.array.shape, mask.spacing
    ((3, 3), (0.5, 2.0))
    """
    check_number("max_voxels", max_voxels, minimum=1, integer=True)
    path = Path(path)
    suffix = split_suffix(path)[1].lower()
    if not suffix:
        raise SegDiceError(f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        if path.is_symlink() and not path.exists():
            raise SegDiceError(
                f"{path}: a symbolic link to {os.readlink(path)}, which does not exist; expected a mask file"
            )
        if path.is_dir():
            raise SegDiceError(f"{path}: a folder, not a mask file; expected a file")
        raise SegDiceError(f"{path}: no such file")
    reader = _READERS[suffix]
    try:
        array, spacing, geometry = reader(path, int(max_voxels))
    except SegDiceError:
        raise
    except Exception as exc:  # any decoder failure is a property of the file, reported as such
        raise SegDiceError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from exc
    array = as_label_map(array, path)
    if spacing is not None:
        spacing = check_spacing("spacing", spacing, array.ndim, where=str(path), shape=array.shape)
    return Mask(array=array, spacing=spacing, path=path, geometry=geometry)


def save_mask(
    path: str | os.PathLike[str], array: np.ndarray, spacing: Sequence[float] | None = None
) -> Path:
    """Write a label map in the format given by the suffix (the inverse of :func:`read_mask`).

    Parameters
    ----------
    path
        Destination; its suffix picks the format (see the module docstring). DICOM-SEG is read only
        (writing one needs the source images: use highdicom).
    array
        Integer or boolean label map; 2-D for PNG/BMP.
    spacing
        Voxel size per array axis. Stored for NIfTI (header), MHA/MHD/NRRD/NHDR (the ITK spacing,
        reversed to ``x, y, z``), ImageJ TIFF (3-D: z spacing and resolution, 2-D: resolution) and
        ``.npz`` (an array named ``spacing``); an error for the other formats, which cannot hold it.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    SegDiceError
        For an unsupported suffix, a non-integer array, or spacing the format cannot store.

    Examples
    --------
    >>> import tempfile
    >>> out = save_mask(Path(tempfile.mkdtemp()) / "m.nii.gz", np.zeros((4, 4, 2), np.uint8), (1, 1, 3))
    >>> read_mask(out).spacing
    (1.0, 1.0, 3.0)
    """
    path = Path(path)
    suffix = split_suffix(path)[1].lower()
    if not suffix:
        raise SegDiceError(
            f"path: {path} has an unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    array = as_label_map(np.asarray(array), path)
    if spacing is not None:
        spacing = check_spacing("spacing", spacing, array.ndim, where=str(path), shape=array.shape)
    _WRITERS[suffix](path, array, spacing)
    return path


# One reader and one writer per suffix. A reader takes (path, max_voxels) and returns
# (array, spacing or None, geometry or None); a writer takes (path, array, spacing or None), the spacing
# already checked against the array.
_READERS = {
    ".nii.gz": read_nifti,
    ".nii": read_nifti,
    ".mha": read_itk,
    ".mhd": read_itk,
    ".nrrd": read_itk,
    ".nhdr": read_itk,
    ".dcm": read_dicom_seg,
    ".png": read_pillow,
    ".bmp": read_pillow,
    ".tif": read_tiff,
    ".tiff": read_tiff,
    ".npy": read_npy,
    ".npz": read_npz,
}
_WRITERS = {
    ".nii.gz": write_nifti,
    ".nii": write_nifti,
    ".mha": write_itk,
    ".mhd": write_itk,
    ".nrrd": write_itk,
    ".nhdr": write_itk,
    ".dcm": write_dicom_seg,
    ".png": write_pillow,
    ".bmp": write_pillow,
    ".tif": write_tiff,
    ".tiff": write_tiff,
    ".npy": write_npy,
    ".npz": write_npz,
}
