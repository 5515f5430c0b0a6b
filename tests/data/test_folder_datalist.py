# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of the CSV datalist builder and ``scripts/build_datalist.py``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from bundle.data.folder_datalist import build_datalist_from_csv, split_stratified_grouped
import build_datalist  # scripts/ is on sys.path (tests/conftest.py)

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_datalist.py"
KERMANY = Path("/work/shared/data/kermany-oct-mini")
SPLITS = ("training", "validation", "test")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _dataset(tmp_path: Path, n_patients: int = 20, per_patient: int = 3) -> tuple[Path, Path]:
    """Images folder with files and one folder (a 'DICOM series'); patients p00.. with 3 images each.

    Patients 0..11 are "normal", 12..19 "dme"; case p12 is a folder of slices.
    """
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    for p in range(n_patients):
        label = "normal" if p < 12 else "dme"
        for k in range(per_patient):
            name = f"p{p:02d}_{k}.png"
            if p == 12 and k == 0:
                name = "p12_series"
                (images / name).mkdir()
                (images / name / "slice_000.dcm").write_bytes(b"")
            else:
                (images / name).write_bytes(b"")
            rows.append([name, label, f"pat{p:02d}"])
    return images, _write_csv(tmp_path / "labels.csv", ["image", "label", "patient_id"], rows)


def _splits(path: Path) -> dict[str, list[dict]]:
    data = json.loads(path.read_text())
    return {k: data[k] for k in SPLITS}


def test_grouped_stratified_split(tmp_path):
    images, labels = _dataset(tmp_path)
    out = tmp_path / "lists" / "nested" / "datalist.json"  # paths must be relative to this folder
    path = build_datalist_from_csv(
        images, labels, out, group_column="patient_id", val_fraction=0.25, test_fraction=0.25, seed=1
    )
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "dme", "1": "normal"} and data["num_classes"] == 2  # sorted names
    splits = _splits(path)
    assert sum(len(v) for v in splits.values()) == 60
    patients = {k: {e["patient_id"] for e in v} for k, v in splits.items()}
    assert not (patients["training"] & patients["validation"])
    assert not (patients["training"] & patients["test"])
    assert not (patients["validation"] & patients["test"])
    # per class: dme 8 patients -> 2 test, 2 val; normal 12 -> 3 test, 3 val
    per_class = {k: Counter(e["label"] for e in v) for k, v in splits.items()}
    assert per_class["test"] == {0: 6, 1: 9} and per_class["validation"] == {0: 6, 1: 9}
    for key in SPLITS:
        for item in load_decathlon_datalist(path, data_list_key=key):
            assert Path(item["image"]).exists() and isinstance(item["label"], int)
    assert any(e["image"].endswith("images/p12_series") for v in splits.values() for e in v)
    assert all(e["image"].startswith("../../images/") for v in splits.values() for e in v)


def test_split_is_deterministic_and_seed_dependent(tmp_path):
    images, labels = _dataset(tmp_path)
    a = _splits(build_datalist_from_csv(images, labels, tmp_path / "a.json", group_column="patient_id", seed=3))
    b = _splits(build_datalist_from_csv(images, labels, tmp_path / "b.json", group_column="patient_id", seed=3))
    c = _splits(build_datalist_from_csv(images, labels, tmp_path / "c.json", group_column="patient_id", seed=4))
    assert a == b and a != c
    assert a["test"] == []


def test_ungrouped_counts_per_class(tmp_path):
    images, labels = _dataset(tmp_path)  # 36 normal rows, 24 dme rows
    splits = _splits(build_datalist_from_csv(images, labels, tmp_path / "d.json", val_fraction=0.2, test_fraction=0.1))
    assert Counter(e["label"] for e in splits["validation"]) == {1: round(36 * 0.2), 0: round(24 * 0.2)}
    assert Counter(e["label"] for e in splits["test"]) == {1: round(36 * 0.1), 0: round(24 * 0.1)}
    assert "patient_id" not in splits["training"][0]


def test_integer_labels_and_class_names(tmp_path):
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(12):
        (tmp_path / "img" / f"c{i}.nii.gz").write_bytes(b"")
        rows.append([f"c{i}.nii.gz", i % 3])
    csv_path = _write_csv(tmp_path / "l.csv", ["file", "y"], rows)
    path = build_datalist_from_csv(
        tmp_path / "img", csv_path, tmp_path / "x.json", image_column="file", label_column="y"
    )
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "class_0", "1": "class_1", "2": "class_2"}
    assert sorted(e["label"] for k in SPLITS for e in data[k]) == sorted(i % 3 for i in range(12))
    named = json.loads(
        build_datalist_from_csv(
            tmp_path / "img", csv_path, tmp_path / "y.json", image_column="file", label_column="y",
            class_names=["a", "b", "c", "d"],
        ).read_text()
    )
    assert named["labels"] == {"0": "a", "1": "b", "2": "c", "3": "d"} and named["num_classes"] == 4


def test_string_labels_follow_class_names_order(tmp_path):
    images, labels = _dataset(tmp_path)
    data = json.loads(
        build_datalist_from_csv(images, labels, tmp_path / "o.json", class_names=["normal", "dme"]).read_text()
    )
    assert data["labels"] == {"0": "normal", "1": "dme"}
    assert Counter(e["label"] for k in SPLITS for e in data[k]) == {0: 36, 1: 24}
    with pytest.raises(ValueError, match=r"labels \['dme'\] are not among the class names"):
        build_datalist_from_csv(images, labels, tmp_path / "p.json", class_names=["normal", "cnv"])


