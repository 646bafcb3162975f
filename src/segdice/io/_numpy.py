"""NumPy files (``.npy``, ``.npz``), always opened with ``allow_pickle=False``.

Headers are read first, from the file or from the zip entry of an ``.npz`` member, so that a forged
shape or a zip bomb is refused before NumPy allocates the array.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from segdice._checks import SegDiceError
from segdice.io._limits import DEFLATE_RATIO, HEADER_SLACK, check_declared, check_payload, shape_text

# Arrays under these names are taken as the mask of an .npz file that holds several arrays.
NPZ_MASK_KEYS = ("mask", "seg", "segmentation", "label", "labels", "arr_0")


def pickle_error(path: Path) -> SegDiceError:
    return SegDiceError(
        f"{path}: holds pickled Python objects, which segdice never loads; save a numeric array"
    )


def npy_header(stream: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and header length of the ``.npy`` stream at its start."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read_header(stream)
    if dtype.hasobject:
        raise pickle_error(path)
    return tuple(int(s) for s in shape), dtype, stream.tell()


def read_npy(path: Path, max_voxels: int) -> tuple[np.ndarray, None, None]:
    with open(path, "rb") as handle:
        shape, dtype, offset = npy_header(handle, path)
    check_declared(path, shape, max_voxels)
    check_payload(path, shape, dtype, path.stat().st_size - offset)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise pickle_error(path) from exc
        raise
    return array, None, None


def write_npy(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    if spacing is not None:
        raise SegDiceError("spacing: .npy files cannot store a spacing; use .npz")
    np.save(path, array)


def check_npz_member(path: Path, archive: zipfile.ZipFile, name: str, max_voxels: int) -> None:
    """Check one ``.npy`` member of an ``.npz`` from its zip entry and its header, reading no data."""
    info = archive.getinfo(f"{name}.npy")
    with archive.open(info) as member:
        shape, dtype, offset = npy_header(member, path)
    what = f"the member {name!r}"
    check_declared(path, shape, max_voxels, what=what)
    declared = offset + math.prod(shape) * dtype.itemsize
    if info.file_size != declared:
        raise SegDiceError(
            f"{path}: {what} declares {shape_text(shape)} voxels of {dtype} ({declared:,} bytes with its "
            f"header), but its zip entry says {info.file_size:,} bytes; expected the two to agree "
            "(a damaged or forged archive)"
        )
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else None
    if limit is None:
        limit = info.compress_size * DEFLATE_RATIO + HEADER_SLACK
    if info.file_size > limit:
        raise SegDiceError(
            f"{path}: {what} claims {info.file_size:,} bytes uncompressed from {info.compress_size:,} "
            f"compressed bytes, more than compression can produce (at most {limit:,}); expected an "
            "honest archive (a zip bomb or a damaged file)"
        )


def read_npz(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...] | None, None]:
    with zipfile.ZipFile(path) as archive:
        files = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        keys = [k for k in files if k != "spacing"]
        if len(keys) == 1:
            key = keys[0]
        else:
            candidates = [k for k in NPZ_MASK_KEYS if k in keys]
            if not candidates:
                raise SegDiceError(
                    f"{path}: holds arrays {keys}; expected one array, or one named "
                    f"{' or '.join(NPZ_MASK_KEYS)}"
                )
            key = candidates[0]
        for name in (key, "spacing") if "spacing" in files else (key,):
            check_npz_member(path, archive, name, max_voxels)
    with np.load(path, allow_pickle=False) as npz:
        array = npz[key]
        spacing = tuple(float(s) for s in np.ravel(npz["spacing"])) if "spacing" in files else None
    return array, spacing, None


def write_npz(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    extra = {} if spacing is None else {"spacing": np.asarray(spacing, dtype=np.float64)}
    np.savez_compressed(path, mask=array, **extra)
