# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""End to end: the MONAI Deploy app (scripts/monai_deploy_app) on a NIfTI file and a DICOM series of one volume.

Runs from the main ``.venv``: the model is built and exported here, the app runs in ``.venv-deploy``
(MONAI Deploy App SDK must stay out of ``.venv``) in a subprocess. Set up and run with::

    bash scripts/setup_deploy_env.sh && .venv/bin/python -m pytest -m slow tests/apps/test_monai_deploy_app.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bundle_testing import TINY  # tests/ is on sys.path (pytest puts the rootdir conftest's folder there)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
APP = REPO / "scripts" / "monai_deploy_app"
DEPLOY_PYTHON = REPO / ".venv-deploy" / "bin" / "python"
SETUP_COMMAND = "bash scripts/setup_deploy_env.sh"
#: volume [x, y, z]: x != y catches swapped in-plane axes; 11 slices with a 6-slice central window
#: (slices 2..7) catch a reversed slice order, to which top-k pooling alone would be blind
SHAPE = (40, 36, 11)
RESULT_KEYS = {"input", "input_type", "predicted_class", "predicted_label", "probabilities", "threshold", "num_slices",
               "model"}
ATOL = 1e-5


def _write_dicom_series(
    volume: np.ndarray, folder: Path, spacing: tuple[float, float, float], series_number: str = "1"
) -> None:
    """Write ``volume`` [x, y, z] (int16) as one DICOM series, one file per z: columns = x, rows = y."""
    import SimpleITK as sitk

    folder.mkdir(parents=True)
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0)))  # SimpleITK arrays are [z, y, x]
    image.SetSpacing(spacing)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    shared = {
        "0008|0060": "OT",  # modality: other
        "0008|103e": "mims-cnn deploy test",
        "0020|000d": "1.2.826.0.1.3680043.8.498.1001",  # study instance UID
        "0020|000e": "1.2.826.0.1.3680043.8.498.1001.1",  # series instance UID
        "0020|0011": series_number,  # MONAI Deploy's loader drops instances where it is empty
        "0010|0020": "MIMS-TEST",  # patient ID
        "0020|0037": "1\\0\\0\\0\\1\\0",  # image orientation (patient): identity
        "0018|0050": str(spacing[2]),  # slice thickness
    }
    for z in range(volume.shape[2]):
        plane = image[:, :, z]
        for tag, value in shared.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.8.498.1001.1.{z + 1}")  # SOP instance UID
        plane.SetMetaData("0020|0013", str(z + 1))  # instance number
        plane.SetMetaData("0020|0032", f"0\\0\\{z * spacing[2]}")  # image position (patient)
        plane.SetMetaData("0028|0030", f"{spacing[1]}\\{spacing[0]}")  # pixel spacing: rows, columns
        writer.SetFileName(str(folder / f"slice_{z:03d}.dcm"))
        writer.Execute(plane)


def _run_app(
    input_path: Path | None, output: Path | None, model: Path | None, env: dict | None = None, extra: tuple = ()
) -> subprocess.CompletedProcess:
    args = [str(DEPLOY_PYTHON), str(APP), *extra]
    for flag, value in (("-i", input_path), ("-o", output), ("-m", model)):
        if value is not None:
            args += [flag, str(value)]
    return subprocess.run(
        args, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, encoding="utf-8", timeout=300,
        check=False
    )


def _app_result(input_path: Path, output: Path, model: Path, env: dict | None = None) -> dict:
    proc = _run_app(input_path, output, model, env)
    assert proc.returncode == 0, f"app failed on {input_path}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads((output / "classification.json").read_text())


@pytest.fixture(scope="module")
def deploy_python() -> Path:
    if not DEPLOY_PYTHON.is_file():
        pytest.skip(f"{DEPLOY_PYTHON.parent.parent} not found: create it with `{SETUP_COMMAND}`")
    return DEPLOY_PYTHON


