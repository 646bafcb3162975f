"""segdice.io: MHA/MHD/NRRD/NHDR (SimpleITK) and DICOM-SEG (highdicom), spacing and geometry.

Every file is written here by its own library (SimpleITK, nibabel, pydicom + highdicom); the expected
spacing and world positions come from that library's own answer (``TransformIndexToPhysicalPoint``,
the DICOM ImagePositionPatient), converted from LPS+ to RAS+ by hand.
"""

import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _synthetic_dicom import ct_series, write_seg
from segdice import SegDiceError
from segdice.io import Geometry, Mask, read_mask, save_mask, split_suffix

ITK_SUFFIXES = [".mha", ".mhd", ".nrrd", ".nhdr"]
# (x, y, z) as SimpleITK reports them; the array is (z, y, x).
SPACING_XYZ = (0.5, 0.7, 3.0)
ORIGIN_LPS = (12.0, -7.5, 40.0)
# Index axis x points along -y, index axis y along +x (columns of the direction matrix).
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def world(geometry: Geometry, spacing, index) -> np.ndarray:
    """World position of an array index from the documented formula (not from the affine)."""
    position = np.asarray(geometry.origin, dtype=float)
    for axis, step in enumerate(index):
        position = position + step * spacing[axis] * np.asarray(geometry.direction[axis])
    return position


def lps_to_ras(point) -> np.ndarray:
    x, y, z = point
    return np.array([-x, -y, z])


def anisotropic_image() -> tuple[np.ndarray, sitk.Image]:
    array = np.zeros((4, 5, 6), dtype=np.uint8)  # (z, y, x)
    array[1, 2, 3] = 5
    array[3, 0, 1] = 2
    array[0, 4, 5] = 9
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN_LPS)
    image.SetDirection(DIRECTION)
    return array, image


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("suffix", ITK_SUFFIXES)
def test_itk_formats_spacing_in_array_order_and_geometry(tmp_path, suffix, compress):
    array, image = anisotropic_image()
    path = tmp_path / f"case{suffix}"
    sitk.WriteImage(image, str(path), useCompression=compress)
    mask = read_mask(path)
    np.testing.assert_array_equal(mask.array, array)
    assert mask.spacing == pytest.approx((3.0, 0.7, 0.5))  # z, y, x: the array's axes
    for index in [(0, 0, 0), (1, 2, 3), (3, 0, 1), (3, 4, 5)]:
        expected = lps_to_ras(image.TransformIndexToPhysicalPoint(tuple(int(i) for i in index[::-1])))
        np.testing.assert_allclose(world(mask.geometry, mask.spacing, index), expected, atol=1e-9)
        np.testing.assert_allclose(np.array(mask.geometry.affine) @ [*index, 1], [*expected, 1], atol=1e-9)
    assert mask.geometry.origin == pytest.approx((-12.0, 7.5, 40.0))


def test_the_same_image_agrees_through_nibabel_and_simpleitk(tmp_path):
    """SimpleITK's NIfTI writer converts LPS to RAS itself; nibabel reads the array as (i, j, k)."""
    _, image = anisotropic_image()
    sitk.WriteImage(image, str(tmp_path / "a.nii.gz"))
    sitk.WriteImage(image, str(tmp_path / "a.nrrd"))
    via_nibabel, via_itk = read_mask(tmp_path / "a.nii.gz"), read_mask(tmp_path / "a.nrrd")
    np.testing.assert_array_equal(via_nibabel.array, via_itk.array.transpose(2, 1, 0))
    assert via_nibabel.spacing == pytest.approx(via_itk.spacing[::-1])
    for index in [(0, 0, 0), (5, 4, 3), (1, 2, 0)]:
        np.testing.assert_allclose(
            world(via_nibabel.geometry, via_nibabel.spacing, index),
            world(via_itk.geometry, via_itk.spacing, index[::-1]),
            atol=1e-5,  # the NIfTI header stores float32
        )


