"""segdice.io: every format reads back the labels and the spacing (in array axis order)."""

import gzip

import nibabel as nib
import numpy as np
import pytest
import tifffile
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segdice import SegDiceError
from segdice.io import SUPPORTED_SUFFIXES, read_mask, save_mask, split_suffix


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("case_001.nii.gz", ("case_001", ".nii.gz")),
        ("case.001.nii", ("case.001", ".nii")),
        ("A.PNG", ("A", ".PNG")),
        ("stack.tiff", ("stack", ".tiff")),
        ("x.tif", ("x", ".tif")),
        ("m.npz", ("m", ".npz")),
        ("/some/dir/m.npy", ("m", ".npy")),
        ("archive.gz", ("archive.gz", "")),
        (".npy", (".npy", "")),  # a bare suffix is not a case
    ],
)
def test_split_suffix(name, expected):
    assert split_suffix(name) == expected


def test_nifti_spacing_comes_from_the_header_in_array_axis_order(tmp_path):
    data = np.zeros((5, 6, 7), dtype=np.uint8)
    data[1:3, 2:5, 4] = 2
    # An oblique affine: the zooms in the header, not the affine's diagonal, give the voxel size.
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.5, 0.75, 2.5])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "case.nii.gz")
    mask = read_mask(tmp_path / "case.nii.gz")
    np.testing.assert_array_equal(mask.array, data)
    assert mask.spacing == pytest.approx((0.5, 0.75, 2.5))
    assert np.issubdtype(mask.array.dtype, np.integer)


def test_nifti_trailing_singleton_time_axis_is_dropped(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4, 1) % 3
    image = nib.Nifti1Image(data, np.diag([1.0, 2.0, 3.0, 1.0]))
    nib.save(image, tmp_path / "t.nii")
    mask = read_mask(tmp_path / "t.nii")
    assert mask.array.shape == (2, 3, 4)
    assert mask.spacing == (1.0, 2.0, 3.0)


def test_nifti_big_endian_and_float_labels(tmp_path):
    data = np.array([[[0, 1], [2, 3]]], dtype=">f4")
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "f.nii.gz")
    mask = read_mask(tmp_path / "f.nii.gz")
    assert mask.array.dtype.kind == "i"
    np.testing.assert_array_equal(mask.array, [[[0, 1], [2, 3]]])


def test_non_integer_values_are_rejected(tmp_path):
    np.save(tmp_path / "prob.npy", np.array([[0.2, 0.9]]))
    with pytest.raises(
        SegDiceError, match=r"prob.npy: got an array of shape \(1, 2\), dtype float64.*non-integer"
    ):
        read_mask(tmp_path / "prob.npy")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    with pytest.raises(SegDiceError, match="non-integer"):
        read_mask(tmp_path / "nan.npy")


def test_png_greyscale_palette_and_rgb(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    Image.fromarray(labels, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png").array, labels)

    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "palette.png").array, labels)  # indices, not colours

    Image.fromarray(np.stack([labels] * 3, axis=-1), mode="RGB").save(tmp_path / "grey_rgb.bmp")
    mask = read_mask(tmp_path / "grey_rgb.bmp")
    np.testing.assert_array_equal(mask.array, labels)
    assert mask.spacing is None

    colour = np.zeros((2, 3, 3), dtype=np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour, mode="RGB").save(tmp_path / "colour.png")
    with pytest.raises(SegDiceError, match=r"colour.png: got a RGB colour image of shape \(2, 3, 3\)"):
        read_mask(tmp_path / "colour.png")


def test_png_16_bit(tmp_path):
    labels = np.array([[0, 300], [1000, 65535]], dtype=np.uint16)
    Image.fromarray(labels).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "deep.png").array, labels)


def test_tiff_3d_stack_with_imagej_spacing(tmp_path):
    stack = np.zeros((4, 5, 6), dtype=np.uint8)
    stack[1, 2, 3] = 7
    # resolution is pixels per unit along (x, y); z spacing sits in the ImageJ metadata.
    tifffile.imwrite(
        tmp_path / "s.tif", stack, imagej=True, resolution=(1 / 0.25, 1 / 0.5), metadata={"spacing": 3.0}
    )
    mask = read_mask(tmp_path / "s.tif")
    np.testing.assert_array_equal(mask.array, stack)
    assert mask.spacing == pytest.approx((3.0, 0.5, 0.25))


def test_plain_tiff_has_no_spacing(tmp_path):
    stack = np.arange(60, dtype=np.uint16).reshape(3, 4, 5) % 4
    tifffile.imwrite(tmp_path / "p.tiff", stack, photometric="minisblack")
    mask = read_mask(tmp_path / "p.tiff")
    np.testing.assert_array_equal(mask.array, stack)
    assert mask.spacing is None


