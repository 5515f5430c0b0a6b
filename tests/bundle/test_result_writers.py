# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.result_writers``: the predictions and metrics files of an engine."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from bundle.result_writers import MetricsWriter, PredictionsWriter


def test_predictions_writer(tmp_path):
    writer = PredictionsWriter(tmp_path, class_names=["normal", "lesion"], extra_keys=["slice_indices"])
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    image = MetaTensor(torch.zeros(2, 1, 2, 2), meta={"filename_or_obj": "/data/case_1.nii.gz"})
    batch = [
        [
            {
                "image": image,
                "pred": torch.tensor([0.25, 0.75]),
                "label": torch.tensor(1),
                "slice_indices": torch.tensor([3, 4, -1]),
            }
        ],
        [{"image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "b.png"}), "pred": torch.tensor([0.9, 0.1])}],
    ]
    engine.run(batch, max_epochs=1)
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert rows[0]["case"] == "/data/case_1.nii.gz"
    assert rows[0]["prob_lesion"] == "0.75" and rows[0]["prediction"] == "1" and rows[0]["predicted_class"] == "lesion"
    assert rows[0]["slice_indices"] == "[3, 4]"
    assert rows[1]["label"] == "" and rows[1]["prediction"] == "0"
    content = json.loads((tmp_path / "predictions.json").read_text())
    assert content[0]["label"] == 1 and "label" not in content[1]
    assert content[0]["slice_indices"] == [3, 4]


def test_predictions_writer_class_count_mismatch(tmp_path):
    writer = PredictionsWriter(tmp_path, class_names=["only_one"])
    engine = Engine(lambda e, b: b)
    writer.attach(engine)
    with pytest.raises(ValueError, match="1 class names given for 2 predicted classes"):
        engine.run([[{"pred": torch.tensor([0.5, 0.5])}]], max_epochs=1)
    assert not (tmp_path / "predictions.csv").exists()


def test_metrics_writer(tmp_path):
    engine = Engine(lambda e, b: b)
    MetricsWriter(tmp_path, extra={"split": "test"}).attach(engine)

    @engine.on(Events.EPOCH_COMPLETED)
    def _set(e):
        e.state.metrics["auroc"] = torch.tensor(0.875)

    engine.run([1, 2], max_epochs=1)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"auroc": 0.875, "split": "test"}
