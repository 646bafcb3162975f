"""segdice.io refuses hostile or mistaken files before allocating: each file is forged here, byte by byte.

Memory is measured with tracemalloc (NumPy reports its buffers to it): a refusal must stay far below
the size the header declares. Wall-clock time is left to benchmarks/evaluate.py.
"""

import gzip
import io
import struct
import tracemalloc
import zipfile

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image

from _synthetic_dicom import ct_series, write_seg
from segdice import SegDiceError
from segdice.io import read_mask, save_mask

MiB = 1 << 20


def refused(path, **kwargs) -> tuple[str, int]:
    """The SegDiceError message for reading ``path`` and the peak traced allocation while refusing."""
    tracemalloc.start()
    try:
        with pytest.raises(SegDiceError) as info:
            read_mask(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


def lying_nifti_header(shape, dtype=np.uint8) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    return header.binaryblock + b"\0" * 4  # the 4-byte extension flag, then data at 352


def test_a_368_byte_nii_claiming_2048_cubed_is_refused_without_allocating(tmp_path):
    path = tmp_path / "liar.nii"
    path.write_bytes(lying_nifti_header((2048, 2048, 2048)) + bytes(range(16)))
    assert path.stat().st_size == 368
    message, peak = refused(path)
    assert message == (
        f"{path}: the header declares an image of 2048x2048x2048 = 8,589,934,592 voxels; expected at most "
        "max_voxels=2,147,483,648 (pass a larger max_voxels to read it)"
    )
    assert peak < 4 * MiB
    # Past the voxel limit, the file size gives it away: 8 GiB declared, 16 bytes held.
    message, peak = refused(path, max_voxels=2**40)
    assert message == (
        f"{path}: the header declares 2048x2048x2048 voxels of uint8 (8,589,934,592 bytes), but the file "
        "holds only 16 bytes of image data; expected a file that holds its declared image "
        "(a truncated file, or a header that lies about its size)"
    )
    assert peak < 4 * MiB


def test_a_nii_gz_that_cannot_expand_to_its_header_is_refused(tmp_path):
    small = tmp_path / "tiny.nii.gz"
    small.write_bytes(gzip.compress(lying_nifti_header((1024, 1024, 512)) + bytes(64)))
    message, peak = refused(small)
    assert "declares 1024x1024x512 voxels of uint8 (536,870,912 bytes), but the file holds" in message
    assert "compressed bytes, which expand to at most" in message
    assert peak < 4 * MiB
    # Enough compressed bytes to pass the deflate bound (incompressible noise), too few once decompressed:
    # the stream check counts them in 1 MiB chunks and keeps none.
    noise = np.random.default_rng(0).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    padded = tmp_path / "noise.nii.gz"
    padded.write_bytes(gzip.compress(lying_nifti_header((1024, 1024, 512)) + noise))
    message, peak = refused(padded)
    assert message == (
        f"{padded}: the header declares 1024x1024x512 voxels of uint8, but the file decompresses to only "
        "600,352 of the 536,871,264 bytes needed; expected a complete file (a truncated file, or a header "
        "that lies about its size)"
    )
    assert peak < 8 * MiB


def test_max_voxels_is_a_limit_for_every_format(tmp_path):
    volume = np.zeros((8, 8, 8), np.uint8)
    for suffix in (".nii.gz", ".nii", ".mha", ".nrrd", ".tif", ".npy", ".npz"):
        path = save_mask(tmp_path / f"v{suffix}", volume)
        assert read_mask(path, max_voxels=512).array.shape == (8, 8, 8)
        with pytest.raises(
            SegDiceError, match=r"declares an image of 8x8x8 = 512 voxels; expected at most max_voxels=511"
        ):
            read_mask(path, max_voxels=511)
    save_mask(tmp_path / "p.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(SegDiceError, match=r"p\.png: the header declares an image of 20x30 = 600 voxels"):
        read_mask(tmp_path / "p.png", max_voxels=599)
    with pytest.raises(SegDiceError, match="max_voxels: got 0; expected a value >= 1"):
        read_mask(tmp_path / "p.png", max_voxels=0)


def test_a_four_d_probability_atlas_is_refused_before_reading(tmp_path):
    atlas = np.zeros((6, 7, 5, 3), np.float32)
    nib.save(nib.Nifti1Image(atlas, np.eye(4)), tmp_path / "atlas.nii.gz")
    message, _ = refused(tmp_path / "atlas.nii.gz")
    assert message == (
        f"{tmp_path / 'atlas.nii.gz'}: got a 4-D image of 6x7x5x3 holding 3 volumes; expected one label map "
        "(at most 3-D; an axis of length 1 beyond the third is dropped): take the arg-max of a probability "
        "map, or split the volumes into files"
    )
    series = sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.uint8), isVector=False)  # (t, z, y, x)
    sitk.WriteImage(series, str(tmp_path / "t.mha"))
    message, _ = refused(tmp_path / "t.mha")
    assert "got a 4-D image of 2x3x4x5 holding 2 volumes; expected one label map" in message


