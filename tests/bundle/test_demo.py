# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The demo's printed summary (bundle.demo.demo_summary)."""

from __future__ import annotations

import pytest

from bundle.demo import demo_summary

METRICS = {"auroc": 1.0, "accuracy": 0.95, "f1": 0.9487, "num_cases": 60}


@pytest.mark.parametrize(
    "threshold, line",
    [
        (0.5437, "decision:             cyst when P(cyst) >= 0.544 (threshold chosen on the validation split, "
                 "models/model.decision.json)"),
        (None, "decision:             argmax of the probabilities (no decision threshold stored with the model)"),
    ],
)
def test_summary_says_how_the_class_was_decided(tmp_path, threshold, line):
    text = demo_summary(tmp_path, {**METRICS, "decision_threshold": threshold}, 5.84, tracking=False)
    lines = text.splitlines()
    assert lines[1] == "MIMS-CNN demo finished in 5.8 min"
    assert lines[2] == "test split (60 volumes): AUROC 1.000, accuracy 0.950, F1 0.949"
    assert lines[3] == line
    assert lines[4] == f"best checkpoint:      {tmp_path / 'models' / 'model.pt'}"


def test_summary_without_a_threshold_key_says_argmax(tmp_path):
    assert "argmax of the probabilities" in demo_summary(tmp_path, METRICS, 1.0, tracking=False).splitlines()[3]
