# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Bad cases: readable one-line reasons, inference that keeps going, training that fails fast or skips."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.transforms import Compose

from bundle.case_errors import (
    FAILED_CASES_KEY,
    FAILURE_KEY,
    CaseError,
    CheckedCacheDataset,
    CheckedDataset,
    case_error,
    exit_if_failed,
)
from bundle.collate import PadBagCollate
from bundle.result_writers import PredictionsWriter
from bundle_testing import CONFIGS, REPO, TINY, TINY_TRAIN, copy_dataset, run_workflow
from transforms import EnsureChannelsd, LoadVolumed, ToBagd

RNG = np.random.default_rng(0)


def _nifti(path: Path, array: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4)), str(path))
    return str(path)


def _bad_case(folder: Path, kind: str) -> str:
    """Write one case of ``kind`` into ``folder``; its path."""
    path = folder / f"{kind}.nii.gz"
    if kind == "missing":
        return str(path)
    if kind == "corrupt":
        _nifti(path, RNG.random((8, 8, 4)))
        path.write_bytes(path.read_bytes()[:60])
        return str(path)
    array = {
        "good": RNG.random((8, 8, 4)),
        "nan": np.where(np.arange(256).reshape(8, 8, 4) == 5, np.nan, 1.0),
        "inf": np.where(np.arange(256).reshape(8, 8, 4) == 5, np.inf, 1.0),
        "flat": RNG.random((8, 8)),
        "four": RNG.random((8, 8, 4, 3)),
        "empty": np.zeros((8, 0, 4)),
    }[kind]
    return _nifti(path, array)


REASONS = [
    ("missing", "{p}: no such file or directory (in LoadVolumed)"),
    ("corrupt", "{p}: cannot be read as NIfTI: "),  # then nibabel's or gzip's own words
    ("nan", "{p}: contains 1 NaN/inf voxels (in LoadVolumed)"),
    ("inf", "{p}: contains 1 NaN/inf voxels (in LoadVolumed)"),
    ("flat", "{p}: 2-D image of shape (8, 8) where 3-D inputs are expected (spatial_dims 3; null accepts both) "
             "(in LoadVolumed)"),
    ("four", "{p}: 4-D array (8, 8, 4, 3) read as a 3-D volume of 3 channels, but the model takes 1 (in_channels); "
             "store one 3-D volume [H, W, D] per file, or set in_channels (in LoadVolumed)"),
    ("empty", "{p}: empty image: no voxels (array shape (8, 0, 4)) (in LoadVolumed)"),
]

PIPELINE = Compose([LoadVolumed("image", spatial_dims=3, num_channels=1), EnsureChannelsd("image", 1), ToBagd("image")])


@pytest.mark.parametrize("kind, expected", REASONS)
def test_bad_case_reason_names_file_problem_and_transform(tmp_path, kind, expected):
    path = _bad_case(tmp_path, kind)
    dataset = CheckedDataset([{"image": path, "label": 1}], PIPELINE, fail_fast=False)
    record = dataset[0]
    assert set(record) == {"image", "label", FAILURE_KEY} and record["image"] == path and record["label"] == 1
    reason = record[FAILURE_KEY]
    assert "\n" not in reason and "object at 0x" not in reason
    if kind == "corrupt":
        assert reason.startswith(expected.format(p=path)) and reason.endswith(" (in LoadVolumed)")
    else:
        assert reason == expected.format(p=path)
    # fail fast: the same line as the exception's message, raised from MONAI's wrapper
    with pytest.raises(CaseError) as info:
        CheckedDataset([{"image": path}], PIPELINE, fail_fast="true")[0]
    assert str(info.value) == reason and info.value.path == path and info.value.transform == "LoadVolumed"
    assert str(info.value.__cause__).startswith("applying transform ")


