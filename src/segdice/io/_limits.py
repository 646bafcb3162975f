"""Size limits checked on what a header declares, before anything large is allocated."""

from __future__ import annotations

import gzip
import importlib
import math
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from segdice._checks import SegDiceError

# Deflate (gzip, zip, PNG) expands at most ~1032-fold; a header that declares more lies.
DEFLATE_RATIO = 1032


# Slack for the headers inside a compressed stream.
HEADER_SLACK = 1 << 16


# Above this many declared bytes a .nii.gz is decompressed once, counting, before the array is
# allocated: a lying header costs a streamed pass, never its declared size in memory.
STREAM_CHECK_BYTES = 256 << 20


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def check_declared(path: Path, shape: Sequence[int], max_voxels: int, what: str = "the header") -> int:
    """Raise if ``shape`` has more than ``max_voxels`` voxels; return the voxel count."""
    if any(int(s) < 0 for s in shape):
        raise SegDiceError(f"{path}: {what} declares a negative size {tuple(shape)}; expected sizes >= 0")
    voxels = math.prod(int(s) for s in shape)
    if voxels > max_voxels:
        raise SegDiceError(
            f"{path}: {what} declares an image of {shape_text(shape)} = {voxels:,} voxels; expected at most "
            f"max_voxels={max_voxels:,} (pass a larger max_voxels to read it)"
        )
    return voxels


def check_payload(
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
    bound = available * DEFLATE_RATIO + HEADER_SLACK if compressed else available
    if needed > bound:
        held = (
            f"{available:,} compressed bytes, which expand to at most {bound:,}"
            if compressed
            else f"only {max(available, 0):,} bytes of image data"
        )
        raise SegDiceError(
            f"{path}: the header declares {shape_text(shape)} voxels of {np.dtype(dtype)} ({needed:,} bytes), "
            f"but the file holds {held}; expected a file that holds its declared image "
            "(a truncated file, or a header that lies about its size)"
        )


def check_gzip_stream(path: Path, shape: Sequence[int], dtype: np.dtype, offset: int) -> None:
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
            f"{path}: the header declares {shape_text(shape)} voxels of {np.dtype(dtype)}, but the file "
            f"decompresses to only {total:,} of the {needed:,} bytes needed; expected a complete file "
            "(a truncated file, or a header that lies about its size)"
        )


def check_single_volume(path: Path, shape: Sequence[int], volumes: int) -> None:
    """Raise if an image of ``shape`` (array order) holds more than one volume."""
    if volumes > 1:
        raise SegDiceError(
            f"{path}: got a {len(shape)}-D image of {shape_text(shape)} holding {volumes} volumes; expected "
            "one label map (at most 3-D; an axis of length 1 beyond the third is dropped): take the "
            "arg-max of a probability map, or split the volumes into files"
        )


def optional_module(module: str, extra: str, path: Path) -> ModuleType:
    """Import ``module``, or raise naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SegDiceError(
            f"{path}: reading or writing {path.suffix} files needs {module}, which "
            f"is not installed; pip install 'segdice[{extra}]'"
        ) from exc