@pytest.fixture(scope="module")
def case(tmp_path_factory, deploy_python) -> SimpleNamespace:
    """A randomly initialised tiny model (model.pt, model.ts) and one volume as NIfTI and as DICOM series."""
    import nibabel as nib
    from monai.bundle import ConfigParser

    from bundle.export import export_torchscript

    root = tmp_path_factory.mktemp("deploy_app")
    overrides = dict(TINY)
    config_files = [CONFIGS / "common.json", CONFIGS / "inference.json"]
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    parser.update(overrides)
    torch.manual_seed(0)
    ckpt = root / "model.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), ckpt)
    model = export_torchscript(ckpt, root / "model.ts", config_files, CONFIGS / "metadata.json", overrides)

    rng = np.random.default_rng(7)
    volume = rng.integers(0, 1000, size=SHAPE).astype(np.int16)
    volume[5:20, 8:30, 3:6] += 800  # a bright block off-centre in x, y and z
    spacing = (0.5, 0.75, 2.0)
    nifti_dir = root / "nifti"
    nifti_dir.mkdir()
    nifti = nifti_dir / "volume.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([*spacing, 1.0])), nifti)
    dicom = root / "dicom"
    _write_dicom_series(volume, dicom, spacing)
    return SimpleNamespace(
        root=root, ckpt=ckpt, model=model, overrides=overrides, nifti=nifti, dicom=dicom, volume=volume, spacing=spacing
    )


@pytest.fixture(scope="module")
def results(case) -> dict:
    """The app's classification.json for the NIfTI file and for the DICOM folder."""
    return {
        "nifti": _app_result(case.nifti, case.root / "out_nifti", case.model),
        "dicom": _app_result(case.dicom, case.root / "out_dicom", case.model),
    }


def _probs(result: dict) -> np.ndarray:
    return np.array(list(result["probabilities"].values()))


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_result_format(results, case, kind):
    from bundle.export import load_torchscript

    result = results[kind]
    _, metadata, config = load_torchscript(case.model)
    assert RESULT_KEYS <= set(result)
    assert result["input_type"] == ("nifti" if kind == "nifti" else "dicom_series")
    assert result["input"] == str(case.nifti if kind == "nifti" else case.dicom)
    assert list(result["probabilities"]) == config["class_names"]
    probs = _probs(result)
    assert np.all((probs >= 0) & (probs <= 1))
    assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert result["threshold"] is None and result["model"]["decision"] is None  # no decision file: argmax
    assert result["predicted_class"] == int(np.argmax(probs))
    assert result["predicted_label"] == config["class_names"][result["predicted_class"]]
    assert result["num_slices"] == case.overrides["eval_num_slices"]
    assert result["model"]["version"] == metadata["version"]
    if kind == "dicom":
        assert result["dicom"]["SeriesInstanceUID"] == "1.2.826.0.1.3680043.8.498.1001.1"


def test_nifti_matches_bundle_inference(results, case):
    """The app on the NIfTI file = ``monai.bundle`` inference (configs + model.pt) on the same file."""
    from monai.bundle import ConfigWorkflow

    out = case.root / "bundle_inference"
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / "common.json"), str(CONFIGS / "inference.json")],
        meta_file=str(CONFIGS / "metadata.json"),
        workflow_type="inference",
        **{**case.overrides, "bundle_root": str(case.root), "ckpt_path": str(case.ckpt)},
        input=str(case.nifti.parent),
        infer_output_dir=str(out),
    )
    workflow.initialize()
    try:
        workflow.run()
    finally:
        workflow.finalize()
    rows = json.loads((out / "predictions.json").read_text())
    rows = rows if isinstance(rows, list) else rows.get("cases", rows.get("predictions"))
    assert len(rows) == 1
    expected = np.array([rows[0][f"prob_{name}"] for name in results["nifti"]["probabilities"]])
    np.testing.assert_allclose(_probs(results["nifti"]), expected, atol=ATOL)


def test_dicom_matches_nifti_and_bundle_loader(results, case):
    """DICOM and NIfTI of one volume agree, and the app's DICOM layout is the bundle loader's (ITK) layout."""
    from monai.bundle import ConfigParser

    from bundle.export import load_torchscript

    np.testing.assert_allclose(_probs(results["dicom"]), _probs(results["nifti"]), atol=ATOL)
    network, _, config = load_torchscript(case.model)
    parser = ConfigParser(config)
    bag = parser.get_parsed_content("preprocessing")({"image": str(case.dicom)})["image"]  # transforms.LoadVolume: ITK
    with torch.no_grad():
        logits = parser.get_parsed_content("inferer")(torch.as_tensor(bag)[None], network.eval())
    np.testing.assert_allclose(_probs(results["dicom"]), torch.softmax(logits[0], 0).numpy(), atol=ATOL)


