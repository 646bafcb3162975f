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

import gzip
import importlib
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, check_number, check_spacing, describe

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "SUPPORTED_SUFFIXES",
    "Geometry",
    "Mask",
    "read_mask",
    "save_mask",
    "split_suffix",
]

# Compound suffixes first, so that ".nii.gz" is taken whole.
SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm",
    ".png", ".bmp", ".tiff", ".tif", ".npy", ".npz",
)  # fmt: skip

DEFAULT_MAX_VOXELS = 2**31

# Arrays under these names are taken as the mask of an .npz file that holds several arrays.
_NPZ_MASK_KEYS = ("mask", "seg", "segmentation", "label", "labels", "arr_0")
# Deflate (gzip, zip, PNG) expands at most ~1032-fold; a header that declares more lies.
_DEFLATE_RATIO = 1032
# Slack for the headers inside a compressed stream.
_HEADER_SLACK = 1 << 16
# Above this many declared bytes a .nii.gz is decompressed once, counting, before the array is
# allocated: a lying header costs a streamed pass, never its declared size in memory.
_STREAM_CHECK_BYTES = 256 << 20
_ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")


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
    array = _as_label_map(array, path)
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
    array = _as_label_map(np.asarray(array), path)
    if spacing is not None:
        spacing = check_spacing("spacing", spacing, array.ndim, where=str(path), shape=array.shape)
    if suffix in (".nii", ".nii.gz"):
        import nibabel as nib

        affine = np.diag([*(spacing or (1.0,) * array.ndim)[:3], *(1.0,) * max(0, 3 - array.ndim), 1.0])
        image = nib.Nifti1Image(_smallest_int(array), affine)
        if spacing is not None:
            image.header.set_zooms(spacing)
        nib.save(image, path)
    elif suffix in _ITK_SUFFIXES:
        _write_itk(path, array, spacing)
    elif suffix == ".dcm":
        _write_dicom_seg(path, array, spacing)
    elif suffix in (".png", ".bmp"):
        from PIL import Image

        if spacing is not None:
            raise SegDiceError(f"spacing: {suffix} files cannot store a spacing; use .nii.gz, .tif or .npz")
        if array.ndim != 2:
            raise SegDiceError(f"array: got {describe(array, values=False)}; {suffix} needs a 2-D label map")
        if array.min() < 0 or array.max() > 65535:
            raise SegDiceError(f"array: got {describe(array)}; {suffix} stores labels in [0, 65535]")
        dtype = np.uint8 if array.max() <= 255 else np.uint16
        Image.fromarray(array.astype(dtype)).save(path)
    elif suffix in (".tif", ".tiff"):
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
    elif suffix == ".npy":
        if spacing is not None:
            raise SegDiceError("spacing: .npy files cannot store a spacing; use .npz")
        np.save(path, array)
    else:  # .npz
        extra = {} if spacing is None else {"spacing": np.asarray(spacing, dtype=np.float64)}
        np.savez_compressed(path, mask=array, **extra)
    return path


