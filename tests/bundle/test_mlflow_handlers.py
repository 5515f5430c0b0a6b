# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.mlflow_handlers``: parameters, artifacts and failure in the MLflow run of an engine; handing the
run to the handlers that log into it."""

from __future__ import annotations

import pytest
from ignite.engine import Engine

from bundle.mlflow_handlers import MLflowRunExtras, share_mlflow_run
from bundle.promote_checkpoint import PromoteCheckpoint
from bundle.result_writers import MetricsWriter


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
