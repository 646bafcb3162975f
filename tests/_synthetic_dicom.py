"""Build a small synthetic CT series (pydicom) and a DICOM-SEG on it (highdicom) for the io tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def ct_series(
    folder: Path,
    shape: tuple[int, int, int] = (4, 6, 5),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.6),
    origin: tuple[float, float, float] = (10.0, -20.0, 30.0),
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
) -> list:
    """Write ``shape[0]`` CT slices to ``folder``; return the datasets (slice k at origin + k * normal).

    ``spacing`` is (slice, row, column) in mm; ``orientation`` the ImageOrientationPatient (LPS+).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    row_cosines, column_cosines = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row_cosines, column_cosines)
    slices, rows, columns = shape
    datasets = []
    for k in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "P1", "Test^Patient"
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.ReferringPhysicianName = "", "O", "", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "000000", "1"
        ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 1, k + 1, "segdice-tests"
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin) + k * spacing[0] * normal]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, columns, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = np.full((rows, columns), 100 * k, np.int16).tobytes()
        ds.save_as(folder / f"ct_{k:03d}.dcm", enforce_file_format=True)
        datasets.append(ds)
    return datasets


def write_seg(path: Path, source: list, labels: np.ndarray, *, omit_empty_frames: bool = False) -> Path:
    """Write ``labels`` (slice, row, column; value = segment number) as a BINARY DICOM-SEG on ``source``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    numbers = [int(v) for v in np.unique(labels) if v > 0]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"segment {number}",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for number in numbers
    ]
    seg = hd.seg.Segmentation(
        source_images=source,
        pixel_array=labels.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="segdice-tests",
        manufacturer_model_name="synthetic",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=omit_empty_frames,
    )
    seg.save_as(path)
    return path
