# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
from __future__ import annotations

import json

import pytest

from bundle.datalist import DatalistError, folder_to_datalist, inference_datalist, load_datalist


@pytest.fixture
def datalist(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        (tmp_path / "images" / name).write_bytes(b"x")
    content = {
        "training": [{"image": "images/a.nii.gz", "label": 0}, {"image": "images/b.nii.gz", "label": 1.0}],
        "validation": [{"image": "images/c.nii.gz", "label": [1]}],
        "test": [{"image": "images/c.nii.gz"}],
        "empty": [],
    }
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps(content))
    return path


def test_load_resolves_paths_and_labels(datalist):
    items = load_datalist(datalist, "training", num_classes=2)
    assert [i["label"] for i in items] == [0, 1]
    assert all(isinstance(i["label"], int) for i in items)
    assert items[0]["image"] == str(datalist.parent / "images" / "a.nii.gz")
    assert load_datalist(datalist, "validation", num_classes=2)[0]["label"] == 1


@pytest.mark.parametrize(
    "split, kwargs, error, fragment",
    [
        ("nope", {}, DatalistError, "has no split 'nope'"),
        ("empty", {}, DatalistError, "split 'empty' is empty"),
        ("test", {}, DatalistError, "entry 0: entry has no 'label'"),
        ("training", {"num_classes": 1}, DatalistError, "label 1 is not a class: allowed 0..0"),
    ],
)
def test_load_errors(datalist, split, kwargs, error, fragment):
    with pytest.raises(error) as e:
        load_datalist(datalist, split, **kwargs)
    assert fragment in str(e.value)
    assert str(datalist) in str(e.value)


@pytest.mark.parametrize("label", ["1", True, None, -1, 0.5, [0, 1]])
def test_bad_labels(tmp_path, label):
    (tmp_path / "a.nii").write_bytes(b"x")
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"training": [{"image": "a.nii", "label": label}]}))
    with pytest.raises(DatalistError, match="is not a class"):
        load_datalist(path, num_classes=2)


def test_all_missing_files_reported(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"training": [{"image": f"missing_{i}.nii.gz", "label": 0} for i in range(3)]}))
    with pytest.raises(DatalistError) as e:
        load_datalist(path)
    message = str(e.value)
    assert "3 file(s) do not exist" in message
    assert all(f"missing_{i}.nii.gz" in message for i in range(3))


def test_missing_and_invalid_datalist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_datalist(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatalistError, match="not valid JSON"):
        load_datalist(bad)


def test_inference_inputs(tmp_path, datalist):
    items = inference_datalist(datalist, (".nii.gz",), split="test")
    assert items == [{"image": str(datalist.parent / "images" / "c.nii.gz")}]
    folder = tmp_path / "images"
    (folder / "series").mkdir()
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.nii.gz").write_bytes(b"x")
    names = [p["image"].rsplit("/", 1)[-1] for p in folder_to_datalist(folder, (".nii.gz",))]
    assert names == ["a.nii.gz", "b.nii.gz", "c.nii.gz", "series"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatalistError, match="holds no image"):
        folder_to_datalist(empty, (".nii.gz",))
