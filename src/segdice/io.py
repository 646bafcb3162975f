"""Read (and write) label maps and their voxel spacing from image files.

Supported formats, chosen by suffix (``.nii.gz`` counts as one suffix):

========================  ============  ==============================================================
suffix                    library       spacing
========================  ============  ==============================================================
``.nii``, ``.nii.gz``     nibabel       header ``pixdim`` (``get_zooms()``), in array axis order
``.png``, ``.bmp``        Pillow        none (2-D images carry no physical spacing)
``.tif``, ``.tiff``       tifffile      ImageJ stacks: z from ``spacing``, y/x from the resolution tags
``.npy``                  NumPy         none
``.npz``                  NumPy         an optional array named ``spacing``
========================  ============  ==============================================================

Spacing is always returned in *array axis order*: ``spacing[i]`` is the physical size of one step
along ``array.shape[i]``. NumPy files are opened with ``allow_pickle=False``, so a file can never run
code. Every failure raises :class:`~segdice.SegDiceError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, check_spacing, describe

__all__ = ["SUPPORTED_SUFFIXES", "Mask", "read_mask", "save_mask", "split_suffix"]

# Matched against the end of the whole file name, so ".nii.gz" is one suffix (the stem of case.nii.gz is
# "case", not "case.nii"). No entry ends another, so the order is only the order error messages list.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".png", ".bmp", ".tiff", ".tif", ".npy", ".npz")

# Arrays under these names are taken as the mask of an .npz file that holds several arrays.
_NPZ_MASK_KEYS = ("mask", "seg", "segmentation", "label", "labels", "arr_0")


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
    """

    array: np.ndarray
    spacing: tuple[float, ...] | None
    path: Path


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