def test_later_transform_and_library_errors_are_named():
    # a later transform: its own message already names the file, not repeated
    image = MetaTensor(torch.zeros(2, 4, 4), meta={"filename_or_obj": "/d/a.png"})
    record = CheckedDataset([{"image": image}], Compose([EnsureChannelsd("image", 1)]), fail_fast=False)[0]
    assert record[FAILURE_KEY] == (
        "/d/a.png: cannot convert 2 channels to 1; supported: 1 -> 3, 3 -> 1 (luma), 4 (RGBA) -> 3 or 1, "
        "or equal counts. (in EnsureChannelsd)"
    )
    # an error that is not a ValueError keeps its type; MONAI's default repr gives the class name only
    inner = KeyError("image")
    wrapper = RuntimeError("applying transform <some.module.Foo object at 0x7f3a>")
    wrapper.__cause__ = inner
    outer = RuntimeError("applying transform <monai.transforms.compose.Compose object at 0x7f3b>")
    outer.__cause__ = wrapper
    error = case_error({"image": "/d/b.nii.gz"}, outer)
    assert str(error) == "/d/b.nii.gz: KeyError: 'image' (in Foo)" and error.problem == "KeyError: 'image'"
    assert case_error({}, error) is error
    assert str(case_error({"image": "/d/c.nii"}, ValueError("line one\n  line two"))) == "/d/c.nii: line one line two"


def _bag(path: str, spatial_shape: tuple, n: int = 2) -> dict:
    meta = {"filename_or_obj": path, "spatial_shape": np.asarray(spatial_shape)}
    return {"image": MetaTensor(torch.ones(n, 1, 4, 4), meta=meta), "label": 0}


def test_collate_carries_failed_cases_and_keeps_batch_mates():
    batch = [
        {"image": "/d/bad0.nii.gz", "label": 1, FAILURE_KEY: "/d/bad0.nii.gz: broken"},
        _bag("/d/a.nii.gz", (4, 4, 2)),
        _bag("/d/flat.png", (4, 4), n=1),
        _bag("/d/b.nii.gz", (4, 4, 3), n=3),
    ]
    out = PadBagCollate(keep_failed=True)(batch)
    assert out["image"].shape == (2, 3, 1, 4, 4) and out["mask"].tolist() == [[True, True, False], [True] * 3]
    assert out[FAILED_CASES_KEY] == [
        {"position": 0, "case": "/d/bad0.nii.gz", "reason": "/d/bad0.nii.gz: broken", "label": 1},
        {
            "position": 2,
            "case": "/d/flat.png",
            "reason": "/d/flat.png: a 2-D image in a batch of 3-D ones: set spatial_dims 3 to reject 2-D inputs, "
            "or batch size 1 (in PadBagCollate)",
            "label": 0,
        },
    ]
    # a batch without any good case: the failed cases alone
    assert PadBagCollate(keep_failed=True)(batch[:1]) == {FAILED_CASES_KEY: [out[FAILED_CASES_KEY][0]]}
    # a tie keeps the 3-D cases
    tie = PadBagCollate(keep_failed=True)([_bag("/d/flat.png", (4, 4), n=1), _bag("/d/a.nii.gz", (4, 4, 2))])
    assert [f["case"] for f in tie[FAILED_CASES_KEY]] == ["/d/flat.png"] and tie["image"].shape[0] == 1
    # good batches are unchanged, without the key
    assert FAILED_CASES_KEY not in PadBagCollate(keep_failed=True)(batch[1:2])


def test_collate_without_keep_failed_names_the_files():
    with pytest.raises(CaseError, match=r"^batch: 1 case\(s\) cannot be collated: /d/flat\.png: a 2-D image in a "):
        PadBagCollate()([_bag("/d/a.nii.gz", (4, 4, 2)), _bag("/d/flat.png", (4, 4), n=1), _bag("/d/b.nii", (4, 4, 2))])
    with pytest.raises(CaseError, match=r"cannot be collated: /d/x: gone$"):
        PadBagCollate()([{"image": "/d/x", FAILURE_KEY: "/d/x: gone"}])


