"""NIfTI (``.nii``, ``.nii.gz``) through nibabel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError
from segdice.io._limits import (
    STREAM_CHECK_BYTES,
    check_declared,
    check_gzip_stream,
    check_payload,
    check_single_volume,
)
from segdice.io._values import smallest_int
from segdice.io._world import Geometry, geometry_from_affine


def read_nifti(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    import nibabel as nib

    image = nib.load(path)
    header = image.header
    shape = tuple(int(s) for s in header.get_data_shape())
    dtype = header.get_data_dtype()
    if dtype.fields is not None:  # RGB24 / RGBA32 NIfTI images have structured voxels
        raise SegDiceError(f"{path}: got a colour ({dtype}) image; expected a single-channel label map")
    check_single_volume(path, shape, math.prod(shape[3:]))
    check_declared(path, shape, max_voxels)
    # The loaded header forgets vox_offset (the image manages it); the array proxy keeps it.
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
    size = path.stat().st_size
    if path.name.lower().endswith(".nii.gz"):
        check_payload(path, shape, dtype, size, compressed=True)
        if math.prod(shape) * dtype.itemsize > STREAM_CHECK_BYTES:
            check_gzip_stream(path, shape, dtype, offset)
    else:
        check_payload(path, shape, dtype, size - offset)
    # asanyarray on the proxy applies scl_slope/inter only when set; label maps normally have none.
    array = np.asanyarray(image.dataobj)
    zooms = tuple(float(z) for z in header.get_zooms())
    # A 3-D map saved as 4-D with one time point (common in converters) is still a 3-D map.
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array, zooms[: array.ndim], geometry_from_affine(image.affine, min(array.ndim, 3))


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    import nibabel as nib

    affine = np.diag([*(spacing or (1.0,) * array.ndim)[:3], *(1.0,) * max(0, 3 - array.ndim), 1.0])
    image = nib.Nifti1Image(smallest_int(array), affine)
    if spacing is not None:
        image.header.set_zooms(spacing)
    nib.save(image, path)
