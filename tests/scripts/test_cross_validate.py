# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/cross_validate.py``: its options, usage errors, one tiny real run with k=2.

The engine (folds, runs, summary) is tested in ``tests/data/test_folds.py`` and
``tests/bundle/test_cross_validation.py``.
"""

from __future__ import annotations

import csv
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_testing import TINY, TINY_TRAIN

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cross_validate.py"


@pytest.fixture(scope="module")
def cv():
    """The script as a module (scripts/ is on sys.path: tests/conftest.py)."""
    return importlib.import_module("cross_validate")


def _labels_csv(dataset: Path, path: Path) -> Path:
    """A labels CSV of every case of the tiny dataset's datalist (images relative to the dataset folder)."""
    data = json.loads((dataset / "datalist.json").read_text())
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        for split in ("training", "validation", "test"):
            writer.writerows([e["image"], e["label"]] for e in data[split])
    return path


def test_help_explains_every_option(cv, tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True,
                            encoding="utf-8", check=True)
    for action in cv.build_parser()._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in result.stdout


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (["--k", "1"], "k must be at least 2"),
        (["--k", "9"], "k=9 folds but class"),
        (["--method", "aggregation"], "cross-validate one"),
        (["--override", "seed=3"], "set by this script"),
        (["--labels-csv", "missing.csv"], "does not exist"),
        (["--val-fraction", "1.0"], "val_fraction must be in (0, 1)"),
    ],
)
def test_invalid_arguments_exit_2(cv, tiny_dataset, tmp_path, capsys, bad, fragment):
    argv = ["--images-dir", str(tiny_dataset), "--labels-csv", str(_labels_csv(tiny_dataset, tmp_path / "l.csv")),
            "--output-dir", str(tmp_path / "out"), *bad]
    with pytest.raises(SystemExit) as e:
        cv.main(argv)
    assert e.value.code == 2 and fragment in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


# slow (default suite under 15 min): trains four folds in worker processes
@pytest.mark.slow
def test_end_to_end_two_folds_then_resumed(tiny_dataset, tmp_path):
    overrides = [f"{k}={json.dumps(v)}" for k, v in {**TINY, **TINY_TRAIN}.items()]
    argv = [sys.executable, str(SCRIPT), "--images-dir", str(tiny_dataset), "--labels-csv",
            str(_labels_csv(tiny_dataset, tmp_path / "labels.csv")), "--output-dir", str(tmp_path / "cv"),
            "--k", "2", "--val-fraction", "0.34", "--quiet", "--override", *overrides]
    first = subprocess.run(argv, capture_output=True, encoding="utf-8", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[fold 1, 2/2] mims_cnn seed 0: evaluating ..." in first.stdout
    record = json.loads((tmp_path / "cv" / "cross_validation.json").read_text())
    assert record["k"] == 2 and [f["num_cases"] for f in record["folds"]] == [6, 6]
    for fold in record["folds"]:
        assert fold["finished"] and 0.0 <= fold["auroc"] <= 1.0
        result = json.loads((tmp_path / "cv" / "runs" / f"cv_fold{fold['fold']}" / "mims_cnn" / "seed0"
                             / "result.json").read_text())
        assert result["test"]["auroc"] == fold["auroc"] and result["eval_split"] == "test"
    assert record["summary"]["auroc"]["n"] == 2
    assert "| auroc | 2 |" in (tmp_path / "cv" / "cross_validation.md").read_text()

    second = subprocess.run(argv, capture_output=True, encoding="utf-8", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 done, 2 skipped, 0 failed of 2 run(s)" in second.stdout
