# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.runs``: unique run stamps, run names that say which run it is, run folders never shared; and the
configs' ``run_stamp``, ``run_name`` and ``run_dir`` built from them (two runs started in the same second)."""

from __future__ import annotations

import datetime
import json
import re

import pytest

from bundle import runs
from bundle.config import CONFIGS, config_parser

NOW = datetime.datetime(2026, 3, 14, 10, 15, 2, 123456)


@pytest.mark.parametrize(
    "now, suffix, expected",
    [
        (NOW, "3fa9", "20260314_101502_123456_3fa9"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, 6), "0000", "20260102_030405_000006_0000"),
    ],
)
def test_run_stamp_has_microseconds_and_a_suffix(now, suffix, expected):
    assert runs.run_stamp(now, suffix) == expected


def test_run_stamps_of_the_same_microsecond_differ():
    stamps = {runs.run_stamp(NOW) for _ in range(200)}
    assert all(re.fullmatch(r"20260314_101502_123456_[0-9a-f]{4}", s) for s in stamps)
    assert len(stamps) > 150  # 4 random hex digits: a handful of repeats at most among 200


def _datalist(folder, content):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "datalist.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"name": "synthetic_oct", "training": []}, "synthetic_oct"),
        ({"name": "Adrenal MNIST 3D (64)!", "training": []}, "Adrenal-MNIST-3D-64"),
        ({"name": "x" * 60}, "x" * 40),
        ({"training": []}, "my_data"),  # no name: the datalist's folder
        ({"name": "  "}, "my_data"),
        ("[1, 2]", "my_data"),  # not an object: the folder
        ("{not json", None),  # unreadable: the datalist's own checks report it
    ],
)
def test_dataset_name_of_a_datalist(content, expected, tmp_path):
    assert runs.dataset_name(_datalist(tmp_path / "my_data", content)) == expected


def test_dataset_name_of_other_inputs_is_none(tmp_path):
    image = tmp_path / "patient_0042.nii.gz"
    image.write_bytes(b"")
    assert runs.dataset_name(tmp_path) is None  # an input folder
    assert runs.dataset_name(image) is None  # a case's file name never goes into a run name
    assert runs.dataset_name(tmp_path / "absent.json") is None
    assert runs.dataset_name(None) is None


@pytest.mark.parametrize(
    "kind, with_datalist, expected",
    [
        ("train", True, "train_synthetic_oct_20260314_101502_123456_3fa9"),
        ("evaluate", True, "evaluate_synthetic_oct_20260314_101502_123456_3fa9"),
        ("inference", False, "inference_20260314_101502_123456_3fa9"),
    ],
)
def test_run_name_says_kind_dataset_and_time(kind, with_datalist, expected, tmp_path):
    datalist = _datalist(tmp_path / "d", {"name": "synthetic_oct"}) if with_datalist else tmp_path
    assert runs.run_name(kind, datalist, "20260314_101502_123456_3fa9") == expected


@pytest.mark.parametrize("kind, stamp, message", [("training", "s", "run kind must be one of train, evaluate, "
                                                   "inference, got 'training'"), ("train", "", "run_stamp is empty")])
def test_run_name_refuses(kind, stamp, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        runs.run_name(kind, None, stamp)


def test_run_folder_is_made_once_and_never_shared(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_MADE", set())
    folder = runs.run_folder(tmp_path / "runs", "train_a")
    assert folder == str(tmp_path / "runs" / "train_a") and (tmp_path / "runs" / "train_a").is_dir()
    assert runs.run_folder(tmp_path / "runs", "train_a") == folder  # asked again by the process that made it
    (tmp_path / "runs" / "train_b").mkdir()  # made by another run
    message = (f"run folder {tmp_path / 'runs' / 'train_b'} exists already: it belongs to another run and is never "
               "shared; leave run_stamp unset (a unique one is made) or choose another run_stamp")
    with pytest.raises(FileExistsError, match=re.escape(message)):
        runs.run_folder(tmp_path / "runs", "train_b")


def test_run_folder_is_made_by_rank_0_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert runs.run_folder(tmp_path / "runs", "train_a") == str(tmp_path / "runs" / "train_a")
    assert not (tmp_path / "runs").exists()


def _train_run(bundle_root, dataset, **overrides):
    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"],
                           {"bundle_root": str(bundle_root), "dataset_dir": str(dataset), **overrides})
    return parser.get_parsed_content("run_name"), parser.get_parsed_content("run_dir")


def test_two_runs_started_in_the_same_second_get_their_own_folders(tiny_dataset, tmp_path, monkeypatch):
    stamp = runs.run_stamp
    monkeypatch.setattr(runs, "run_stamp", lambda: stamp(NOW))  # both start at the same microsecond
    monkeypatch.setattr(runs, "_MADE", set())
    first, second = _train_run(tmp_path, tiny_dataset), _train_run(tmp_path, tiny_dataset)
    assert first[0] != second[0] and first[1] != second[1]
    for name, folder in (first, second):
        assert re.fullmatch(r"train_synthetic_oct_20260314_101502_123456_[0-9a-f]{4}", name)
        assert folder == str(tmp_path / "runs" / name) and (tmp_path / "runs" / name).is_dir()
    # the same stamp in another process (same suffix too): the folder is refused, not shared
    monkeypatch.setattr(runs, "run_stamp", lambda: stamp(NOW, "beef"))
    name, _ = _train_run(tmp_path, tiny_dataset)
    monkeypatch.setattr(runs, "_MADE", set())
    with pytest.raises(RuntimeError, match="run_folder") as raised:  # MONAI wraps what an expression raises
        _train_run(tmp_path, tiny_dataset)
    assert isinstance(raised.value.__cause__, FileExistsError)
    assert f"run folder {tmp_path / 'runs' / name} exists already" in str(raised.value.__cause__)
    assert name == "train_synthetic_oct_20260314_101502_123456_beef"


@pytest.mark.parametrize(
    "config, overrides, expected",
    [
        ("evaluate.json", {}, "evaluate_synthetic_oct_s1"),
        ("inference.json", {}, "inference_synthetic_oct_s1"),  # its input is the datalist by default
        ("inference.json", {"input": "IMAGES"}, "inference_s1"),  # a folder of images: no dataset part
    ],
)
def test_evaluation_and_inference_run_names(config, overrides, expected, tiny_dataset):
    overrides = {k: str(tiny_dataset / "images") if v == "IMAGES" else v for k, v in overrides.items()}
    parser = config_parser([CONFIGS / "common.json", CONFIGS / config],
                           {"dataset_dir": str(tiny_dataset), "run_stamp": "s1", **overrides})
    assert parser.get_parsed_content("run_name") == expected


def test_the_configs_stamp_is_unique(tiny_dataset):
    stamps = {config_parser([CONFIGS / "common.json"], {}).get_parsed_content("run_stamp") for _ in range(3)}
    assert len(stamps) == 3 and all(re.fullmatch(r"\d{8}_\d{6}_\d{6}_[0-9a-f]{4}", s) for s in stamps)