def test_predictions_writer_rows_keep_dataset_order(tmp_path):
    writer = PredictionsWriter(tmp_path, class_names=["normal", "cyst"], threshold=0.4)

    def step(engine, batch):  # what CaseReportingEvaluator leaves: decollated good cases, failed ones in the state
        engine.state.failed_cases = batch["failed"]
        return [{"image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": c}), "pred": torch.tensor([0.3, 0.7])}
                for c in batch["good"]]

    engine = Engine(step)
    writer.attach(engine)
    engine.run(
        [
            {"good": ["/d/a"], "failed": [{"position": 1, "case": "/d/b", "reason": "/d/b: bad", "label": 1},
                                          {"position": 0, "case": "/d/z", "reason": "/d/z: worse"}]},
            {"good": [], "failed": [{"position": 0, "case": "/d/c", "reason": "/d/c: gone"}]},
            {"good": ["/d/d"], "failed": []},
        ],
        max_epochs=1,
    )
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert lines == [
        "case,prob_normal,prob_cyst,threshold,prediction,predicted_class,label,status,reason",
        "/d/z,,,0.4,,,,failed,/d/z: worse",
        "/d/b,,,0.4,,,1,failed,/d/b: bad",
        "/d/a,0.3,0.7,0.4,1,cyst,,ok,",
        "/d/c,,,0.4,,,,failed,/d/c: gone",
        "/d/d,0.3,0.7,0.4,1,cyst,,ok,",
    ]
    rows = json.loads((tmp_path / "predictions.json").read_text())
    assert rows[0] == {"case": "/d/z", "prob_normal": None, "prob_cyst": None, "threshold": 0.4, "prediction": None,
                       "predicted_class": None, "label": None, "status": "failed", "reason": "/d/z: worse"}
    assert rows[2] == {"case": "/d/a", "prob_normal": 0.3, "prob_cyst": 0.7, "threshold": 0.4, "prediction": 1,
                       "predicted_class": "cyst", "status": "ok", "reason": ""}
    assert writer.rows == rows and writer.csv_path == tmp_path / "predictions.csv"


def test_exit_if_failed():
    assert exit_if_failed([{"case": "/d/a", "status": "ok"}], "p.csv") is None
    rows = [{"case": "/d/a", "status": "ok"}, {"case": "/d/b.nii.gz", "status": "failed", "reason": "/d/b.nii.gz: bad"}]
    with pytest.raises(SystemExit) as info:
        exit_if_failed(rows, "/out/predictions.csv")
    assert str(info.value.code).splitlines() == [
        "  /d/b.nii.gz: bad",
        "inference: 1 of 2 case(s) failed: b.nii.gz; the 1 other(s) were predicted "
        "(status and reason per case in /out/predictions.csv)",
    ]


def test_cache_dataset_reports_every_bad_case_or_skips_them(tmp_path, caplog):
    data = [{"image": _bad_case(tmp_path, kind), "label": i % 2} for i, kind in enumerate(["good", "nan", "empty"])]
    with pytest.raises(CaseError) as info:
        CheckedCacheDataset(data, PIPELINE, name="training", num_workers=1, progress=False)
    assert str(info.value).splitlines() == [
        "training data: 2 of 3 case(s) cannot be used (set skip_bad_cases true to leave them out):",
        f"  {data[1]['image']}: contains 1 NaN/inf voxels (in LoadVolumed)",
        f"  {data[2]['image']}: empty image: no voxels (array shape (8, 0, 4)) (in LoadVolumed)",
    ]
    dataset = CheckedCacheDataset(data, PIPELINE, skip_bad_cases="true", name="training", num_workers=1, progress=False)
    assert len(dataset) == 1 and dataset.data == data[:1] and dataset[0]["image"].shape == (4, 1, 8, 8)
    assert dataset.skipped_cases == [
        {"case": data[1]["image"], "reason": f"{data[1]['image']}: contains 1 NaN/inf voxels (in LoadVolumed)"},
        {"case": data[2]["image"], "reason": f"{data[2]['image']}: empty image: no voxels (array shape (8, 0, 4)) "
                                             "(in LoadVolumed)"},
    ]
    assert f"training: skipped bad case: {data[1]['image']}: contains 1 NaN/inf voxels" in caplog.text
    with pytest.raises(CaseError, match=r"^training data: all 2 case\(s\) are bad, none left:"):
        CheckedCacheDataset(data[1:], PIPELINE, skip_bad_cases=True, name="training", num_workers=1, progress=False)
    with pytest.raises(ValueError, match="skip_bad_cases must be true or false"):
        CheckedCacheDataset(data, PIPELINE, skip_bad_cases="maybe")


