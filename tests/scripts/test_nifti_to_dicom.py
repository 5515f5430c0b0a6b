# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""scripts/nifti_to_dicom.py: options reach bundle.dicom_writer; refused inputs give one error line and exit 1."""

from __future__ import annotations

import numpy as np
import pytest

import nifti_to_dicom  # scripts/ is on sys.path (tests/conftest.py)


@pytest.fixture
def nifti(tmp_path):
    import nibabel as nib

    path = tmp_path / "volume.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2), np.eye(4)), str(path))
    return path


def test_writes_the_series_with_the_options(nifti, tmp_path, capsys):
    import SimpleITK as sitk

    out = tmp_path / "series"
    args = [str(nifti), str(out), "--series-description", "my series", "--patient-id", "P-7"]
    assert nifti_to_dicom.main(args) == 0
    assert capsys.readouterr().out.startswith(f"wrote 2 slices of 4x3 to {out} (series 2.25.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(out / "slice_0000.dcm"))
    reader.ReadImageInformation()
    assert reader.GetMetaData("0008|103e").strip() == "my series"
    assert reader.GetMetaData("0010|0020").strip() == "P-7"


def test_refuses_an_existing_series_without_overwrite(nifti, tmp_path, capsys):
    out = tmp_path / "series"
    assert nifti_to_dicom.main([str(nifti), str(out)]) == 0
    assert nifti_to_dicom.main([str(nifti), str(out)]) == 1
    message = f"error: {out} already holds .dcm files: choose an empty folder or pass overwrite\n"
    assert capsys.readouterr().err == message
    assert nifti_to_dicom.main([str(nifti), str(out), "--overwrite"]) == 0


def test_missing_input(tmp_path, capsys):
    assert nifti_to_dicom.main([str(tmp_path / "absent.nii.gz"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'absent.nii.gz'}: no such file\n"


def test_help_explains_every_option():
    text = nifti_to_dicom.build_parser().format_help()
    for option in ("nifti", "out_dir", "--series-description", "--patient-id", "--overwrite"):
        assert option in text