def test_missing_columns_are_named(tmp_path):
    images, labels = _dataset(tmp_path)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['file', 'pid'\].*\['image', 'label', 'patient_id'\]"):
        build_datalist_from_csv(images, labels, tmp_path / "o.json", image_column="file", group_column="pid")


def test_all_missing_images_reported(tmp_path):
    images, labels = _dataset(tmp_path)
    (images / "p00_1.png").unlink()
    (images / "p05_2.png").unlink()
    with pytest.raises(FileNotFoundError) as info:
        build_datalist_from_csv(images, labels, tmp_path / "o.json")
    message = str(info.value)
    assert "2 row(s)" in message and "labels.csv" in message
    assert "line 3: " in message and "p00_1.png" in message  # header is line 1, p00_0 line 2
    assert "line 19: " in message and "p05_2.png" in message
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("content", ["", "image,label\n", "image,label\n\n\n"])
def test_empty_csv(tmp_path, content):
    (tmp_path / "images").mkdir()
    (tmp_path / "e.csv").write_text(content)
    with pytest.raises(ValueError, match="e.csv"):
        build_datalist_from_csv(tmp_path / "images", tmp_path / "e.csv", tmp_path / "o.json")


def test_empty_cells_rejected(tmp_path):
    images, _ = _dataset(tmp_path)
    csv_path = _write_csv(tmp_path / "c.csv", ["image", "label"], [["p00_0.png", ""], ["p00_1.png", "dme"]])
    with pytest.raises(ValueError, match="line 2: empty 'label'"):
        build_datalist_from_csv(images, csv_path, tmp_path / "o.json")


def test_single_member_class_warns(tmp_path):
    images, _ = _dataset(tmp_path)
    rows = [[f"p{p:02d}_0.png", "normal"] for p in range(6)] + [["p12_1.png", "rare"]]
    csv_path = _write_csv(tmp_path / "c.csv", ["image", "label"], rows)
    with pytest.warns(UserWarning, match="single case"):
        path = build_datalist_from_csv(images, csv_path, tmp_path / "o.json", val_fraction=0.3)
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "normal", "1": "rare"}
    assert [e["label"] for e in data["training"]].count(1) == 1  # the single "rare" case stays in training
    assert [e["label"] for e in data["validation"]] == [0, 0]  # round(6 * 0.3) normal cases


def test_refuses_to_overwrite(tmp_path):
    images, labels = _dataset(tmp_path)
    out = build_datalist_from_csv(images, labels, tmp_path / "o.json")
    before = out.read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        build_datalist_from_csv(images, labels, out, seed=9)
    assert out.read_text() == before
    build_datalist_from_csv(images, labels, out, seed=9, overwrite=True)
    assert out.read_text() != before


@pytest.mark.parametrize("val, test", [(-0.1, 0.0), (1.0, 0.0), (0.5, 0.5), (0.2, 1.2)])
def test_invalid_fractions(val, test):
    with pytest.raises(ValueError, match="val_fraction"):
        split_stratified_grouped([0, 1, 0, 1], val_fraction=val, test_fraction=test)


def test_missing_inputs(tmp_path):
    images, labels = _dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        build_datalist_from_csv(tmp_path / "nope", labels, tmp_path / "o.json")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        build_datalist_from_csv(images, tmp_path / "nope.csv", tmp_path / "o.json")


@pytest.mark.skipif(not (KERMANY / "labels.csv").is_file(), reason=f"shared Kermany OCT subset {KERMANY} not available")
def test_real_kermany_grouped_by_patient(tmp_path):
    path = build_datalist_from_csv(
        KERMANY / "images", KERMANY / "labels.csv", tmp_path / "datalist.json", image_column="file",
        group_column="patient_id", val_fraction=0.2, test_fraction=0.2, seed=0,
    )
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "CNV", "1": "DME", "2": "DRUSEN", "3": "NORMAL"}
    splits = _splits(path)
    assert sum(len(v) for v in splits.values()) == 48
    owner: dict[str, str] = {}
    for key, entries in splits.items():
        for e in entries:
            assert owner.setdefault(e["patient_id"], key) == key, f"patient {e['patient_id']} crosses splits"
    for key in SPLITS:
        items = load_decathlon_datalist(path, data_list_key=key)
        assert items and all(Path(i["image"]).is_file() for i in items)
        assert {i["label"] for i in items} == {0, 1, 2, 3}  # every class in every split


def test_cli(tmp_path, capsys):
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8", check=True
    ).stdout
    for option in ("--images-dir", "--labels-csv", "--out", "--group-column", "--val-fraction", "--overwrite"):
        assert option in help_text
    images, labels = _dataset(tmp_path)
    main = build_datalist.main
    argv = ["--images-dir", str(images), "--labels-csv", str(labels), "--out", str(tmp_path / "d.json"),
            "--group-column", "patient_id", "--class-names", "normal,dme"]
    assert main(argv) == 0 and "d.json" in capsys.readouterr().out
    assert json.loads((tmp_path / "d.json").read_text())["labels"] == {"0": "normal", "1": "dme"}
    assert main(argv) == 1 and "overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--label-column", "diagnosis"]) == 1
    assert "diagnosis" in capsys.readouterr().err
