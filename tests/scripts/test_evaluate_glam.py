# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``scripts/evaluate_glam.py``: help, argument checks, a tiny end-to-end run (the metrics:
``tests/bundle/test_localization_metrics.py``; the steps: ``tests/bundle/test_glam_evaluation.py``)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundle.localization.glam_report import INTENSITY, PLAIN

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate_glam.py"


@pytest.fixture(scope="module")
def script():
    return importlib.import_module("evaluate_glam")  # scripts/ is on sys.path (tests/conftest.py)


def test_help_from_another_directory(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8",
                         check=True).stdout
    for option in ("--data", "--ckpt", "--epochs", "--image-size", "--window-sizes", "--num-windows", "--report",
                   "--figure", "--note"):
        assert option in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--ckpt", "/no/such/model.pt"], "--ckpt"),
        (["--epochs", "0"], "--epochs"),
        (["--window-sizes", "0"], "positive"),
        (["--tolerance", "-1"], "--tolerance"),
    ],
)
def test_rejects_bad_arguments_before_any_work(script, tmp_path, capsys, argv, message):
    assert script.main([*argv, "--work-dir", str(tmp_path / "work")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_rejects_a_bad_override_while_parsing(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # argparse: usage error, exit status 2
        script.main(["--override", "no_equals_sign", "--work-dir", str(tmp_path / "work")])
    assert stop.value.code == 2
    assert "argument --override: expected KEY=VALUE, got 'no_equals_sign'" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_tiny_end_to_end_then_reuse_checkpoint(script, tmp_path):
    common = ["--data", str(tmp_path / "data"), "--num-train", "4", "--num-val", "2", "--num-test", "4",
              "--size", "96", "96", "--image-size", "48", "48", "--window-sizes", "48", "32", "--num-windows", "1",
              "--work-dir", str(tmp_path / "work"), "--report", str(tmp_path / "docs" / "glam.md"),
              "--figure", str(tmp_path / "docs" / "glam.png"), "--no-progress"]
    assert script.main([*common, "--epochs", "1", "--note", "tiny run"]) == 0
    page = (tmp_path / "docs" / "glam.md").read_text()
    assert (tmp_path / "docs" / "glam.png").stat().st_size > 0 and "![examples](glam.png)" in page
    for text in ("| plain heatmap (global pass) |", "GLAM-style fused (geometric), 1 x 48 px window",
                 "GLAM-style fused (mean), 1 x 48 px window", "GLAM-style fused (geometric), 1 x 32 px window",
                 "## Timings", "tiny run", "AUROC", "Shortcut check"):
        assert text in page
    record = json.loads((tmp_path / "work" / "glam_results.json").read_text())
    positives = sum(e["label"] for e in json.loads((tmp_path / "data" / "datalist.json").read_text())["test"])
    assert len(record["cases"]) == positives == 2
    assert [r["map"] for r in record["rows"]][:2] == [INTENSITY, PLAIN]
    for row in record["rows"]:
        assert 0.0 <= row["pointing"] <= 1.0 and 0.0 <= row["auroc"] <= 1.0
    # reuse the checkpoint: no training, the dataset is reused
    ckpt = tmp_path / "work" / "model.pt"
    assert script.main([*common, "--ckpt", str(ckpt), "--report", str(tmp_path / "again.md")]) == 0
    again = (tmp_path / "again.md").read_text()
    assert "reused (not trained by this run)" in again and "data generation" not in again