def test_environment_variables(case, deploy_python):
    """MONAI Deploy's HOLOSCAN_INPUT_PATH / HOLOSCAN_OUTPUT_PATH / HOLOSCAN_MODEL_PATH replace -i/-o/-m."""
    output = case.root / "out_env"
    env = {
        "HOLOSCAN_INPUT_PATH": str(case.nifti),
        "HOLOSCAN_OUTPUT_PATH": str(output),
        "HOLOSCAN_MODEL_PATH": str(case.model),
    }
    proc = _run_app(None, None, None, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((output / "classification.json").read_text())["input_type"] == "nifti"


@pytest.mark.parametrize("given", ["right", "right_upper_case", "wrong", "not_a_digest"])
def test_model_sha256(case, results, tmp_path, given):
    """``--model-sha256``: the right digest runs as without it; another one stops before the archive is loaded,
    naming the file and both digests; a value that is no digest is refused by the argument parser (exit 2)."""
    from bundle.checksums import sha256

    actual = sha256(case.model)
    digest = {"right": actual, "right_upper_case": actual.upper(), "wrong": "0" * 64, "not_a_digest": "abc"}[given]
    proc = _run_app(case.nifti, tmp_path / "out", case.model, extra=("--model-sha256", digest))
    if given.startswith("right"):
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads((tmp_path / "out" / "classification.json").read_text())
        np.testing.assert_allclose(_probs(result), _probs(results["nifti"]), atol=0)
        return
    assert not (tmp_path / "out" / "classification.json").exists()
    if given == "not_a_digest":
        assert proc.returncode == 2
        assert "--model-sha256: invalid check_sha256 value: 'abc'" in proc.stderr, proc.stderr[-3000:]
        return
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error, proc.stderr[-3000:]
    assert f"{case.model}: SHA-256 mismatch: the file has {actual}, expected {'0' * 64}; not loading it" in error[0]


def test_help_names_the_model_sha256_option(deploy_python):
    proc = _run_app(None, None, None, extra=("--help",))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--model-sha256 MODEL_SHA256" in proc.stdout and "SHA-256 hex digest the model file must have" in proc.stdout


BAD_CASES = ["empty_folder", "wrong_extension", "not_dicom", "no_series_number", "not_torchscript", "config_incomplete"]


@pytest.mark.parametrize("bad", BAD_CASES)
def test_bad_input_fails_clearly(case, deploy_python, tmp_path, bad):
    """Nonzero exit, one ``error:`` line naming the path at fault, no result file."""
    input_path, model = tmp_path / bad, case.model
    if bad == "empty_folder":
        input_path.mkdir()
        expected = "empty folder"
    elif bad == "wrong_extension":
        input_path = tmp_path / "volume.txt"
        input_path.write_text("not an image")
        expected = "unsupported file"
    elif bad == "not_dicom":
        input_path.mkdir()
        (input_path / "notes.txt").write_text("not DICOM")
        expected = "No study loaded"
    elif bad == "no_series_number":  # a valid series with an empty SeriesNumber: the stock loader drops it
        _write_dicom_series(case.volume, input_path, case.spacing, series_number="")
        expected = "no DICOM series"
    elif bad == "not_torchscript":  # the checkpoint instead of the exported model
        input_path, model = case.nifti, case.ckpt
        expected = "not a TorchScript archive"
    else:  # an archive whose inference.json lacks common.json's ids, as `monai.bundle ckpt_export` writes it
        from bundle.export import EXTRA_INFERENCE, EXTRA_METADATA, load_torchscript

        network, metadata, config = load_torchscript(case.model)
        partial = {key: value for key, value in config.items() if key not in ("preprocessing", "device")}
        extra = {EXTRA_METADATA: json.dumps(metadata), EXTRA_INFERENCE: json.dumps(partial)}
        input_path, model = case.nifti, tmp_path / "partial.ts"
        torch.jit.save(network, str(model), _extra_files=extra)
        expected = "lacks ['preprocessing', 'device']"
    proc = _run_app(input_path, tmp_path / "out", model)
    assert proc.returncode != 0
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error, proc.stderr[-3000:]
    assert expected in error[0]
    assert str(model if bad in ("not_torchscript", "config_incomplete") else input_path) in error[0]
    assert not (tmp_path / "out" / "classification.json").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-m", "slow", "-v"]))
