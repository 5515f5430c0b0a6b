# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""bundle.class_names: class names from the datalist's "labels", else the configured ones; configs and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bundle.class_names import datalist_class_names, resolve_class_names

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
DEFAULT = ["normal", "cyst"]


def _datalist(folder: Path, content) -> Path:
    path = folder / "datalist.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    "content, num_classes, expected",
    [
        (None, 2, DEFAULT),  # no file: the configured names
        ({"training": []}, 2, DEFAULT),  # no "labels"
        ({"labels": {"0": "NORMAL", "1": "CNV"}, "training": []}, 2, ["NORMAL", "CNV"]),
        ({"labels": {"1": "CNV", "0": "NORMAL", "2": "DME"}}, 3, ["NORMAL", "CNV", "DME"]),  # index order
        ({"labels": {"0": "a", "1": "b"}}, None, ["a", "b"]),
    ],
)
def test_resolve_class_names(tmp_path, content, num_classes, expected):
    datalist = tmp_path / "datalist.json" if content is None else _datalist(tmp_path, content)
    assert resolve_class_names(datalist, DEFAULT, num_classes) == expected
    assert resolve_class_names(str(datalist), tuple(DEFAULT), num_classes) == expected


def test_no_datalist_gives_the_default():
    assert resolve_class_names(None, ("x", "y"), 2) == ["x", "y"]


@pytest.mark.parametrize(
    "content, num_classes, message",
    [
        ({"labels": {"0": "a", "1": "b", "2": "c"}}, 2,
         "\"labels\" names 3 classes ['a', 'b', 'c'], but num_classes is 2: set --num_classes 3, or --class_names"),
        ({"labels": ["a", "b"]}, 2, "\"labels\" must map class indices to names ({\"0\": \"normal\"}), got ['a', 'b']"),
        ({"labels": {"0": "a", "2": "b"}}, 2, "\"labels\": label_names keys must be exactly 0..K-1, got [0, 2]."),
        ("{not json", 2, "not a readable JSON datalist"),
    ],
)
def test_bad_labels_name_the_file(tmp_path, content, num_classes, message):
    datalist = _datalist(tmp_path, content)
    with pytest.raises(ValueError) as error:
        resolve_class_names(datalist, DEFAULT, num_classes)
    assert str(error.value).startswith(f"{datalist}: ") and message in str(error.value)


def test_datalist_class_names_of_a_written_datalist(tmp_path):
    from bundle.data.datalist_writer import write_datalist

    path = write_datalist(
        tmp_path / "d.json", name="d", description="", labels={1: "CNV", 0: "NORMAL"},
        training=[{"image": "a.nii.gz", "label": 1}], validation=[], test=[],
    )
    assert datalist_class_names(path) == ["NORMAL", "CNV"]


def _parsed_class_names(config_files, overrides):
    from bundle.config import config_parser

    return config_parser(config_files, overrides).get_parsed_content("class_names")


def test_configs_take_the_names_of_the_datalist(tmp_path):
    datalist = _datalist(tmp_path, {"labels": {"0": "benign", "1": "malignant"}, "training": []})
    files = [CONFIGS / "common.json", CONFIGS / "inference.json"]
    assert _parsed_class_names(files, {"datalist": str(datalist)}) == ["benign", "malignant"]
    assert _parsed_class_names(files, {"datalist": str(tmp_path / "absent.json")}) == DEFAULT
    assert _parsed_class_names(files, {"datalist": str(datalist), "class_names": ["p", "q"]}) == ["p", "q"]
    overlay = [CONFIGS / "common.json", CONFIGS / "datasets" / "adrenalmnist3d.json"]  # an overlay's list wins
    assert _parsed_class_names(overlay, {"datalist": str(datalist)}) == ["normal", "hyperplasia"]


def test_the_archive_stores_the_resolved_names(tmp_path):
    from bundle.config import build_network
    from bundle.export import export_torchscript, load_torchscript

    datalist = _datalist(tmp_path, {"labels": {"0": "benign", "1": "malignant"}, "training": []})
    overrides = {"image_size": [32, 32], "datalist": str(datalist)}
    files = [CONFIGS / "common.json", CONFIGS / "inference.json"]
    torch.manual_seed(0)
    network, _ = build_network(files, overrides)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    export_torchscript(tmp_path / "model.pt", tmp_path / "model.ts", files, CONFIGS / "metadata.json", overrides)
    datalist.unlink()  # where the archive is served, the training datalist is not there
    _, _, config = load_torchscript(tmp_path / "model.ts")
    assert config["class_names"] == ["benign", "malignant"]