def test_colour_and_vector_images_are_refused(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    message, _ = refused(tmp_path / "rgb.tif")
    assert message == (
        f"{tmp_path / 'rgb.tif'}: got a RGB image of 4x5x3 with 3 samples per pixel; expected a single-channel "
        "label map (greyscale or palette)"
    )
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "rgb.png")
    assert "got a RGB colour image of shape (4, 5, 3)" in refused(tmp_path / "rgb.png")[0]
    vector = sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.uint8), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "v.nrrd"))
    assert (
        "got an image of 3x4x5 voxels with 3 components per voxel (a colour or vector image)"
        in refused(tmp_path / "v.nrrd")[0]
    )
    header = nib.Nifti1Header()
    header.set_data_dtype("RGB")
    nib.save(
        nib.Nifti1Image(np.zeros((2, 2, 2), [("R", "u1"), ("G", "u1"), ("B", "u1")]), np.eye(4), header),
        tmp_path / "c.nii",
    )
    assert "got a colour (" in refused(tmp_path / "c.nii")[0]


def test_tiff_with_pages_of_different_sizes_is_refused(tmp_path):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.ones((4, 5), np.uint8))
    tifffile.imwrite(path, np.ones((6, 7), np.uint8), append=True)
    message, _ = refused(path)
    assert message == (
        f"{path}: holds 2 image series (4x5, 6x7); expected one label map (one series: every page the same "
        "size and type)"
    )


def test_npy_header_that_lies_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|u1", "fortran_order": False, "shape": (2048,) * 3}
    )
    path = tmp_path / "liar.npy"
    path.write_bytes(buffer.getvalue() + bytes(16))
    message, peak = refused(path, max_voxels=2**40)
    assert (
        "declares 2048x2048x2048 voxels of uint8 (8,589,934,592 bytes), but the file holds only 16 bytes"
        in message
    )
    assert peak < 4 * MiB


def npz_with_member(path, name: str, header_shape, payload: bytes) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|u1", "fortran_order": False, "shape": header_shape}
    )
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.npy", buffer.getvalue() + payload)


def test_npz_members_that_lie_are_refused_before_numpy_allocates(tmp_path):
    # 1. The member's .npy header declares far more than the member holds.
    liar = tmp_path / "liar.npz"
    npz_with_member(liar, "mask", (2048, 2048, 2048), bytes(100))
    message, peak = refused(liar, max_voxels=2**40)
    assert (
        "the member 'mask' declares 2048x2048x2048 voxels of uint8 (8,589,934,720 bytes with its header)"
        in message
    )
    assert "but its zip entry says 228 bytes" in message
    assert peak < 4 * MiB
    # 2. A zip bomb: header and zip directory agree on 1 GiB, from ~1 KB of deflate stream.
    bomb = tmp_path / "bomb.npz"
    size = 1 << 30
    npz_with_member(bomb, "mask", (size,), bytes(1000))
    data = bytearray(bomb.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    header_len = 128
    # Forge the uncompressed size in both the local header (offset 22) and the central directory (24).
    struct.pack_into("<I", data, 22, size + header_len)
    struct.pack_into("<I", data, central + 24, size + header_len)
    bomb.write_bytes(bytes(data))
    message, peak = refused(bomb)
    assert "the member 'mask' claims 1,073,741,952 bytes uncompressed from" in message
    assert "more than compression can produce" in message and "(a zip bomb or a damaged file)" in message
    assert peak < 4 * MiB
    # 3. An honest member past max_voxels.
    np.savez_compressed(tmp_path / "big.npz", mask=np.zeros((64, 64, 64), np.uint8))
    message, _ = refused(tmp_path / "big.npz", max_voxels=1000)
    assert (
        "the member 'mask' declares an image of 64x64x64 = 262,144 voxels; expected at most max_voxels=1,000"
        in message
    )


def test_mha_and_mhd_whose_data_is_short_are_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.uint8)), str(tmp_path / "a.mha"))
    text = (tmp_path / "a.mha").read_bytes().replace(b"DimSize = 6 5 4", b"DimSize = 1024 1024 1024")
    (tmp_path / "forged.mha").write_bytes(text)
    message, peak = refused(tmp_path / "forged.mha")
    assert (
        "declares 1024x1024x1024 voxels of uint8 (1,073,741,824 bytes), but the file holds only 120 bytes"
        in message
    )
    assert peak < 4 * MiB
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(tmp_path / "b.mhd"))
    raw = tmp_path / "b.raw"
    raw.write_bytes(raw.read_bytes()[:100])  # cut short, as by a failed copy
    message, _ = refused(tmp_path / "b.mhd")
    assert "declares 4x5x6 voxels of int16 (240 bytes), but the file holds only 100 bytes" in message


def test_dicom_seg_over_max_voxels_is_refused_from_its_header(tmp_path):
    source = ct_series(tmp_path / "ct")
    labels = np.zeros((4, 6, 5), np.uint8)
    labels[1:3, 2:4, 1:3] = 1
    path = write_seg(tmp_path / "seg.dcm", source, labels)
    message, _ = refused(path, max_voxels=100)
    assert (
        "the header (frames x rows x columns) declares an image of 4x6x5 = 120 voxels; expected at most max_voxels=100"
        in message
    )