def test_nifti_geometry_is_the_affine(tmp_path):
    affine = np.array([[0.0, -0.75, 0.0, 5.0], [0.5, 0.0, 0.0, -3.0], [0.0, 0.0, 2.5, 7.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.uint8), affine), tmp_path / "n.nii")
    mask = read_mask(tmp_path / "n.nii")
    np.testing.assert_allclose(np.array(mask.geometry.affine), affine)
    assert mask.geometry.origin == (5.0, -3.0, 7.0)
    np.testing.assert_allclose(mask.geometry.direction, [[0, 1, 0], [-1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(world(mask.geometry, mask.spacing, (2, 3, 4)), (affine @ [2, 3, 4, 1])[:3])


def test_two_d_mha_and_formats_without_geometry(tmp_path):
    plane = np.arange(12, dtype=np.uint16).reshape(3, 4) % 3
    image = sitk.GetImageFromArray(plane)
    image.SetSpacing((0.25, 2.0))  # x, y
    image.SetOrigin((1.0, 2.0))
    sitk.WriteImage(image, str(tmp_path / "p.mha"))
    mask = read_mask(tmp_path / "p.mha")
    np.testing.assert_array_equal(mask.array, plane)
    assert mask.spacing == (2.0, 0.25)
    expected = lps_to_ras([*image.TransformIndexToPhysicalPoint((3, 2)), 0.0])
    np.testing.assert_allclose(world(mask.geometry, mask.spacing, (2, 3)), expected)
    save_mask(tmp_path / "p.npz", plane, spacing=(2.0, 0.25))
    assert read_mask(tmp_path / "p.npz").geometry is None


def test_four_d_itk_with_one_time_point_is_three_d(tmp_path):
    volume = np.zeros((1, 3, 4, 5), np.uint8)  # (t, z, y, x)
    volume[0, 1, 2, 3] = 4
    image = sitk.GetImageFromArray(volume, isVector=False)
    image.SetSpacing((0.5, 1.0, 2.0, 9.0))
    sitk.WriteImage(image, str(tmp_path / "t.nrrd"))
    mask = read_mask(tmp_path / "t.nrrd")
    np.testing.assert_array_equal(mask.array, volume[0])
    assert mask.spacing == (2.0, 1.0, 0.5)


@given(
    labels=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.int32]),
        shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
        elements=st.integers(0, 255),
    ),
    suffix=st.sampled_from(ITK_SUFFIXES),
    seed=st.integers(0, 10_000),
)
def test_save_mask_itk_roundtrip_and_simpleitk_reads_xyz(tmp_path_factory, labels, suffix, seed):
    spacing = tuple(np.random.default_rng(seed).uniform(0.2, 4.0, labels.ndim).round(3))
    path = save_mask(tmp_path_factory.mktemp("itk") / f"case{suffix}", labels, spacing=spacing)
    mask = read_mask(path)
    np.testing.assert_array_equal(mask.array, labels)
    assert mask.spacing == pytest.approx(spacing)
    reference = sitk.ReadImage(str(path))
    assert reference.GetSpacing() == pytest.approx(spacing[::-1])  # SimpleITK: x first
    np.testing.assert_array_equal(sitk.GetArrayFromImage(reference), labels)


def test_mask_stays_backwards_compatible(tmp_path):
    mask = Mask(np.zeros((2, 2), np.uint8), None, tmp_path / "x.npy")
    assert mask.geometry is None
    assert split_suffix("brain.nhdr") == ("brain", ".nhdr")
    assert split_suffix("seg.DCM") == ("seg", ".DCM")


# --- DICOM-SEG ------------------------------------------------------------------------------------


def seg_labels(shape=(4, 6, 5)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[1:3, 2:4, 1:3] = 1
    labels[3, 0, 0] = 2
    labels[0, 5, 4] = 3
    return labels


@pytest.mark.parametrize(
    "orientation",
    [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)],  # axial, sagittal
    ids=["axial", "sagittal"],
)
def test_dicom_seg_segments_become_labels_on_the_source_grid(tmp_path, orientation):
    source = ct_series(tmp_path / "ct", orientation=orientation)
    labels = seg_labels()
    mask = read_mask(write_seg(tmp_path / "seg.dcm", source, labels))
    np.testing.assert_array_equal(mask.array, labels)  # segment number = label, slices as the series
    assert mask.spacing == pytest.approx((2.5, 0.8, 0.6))
    row_cosines, column_cosines = np.array(orientation[:3]), np.array(orientation[3:])
    for k, r, c in [(0, 0, 0), (3, 5, 4), (2, 1, 3)]:
        # DICOM: column index c steps along the row cosines by the column spacing (PixelSpacing[1]).
        lps = np.array(source[k].ImagePositionPatient) + c * 0.6 * row_cosines + r * 0.8 * column_cosines
        np.testing.assert_allclose(world(mask.geometry, mask.spacing, (k, r, c)), lps_to_ras(lps), atol=1e-6)


def test_dicom_seg_matches_simpleitk_reading_the_ct_series(tmp_path):
    source = ct_series(tmp_path / "ct")
    mask = read_mask(write_seg(tmp_path / "seg.dcm", source, seg_labels()))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    ct = reader.Execute()
    assert ct.GetSize()[::-1] == mask.array.shape
    assert mask.spacing == pytest.approx(ct.GetSpacing()[::-1])
    for index in [(0, 0, 0), (3, 5, 4)]:
        expected = lps_to_ras(ct.TransformIndexToPhysicalPoint(index[::-1]))
        np.testing.assert_allclose(world(mask.geometry, mask.spacing, index), expected, atol=1e-6)


def test_dicom_that_is_not_a_seg_is_refused(tmp_path):
    ct_series(tmp_path / "ct")
    with pytest.raises(
        SegDiceError, match=r"ct_000\.dcm: a DICOM file of modality CT; expected a DICOM Segmentation"
    ):
        read_mask(tmp_path / "ct" / "ct_000.dcm")
    with pytest.raises(SegDiceError, match="reads DICOM-SEG but does not write it"):
        save_mask(tmp_path / "out.dcm", np.zeros((2, 2, 2), np.uint8))


@pytest.mark.parametrize(
    ("module", "suffix", "extra"),
    [("SimpleITK", ".mha", "itk"), ("highdicom", ".dcm", "dicom"), ("pydicom", ".dcm", "dicom")],
)
def test_a_missing_optional_library_names_its_extra(tmp_path, monkeypatch, module, suffix, extra):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(
        SegDiceError,
        match=rf"x\{suffix}: .*needs {module}, which is not installed; pip install 'segdice\[{extra}\]'",
    ):
        read_mask(path)
