# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""save_nifti: dtype kept, affine as qform and sform, atomic write, argument checks."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bundle.data.nifti_io import save_nifti

# rotated 30 degrees about z, voxels 0.8 x 1.2 x 2.5 mm, shifted: a qform holds rotations and zooms (no shear)
_COS, _SIN = np.cos(np.pi / 6), np.sin(np.pi / 6)
OBLIQUE = np.array(
    [[0.8 * _COS, -1.2 * _SIN, 0.0, 3.0], [0.8 * _SIN, 1.2 * _COS, 0.0, -4.0], [0.0, 0.0, 2.5, 5.0], [0, 0, 0, 1.0]]
)


@pytest.mark.parametrize(
    "dtype, spacing, affine, expected_affine",
    [
        (np.float32, 1.0, None, np.eye(4)),
        (np.uint8, 0.5, None, np.diag([0.5, 0.5, 0.5, 1.0])),
        (np.float32, 1.0, OBLIQUE, OBLIQUE),
    ],
)
def test_save_nifti_keeps_dtype_and_affine(tmp_path, dtype, spacing, affine, expected_affine):
    array = np.arange(24, dtype=dtype).reshape(2, 3, 4)
    path = save_nifti(array, tmp_path / "x.nii.gz", spacing=spacing, affine=affine)
    assert path == tmp_path / "x.nii.gz" and sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]
    img = nib.load(path)
    assert img.get_data_dtype() == dtype and img.header.get_xyzt_units() == ("mm", "unknown")
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), array)
    for matrix, code in (img.get_qform(coded=True), img.get_sform(coded=True)):
        assert code == 1
        np.testing.assert_allclose(matrix, expected_affine, atol=1e-6)


def test_save_nifti_rejects_wrong_shapes(tmp_path):
    with pytest.raises(ValueError, match="3D array"):
        save_nifti(np.zeros((2, 3)), tmp_path / "x.nii.gz")
    with pytest.raises(ValueError, match=r"\[4, 4\] affine"):
        save_nifti(np.zeros((2, 3, 4)), tmp_path / "x.nii.gz", affine=np.eye(3))
