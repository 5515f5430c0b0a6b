# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``bundle.comparison.cross_validation`` with a fake worker: folds, runs, resume, mean and spread."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from bundle.comparison import runner
from bundle.comparison.cross_validation import cross_validate, make_cross_validation

__all__: list[str] = []

#: test AUROC, accuracy and F1 the fake worker reports for folds 0, 1, 2
SCORES = {0: (0.9, 0.8, 0.7), 1: (0.7, 0.6, 0.5), 2: (0.8, 0.7, 0.9)}


def _dataset(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label", "patient"])
        for i in range(12):
            (images / f"c{i}.nii.gz").write_bytes(b"")
            writer.writerow([f"c{i}.nii.gz", i % 2, f"p{i // 2 if i < 4 else i}"])
    return images, tmp_path / "labels.csv"


def _cv(tmp_path, **options):
    images, labels = _dataset(tmp_path)
    return make_cross_validation(name="tiny", output_dir=tmp_path / "out", images_dir=images, labels_csv=labels,
                                 group_column="patient", command="python scripts/cross_validate.py (test)",
                                 **{"k": 3, **options})


@pytest.fixture
def fake_worker(monkeypatch):
    """Replace the worker process by one that writes the result.json of its run spec; records the specs."""
    started = []

    def launch(spec_path, log_path, quiet, on_phase):
        spec = json.loads(Path(spec_path).read_text())
        started.append(spec)
        fold = int(spec["dataset"].rsplit("fold", 1)[1])
        if fold in spec.get("_fail", []):
            return 3
        auroc, accuracy, f1 = SCORES[fold]
        result = {"spec": spec["spec"], "seed": spec["seed"], "settings": spec["settings"],
                  "test": {"auroc": auroc, "accuracy": accuracy, "f1": f1, "num_cases": 4},
                  "validation": {"metric": "auroc", "best": 0.5, "best_epoch": 2}}
        Path(spec["run_folder"], "result.json").write_text(json.dumps(result))
        return 0

    monkeypatch.setattr(runner, "launch_worker", launch)
    return started


def test_every_fold_runs_then_mean_and_spread(tmp_path, fake_worker, capsys):
    cv = _cv(tmp_path, overrides=["epochs=2"], seed=4)
    assert cross_validate(cv) == 0
    assert [s["dataset"] for s in fake_worker] == ["tiny_fold0", "tiny_fold1", "tiny_fold2"]
    for i, spec in enumerate(fake_worker):
        assert spec["overrides"]["datalist"] == str(tmp_path / "out" / "folds" / f"fold_{i}" / "datalist.json")
        assert spec["overrides"]["epochs"] == 2 and spec["seed"] == 4 and spec["spec"] == "mims_cnn"
        assert spec["run_folder"] == str(tmp_path / "out" / "runs" / f"tiny_fold{i}" / "mims_cnn" / "seed4")
    record = json.loads((tmp_path / "out" / "cross_validation.json").read_text())
    assert [f["auroc"] for f in record["folds"]] == [0.9, 0.7, 0.8]
    for metric, column in (("auroc", 0), ("accuracy", 1), ("f1", 2)):
        values = [SCORES[i][column] for i in range(3)]
        assert record["summary"][metric] == pytest.approx({
            "n": 3, "mean": statistics.fmean(values), "std": statistics.stdev(values), "min": min(values),
            "max": max(values)})
    page = (tmp_path / "out" / "cross_validation.md").read_text()
    assert "| 1 | 4 | 0.700 | 0.600 | 0.500 | 2 |" in page
    assert "| auroc | 3 | 0.800 | 0.100 | 0.700 | 0.900 |" in page
    out = capsys.readouterr().out
    assert "[fold 2, 3/3] mims_cnn seed 4: done" in out and "3 done, 0 skipped, 0 failed of 3 run(s)" in out


def test_finished_folds_are_skipped_and_folds_reused(tmp_path, fake_worker, capsys):
    assert cross_validate(_cv(tmp_path)) == 0
    folds_json = (tmp_path / "out" / "folds" / "folds.json").read_text()
    fake_worker.clear()
    assert cross_validate(_cv(tmp_path)) == 0
    assert fake_worker == [] and "0 done, 3 skipped" in capsys.readouterr().out
    assert (tmp_path / "out" / "folds" / "folds.json").read_text() == folds_json
    with pytest.raises(ValueError, match="folds.json was made with other parameters"):
        _cv(tmp_path, fold_seed=1)


def test_a_failed_fold_is_reported_and_not_averaged(tmp_path, monkeypatch, capsys):
    calls = []

    def launch(spec_path, log_path, quiet, on_phase):
        calls.append(spec_path)
        return 3

    monkeypatch.setattr(runner, "launch_worker", launch)
    assert cross_validate(_cv(tmp_path, fail_fast=True)) == 1
    assert len(calls) == 1 and "2 fold(s) not started" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "cross_validation.json").read_text())
    assert record["summary"]["auroc"] == {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    assert "| 0 | – | not run | not run | not run | – |" in (tmp_path / "out" / "cross_validation.md").read_text()


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"method": "table1"}, "cross-validate one"),
        ({"overrides": ["datalist=x.json"]}, "set by this script"),
        ({"k": 5}, r"labels\.csv: k=5 folds but class 1 has only 4 group\(s\)"),
    ],
)
def test_invalid_settings_are_refused(tmp_path, options, fragment):
    with pytest.raises(ValueError, match=fragment):
        _cv(tmp_path, **options)
    if "k" not in options:
        assert not (tmp_path / "out" / "folds").exists()  # checked before any fold is written
