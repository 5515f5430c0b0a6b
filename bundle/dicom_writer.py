# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Write a DICOM series from a NIfTI volume, to try the bundle's DICOM path (``scripts/nifti_to_dicom.py``).

The bundle reads a folder holding one DICOM series with MONAI's ``ITKReader`` (:class:`transforms.LoadVolume`),
and the MONAI Deploy app with MONAI Deploy's DICOM operators. This module turns a NIfTI volume into such a folder
with SimpleITK (a dependency of the bundle: no pydicom needed): one file per slice along the third axis,
``slice_0000.dcm``, ..., with the volume's spacing, origin and orientation, and the attributes both readers need
(study and series UIDs, ``SeriesNumber``, ``InstanceNumber``, ``ImagePositionPatient``, ``ImageOrientationPatient``).

Voxel values: an integer volume whose values fit ``int16`` is written as it is, so the series reads back with the
same voxel values (tested through :class:`transforms.LoadVolumed`). Any other volume (floats, wider integers) is
mapped linearly onto ``int16`` and the map is recorded as ``RescaleSlope`` / ``RescaleIntercept``, which readers
apply: values come back to within half a slope step.

Geometry: spacing, origin and orientation are kept (the affines agree, tested). A left-handed voxel grid
(a NIfTI whose axes have a negative determinant, e.g. one flipped axis) cannot keep its slice order: DICOM's
slice direction is row x column, so readers return the slices reversed, with the affine that says so.

