"""MetaImage (``.mha``, ``.mhd`` + data file) and NRRD (``.nrrd``, ``.nhdr`` + data file) through SimpleITK.

SimpleITK reports sizes, spacing and origin as ``x, y, z`` and gives arrays as ``(z, y, x)``; everything
here is turned into array axis order, and LPS+ world coordinates into RAS+.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, describe
from segdice.io._limits import check_declared, check_payload, check_single_volume, optional_module, shape_text
from segdice.io._values import smallest_int
from segdice.io._world import Geometry, affine_from_lps, geometry_from_affine

ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")


def itk_available_bytes(path: Path) -> tuple[int, bool] | None:
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


def read_itk(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    sitk = optional_module("SimpleITK", "itk", path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()  # the header only
    size = tuple(int(s) for s in reader.GetSize())  # x, y, z[, t]
    shape = tuple(reversed(size))  # array axis order
    components = int(reader.GetNumberOfComponents())
    if components > 1:
        raise SegDiceError(
            f"{path}: got an image of {shape_text(shape)} voxels with {components} components per voxel "
            "(a colour or vector image); expected a single-channel label map"
        )
    # A time axis is ITK's 4th index, the array's first axis.
    check_single_volume(path, shape, math.prod(size[3:]))
    check_declared(path, shape, max_voxels)
    bound = itk_available_bytes(path)
    if bound is not None:
        dtype = sitk.GetArrayViewFromImage(sitk.Image([1] * len(size), reader.GetPixelID())).dtype
        check_payload(path, shape, dtype, bound[0], compressed=bound[1])
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
    affine = affine_from_lps(origin, columns, spacing)
    return array, spacing, geometry_from_affine(affine, n)


def write_itk(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    sitk = optional_module("SimpleITK", "itk", path)
    if not 2 <= array.ndim <= 3:
        raise SegDiceError(
            f"array: got {describe(array, values=False)}; {path.suffix} needs a 2-D or 3-D map"
        )
    # ITK has no int64 pixels in every writer; labels rarely need more than 16 bits.
    image = sitk.GetImageFromArray(smallest_int(array))
    if spacing is not None:
        image.SetSpacing(tuple(reversed(spacing)))  # array order (z, y, x) -> ITK order (x, y, z)
    # .mhd and .nhdr keep their data beside them, uncompressed, as most tools expect.
    sitk.WriteImage(image, str(path), useCompression=path.suffix.lower() in (".mha", ".nrrd"))
