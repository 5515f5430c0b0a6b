# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of the k-fold datalists (``bundle.data.folds``) on hand-made CSV files."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from monai.data import load_decathlon_datalist

from bundle.data.folds import FOLDS_FILE, assign_folds, kfold_datalists

__all__: list[str] = []

SPLITS = ("training", "validation", "test")
#: patient -> (label, number of images): 7 "normal" patients with 11 images, 5 "dme" patients with 7 images
PATIENTS = {
    "pA": ("normal", 1), "pB": ("normal", 2), "pC": ("normal", 1), "pD": ("normal", 3), "pE": ("normal", 1),
    "pF": ("normal", 2), "pG": ("normal", 1),
    "pH": ("dme", 2), "pI": ("dme", 1), "pJ": ("dme", 1), "pK": ("dme", 2), "pL": ("dme", 1),
}


def _dataset(tmp_path: Path, patients: dict = PATIENTS) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "diagnosis", "patient_id"])
        for patient, (label, count) in patients.items():
            for k in range(count):
                name = f"{patient}_{k}.png"
                (images / name).write_bytes(b"")
                writer.writerow([name, label, patient])
    return images, tmp_path / "labels.csv"


def _build(tmp_path, k, group_column="patient_id", seed=0, **kwargs):
    images, labels = _dataset(tmp_path)
    out = tmp_path / "folds"
    paths = kfold_datalists(images, labels, out, k=k, image_column="file", label_column="diagnosis",
                            group_column=group_column, seed=seed, **kwargs)
    return out, paths, [json.loads(p.read_text()) for p in paths]


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_ungrouped_folds_are_exactly_balanced(k):
    labels = [0] * 13 + [1] * 7
    folds = assign_folds(labels, None, k, seed=3)
    for c in (0, 1):
        per_fold = Counter(f for f, label in zip(folds, labels) if label == c)
        n = labels.count(c)
        assert sorted(per_fold) == list(range(k))
        assert set(per_fold.values()) <= {n // k, -(-n // k)}
    sizes = Counter(folds).values()
    assert max(sizes) - min(sizes) <= 1
    assert assign_folds(labels, None, k, seed=3) == folds  # deterministic


def test_grouped_folds_never_split_a_group_and_stay_balanced():
    labels, groups = [], []
    for patient, (label, count) in PATIENTS.items():
        labels += [int(label == "dme")] * count
        groups += [patient] * count
    for seed in range(5):
        folds = assign_folds(labels, groups, 3, seed=seed)
        for g in set(groups):
            assert len({f for f, gg in zip(folds, groups) if gg == g}) == 1
        for c, largest in ((0, 3), (1, 2)):
            per_fold = [sum(1 for f, label in zip(folds, labels) if label == c and f == i) for i in range(3)]
            assert max(per_fold) - min(per_fold) <= largest
    assert assign_folds(labels, groups, 3, seed=0) != assign_folds(labels, groups, 3, seed=1)


@pytest.mark.parametrize(
    "k, groups, fragment",
    [
        (1, None, "k must be at least 2"),
        (8, None, "class 1 has only 7 case(s)"),
        (4, ["a0", "a0", "a1", "a2", "a3", "a4", "b0", "b0", "b1", "b2"], "class 1 has only 3 group(s)"),
    ],
)
def test_invalid_k_is_refused(k, groups, fragment):
    labels = [0] * 13 + [1] * 7 if groups is None else [0] * 6 + [1] * 4
    with pytest.raises(ValueError, match=r"my\.csv: .*" + re.escape(fragment)):
        assign_folds(labels, groups, k, source="my.csv")


@pytest.mark.parametrize("k", [2, 3])
def test_fold_datalists(tmp_path, k):
    out, paths, datalists = _build(tmp_path, k)
    assert paths == [out / f"fold_{i}" / "datalist.json" for i in range(k)]
    all_images = sorted(f"{p}_{j}.png" for p, (_, n) in PATIENTS.items() for j in range(n))
    test_images = []
    for i, data in enumerate(datalists):
        images = {s: [Path(e["image"]).name for e in data[s]] for s in SPLITS}
        assert sorted(sum(images.values(), [])) == all_images  # every case in exactly one split of the fold
        patients = {s: {e["patient_id"] for e in data[s]} for s in SPLITS}
        assert not (patients["training"] & patients["validation"] or patients["training"] & patients["test"]
                    or patients["validation"] & patients["test"])
        assert {e["label"] for e in data["test"]} == {0, 1} and data["validation"]
        assert data["labels"] == {"0": "dme", "1": "normal"} and data["fold"]["index"] == i
        test_images += images["test"]
        assert load_decathlon_datalist(paths[i], data_list_key="test")[0]["image"].endswith(".png")
    assert sorted(test_images) == all_images  # every case in exactly one test fold

    record = json.loads((out / FOLDS_FILE).read_text())
    assert record["num_cases"] == 18 and record["parameters"]["k"] == k and len(record["folds"]) == k
    for entry, data in zip(record["folds"], datalists):
        assert entry["sizes"] == {s: len(data[s]) for s in SPLITS}
        assert entry["class_counts"]["test"] == {
            name: sum(e["label"] == int(c) for e in data["test"]) for c, name in data["labels"].items()}
        assert entry["groups"]["test"] == len({e["patient_id"] for e in data["test"]})


def test_folds_are_deterministic_and_refuse_to_overwrite(tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    _, paths, datalists = _build(first, 3, seed=7)
    with pytest.raises(FileExistsError):
        kfold_datalists(first / "images", first / "labels.csv", first / "folds", k=3, image_column="file",
                        label_column="diagnosis", group_column="patient_id", seed=7)
    second = tmp_path / "b"
    second.mkdir()
    assert _build(second, 3, seed=7)[2] == datalists


def test_without_group_column_every_case_is_a_unit(tmp_path):
    _, _, datalists = _build(tmp_path, 5, group_column=None)
    for data in datalists:
        assert "patient_id" not in data["test"][0]
        counts = Counter(e["label"] for e in data["test"])
        assert counts[0] in (1, 2) and counts[1] in (2, 3)  # 7 dme and 11 normal cases over 5 folds


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"k": 6}, ValueError, "labels.csv: k=6 folds but class 0 has only 5 group(s)"),
        ({"k": 1}, ValueError, "labels.csv: k must be at least 2"),
        ({"k": 2, "val_fraction": 0.0}, ValueError, "val_fraction must be in (0, 1)"),
    ],
)
def test_errors_name_the_file_and_the_problem(tmp_path, kwargs, error, fragment):
    with pytest.raises(error) as e:
        _build(tmp_path, group_column="patient_id", **kwargs)
    assert fragment in str(e.value)


def test_missing_image_is_named(tmp_path):
    images, labels = _dataset(tmp_path)
    (images / "pB_1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"line 4: .*pB_1\.png"):
        kfold_datalists(images, labels, tmp_path / "folds", k=2, image_column="file", label_column="diagnosis")