def read_mask(path: str | os.PathLike[str]) -> Mask:
    """Read a label map and its voxel spacing from a file.

    Parameters
    ----------
    path
        A ``.nii``/``.nii.gz``, ``.png``/``.bmp``, ``.tif``/``.tiff``, ``.npy`` or ``.npz`` file.

    Returns
    -------
    Mask
        The integer label map, the spacing in array axis order (or ``None``) and the path.

    Raises
    ------
    SegDiceError
        If the file is missing, has an unsupported suffix, cannot be decoded, holds a colour image,
        several candidate arrays, pickled objects, or values that are not integer labels.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = save_mask(folder / "case.npz", np.eye(3, dtype=np.uint8), spacing=(0.5, 2.0))
    >>> mask = read_mask(folder / "case.npz")
    >>> mask.array.shape, mask.spacing
    ((3, 3), (0.5, 2.0))
    """
    path = Path(path)
    suffix = split_suffix(path)[1].lower()
    if not suffix:
        raise SegDiceError(f"{path}: unsupported file type; expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.is_file():
        raise SegDiceError(f"{path}: no such file")
    reader = _READERS[suffix]
    try:
        array, spacing = reader(path)
    except SegDiceError:
        raise
    except Exception as exc:  # any decoder failure is a property of the file, reported as such
        raise SegDiceError(f"{path}: cannot read the file ({type(exc).__name__}: {exc})") from exc
    array = _as_label_map(array, path)
    if spacing is not None:
        spacing = check_spacing("spacing", spacing, array.ndim, where=str(path), shape=array.shape)
    return Mask(array=array, spacing=spacing, path=path)


def save_mask(
    path: str | os.PathLike[str], array: np.ndarray, spacing: Sequence[float] | None = None
) -> Path:
    """Write a label map in the format given by the suffix (the inverse of :func:`read_mask`).

    Parameters
    ----------
    path
        Destination; its suffix picks the format (see the module docstring).
    array
        Integer or boolean label map; 2-D for PNG/BMP.
    spacing
        Voxel size per array axis. Stored for NIfTI (header), ImageJ TIFF (3-D: z spacing and
        resolution, 2-D: resolution) and ``.npz`` (an array named ``spacing``); an error for the
        other formats, which cannot hold it.

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
    array = _as_label_map(np.asarray(array), path)
    if spacing is not None:
        spacing = check_spacing("spacing", spacing, array.ndim, where=str(path), shape=array.shape)
    _WRITERS[suffix](path, array, spacing)
    return path


# --- readers: each returns (array, spacing or None) -----------------------------------------------


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    image = nib.load(path)
    # asanyarray on the proxy applies scl_slope/inter only when set; label maps normally have none.
    array = np.asanyarray(image.dataobj)
    zooms = tuple(float(z) for z in image.header.get_zooms())
    # A 3-D map saved as 4-D with one time point (common in converters) is still a 3-D map.
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array, zooms[: array.ndim]


def _read_pillow(path: Path) -> tuple[np.ndarray, None]:
    from PIL import Image

    with Image.open(path) as image:
        mode = image.mode
        # "P" images keep their palette indices, which are the labels.
        array = np.array(image)
    if array.ndim == 3:
        channels = array.shape[-1]
        if mode in ("LA", "PA"):
            array = array[..., 0]
        elif (
            channels >= 3
            and (array[..., 0] == array[..., 1]).all()
            and (array[..., 0] == array[..., 2]).all()
        ):
            array = array[..., 0]  # grey labels stored as RGB(A)
        else:
            raise SegDiceError(
                f"{path}: got a {mode} colour image of shape {array.shape}; expected a single-channel "
                "label map (greyscale or palette image whose values are the labels)"
            )
    return array, None


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        array = tif.asarray()
        spacing = None
        if tif.is_imagej and array.ndim in (2, 3):
            page = tif.pages[0]
            yx = []
            for tag_name in ("YResolution", "XResolution"):
                tag = page.tags.get(tag_name)
                if tag is None:
                    break
                numerator, denominator = tag.value
                if numerator == 0:
                    break
                yx.append(denominator / numerator)  # resolution is pixels per unit
            if len(yx) == 2:
                if array.ndim == 3:
                    z = float((tif.imagej_metadata or {}).get("spacing", 1.0))
                    spacing = (z, *yx)
                else:
                    spacing = tuple(yx)
    return array, spacing


def _read_npy(path: Path) -> tuple[np.ndarray, None]:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise SegDiceError(
                f"{path}: holds pickled Python objects, which segdice never loads; save a numeric array"
            ) from exc
        raise
    return array, None


def _read_npz(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    with np.load(path, allow_pickle=False) as archive:
        keys = [k for k in archive.files if k != "spacing"]
        if len(keys) == 1:
            key = keys[0]
        else:
            candidates = [k for k in _NPZ_MASK_KEYS if k in keys]
            if not candidates:
                raise SegDiceError(
                    f"{path}: holds arrays {keys}; expected one array, or one named "
                    f"{' or '.join(_NPZ_MASK_KEYS)}"
                )
            key = candidates[0]
        try:
            array = archive[key]
            spacing = (
                tuple(float(s) for s in np.ravel(archive["spacing"])) if "spacing" in archive.files else None
            )
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise SegDiceError(
                    f"{path}: holds pickled Python objects, which segdice never loads; save numeric arrays"
                ) from exc
            raise
    return array, spacing


_READERS = {
    ".nii.gz": _read_nifti,
    ".nii": _read_nifti,
    ".png": _read_pillow,
    ".bmp": _read_pillow,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".npy": _read_npy,
    ".npz": _read_npz,
}


# --- writers: each stores (array, spacing or None), spacing already checked against the array -----


def _write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    import nibabel as nib

    affine = np.diag([*(spacing or (1.0,) * array.ndim)[:3], *(1.0,) * max(0, 3 - array.ndim), 1.0])
    image = nib.Nifti1Image(_smallest_int(array), affine)
    if spacing is not None:
        image.header.set_zooms(spacing)
    nib.save(image, path)


def _write_pillow(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    from PIL import Image

    suffix = path.suffix.lower()
    if spacing is not None:
        raise SegDiceError(f"spacing: {suffix} files cannot store a spacing; use .nii.gz, .tif or .npz")
    if array.ndim != 2:
        raise SegDiceError(f"array: got {describe(array, values=False)}; {suffix} needs a 2-D label map")
    if array.min() < 0 or array.max() > 65535:
        raise SegDiceError(f"array: got {describe(array)}; {suffix} stores labels in [0, 65535]")
    dtype = np.uint8 if array.max() <= 255 else np.uint16
    Image.fromarray(array.astype(dtype)).save(path)


def _write_tiff(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    import tifffile

    # minisblack: a (3, Y, X) stack must stay three slices, not become an RGB image.
    kwargs: dict = {"photometric": "minisblack"}
    if spacing is not None:
        kwargs.update(imagej=True, resolution=(1.0 / spacing[-1], 1.0 / spacing[-2]))
        if array.ndim == 3:
            kwargs["metadata"] = {"spacing": spacing[0], "axes": "ZYX"}
        # ImageJ files hold only 8/16-bit integers (and float32).
        array = array.astype(np.uint8 if array.max() <= 255 else np.uint16)
    tifffile.imwrite(path, array, **kwargs)


def _write_npy(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    if spacing is not None:
        raise SegDiceError("spacing: .npy files cannot store a spacing; use .npz")
    np.save(path, array)


def _write_npz(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    extra = {} if spacing is None else {"spacing": np.asarray(spacing, dtype=np.float64)}
    np.savez_compressed(path, mask=array, **extra)


_WRITERS = {
    ".nii.gz": _write_nifti,
    ".nii": _write_nifti,
    ".png": _write_pillow,
    ".bmp": _write_pillow,
    ".tif": _write_tiff,
    ".tiff": _write_tiff,
    ".npy": _write_npy,
    ".npz": _write_npz,
}


# --- validation -----------------------------------------------------------------------------------


def _as_label_map(array: np.ndarray, path: Path) -> np.ndarray:
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


def _smallest_int(array: np.ndarray) -> np.ndarray:
    # nibabel refuses int64 images without an explicit dtype; labels rarely need more than 16 bits.
    if array.size == 0:
        return array.astype(np.uint8)
    lo, hi = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return array.astype(dtype)
    return array.astype(np.int64)