def _write_itk(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    sitk = _optional_module("SimpleITK", "itk", path)
    if not 2 <= array.ndim <= 3:
        raise SegDiceError(
            f"array: got {describe(array, values=False)}; {path.suffix} needs a 2-D or 3-D map"
        )
    # ITK has no int64 pixels in every writer; labels rarely need more than 16 bits.
    image = sitk.GetImageFromArray(_smallest_int(array))
    if spacing is not None:
        image.SetSpacing(tuple(reversed(spacing)))  # array order (z, y, x) -> ITK order (x, y, z)
    # .mhd and .nhdr keep their data beside them, uncompressed, as most tools expect.
    sitk.WriteImage(image, str(path), useCompression=path.suffix.lower() in (".mha", ".nrrd"))


def _write_dicom_seg(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    raise SegDiceError(
        f"path: {path}: segdice reads DICOM-SEG but does not write it (a SEG must reference its source "
        "images); write one with highdicom.seg.Segmentation, or save the mask as .nii.gz or .nrrd"
    )


# --- size limits: each check runs on what a header declares, before the array is allocated --------


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def _check_declared(path: Path, shape: Sequence[int], max_voxels: int, what: str = "the header") -> int:
    """Raise if ``shape`` has more than ``max_voxels`` voxels; return the voxel count."""
    if any(int(s) < 0 for s in shape):
        raise SegDiceError(f"{path}: {what} declares a negative size {tuple(shape)}; expected sizes >= 0")
    voxels = math.prod(int(s) for s in shape)
    if voxels > max_voxels:
        raise SegDiceError(
            f"{path}: {what} declares an image of {_shape_text(shape)} = {voxels:,} voxels; expected at most "
            f"max_voxels={max_voxels:,} (pass a larger max_voxels to read it)"
        )
    return voxels


def _check_payload(
    path: Path,
    shape: Sequence[int],
    dtype: np.dtype,
    available: int,
    *,
    compressed: bool = False,
    needed: int | None = None,
) -> None:
    """Raise if the declared data needs more bytes than ``available`` can give.

    ``available`` is the number of data bytes in the file; for deflate-compressed data the bound is
    that many compressed bytes times the largest deflate expansion. ``needed`` overrides the bytes
    the shape and dtype need (bit-packed data).
    """
    if needed is None:
        needed = math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    bound = available * _DEFLATE_RATIO + _HEADER_SLACK if compressed else available
    if needed > bound:
        held = (
            f"{available:,} compressed bytes, which expand to at most {bound:,}"
            if compressed
            else f"only {max(available, 0):,} bytes of image data"
        )
        raise SegDiceError(
            f"{path}: the header declares {_shape_text(shape)} voxels of {np.dtype(dtype)} ({needed:,} bytes), "
            f"but the file holds {held}; expected a file that holds its declared image "
            "(a truncated file, or a header that lies about its size)"
        )


def _check_gzip_stream(path: Path, shape: Sequence[int], dtype: np.dtype, offset: int) -> None:
    """Decompress ``path`` once in 1 MiB chunks, keeping nothing, and raise if it is too short."""
    needed = offset + math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize
    total = 0
    with gzip.open(path, "rb") as stream:
        while total < needed:
            chunk = stream.read(min(1 << 20, needed - total))
            if not chunk:
                break
            total += len(chunk)
    if total < needed:
        raise SegDiceError(
            f"{path}: the header declares {_shape_text(shape)} voxels of {np.dtype(dtype)}, but the file "
            f"decompresses to only {total:,} of the {needed:,} bytes needed; expected a complete file "
            "(a truncated file, or a header that lies about its size)"
        )


def _check_single_volume(path: Path, shape: Sequence[int], volumes: int) -> None:
    """Raise if an image of ``shape`` (array order) holds more than one volume."""
    if volumes > 1:
        raise SegDiceError(
            f"{path}: got a {len(shape)}-D image of {_shape_text(shape)} holding {volumes} volumes; expected "
            "one label map (at most 3-D; an axis of length 1 beyond the third is dropped): take the "
            "arg-max of a probability map, or split the volumes into files"
        )


def _optional_module(module: str, extra: str, path: Path):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SegDiceError(
            f"{path}: reading or writing {split_suffix(path)[1] or path.suffix} files needs {module}, which "
            f"is not installed; pip install 'segdice[{extra}]'"
        ) from exc


# --- geometry -------------------------------------------------------------------------------------

# LPS+ (ITK, DICOM) to RAS+ (NIfTI): negate x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _geometry_from_affine(affine: np.ndarray, ndim: int) -> Geometry:
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


def _affine_from_lps(origin: Sequence[float], columns: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """A RAS+ affine from an LPS+ origin and LPS+ unit direction columns given in array axis order.

    ``columns`` is 3 x n (n = 2 or 3 array axes); a 2-D map gets the plane normal as third column.
    """
    columns = _LPS_TO_RAS @ np.asarray(columns, dtype=np.float64)
    affine = np.eye(4)
    for axis in range(columns.shape[1]):
        affine[:3, axis] = columns[:, axis] * spacing[axis]
    if columns.shape[1] == 2:
        normal = np.cross(columns[:, 0], columns[:, 1])
        affine[:3, 2] = normal / (np.linalg.norm(normal) or 1.0)
    affine[:3, 3] = _LPS_TO_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


# --- readers: each takes (path, max_voxels) and returns (array, spacing or None, geometry or None) -


def _read_nifti(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    import nibabel as nib

    image = nib.load(path)
    header = image.header
    shape = tuple(int(s) for s in header.get_data_shape())
    dtype = header.get_data_dtype()
    if dtype.fields is not None:  # RGB24 / RGBA32 NIfTI images have structured voxels
        raise SegDiceError(f"{path}: got a colour ({dtype}) image; expected a single-channel label map")
    _check_single_volume(path, shape, math.prod(shape[3:]))
    _check_declared(path, shape, max_voxels)
    # The loaded header forgets vox_offset (the image manages it); the array proxy keeps it.
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
    size = path.stat().st_size
    if split_suffix(path)[1].lower() == ".nii.gz":
        _check_payload(path, shape, dtype, size, compressed=True)
        if math.prod(shape) * dtype.itemsize > _STREAM_CHECK_BYTES:
            _check_gzip_stream(path, shape, dtype, offset)
    else:
        _check_payload(path, shape, dtype, size - offset)
    # asanyarray on the proxy applies scl_slope/inter only when set; label maps normally have none.
    array = np.asanyarray(image.dataobj)
    zooms = tuple(float(z) for z in header.get_zooms())
    # A 3-D map saved as 4-D with one time point (common in converters) is still a 3-D map.
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array, zooms[: array.ndim], _geometry_from_affine(image.affine, min(array.ndim, 3))


def _itk_available_bytes(path: Path) -> tuple[int, bool] | None:
    """Bytes of image data a MetaImage/NRRD file (or its data file) holds, and whether deflated.

    ``None`` when the header names several data files or a codec without a useful bound (bzip2).
    Only the text header is read.
    """
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    size = path.stat().st_size
    meta = path.suffix.lower() in (".mha", ".mhd")
    fields: dict[str, str] = {}
    end = len(head)
    position = 0
    for raw_line in head.splitlines(keepends=True):
        position += len(raw_line)
        line = raw_line.decode("latin-1").strip()
        if not meta and not line:  # NRRD: a blank line ends the header
            end = position
            break
        key, sep, value = line.partition("=" if meta else ":")
        if not sep or line.startswith("#"):
            continue
        key = key.strip().lower().replace(" ", "")
        fields[key] = value.strip().lstrip("=").strip()
        if meta and key == "elementdatafile":  # the last MetaImage field; data follows
            end = position
            break
    if meta:
        data_name, compressed = fields.get("elementdatafile", "LOCAL"), fields.get("compresseddata", "")
        deflated = compressed.lower() == "true"
    else:
        data_name = fields.get("datafile", "LOCAL")
        encoding = fields.get("encoding", "raw").lower()
        if encoding in ("bzip2", "bz2"):
            return None
        deflated = encoding in ("gzip", "gz")
        if encoding == "hex":
            size //= 2
    if data_name.upper() == "LOCAL":
        return size - end, deflated
    if data_name.upper().startswith("LIST") or " " in data_name or "%" in data_name:
        return None
    data_file = path.parent / data_name
    if not data_file.is_file():
        return None  # SimpleITK reports the missing data file itself
    return data_file.stat().st_size, deflated


def _read_itk(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    sitk = _optional_module("SimpleITK", "itk", path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()  # the header only
    size = tuple(int(s) for s in reader.GetSize())  # x, y, z[, t]
    shape = tuple(reversed(size))  # array axis order
    components = int(reader.GetNumberOfComponents())
    if components > 1:
        raise SegDiceError(
            f"{path}: got an image of {_shape_text(shape)} voxels with {components} components per voxel "
            "(a colour or vector image); expected a single-channel label map"
        )
    # A time axis is ITK's 4th index, the array's first axis.
    _check_single_volume(path, shape, math.prod(size[3:]))
    _check_declared(path, shape, max_voxels)
    bound = _itk_available_bytes(path)
    if bound is not None:
        dtype = sitk.GetArrayViewFromImage(sitk.Image([1] * len(size), reader.GetPixelID())).dtype
        _check_payload(path, shape, dtype, bound[0], compressed=bound[1])
    image = reader.Execute()
    array = sitk.GetArrayFromImage(image)
    while array.ndim > 3 and array.shape[0] == 1:
        array = array[0]
    n = array.ndim
    dimension = len(size)
    spacing = tuple(float(s) for s in reversed(image.GetSpacing()[:n]))
    matrix = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dimension, dimension)[:n, :n]
    columns = np.zeros((3, n))
    columns[:n, :] = matrix[:, ::-1]  # ITK index axis n-1-a is array axis a
    origin = np.zeros(3)
    origin[:n] = image.GetOrigin()[:n]
    affine = _affine_from_lps(origin, columns, spacing)
    return array, spacing, _geometry_from_affine(affine, n)


def _read_dicom_seg(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    pydicom = _optional_module("pydicom", "dicom", path)
    highdicom = _optional_module("highdicom", "dicom", path)
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    modality = str(dataset.get("Modality", "none"))
    if modality != "SEG":
        raise SegDiceError(
            f"{path}: a DICOM file of modality {modality}; expected a DICOM Segmentation (modality SEG)"
        )
    kind = str(dataset.get("SegmentationType", ""))
    if kind not in ("BINARY", "LABELMAP"):
        raise SegDiceError(
            f"{path}: a {kind or 'untyped'} DICOM-SEG; expected a BINARY or LABELMAP segmentation "
            "(fractional segments are probabilities: threshold them first)"
        )
    frames = int(dataset.get("NumberOfFrames", 1))
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    _check_declared(path, (frames, rows, columns), max_voxels, what="the header (frames x rows x columns)")
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not syntax.is_compressed:
        bits = frames * rows * columns * int(dataset.get("BitsAllocated", 1))
        _check_payload(
            path, (frames, rows, columns), np.dtype(np.uint8), path.stat().st_size, needed=math.ceil(bits / 8)
        )
    segmentation = highdicom.seg.segread(path)
    volume = segmentation.get_volume(combine_segments=True, relabel=False)
    array = np.asarray(volume.array)
    affine = np.asarray(volume.affine, dtype=np.float64)  # (slice, row, column) -> LPS+
    # Put slices in the order ITK's DICOM series reader uses: ascending along row x column normal.
    normal = np.cross(affine[:3, 2], affine[:3, 1])
    if float(np.dot(normal, affine[:3, 0])) < 0 and array.shape[0] > 1:
        array = array[::-1]
        affine[:3, 3] += affine[:3, 0] * (array.shape[0] - 1)
        affine[:3, 0] *= -1
    spacing = tuple(float(np.linalg.norm(affine[:3, a])) for a in range(3))
    columns_lps = affine[:3, :3] / np.asarray(spacing)
    return array, spacing, _geometry_from_affine(_affine_from_lps(affine[:3, 3], columns_lps, spacing), 3)


def _read_pillow(path: Path, max_voxels: int) -> tuple[np.ndarray, None, None]:
    from PIL import Image

    with Image.open(path) as image:
        mode = image.mode
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1:
            raise SegDiceError(
                f"{path}: holds {frames} frames; expected one 2-D label map (save a stack as .tif or .nii.gz)"
            )
        _check_declared(path, (height, width), max_voxels)
        # A 1-bit image packs 8 pixels per byte before compression; the bound allows for it.
        _check_payload(
            path,
            (height, width),
            np.dtype(np.uint8),
            path.stat().st_size,
            compressed=True,
            needed=math.ceil(width * height / 8),
        )
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
    return array, None, None


def _read_tiff(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...] | None, None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if len(series) != 1:
            shapes = ", ".join(_shape_text(s.shape) for s in series)
            raise SegDiceError(
                f"{path}: holds {len(series)} image series ({shapes or 'none'}); expected one label map "
                "(one series: every page the same size and type)"
            )
        page = tif.pages[0]
        samples = int(getattr(page, "samplesperpixel", 1))
        if samples > 1:
            raise SegDiceError(
                f"{path}: got a {page.photometric.name} image of {_shape_text(series[0].shape)} with {samples} "
                "samples per pixel; expected a single-channel label map (greyscale or palette)"
            )
        _check_declared(path, series[0].shape, max_voxels)
        if all(int(p.compression) == 1 for p in series[0].pages if p is not None):
            _check_payload(path, series[0].shape, series[0].dtype, path.stat().st_size)
        array = tif.asarray()
        spacing = None
        if tif.is_imagej and array.ndim in (2, 3):
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
    return array, spacing, None


def _pickle_error(path: Path) -> SegDiceError:
    return SegDiceError(
        f"{path}: holds pickled Python objects, which segdice never loads; save a numeric array"
    )


def _npy_header(stream, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the ``.npy`` stream at its start."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read_header(stream)
    if dtype.hasobject:
        raise _pickle_error(path)
    return tuple(int(s) for s in shape), dtype, stream.tell()


def _read_npy(path: Path, max_voxels: int) -> tuple[np.ndarray, None, None]:
    with open(path, "rb") as handle:
        shape, dtype, offset = _npy_header(handle, path)
    _check_declared(path, shape, max_voxels)
    _check_payload(path, shape, dtype, path.stat().st_size - offset)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickle_error(path) from exc
        raise
    return array, None, None


def _check_npz_member(path: Path, archive: zipfile.ZipFile, name: str, max_voxels: int) -> None:
    """Check one ``.npy`` member of an ``.npz`` from its zip entry and its header, reading no data."""
    info = archive.getinfo(f"{name}.npy")
    with archive.open(info) as member:
        shape, dtype, offset = _npy_header(member, path)
    what = f"the member {name!r}"
    _check_declared(path, shape, max_voxels, what=what)
    declared = offset + math.prod(shape) * dtype.itemsize
    if info.file_size != declared:
        raise SegDiceError(
            f"{path}: {what} declares {_shape_text(shape)} voxels of {dtype} ({declared:,} bytes with its "
            f"header), but its zip entry says {info.file_size:,} bytes; expected the two to agree "
            "(a damaged or forged archive)"
        )
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else None
    if limit is None:
        limit = info.compress_size * _DEFLATE_RATIO + _HEADER_SLACK
    if info.file_size > limit:
        raise SegDiceError(
            f"{path}: {what} claims {info.file_size:,} bytes uncompressed from {info.compress_size:,} "
            f"compressed bytes, more than compression can produce (at most {limit:,}); expected an "
            "honest archive (a zip bomb or a damaged file)"
        )


def _read_npz(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...] | None, None]:
    with zipfile.ZipFile(path) as archive:
        files = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        keys = [k for k in files if k != "spacing"]
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
        for name in (key, "spacing") if "spacing" in files else (key,):
            _check_npz_member(path, archive, name, max_voxels)
    with np.load(path, allow_pickle=False) as npz:
        array = npz[key]
        spacing = tuple(float(s) for s in np.ravel(npz["spacing"])) if "spacing" in files else None
    return array, spacing, None


_READERS = {
    ".nii.gz": _read_nifti,
    ".nii": _read_nifti,
    ".mha": _read_itk,
    ".mhd": _read_itk,
    ".nrrd": _read_itk,
    ".nhdr": _read_itk,
    ".dcm": _read_dicom_seg,
    ".png": _read_pillow,
    ".bmp": _read_pillow,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".npy": _read_npy,
    ".npz": _read_npz,
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
