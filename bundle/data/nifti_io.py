# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Writing 3D arrays as NIfTI files for the data-preparation modules."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["save_nifti"]


def save_nifti(array: np.ndarray, path: str | os.PathLike, spacing: float = 1.0) -> Path:
    """Save a 3D array as NIfTI-1 with a diagonal affine (``spacing`` mm per voxel, origin 0).

    The array is stored as given: axis 0, 1, 2 become the file's i, j, k axes, so
    ``monai.transforms.LoadImage`` (nibabel reader, no reorientation) returns the same array.

    Args:
        array: ``[H, W, D]`` array; its dtype is kept (float32 images, uint8 masks).
        path: output file, normally ``*.nii.gz`` (gzip level 1, nibabel's default).
        spacing: voxel size in mm along every axis.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``array`` is not 3D.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D array, got shape {array.shape}.")
    affine = np.diag([spacing, spacing, spacing, 1.0])
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = Path(path)
    nib.save(img, str(path))
    return path
