# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""LoadVolume / LoadVolumed on real files of every supported format, written in ``tmp_path``."""

from __future__ import annotations

import gzip
import logging
import pickle
import re
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from monai.data import MetaTensor
from PIL import Image

from transforms import SUPPORTED_EXTENSIONS, LoadVolume, LoadVolumed, natural_sort_key

KERMANY_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "kermany-oct-mini" / "images"

# a [2, 3, 4] volume with distinct values, indexed (i, j, k)
VOLUME = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 1.5 - 7.0
# a 2 x 3 picture (2 rows, 3 columns) with distinct values
PICTURE = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)


def _write_sitk(path: Path, vol_ijk: np.ndarray, spacing=(2.0, 3.0, 4.0)) -> None:
    """Write ``vol_ijk`` (indexed x, y, z) with SimpleITK, whose arrays are indexed (z, y, x)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(vol_ijk.transpose(2, 1, 0)))
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))


def _write_dicom_series(folder: Path, vol_zyx: np.ndarray, spacing=(0.5, 0.75, 2.0), origin=(10.0, 20.0, 30.0)):
    """Write an int16 volume as one .dcm file per z slice, with the tags a series reader needs.

    SimpleITK's ``ImageSeriesWriter`` refuses DICOM ("does not support writing a DICOM series"), so each
    slice is written with ``ImageFileWriter``, as in SimpleITK's own DICOM series example.
    """
    folder.mkdir()
    img = sitk.GetImageFromArray(vol_zyx.astype(np.int16))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = "1.2.826.0.1.3680043.2.1125.20260101"
    for z in range(img.GetDepth()):
        s = img[:, :, z]
        tags = {
            "0008|0060": "CT",  # modality
            "0020|000d": f"{uid}.1",  # study instance UID
            "0020|000e": f"{uid}.2",  # series instance UID
            "0008|0018": f"{uid}.3.{z}",  # SOP instance UID
            "0020|0013": str(z + 1),  # instance number
            "0020|0037": "1\\0\\0\\0\\1\\0",  # image orientation (patient)
            "0020|0032": "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, z))),  # position
            "0028|0030": f"{spacing[1]}\\{spacing[0]}",  # pixel spacing (row, column)
            "0018|0050": str(spacing[2]),  # slice thickness
        }
        for tag, value in tags.items():
            s.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{z}.dcm"))
        writer.Execute(s)


@pytest.fixture(scope="module")
def loader() -> LoadVolume:
    return LoadVolume()


# ------------------------------------------------------------------ 3D formats
@pytest.mark.parametrize("name", ["vol.nii.gz", "vol.nii", "VOL.NII.GZ"])
def test_nifti_exact_values_and_affine(tmp_path, loader, name):
    affine = np.array([[2.0, 0, 0, -5], [0, 3.0, 0, 6], [0, 0, 4.0, 7], [0, 0, 0, 1]])
    path = tmp_path / name
    nib.save(nib.Nifti1Image(VOLUME, affine), str(path))
    out = loader(str(path))
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert out.shape == (1, 2, 3, 4)
    np.testing.assert_array_equal(out[0].numpy(), VOLUME)  # stored order, no reorientation
    np.testing.assert_allclose(out.affine.numpy(), affine)
    assert out.meta["filename_or_obj"] == str(path)


def test_nifti_does_not_need_itk(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), str(tmp_path / "v.nii.gz"))
    loader = LoadVolume()
    loader(tmp_path / "v.nii.gz")
    assert loader._itk_reader is None  # the ITK reader is made on first NRRD/MHA/DICOM use only


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
def test_itk_formats_exact_values(tmp_path, loader, suffix):
    path = tmp_path / f"vol{suffix}"
    _write_sitk(path, VOLUME)
    out = loader(path)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert out.shape == (1, 2, 3, 4)
    np.testing.assert_array_equal(out[0].numpy(), VOLUME)
    np.testing.assert_allclose(np.abs(np.diag(out.affine.numpy())), [2.0, 3.0, 4.0, 1.0])
    assert out.meta["filename_or_obj"] == str(path)


def test_dicom_series_folder(tmp_path, loader):
    vol_zyx = np.arange(3 * 5 * 4, dtype=np.int16).reshape(3, 5, 4) - 30  # 3 slices of 5 rows x 4 columns
    folder = tmp_path / "series"
    _write_dicom_series(folder, vol_zyx)
    out = loader(folder)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert out.shape == (1, 4, 5, 3)  # ITK (x, y, z) order, as MONAI's ITKReader gives
    np.testing.assert_array_equal(out[0].numpy(), vol_zyx.transpose(2, 1, 0))
    # LPS -> RAS: x and y flip sign
    np.testing.assert_allclose(np.diag(out.affine.numpy()), [-0.5, -0.75, 2.0, 1.0])
    np.testing.assert_allclose(out.affine.numpy()[:3, 3], [-10.0, -20.0, 30.0])
    assert out.meta["filename_or_obj"] == str(folder)


# ------------------------------------------------------------------ 2D images
def _rgb(picture: np.ndarray, n: int) -> np.ndarray:
    return np.stack([picture + 5 * c for c in range(n)], axis=-1).astype(np.uint8)  # [H, W, n]


IMAGE_CASES = [
    # name, array written by PIL ([H, W] or [H, W, C]), expected [C, H, W]
    ("grey.png", PICTURE, PICTURE[None]),
    ("rgb.png", _rgb(PICTURE, 3), _rgb(PICTURE, 3).transpose(2, 0, 1)),
    ("rgba.png", _rgb(PICTURE, 4), _rgb(PICTURE, 4).transpose(2, 0, 1)),
    ("grey16.png", PICTURE.astype(np.uint16) * 1000, (PICTURE.astype(np.uint16) * 1000)[None]),
    ("grey16.tif", PICTURE.astype(np.uint16) * 1000, (PICTURE.astype(np.uint16) * 1000)[None]),
    ("float.tiff", PICTURE.astype(np.float32) / 7, (PICTURE.astype(np.float32) / 7)[None]),
    ("rgb.tif", _rgb(PICTURE, 3), _rgb(PICTURE, 3).transpose(2, 0, 1)),
    ("grey.bmp", PICTURE, PICTURE[None]),
]


@pytest.mark.parametrize("name, array, expected", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_2d_image_looks_like_the_picture(tmp_path, loader, name, array, expected):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    out = loader(path)
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    assert out.shape == expected.shape  # [C, H = rows, W = columns]
    np.testing.assert_array_equal(out.numpy(), expected.astype(np.float32))
    assert out.meta["filename_or_obj"] == str(path)
    assert out.affine.shape == (3, 3)


@pytest.mark.parametrize("name, array", [("grey.jpg", PICTURE), ("rgb.jpeg", _rgb(PICTURE, 3))])
def test_jpeg_close_to_the_picture(tmp_path, loader, name, array):
    path = tmp_path / name
    Image.fromarray(array).save(path, quality=100, subsampling=0)
    out = loader(path)
    expected = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.numpy(), expected, atol=3)  # lossy


def test_palette_png_expanded_to_rgb(tmp_path, loader):
    path = tmp_path / "palette.png"
    Image.fromarray(_rgb(PICTURE, 3)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(path)
    out = loader(path)
    assert out.shape == (3, 2, 3)


def test_multiframe_tiff_rejected(tmp_path, loader):
    path = tmp_path / "stack.tif"
    frames = [Image.fromarray(PICTURE), Image.fromarray(PICTURE + 1)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"stack\.tif.*2 frames"):
        loader(path)


# ------------------------------------------------------------------ folders of slices
def test_slice_folder_natural_order(tmp_path, loader):
    folder = tmp_path / "bscans"
    folder.mkdir()
    for k in (10, 2, 1):  # lexicographic order would be 1, 10, 2
        Image.fromarray(PICTURE + k).save(folder / f"slice{k}.png")
    (folder / "notes.txt").write_text("ignored")
    out = loader(folder)
    assert isinstance(out, MetaTensor) and out.shape == (1, 2, 3, 3)  # [C, H, W, D]
    for d, k in enumerate((1, 2, 10)):
        np.testing.assert_array_equal(out[0, :, :, d].numpy(), PICTURE + k)
    assert out.meta["filename_or_obj"] == str(folder)
    assert out.affine.shape == (4, 4)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["s10.png", "s2.png", "s1.png"], ["s1.png", "s2.png", "s10.png"]),
        (["B2_10.png", "b2_9.png", "a.png"], ["a.png", "b2_9.png", "B2_10.png"]),
        (["img001.png", "img1.png"], ["img001.png", "img1.png"]),  # equal values: name breaks the tie
    ],
)
def test_natural_sort_key(names, expected):
    assert sorted(names, key=natural_sort_key) == expected


@pytest.mark.parametrize(
    "second, shape2",
    [(np.zeros((3, 3), np.uint8), (1, 3, 3)), (_rgb(PICTURE, 3), (3, 2, 3))],
    ids=["size", "channels"],
)
def test_slice_folder_mismatch(tmp_path, loader, second, shape2):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(PICTURE).save(folder / "s1.png")
    Image.fromarray(second).save(folder / "s2.png")
    Image.fromarray(PICTURE).save(folder / "s3.png")
    msg = re.escape(f"s2.png: slice shape {shape2}") + ".*" + re.escape("(1, 2, 3) of the first slice s1.png")
    with pytest.raises(ValueError, match=msg):
        loader(folder)


# ------------------------------------------------------------------ errors
def test_missing_path(tmp_path, loader):
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        loader(path)


def test_empty_folder(tmp_path, loader):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ValueError, match=r"empty.*empty folder"):
        loader(folder)


def test_folder_without_dicom(tmp_path, loader):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"junk: cannot be read as DICOM series"):
        loader(folder)


@pytest.mark.parametrize("name", ["vol.xyz", "scan.oct", "noext"])  # .dcm files: tests/transforms/test_oct_formats.py
def test_unknown_extension(tmp_path, loader, name):
    path = tmp_path / name
    path.write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match=rf"{name}: unsupported file type.*\.nii\.gz.*\.png"):
        loader(path)


def _truncated_nii_gz(path: Path) -> None:
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 8), dtype=np.float32), np.eye(4)), str(path))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # valid gzip, header intact, data cut


def _truncated_nii(path: Path) -> None:
    nib.save(nib.Nifti1Image(VOLUME, np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:-40])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not an image" * 20)


@pytest.mark.parametrize(
    "name, make, fmt",
    [
        ("cut.nii.gz", _truncated_nii_gz, "NIfTI"),
        ("cut.nii", _truncated_nii, "NIfTI"),
        ("junk.nii", _garbage, "NIfTI"),
        ("junk.mha", _garbage, "MetaImage"),
        ("junk.nrrd", _garbage, "NRRD"),
        ("junk.png", _garbage, "PNG image"),
        ("junk.jpg", _garbage, "JPEG image"),
    ],
)
def test_corrupt_file(tmp_path, loader, name, make, fmt):
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError, match=rf"{name}: cannot be read as {fmt}: ") as info:
        loader(path)
    assert info.value.__cause__ is not None  # raised from the reader's own error


def test_non_finite_values(tmp_path, loader):
    vol = VOLUME.copy()
    vol[0, 0, 0], vol[1, 2, 3], vol[1, 1, 1] = np.nan, np.inf, -np.inf
    path = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(path))
    with pytest.raises(ValueError, match=r"nan\.nii\.gz: contains 3 NaN/inf voxels"):
        loader(path)


# ------------------------------------------------------------------ dictionary version
def test_load_volumed(tmp_path):
    img_path, mask_path = tmp_path / "img.nii.gz", tmp_path / "mask.png"
    nib.save(nib.Nifti1Image(VOLUME, np.eye(4)), str(img_path))
    Image.fromarray(PICTURE).save(mask_path)
    out = LoadVolumed(["image", "mask", "absent"], allow_missing_keys=True)(
        {"image": img_path, "mask": str(mask_path), "label": 1}
    )
    assert out["image"].shape == (1, 2, 3, 4) and out["mask"].shape == (1, 2, 3)
    assert out["label"] == 1 and "absent" not in out
    with pytest.raises(KeyError):
        LoadVolumed(["image", "absent"])({"image": img_path})


def test_supported_extensions_and_pickling(tmp_path):
    # configs pass SUPPORTED_EXTENSIONS to the inference datalist: lower case, with the dot
    assert set(SUPPORTED_EXTENSIONS) == {
        ".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp",
        ".vol", ".e2e", ".fda", ".fds", ".img", ".dcm",
    }
    # DataLoader workers started with "spawn" pickle the transform
    path = tmp_path / "img.png"
    Image.fromarray(PICTURE).save(path)
    loader = pickle.loads(pickle.dumps(LoadVolumed("image")))
    np.testing.assert_array_equal(loader({"image": path})["image"][0].numpy(), PICTURE)


# ------------------------------------------------------------------ real data
@pytest.mark.skipif(not KERMANY_DIR.is_dir(), reason=f"real-data sample folder {KERMANY_DIR} not present")
def test_real_kermany_oct_jpeg(loader):
    path = sorted(KERMANY_DIR.glob("*.jpeg"))[0]
    out = loader(path)
    with Image.open(path) as img:
        width, height = img.size
    assert out.shape == (1, height, width)
    assert 0.0 <= float(out.min()) <= float(out.max()) <= 255.0
    assert out.meta["filename_or_obj"] == str(path)


# ------------------------------------------------------------------ shape checks (empty, dimensions, channels)
def _nifti(path: Path, array: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), str(path))
    return path


SHAPE_CASES = [
    # name, array, LoadVolume arguments, expected error (None: loads, with this output shape)
    ("empty.nii.gz", np.zeros((4, 0, 3)), {}, r"empty\.nii\.gz: empty image: no voxels \(array shape \(4, 0, 3\)\)$"),
    ("flat.nii.gz", np.ones((4, 5)), {}, (1, 4, 5)),
    (
        "flat.nii.gz",
        np.ones((4, 5)),
        {"spatial_dims": 3},
        r"flat\.nii\.gz: 2-D image of shape \(4, 5\) where 3-D inputs are expected "
        r"\(spatial_dims 3; null accepts both\)$",
    ),
    ("vol.nii.gz", VOLUME, {"spatial_dims": 3, "num_channels": 1}, (1, 2, 3, 4)),
    (
        "vol.nii.gz",
        VOLUME,
        {"spatial_dims": 2},
        r"vol\.nii\.gz: 3-D volume of shape \(2, 3, 4\) where 2-D inputs are expected",
    ),
    ("four.nii.gz", np.ones((2, 3, 4, 3)), {}, (3, 2, 3, 4)),  # not checked without num_channels
    (
        "four.nii.gz",
        np.ones((2, 3, 4, 3)),
        {"num_channels": 1},
        r"four\.nii\.gz: 4-D array \(2, 3, 4, 3\) read as a 3-D volume of 3 channels, but the model takes 1 "
        r"\(in_channels\); store one 3-D volume \[H, W, D\] per file, or set in_channels$",
    ),
    ("four.nii.gz", np.ones((2, 3, 4, 3)), {"num_channels": 3}, (3, 2, 3, 4)),
    ("four1.nii.gz", np.ones((2, 3, 4, 1)), {"num_channels": 3}, (1, 2, 3, 4)),  # one channel: EnsureChannels repeats
    (
        "five.nii.gz",
        np.ones((2, 3, 4, 2, 2)),
        {},
        r"five\.nii\.gz: \d-D array of shape .* expected a 2-D image \[H, W\] or a 3-D volume \[H, W, D\]$",
    ),
]


@pytest.mark.parametrize("name, array, kwargs, expected", SHAPE_CASES)
def test_shape_checks(tmp_path, name, array, kwargs, expected):
    path = _nifti(tmp_path / name, array)
    if isinstance(expected, tuple):
        assert LoadVolume(**kwargs)(path).shape == expected
        return
    with pytest.raises(ValueError, match=expected):
        LoadVolume(**kwargs)(path)


def test_rgb_picture_keeps_its_channels_with_num_channels(tmp_path):
    # a 2-D colour image is converted later by EnsureChannels, not refused
    path = tmp_path / "rgb.png"
    Image.fromarray(np.stack([PICTURE] * 3, axis=-1)).save(path)
    assert LoadVolume(spatial_dims=2, num_channels=1)(path).shape == (3, 2, 3)


@pytest.mark.parametrize(
    "kwargs", [{"spatial_dims": 4}, {"spatial_dims": True}, {"num_channels": 0}, {"num_channels": 1.5}]
)
def test_shape_check_arguments(kwargs):
    with pytest.raises(ValueError, match="must be"):
        LoadVolume(**kwargs)


def test_readable_repr_in_monai_error(tmp_path):
    # MONAI wraps a transform's error as "applying transform <repr>": the repr names the transform and its settings
    from monai.transforms import Compose

    with pytest.raises(RuntimeError, match=r"^applying transform LoadVolumed\(keys=\('image',\), spatial_dims=3, "
                       r"num_channels=1\)$") as info:
        Compose([LoadVolumed("image", spatial_dims=3, num_channels=1)])({"image": str(tmp_path / "absent.nii.gz")})
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_building_the_loader_prints_no_note_about_the_missing_gpu_dicom_decoder(caplog):
    """MONAI's LoadImage says at every construction, when pydicom is installed without nvImageCodec, that its GPU
    DICOM decoder is missing (a warning and a log record); LoadVolume builds it without them."""
    pytest.importorskip("pydicom")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.INFO):
            LoadVolume()
    assert not [w for w in caught if "nvImageCodec" in str(w.message)]
    assert not [r for r in caplog.records if "nvImageCodec" in r.getMessage()]
    assert logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").level == logging.NOTSET  # restored