# ------------------------------------------------------------------ through the bundle's configs
def _random_checkpoint(root: Path) -> None:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(TINY)
    torch.manual_seed(0)
    (root / "models").mkdir(parents=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")


def _bundle_run(root: Path, datalist: Path, *extra: str) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run`` of common.json + inference.json, with the tiny settings."""
    configs = json.dumps([str(CONFIGS / "common.json"), str(CONFIGS / "inference.json")])
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs,
               "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf"),
               "--bundle_root", str(root), "--input", str(datalist)]
    for key, value in TINY.items():
        command += [f"--{key}", json.dumps(value)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(command + list(extra), cwd=root, env=env, capture_output=True, encoding="utf-8", timeout=600)


def _datalist(folder: Path, kinds: list[str]) -> tuple[Path, list[str]]:
    paths = [_bad_case(folder, kind) if kind not in ("good1", "good2") else _nifti(folder / f"{kind}.nii.gz",
             RNG.random((32, 32, 8))) for kind in kinds]
    path = folder / "datalist.json"
    path.write_text(json.dumps({"test": [{"image": Path(p).name} for p in paths]}))
    return path, paths


def test_inference_keeps_going_and_exits_nonzero(tmp_path):
    # batch 1 holds only bad cases; batch 2 a 4-D array and a 2-D image (beside 3-D ones) among good cases
    kinds = ["corrupt", "missing", "nan", "empty", "good1", "flat", "four", "good2"]
    datalist, paths = _datalist(tmp_path, kinds)
    root = tmp_path / "bundle"
    _random_checkpoint(root)
    done = _bundle_run(root, datalist, "--dataloader#batch_size", "4")
    assert done.returncode == 1, done.stderr[-3000:]
    rows = list(csv.DictReader((root / "eval" / "inference" / "predictions.csv").open()))
    assert [row["case"] for row in rows] == paths
    assert [row["status"] for row in rows] == ["failed"] * 4 + ["ok", "failed", "failed", "ok"]
    for row, kind in zip(rows, kinds):
        assert row["reason"].startswith(f"{row['case']}: ") if row["status"] == "failed" else row["reason"] == ""
        assert (row["prediction"] in ("0", "1")) == (row["status"] == "ok")
    assert rows[2]["reason"] == f"{paths[2]}: contains 1 NaN/inf voxels (in LoadVolumed)"
    assert rows[5]["reason"].endswith("a 2-D image in a batch of 3-D ones: set spatial_dims 3 to reject 2-D inputs, "
                                      "or batch size 1 (in PadBagCollate)")
    stderr = done.stderr.rstrip().splitlines()
    assert stderr[-1] == (
        "inference: 6 of 8 case(s) failed: corrupt.nii.gz, missing.nii.gz, nan.nii.gz, empty.nii.gz, flat.nii.gz, "
        f"four.nii.gz; the 2 other(s) were predicted (status and reason per case in {root}/eval/inference/"
        "predictions.csv)"
    )
    assert stderr[-7:-1] == [f"  {row['reason']}" for row in rows if row["status"] == "failed"]


def test_inference_fail_fast_names_the_file(tmp_path):
    datalist, paths = _datalist(tmp_path, ["good1", "nan", "good2"])
    root = tmp_path / "bundle"
    _random_checkpoint(root)
    done = _bundle_run(root, datalist, "--fail_fast", "true")
    assert done.returncode != 0
    assert f"{paths[1]}: contains 1 NaN/inf voxels (in LoadVolumed)" in done.stderr
    assert "object at 0x" not in done.stderr
    assert not (root / "eval" / "inference" / "predictions.csv").exists()


def test_training_skips_bad_cases_when_asked(tiny_dataset, tmp_path):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    dataset = copy_dataset(tiny_dataset, tmp_path / "data")
    entries = json.loads((dataset / "datalist.json").read_text())["training"]
    broken = dataset / entries[0]["image"]
    broken.write_bytes(broken.read_bytes()[:100])
    root = tmp_path / "bundle"
    root.mkdir()
    overrides = {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **TINY_TRAIN, "run_stamp": "skip"}
    with pytest.raises(RuntimeError) as info:  # default: fail fast, the file named
        run_workflow(["common.json", "train.json"], "train", overrides)
    assert f"  {broken}: cannot be read as NIfTI: " in str(info.value.__cause__)
    workflow = run_workflow(["common.json", "train.json"], "train", {**overrides, "skip_bad_cases": True}, "mlflow")
    train_dataset = workflow.parser.get_parsed_content("train#dataset")
    assert len(train_dataset) == len(entries) - 1 and [c["case"] for c in train_dataset.skipped_cases] == [str(broken)]
    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(root / "eval" / "mlruns.db")))
    (run,) = client.search_runs([client.get_experiment_by_name("mims_cnn").experiment_id])
    assert run.data.params["skipped_cases"] == "1"
    artifact = client.download_artifacts(run.info.run_id, "skipped_cases.json", str(tmp_path))
    listed = json.loads(Path(artifact).read_text())
    assert listed["validation"] == [] and [c["case"] for c in listed["training"]] == [str(broken)]
    assert listed["training"][0]["reason"].startswith(f"{broken}: cannot be read as NIfTI: ")
