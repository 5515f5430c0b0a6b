# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Writing 3D arrays as NIfTI files: the data-preparation volumes and masks, and the localization heatmaps."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from bundle.reports import atomic_path

__all__ = ["save_nifti"]


def save_nifti(
    array: np.ndarray, path: str | os.PathLike, spacing: float = 1.0, affine: np.ndarray | None = None
) -> Path:
    """Save a 3D array as NIfTI-1, with its affine as both the qform and the sform (code 1, scanner).

    The array is stored as given: axis 0, 1, 2 become the file's i, j, k axes, so
    ``monai.transforms.LoadImage`` (nibabel reader, no reorientation) returns the same array. The file
    is written to a temporary name in the same folder and renamed, so an interrupted write never
    leaves half a file in its place.

    Args:
        array: ``[H, W, D]`` array; its dtype is kept (float32 images and heatmaps, uint8 masks).
        path: output file, normally ``*.nii.gz`` (gzip level 1, nibabel's default).
        spacing: voxel size in mm along every axis when ``affine`` is None (diagonal affine, origin 0).
        affine: ``[4, 4]`` voxel-to-world matrix in mm (e.g. a ``MetaTensor``'s ``affine``); None:
            from ``spacing``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: when ``array`` is not 3D or ``affine`` is not ``[4, 4]``.
    """
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected a 3D array, got shape {array.shape}.")
    if affine is None:
        affine = np.diag([spacing, spacing, spacing, 1.0])
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"{path}: expected a [4, 4] affine, got shape {affine.shape}.")
    img = nib.Nifti1Image(array, affine)
    img.header.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = Path(path)
    with atomic_path(path) as tmp:  # keeps the suffix: nibabel picks the format from it
        nib.save(img, str(tmp))
    return path
