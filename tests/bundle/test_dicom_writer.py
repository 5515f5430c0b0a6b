# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""bundle.dicom_writer: NIfTI -> DICOM series -> transforms.LoadVolumed gives the NIfTI's voxels and geometry."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.dicom_writer import int16_mapping, write_dicom_series
from transforms.io import LoadVolumed

SHAPE = (12, 9, 5)  # [x, y, z]: x != y catches swapped in-plane axes, 5 slices a reversed order


def _affine(flip_x: bool = False) -> np.ndarray:
    affine = np.diag([0.5, 0.75, 2.0, 1.0])
    affine[:3, 3] = [3.0, -4.0, 5.0]
    if flip_x:
        affine[0, 0] = -0.5
    return affine


# (dtype, flip the x axis (a left-handed voxel grid), exact round trip)
CASES = [("int16", False, True), ("uint8", False, True), ("int16", True, True), ("float32", False, False)]


@pytest.mark.parametrize("dtype, flip_x, exact", CASES)
def test_round_trip_through_load_volumed(tmp_path, dtype, flip_x, exact):
    import nibabel as nib

    rng = np.random.default_rng(3)
    volume = rng.integers(0, 250, size=SHAPE).astype(dtype)
    if dtype == "float32":
        volume = volume * np.float32(0.37) + np.float32(0.1)
    nifti = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(volume, _affine(flip_x)), str(nifti))
    info = write_dicom_series(nifti, tmp_path / "series")
    assert [p.name for p in info["files"]] == [f"slice_{z:04d}.dcm" for z in range(SHAPE[2])]
    assert info["shape"] == list(SHAPE)

    load = LoadVolumed(keys="image")
    expected = load({"image": str(nifti)})["image"]
    actual = load({"image": str(tmp_path / "series")})["image"]
    assert actual.shape == expected.shape == (1, *SHAPE)
    if flip_x:  # a left-handed grid: DICOM's slice direction is row x column, so the slices come back reversed
        flip_z = np.eye(4)
        flip_z[2, 2], flip_z[2, 3] = -1.0, SHAPE[2] - 1
        expected = expected.flip(-1)
        expected.affine = expected.affine @ flip_z
    if exact:
        assert (info["slope"], info["intercept"]) == (1.0, 0.0)
        np.testing.assert_array_equal(actual.numpy(), expected.numpy())
    else:
        assert info["slope"] < 0.01
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=info["slope"] / 2 + 1e-6)
    np.testing.assert_allclose(actual.affine.numpy(), expected.affine.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "values, expected",
    [([0, 5, 200], (1.0, 0.0)), ([-32768, 32767], (1.0, 0.0)), ([0.0, 2.0], (1.0, 0.0)),
     ([0, 40000], (20000 / 32767, 20000.0)), ([0.0, 0.5], (0.5 / 32767, 0.0)), ([2.5, 2.5], (0.5 / 32767, 2.0))],
)
def test_int16_mapping(values, expected):
    slope, intercept = int16_mapping(np.asarray(values))
    assert slope == pytest.approx(expected[0]) and intercept == expected[1]


def test_errors_name_the_file(tmp_path):
    import nibabel as nib

    with pytest.raises(FileNotFoundError, match="absent.nii.gz: no such file"):
        write_dicom_series(tmp_path / "absent.nii.gz", tmp_path / "out")
    four_d = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), str(four_d))
    with pytest.raises(ValueError, match=r"four_d.nii.gz: expected a 3-D single-channel volume"):
        write_dicom_series(four_d, tmp_path / "out")
    nan = tmp_path / "nan.nii.gz"
    values = np.ones((4, 4, 3), np.float32)
    values[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(values, np.eye(4)), str(nan))
    with pytest.raises(ValueError, match=r"nan.nii.gz: the volume holds NaN or infinite values"):
        write_dicom_series(nan, tmp_path / "out")
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.int16), np.eye(4)), str(good))
    write_dicom_series(good, tmp_path / "out")
    with pytest.raises(FileExistsError, match="already holds .dcm files"):
        write_dicom_series(good, tmp_path / "out")
    assert len(write_dicom_series(good, tmp_path / "out", overwrite=True)["files"]) == 3


def test_writing_and_reading_a_dicom_series_keep_the_process_locale(tmp_path):
    """GDCM's DICOM writing sets the C locale; the writer restores it (else this process's text I/O turns ASCII)."""
    import locale

    import nibabel as nib

    saved = locale.setlocale(locale.LC_ALL)
    try:
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")  # a start that differs from the C locale GDCM sets
    except locale.Error:
        pytest.skip("no C.UTF-8 locale on this system")
    try:
        before = (locale.setlocale(locale.LC_ALL), locale.getpreferredencoding(False))
        nifti = tmp_path / "volume.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.int16), np.eye(4)), str(nifti))
        write_dicom_series(nifti, tmp_path / "series")
        LoadVolumed(keys="image")({"image": str(tmp_path / "series")})
        assert (locale.setlocale(locale.LC_ALL), locale.getpreferredencoding(False)) == before
        assert before[1] == "UTF-8"
    finally:
        locale.setlocale(locale.LC_ALL, saved)
