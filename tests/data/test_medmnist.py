# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of the MedMNIST 3D converter and ``scripts/medmnist_to_nifti.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImage

from bundle.data.medmnist import convert_medmnist3d, load_medmnist3d
import medmnist_to_nifti  # scripts/ is on sys.path (tests/conftest.py)

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "medmnist_to_nifti.py"
ADRENAL_28 = Path("/work/shared/data/adrenalmnist3d/adrenalmnist3d.npz")
SHAPE = (4, 5, 6)  # (z, y, x) of the tiny volumes


def _tiny_arrays() -> dict[str, np.ndarray]:
    """Train 3, val 2, test 1 volumes of (z, y, x) = (4, 5, 6) with distinct voxel values; labels 0..2."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n, labels in (("train", 3, [0, 2, 1]), ("val", 2, [1, 0]), ("test", 1, [2])):
        out[f"{split}_images"] = rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8)
        out[f"{split}_labels"] = np.array(labels, dtype=np.uint8).reshape(n, 1)
    out["train_images"][0] = np.arange(np.prod(SHAPE)).reshape(SHAPE)  # 0..119, readable by eye
    out["train_images"][0, 0, 0, 0] = 255
    return out


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def test_tiny_npz_exact_values_and_transpose(tmp_path):
    arrays = _tiny_arrays()
    path = convert_medmnist3d(_write_npz(tmp_path / "tinymnist3d.npz", arrays), tmp_path / "out", progress=False)
    data = json.loads(path.read_text())
    assert data["num_classes"] == 3 and data["labels"] == {"0": "class_0", "1": "class_1", "2": "class_2"}
    assert data["slice_axis"] == 2
    for split, key in (("train", "training"), ("val", "validation"), ("test", "test")):
        entries = data[key]
        assert [e["image"] for e in entries] == [f"images/{split}_{i:04d}.nii.gz" for i in range(len(entries))]
        assert [e["label"] for e in entries] == arrays[f"{split}_labels"][:, 0].tolist()
        for i, item in enumerate(load_decathlon_datalist(path, data_list_key=key)):
            volume = np.asarray(nib.load(item["image"]).dataobj)
            assert volume.dtype == np.float32 and volume.shape == (5, 6, 4)  # (y, x, z)
            expected = arrays[f"{split}_images"][i].transpose(1, 2, 0).astype(np.float32) / np.float32(255)
            np.testing.assert_array_equal(volume, expected)
            for z in range(SHAPE[0]):  # slice_axis = 2 gives the axial slice v[z]
                np.testing.assert_array_equal(volume[:, :, z] * 255, arrays[f"{split}_images"][i][z].astype(np.float32))
    # exact hand-checkable voxels of train_0000: v[z, y, x] = z*30 + y*6 + x, v[0, 0, 0] = 255
    first = np.asarray(nib.load(tmp_path / "out" / "images" / "train_0000.nii.gz").dataobj)
    assert first[0, 0, 0] == 1.0
    assert first[1, 2, 3] == np.float32(3 * 30 + 1 * 6 + 2) / np.float32(255)  # (y=1, x=2, z=3)
    # MONAI's loader (no reorientation) returns the same array
    loaded = LoadImage(image_only=True)(str(tmp_path / "out" / "images" / "train_0000.nii.gz"))
    np.testing.assert_array_equal(np.asarray(loaded), first)


def test_label_names_set_num_classes(tmp_path):
    npz = _write_npz(tmp_path / "tiny.npz", _tiny_arrays())
    names = {"0": "a", "1": "b", "2": "c", "3": "d"}
    data = json.loads(convert_medmnist3d(npz, tmp_path / "o1", progress=False, label_names=names).read_text())
    assert data["num_classes"] == 4 and data["labels"] == names
    with pytest.raises(ValueError, match="label_names"):
        convert_medmnist3d(npz, tmp_path / "o2", progress=False, label_names={0: "a", 1: "b"})


def _broken(kind: str) -> dict[str, np.ndarray]:
    arrays = _tiny_arrays()
    if kind == "missing":
        del arrays["val_labels"], arrays["test_images"]
    elif kind == "count":
        arrays["train_labels"] = arrays["train_labels"][:2]
    elif kind == "multilabel":
        arrays["train_labels"] = np.zeros((3, 2), np.uint8)
    elif kind == "flat":
        arrays["val_labels"] = arrays["val_labels"][:, 0]
    elif kind == "float_images":
        arrays["test_images"] = arrays["test_images"].astype(np.float32)
    elif kind == "channel":
        arrays["train_images"] = arrays["train_images"][:, None]
    elif kind == "negative":
        arrays["train_labels"] = arrays["train_labels"].astype(np.int64) - 1
    return arrays


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", r"missing keys \['val_labels', 'test_images'\]; found \["),
        ("count", "train_images has 3 volumes but train_labels has 2 labels"),
        ("multilabel", r"train_labels must have shape \(N, 1\).*multi-label"),
        ("flat", r"val_labels must have shape \(N, 1\)"),
        ("float_images", "test_images must be uint8"),
        ("channel", r"train_images must be \(N, S, S, S\)"),
        ("negative", "non-negative integers"),
    ],
)
def test_invalid_npz_raises(tmp_path, kind, message):
    npz = _write_npz(tmp_path / "bad.npz", _broken(kind))
    with pytest.raises(ValueError, match=message) as info:
        convert_medmnist3d(npz, tmp_path / "out", progress=False)
    assert "bad.npz" in str(info.value)
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_medmnist3d(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_medmnist3d(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single.npy"):
        load_medmnist3d(tmp_path / "single.npy")


def test_refuses_to_overwrite(tmp_path):
    npz = _write_npz(tmp_path / "tiny.npz", _tiny_arrays())
    convert_medmnist3d(npz, tmp_path / "out", progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        convert_medmnist3d(npz, tmp_path / "out", progress=False)
    convert_medmnist3d(npz, tmp_path / "out", progress=False, overwrite=True)
    assert len(list((tmp_path / "out" / "images").iterdir())) == 6


@pytest.mark.skipif(not ADRENAL_28.is_file(), reason=f"shared AdrenalMNIST3D file {ADRENAL_28} not available")
def test_real_adrenalmnist3d(tmp_path):
    path = convert_medmnist3d(ADRENAL_28, tmp_path / "adrenal", progress=False)
    data = json.loads(path.read_text())
    assert data["name"] == "adrenalmnist3d"
    assert data["labels"] == {"0": "normal", "1": "hyperplasia"} and data["num_classes"] == 2
    balance = {key: Counter(e["label"] for e in data[key]) for key in ("training", "validation", "test")}
    assert balance == {"training": {0: 929, 1: 259}, "validation": {0: 76, 1: 22}, "test": {0: 229, 1: 69}}
    with np.load(ADRENAL_28) as npz:
        original = npz["val_images"][5]
    item = load_decathlon_datalist(path, data_list_key="validation")[5]
    volume = np.asarray(nib.load(item["image"]).dataobj)
    np.testing.assert_array_equal(volume * 255, original.transpose(1, 2, 0).astype(np.float32))
    assert set(np.unique(volume).tolist()) <= {0.0, 1.0}


def test_cli(tmp_path, capsys):
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8", check=True
    ).stdout
    for option in ("--npz", "--out", "--overwrite", "--label-names"):
        assert option in help_text
    main = medmnist_to_nifti.main
    npz = _write_npz(tmp_path / "tiny.npz", _tiny_arrays())
    argv = ["--npz", str(npz), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*argv, "--label-names", '{"0": "x", "1": "y", "2": "z"}']) == 0
    assert json.loads((tmp_path / "out" / "datalist.json").read_text())["labels"]["2"] == "z"
    assert main(argv) == 1 and "overwrite" in capsys.readouterr().err
    assert main(["--npz", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o2")]) == 1
    with pytest.raises(SystemExit):
        main([*argv, "--overwrite", "--label-names", "{not json"])