The series is a test object (modality ``OT``, patient ``MIMS-DEMO``, no real patient data): not for a PACS.
"""

from __future__ import annotations

import contextlib
import locale
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["INT16_RANGE", "int16_mapping", "new_uid", "write_dicom_series"]

#: the stored pixel range of the series
INT16_RANGE = (-32768, 32767)


def new_uid() -> str:
    """A new DICOM UID from a random UUID (the ``2.25.<decimal UUID>`` form of DICOM PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def int16_mapping(array: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` such that ``stored * slope + intercept`` gives back ``array``, ``stored`` in int16.

    ``(1, 0)`` for integer values inside the int16 range (stored as they are); otherwise an integer intercept
    near the middle of the array's range and the slope that spreads the range over ``-32767 .. 32767`` (GDCM
    writes only integer intercepts for int16 pixels).

    Raises:
        ValueError: the array holds NaN or infinite values.
    """
    if not np.all(np.isfinite(array)):
        raise ValueError("the volume holds NaN or infinite values, which DICOM pixel data cannot store")
    low, high = float(array.min()), float(array.max())
    integral = np.issubdtype(array.dtype, np.integer) or bool(np.all(np.round(array) == array))
    if integral and low >= INT16_RANGE[0] and high <= INT16_RANGE[1]:
        return 1.0, 0.0
    intercept = float(np.floor((low + high) / 2))  # an integer: GDCM refuses a fractional intercept for int16
    reach = max(high - intercept, intercept - low)
    return (reach / INT16_RANGE[1] if reach > 0 else 1.0), intercept


@contextlib.contextmanager
def _locale_kept() -> Iterator[None]:
    """Restore the process's locale after a write: GDCM's DICOM writing sets the C locale, after which Python's
    default text encoding in this process becomes ASCII (``open()`` without ``encoding`` then fails on any
    non-ASCII text)."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def write_dicom_series(
    nifti: str | os.PathLike,
    out_dir: str | os.PathLike,
    series_description: str = "MIMS-CNN test series",
    patient_id: str = "MIMS-DEMO",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the 3-D NIfTI volume ``nifti`` as one DICOM series in ``out_dir``, one file per slice.

    Args:
        nifti: a ``.nii`` / ``.nii.gz`` file holding one 3-D volume ``[x, y, z]`` (single channel).
        out_dir: the folder to write (created); the series' slices are ``slice_<z>.dcm``, z along the third axis.
        series_description: ``SeriesDescription`` of the series.
        patient_id: ``PatientID`` (a test identifier: no real patient data is written).
        overwrite: replace ``slice_*.dcm`` files already in ``out_dir`` instead of refusing.

    Returns:
        ``{"folder", "files", "shape" ([x, y, z]), "spacing", "slope", "intercept", "study_uid", "series_uid"}``.

    Raises:
        FileNotFoundError: ``nifti`` does not exist.
        ValueError: the volume is not 3-D with one channel, or holds NaN/inf (the message names the file).
        FileExistsError: ``out_dir`` already holds ``.dcm`` files and ``overwrite`` is False.
    """
    import SimpleITK as sitk

    nifti, out_dir = Path(nifti), Path(out_dir)
    if not nifti.is_file():
        raise FileNotFoundError(f"{nifti}: no such file")
    image = sitk.ReadImage(str(nifti))
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{nifti}: expected a 3-D single-channel volume, got {image.GetDimension()}-D with "
            f"{image.GetNumberOfComponentsPerPixel()} component(s) per voxel"
        )
    if out_dir.is_dir() and any(out_dir.glob("*.dcm")) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds .dcm files: choose an empty folder or pass overwrite")
    array = sitk.GetArrayFromImage(image)  # [z, y, x]
    if np.issubdtype(array.dtype, np.floating):  # SimpleITK's NIfTI reader turns NaN into 0: ask nibabel
        import nibabel as nib

        if not np.all(np.isfinite(np.asarray(nib.load(str(nifti)).dataobj))):
            raise ValueError(f"{nifti}: the volume holds NaN or infinite values, which DICOM pixel data cannot store")
    try:
        slope, intercept = int16_mapping(array)
    except ValueError as e:
        raise ValueError(f"{nifti}: {e}") from e
    if (slope, intercept) == (1.0, 0.0):
        stored = sitk.GetImageFromArray(array.astype(np.int16))
    else:  # GDCM stores real values itself, through the rescale slope and intercept set below
        stored = sitk.GetImageFromArray(array.astype(np.float64))
    stored.CopyInformation(image)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("slice_*.dcm"):
        old.unlink()

    direction = image.GetDirection()  # row-major 3 x 3: column 0 = x axis, column 1 = y axis (LPS)
    orientation = [direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]]
    spacing = image.GetSpacing()
    study_uid, series_uid = new_uid(), new_uid()
    now = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    shared = {
        "0008|0020": now[0],  # study date
        "0008|0030": now[1],  # study time
        "0008|0060": "OT",  # modality: other
        "0008|103e": series_description,
        "0010|0010": "MIMS^DEMO",  # patient name
        "0010|0020": patient_id,
        "0020|000d": study_uid,
        "0020|000e": series_uid,
        "0020|0010": "1",  # study ID
        "0020|0011": "1",  # series number: MONAI Deploy's loader drops instances where it is empty
        "0020|0037": "\\".join(f"{v:.10g}" for v in orientation),
        "0018|0050": f"{spacing[2]:.10g}",  # slice thickness
        "0028|1052": f"{intercept:.10g}",  # rescale intercept
        "0028|1053": f"{slope:.10g}",  # rescale slope
        "0028|1054": "US",  # rescale type: unspecified
        # stored pixels: signed 16-bit (GDCM needs this to store a real-valued image through the rescale)
        "0028|0100": "16",
        "0028|0101": "16",
        "0028|0102": "15",
        "0028|0103": "1",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # write the UIDs set here
    files = []
    for z in range(stored.GetSize()[2]):
        plane = stored[:, :, z]
        for tag, value in shared.items():
            plane.SetMetaData(tag, value)
        position = image.TransformIndexToPhysicalPoint((0, 0, z))
        plane.SetMetaData("0008|0018", f"{series_uid}.{z + 1}")  # SOP instance UID
        plane.SetMetaData("0020|0013", str(z + 1))  # instance number
        plane.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))  # image position (patient)
        plane.SetMetaData("0028|0030", f"{spacing[1]:.10g}\\{spacing[0]:.10g}")  # pixel spacing: rows, columns
        path = out_dir / f"slice_{z:04d}.dcm"
        writer.SetFileName(str(path))
        with _locale_kept():
            writer.Execute(plane)
        files.append(path)
    return {
        "folder": out_dir,
        "files": files,
        "shape": list(image.GetSize()),
        "spacing": list(spacing),
        "slope": slope,
        "intercept": intercept,
        "study_uid": study_uid,
        "series_uid": series_uid,
    }
