# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
from __future__ import annotations

import csv
import json

import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import MetaTensor

from bundle.handlers import MetricsWriter, MLflowRunExtras, PredictionsWriter, PromoteCheckpoint, share_mlflow_run


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


def test_promote_checkpoint_only_on_success(tmp_path):
    source, target = tmp_path / "run" / "model.pt", tmp_path / "models" / "model.pt"
    source.parent.mkdir()
    source.write_bytes(b"new")
    target.parent.mkdir()
    target.write_bytes(b"old")

    def failing(engine, batch):
        raise RuntimeError("boom")

    engine = Engine(failing)
    PromoteCheckpoint(source, target).attach(engine)
    with pytest.raises(RuntimeError, match="boom"):
        engine.run([1], max_epochs=1)
    assert target.read_bytes() == b"old"
    engine = Engine(lambda e, b: b)
    PromoteCheckpoint(source, target).attach(engine)
    engine.run([1], max_epochs=1)
    assert target.read_bytes() == b"new"


def test_mlflow_extras_params_artifacts_and_failure(tmp_path):
    from mlflow import MlflowClient
    from monai.handlers import MLFlowHandler
    from monai.utils import path_to_sqlite_uri

    uri = path_to_sqlite_uri(str(tmp_path / "mlruns.db"))
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"weights")

    def make(step, run_name):
        engine = Engine(step)
        handlers = [  # as train.json lists them once --tracking mlflow appended its handler
            MLflowRunExtras(params={"lr": 0.1, "method": "mims_cnn"}, artifacts=[artifact, tmp_path / "absent.pt"]),
            MLFlowHandler(
                tracking_uri=uri,
                experiment_name="exp",
                run_name=run_name,
                close_on_complete=True,
                iteration_log=False,
                epoch_log=False,
            ),
        ]
        for handler in share_mlflow_run(handlers):
            handler.attach(engine)
        return engine

    make(lambda e, b: b, "ok").run([1, 2], max_epochs=1)

    def failing(engine, batch):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        make(failing, "bad").run([1], max_epochs=1)
    client = MlflowClient(tracking_uri=uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("exp").experiment_id])}
    assert runs["ok"].data.params["lr"] == "0.1" and runs["ok"].data.params["method"] == "mims_cnn"
    assert runs["ok"].info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(runs["ok"].info.run_id)] == ["model.pt"]
    assert runs["bad"].info.status == "FAILED"


def test_share_mlflow_run_hands_the_tracking_handlers_to_their_users(tmp_path):
    from monai.handlers import MLFlowHandler
    from monai.utils import path_to_sqlite_uri

    extras = MLflowRunExtras(params={"lr": 0.1}, artifacts=[tmp_path / "absent.pt"])
    promote = PromoteCheckpoint(tmp_path / "a.pt", tmp_path / "b.pt")  # logs its outcome as tags of the run
    metrics = MetricsWriter(tmp_path)  # not a user of the run
    tracker = MLFlowHandler(tracking_uri=path_to_sqlite_uri(str(tmp_path / "mlruns.db")))
    assert share_mlflow_run([extras, promote, metrics, tracker]) == [extras, promote, metrics, tracker]
    assert extras.mlflow_handlers == [tracker] and promote.mlflow_handlers == [tracker]
    assert not hasattr(metrics, "mlflow_handlers")
    assert share_mlflow_run(None) == []

    untracked = MLflowRunExtras(params={"lr": 0.1})  # no MLFlowHandler: nothing to log into, no error
    engine = Engine(lambda e, b: b)
    for handler in share_mlflow_run([untracked]):
        handler.attach(engine)
    engine.run([1], max_epochs=1)
    assert untracked.mlflow_handlers == []
