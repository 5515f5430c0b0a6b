# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.localization.glam_evaluation`` and ``glam_report``: scores of one map, settings, rows, page texts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bundle.localization import glam_evaluation
from bundle.localization.glam_evaluation import (
    CaseResult,
    MapScores,
    glam_settings,
    score_map,
    shortcut_auroc,
    summarize,
)
from bundle.localization.glam_report import INTENSITY, PLAIN, command_lines, comparison_text, render_report

__all__: list[str] = []

MASK = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_score_map_exact():
    heatmap = np.zeros((4, 4))
    heatmap[3, 3] = heatmap[1, 1] = 1.0  # two maxima: one inside, one sqrt(5) px away
    s = score_map(heatmap, MASK, tolerance=2.0)
    assert s.pointing == 0.5 and s.pointing_tolerant == 0.5 and s.peak_distance == pytest.approx(np.hypot(2, 1) / 2)
    assert score_map(heatmap, MASK, tolerance=2.5).pointing_tolerant == 1.0
    # lesion pixels 1 and 0 against 14 background pixels (one 1, thirteen 0): U = 13.5 + 6.5 of 28 pairs;
    # AP: threshold 1 (precision 1/2, recall 1/2), threshold 0 (precision 2/16, recall 1)
    assert s.auroc == pytest.approx(20 / 28) and s.ap == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 16)


