# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``scripts/evaluate_glam.py``: its map metrics on exact arrays, argument checks, a tiny end-to-end run."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "evaluate_glam.py"


@pytest.fixture(scope="module")
def script():
    return importlib.import_module("evaluate_glam")  # scripts/ is on sys.path (tests/conftest.py)


MASK = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    "heatmap, tolerance, expected",
    [
        (np.array([[0, 0, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 0, 1.0),  # unique max inside
        (np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 3]]), 0, 0.0),  # unique max outside
        (np.array([[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]), 0, 0.5),  # tie: half inside
        (np.zeros((4, 4)), 0, 2 / 16),  # constant map: chance level
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 0]]), 2, 1.0),  # (3,2) is 2 px from (1,2)
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 0]]), 1.9, 0.0),
    ],
)
def test_pointing_game(script, heatmap, tolerance, expected):
    assert script.pointing_game(heatmap, MASK, tolerance) == pytest.approx(expected)


def test_peak_distances_exact(script):
    heatmap = np.zeros((4, 4))
    heatmap[3, 3] = heatmap[1, 1] = 1.0
    np.testing.assert_allclose(script.peak_distances(heatmap, MASK), [0.0, np.hypot(2, 1)])


@pytest.mark.parametrize(
    "heatmap, auroc, ap",
    [
        # lesion pixels 0.9 and 0.8 above every background pixel: perfect
        (np.where(MASK == 1, [[0, 0, 0, 0], [0, 0.9, 0.8, 0], [0, 0, 0, 0], [0, 0, 0, 0]], 0.1), 1.0, 1.0),
        # constant map: AUROC 1/2, AP = lesion share
        (np.full((4, 4), 0.3), 0.5, 2 / 16),
        # order: background 1.0 first, then lesion 0.9, lesion 0.5, the rest 0 -> AUROC (13 + 13) / (2 * 14);
        # AP = 1/2 * 1/2 (recall 1/2 at precision 1/2) + 1/2 * 2/3
        (np.array([[1.0, 0, 0, 0], [0, 0.9, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 26 / 28, 0.5 * 0.5 + 0.5 * 2 / 3),
        # a tie between a lesion pixel and a background pixel at the top counts as one threshold
        (np.array([[0.7, 0, 0, 0], [0, 0.7, 0.2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 26.5 / 28, 0.5 * 0.5 + 0.5 * 2 / 3),
    ],
)
def test_pixel_auroc_and_average_precision_exact(script, heatmap, auroc, ap):
    assert script.pixel_auroc(heatmap, MASK) == pytest.approx(auroc)
    assert script.average_precision(heatmap, MASK) == pytest.approx(ap)


@pytest.mark.parametrize("fn", ["pointing_game", "pixel_auroc", "average_precision", "peak_distances"])
def test_metrics_reject_empty_mask_bad_shapes_and_nan(script, fn):
    f = getattr(script, fn)
    with pytest.raises(ValueError, match="no lesion"):
        f(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros((4, 5)), MASK)
    with pytest.raises(ValueError, match="NaN"):
        f(np.full((4, 4), np.nan), MASK)


def test_help_from_another_directory(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, text=True,
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
    assert [r["map"] for r in record["rows"]][:2] == [script.INTENSITY, script.PLAIN]
    for row in record["rows"]:
        assert 0.0 <= row["pointing"] <= 1.0 and 0.0 <= row["auroc"] <= 1.0
    # reuse the checkpoint: no training, the dataset is reused
    ckpt = tmp_path / "work" / "model.pt"
    assert script.main([*common, "--ckpt", str(ckpt), "--report", str(tmp_path / "again.md")]) == 0
    again = (tmp_path / "again.md").read_text()
    assert "reused (not trained by this run)" in again and "data generation" not in again


def test_command_lines_replace_notes_by_variables(script):
    lines = script.command_lines(["--epochs", "2", "--note", "first, it's long", "--note=second", "--data", "a b"])
    assert lines == [
        "# NOTE1 ... NOTE2: the paragraphs of the Notes section, in order",
        "nice -n 19 .venv/bin/python scripts/evaluate_glam.py --epochs 2 --note \"$NOTE1\" --note \"$NOTE2\" "
        "--data 'a b'",
    ]
    assert script.command_lines([]) == ["nice -n 19 .venv/bin/python scripts/evaluate_glam.py"]