def test_npy_never_unpickles(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SegDiceError, match="pickled Python objects"):
        read_mask(tmp_path / "obj.npy")


def test_npz_key_rules_and_spacing(tmp_path):
    seg = np.eye(3, dtype=np.int32)
    np.savez(tmp_path / "one.npz", seg)
    np.testing.assert_array_equal(read_mask(tmp_path / "one.npz").array, seg)

    np.savez(tmp_path / "named.npz", image=seg * 100.5, mask=seg, spacing=np.array([0.5, 2.0]))
    mask = read_mask(tmp_path / "named.npz")
    np.testing.assert_array_equal(mask.array, seg)
    assert mask.spacing == (0.5, 2.0)

    np.savez(tmp_path / "two.npz", a=seg, b=seg)
    with pytest.raises(SegDiceError, match=r"holds arrays \['a', 'b'\]; expected one array"):
        read_mask(tmp_path / "two.npz")

    np.savez(tmp_path / "badspacing.npz", mask=seg, spacing=np.array([1.0, 1.0, 1.0]))
    with pytest.raises(SegDiceError, match=r"3 value.*shape \(3, 3\); expected one per axis"):
        read_mask(tmp_path / "badspacing.npz")


def test_missing_unsupported_and_corrupt_files(tmp_path):
    with pytest.raises(SegDiceError, match="no such file"):
        read_mask(tmp_path / "absent.nii.gz")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SegDiceError, match=r"unsupported file type; expected one of \.nii\.gz"):
        read_mask(tmp_path / "notes.txt")
    with gzip.open(tmp_path / "broken.nii.gz", "wb") as handle:
        handle.write(b"not a nifti header")
    with pytest.raises(SegDiceError, match=r"broken.nii.gz: cannot read the file"):
        read_mask(tmp_path / "broken.nii.gz")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(SegDiceError, match=r"broken\.png: cannot read the file"):
        read_mask(tmp_path / "broken.png")


def test_bool_masks_become_uint8(tmp_path):
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    mask = read_mask(tmp_path / "b.npy")
    assert mask.array.dtype == np.uint8
    np.testing.assert_array_equal(mask.array, [[1, 0]])


def test_save_mask_rejects_what_a_format_cannot_hold(tmp_path):
    with pytest.raises(SegDiceError, match="cannot store a spacing"):
        save_mask(tmp_path / "a.png", np.zeros((2, 2), np.uint8), spacing=(1, 1))
    with pytest.raises(SegDiceError, match="needs a 2-D label map"):
        save_mask(tmp_path / "a.png", np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(SegDiceError, match="unsupported file type"):
        save_mask(tmp_path / "a.jpg", np.zeros((2, 2), np.uint8))


_SPATIAL_FORMATS = [".nii.gz", ".nii", ".tif", ".npz"]


@given(
    labels=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int16, np.int32]),
        shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
        elements=st.integers(0, 200),
    ),
    suffix=st.sampled_from([*_SPATIAL_FORMATS, ".npy", ".png"]),
    spacing_seed=st.integers(0, 10_000),
)
def test_roundtrip_every_format(tmp_path_factory, labels, suffix, spacing_seed):
    if suffix in (".png",) and labels.ndim != 2:
        labels = labels.reshape(labels.shape[0], -1)
    spacing = None
    if suffix in _SPATIAL_FORMATS:
        spacing = tuple(np.random.default_rng(spacing_seed).uniform(0.2, 4.0, labels.ndim).round(3))
    path = tmp_path_factory.mktemp("rt") / f"case{suffix}"
    save_mask(path, labels, spacing=spacing)
    mask = read_mask(path)
    np.testing.assert_array_equal(mask.array, labels)
    if spacing is None:
        assert mask.spacing is None
    else:
        assert mask.spacing == pytest.approx(spacing, rel=1e-6)


def test_supported_suffixes_all_have_readers(tmp_path):
    for suffix in SUPPORTED_SUFFIXES:
        array = np.zeros((3, 3), dtype=np.uint8)
        array[1, 1] = 4
        if suffix == ".dcm":  # DICOM-SEG is read only: a SEG must reference its source images
            with pytest.raises(SegDiceError, match="reads DICOM-SEG but does not write it"):
                save_mask(tmp_path / f"x{suffix}", array)
            continue
        save_mask(tmp_path / f"x{suffix}", array)
        np.testing.assert_array_equal(read_mask(tmp_path / f"x{suffix}").array, array)
