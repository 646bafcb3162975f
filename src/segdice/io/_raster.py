"""2-D images (``.png``, ``.bmp``) through Pillow and TIFF stacks (``.tif``, ``.tiff``) through tifffile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError, describe
from segdice.io._limits import check_declared, check_payload, shape_text


def read_pillow(path: Path, max_voxels: int) -> tuple[np.ndarray, None, None]:
    from PIL import Image

    with Image.open(path) as image:
        mode = image.mode
        width, height = image.size
        frames = int(getattr(image, "n_frames", 1))
        if frames > 1:
            raise SegDiceError(
                f"{path}: holds {frames} frames; expected one 2-D label map (save a stack as .tif or .nii.gz)"
            )
        check_declared(path, (height, width), max_voxels)
        # A 1-bit image packs 8 pixels per byte before compression; the bound allows for it.
        check_payload(
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


def write_pillow(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
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


def read_tiff(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...] | None, None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if len(series) != 1:
            shapes = ", ".join(shape_text(s.shape) for s in series)
            raise SegDiceError(
                f"{path}: holds {len(series)} image series ({shapes or 'none'}); expected one label map "
                "(one series: every page the same size and type)"
            )
        page = tif.pages[0]
        samples = int(getattr(page, "samplesperpixel", 1))
        if samples > 1:
            raise SegDiceError(
                f"{path}: got a {page.photometric.name} image of {shape_text(series[0].shape)} with {samples} "
                "samples per pixel; expected a single-channel label map (greyscale or palette)"
            )
        check_declared(path, series[0].shape, max_voxels)
        if all(int(p.compression) == 1 for p in series[0].pages if p is not None):
            check_payload(path, series[0].shape, series[0].dtype, path.stat().st_size)
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


def write_tiff(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
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
