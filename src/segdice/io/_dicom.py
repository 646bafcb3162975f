"""DICOM-SEG (``.dcm``) through highdicom: segments become labels (segment number = label)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from segdice._checks import SegDiceError
from segdice.io._limits import check_declared, check_payload, optional_module
from segdice.io._world import Geometry, affine_from_lps, geometry_from_affine


def read_dicom_seg(path: Path, max_voxels: int) -> tuple[np.ndarray, tuple[float, ...], Geometry]:
    pydicom = optional_module("pydicom", "dicom", path)
    highdicom = optional_module("highdicom", "dicom", path)
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
    check_declared(path, (frames, rows, columns), max_voxels, what="the header (frames x rows x columns)")
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and not syntax.is_compressed:
        bits = frames * rows * columns * int(dataset.get("BitsAllocated", 1))
        check_payload(
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
    return array, spacing, geometry_from_affine(affine_from_lps(affine[:3, 3], columns_lps, spacing), 3)


def write_dicom_seg(path: Path, array: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    raise SegDiceError(
        f"path: {path}: segdice reads DICOM-SEG but does not write it (a SEG must reference its source "
        "images); write one with highdicom.seg.Segmentation, or save the mask as .nii.gz or .nrrd"
    )