def test_score_map_rejects_empty_mask_bad_shapes_and_nan():
    # every score of the GLAM table needs a lesion (the page's pixel AUROC included)
    with pytest.raises(ValueError, match="no lesion"):
        score_map(np.zeros((4, 4)), np.zeros((4, 4)), 1.0)
    with pytest.raises(ValueError, match="shape"):
        score_map(np.zeros((4, 5)), MASK, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        score_map(np.full((4, 4), np.nan), MASK, 1.0)


def test_glam_settings_main_first():
    settings = glam_settings(SimpleNamespace(window_sizes=[256, 128], num_windows=[1, 2]))
    assert [(s.window, s.num_windows, s.fusion) for s in settings] == [
        (256, 1, "geometric"), (256, 1, "mean"), (256, 2, "geometric"), (128, 1, "geometric"), (128, 2, "geometric")]
    assert settings[0].name == "GLAM-style fused (geometric), 1 x 256 px window"
    assert settings[2].name == "GLAM-style fused (geometric), 2 x 256 px windows"


def _case(name: str, plain: MapScores, fused: MapScores, coverage: float) -> CaseResult:
    return CaseResult(case=name, prob_lesion=0.9, scores={PLAIN: plain, "fused": fused}, coverage={"fused": coverage})


def test_summarize_and_comparison_text():
    results = [
        _case("a", MapScores(0.0, 1.0, 4.0, 0.8, 0.1), MapScores(1.0, 1.0, 0.0, 0.6, 0.5), 1.0),
        _case("b", MapScores(0.0, 0.0, 10.0, float("nan"), 0.3), MapScores(0.0, 1.0, 2.0, 0.6, 0.3), 0.5),
    ]
    rows = summarize(results)
    assert rows == [
        {"map": PLAIN, "pointing": 0.0, "pointing_tolerant": 0.5, "peak_distance_median": 7.0, "auroc": 0.8,
         "ap": pytest.approx(0.2), "coverage": None},
        {"map": "fused", "pointing": 0.5, "pointing_tolerant": 1.0, "peak_distance_median": 1.0, "auroc": 0.6,
         "ap": pytest.approx(0.4), "coverage": 0.75},
    ]
    text = comparison_text(rows, "fused", 2)
    assert text.startswith("Main setting vs plain heatmap (n = 2): pointing game 0 % → 50 %, within tolerance "
                           "50 % → 100 %, median peak distance 7.0 → 1.0 px, pixel AUROC 0.800 → 0.600, pixel AP "
                           "0.200 → 0.400")
    assert "better on 4 of these 5 numbers" in text and "one image is 50.0 percentage points" in text


def test_render_report_marks_the_main_row_and_dashes_missing_values():
    rows = [{"map": INTENSITY, "pointing": 0.25, "pointing_tolerant": 0.5, "peak_distance_median": 3.0, "auroc": 0.9,
             "ap": 0.5, "coverage": None},
            {"map": "main", "pointing": 1.0, "pointing_tolerant": 1.0, "peak_distance_median": 0.0,
             "auroc": float("nan"), "ap": 0.75, "coverage": 1.0}]
    ctx = {"rows": rows, "num_positive": 4, "tolerance": 8.0, "date": "2026-01-01", "machine": "cpu", "device": "cpu",
           "versions": "Python 3", "code": "commit `abc`", "commands": ["python x"],
           "datalist": "d.json", "data_description": "Data.",
           "split_sizes": "test 4", "generated_text": "reused", "training_text": "trained.", "full_size": "8x8",
           "image_size": "4x4", "layer": "l", "feature_size": "2x2", "num_test": 8, "test_auroc": 1.0,
           "test_accuracy": 1.0, "validation_text": "", "shortcut_auroc": 0.5, "main_name": "main",
           "comparison_text": "Compared.", "figure_rel": "f.png", "timings": ["t 1 s"], "notes": ["A note."]}
    page = render_report(ctx)
    assert f"| {INTENSITY} | 25 % | 50 % | 3.0 | 0.900 | 0.500 | – |" in page
    assert "| **main** | 100 % | 100 % | 0.0 | – | 0.750 | 100 % |" in page
    assert "| map | pointing game | within 8 px |" in page and "## Notes\n\nA note.\n" in page
    assert "![examples](f.png)" in page and "- t 1 s" in page
    assert "## Commands\n\nCode: commit `abc`.\n\n```bash\npython x\n```" in page


@pytest.mark.parametrize("load, expected", [
    ({"one_minute_mean": 2.04, "one_minute_max": 2.3, "samples": 14, "interval_s": 15.0, "usable_cores": 2},
     "1-minute load average during the run: mean 2.0, max 2.3 (14 samples, every 15 s; 2 usable cores)"),
    ({"one_minute_mean": 3.1, "one_minute_max": 4.0, "samples": 3, "interval_s": 15.0, "usable_cores": 2},
     "1-minute load average during the run: mean 3.1, max 4.0 (3 samples, every 15 s; 2 usable cores); other work "
     "shared the machine, so the times are upper bounds"),
    (None, "load average unknown on this system: the timings may include other work"),
])
def test_timings_say_the_load_they_ran_under(load, expected):
    assert glam_evaluation._load_text(load) == expected


def test_shortcut_auroc_on_mean_intensity(tmp_path: Path):
    entries = [{"image": str(tmp_path / f"{i}.png"), "label": label} for i, label in enumerate([0, 1, 1, 0])]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": entries}))
    for e in entries:
        Path(e["image"]).touch()  # the datalist's files must exist; the fake preprocessing does not read them
    brightness = {e["image"]: v for e, v in zip(entries, [0.1, 0.5, 0.3, 0.3])}

    def preprocessing(d):
        return {"image": np.full((1, 1, 2, 2), brightness[d["image"]])}

    assert shortcut_auroc(preprocessing, datalist) == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    datalist.write_text(json.dumps({"test": entries[:1]}))  # one class only: no AUROC
    assert math.isnan(shortcut_auroc(preprocessing, datalist))


def test_command_lines_replace_notes_by_variables():
    lines = command_lines(["--epochs", "2", "--note", "first, it's long", "--note=second", "--data", "a b"])
    assert lines == [
        "# NOTE1 ... NOTE2: the paragraphs of the Notes section, in order",
        "python scripts/evaluate_glam.py --epochs 2 --note \"$NOTE1\" --note \"$NOTE2\" "
        "--data 'a b'",
    ]
    assert command_lines([]) == ["python scripts/evaluate_glam.py"]
