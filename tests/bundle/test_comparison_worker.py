# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.worker``: MLflow runs of earlier attempts are retired; the entry point's usage; the
per-epoch curves, per-case predictions, load samples and code commit of the result.
(A real run, trained and evaluated, is ``tests/scripts/test_compare_methods.py``'s end-to-end test.)"""

from __future__ import annotations

import json

import pytest

from bundle.comparison import worker


def test_incomplete_mlflow_runs_are_renamed_before_a_new_attempt(tmp_path):
    from mlflow import MlflowClient

    run = worker.with_tracking_uri({"tracking_db": str(tmp_path / "mlruns.db"), "overrides": {},
                                    "experiment": "compare_demo", "run_name": "mims_cnn_seed0"})
    client = MlflowClient(tracking_uri=run["overrides"]["tracking_uri"])
    experiment_id = client.create_experiment("compare_demo")
    crashed = client.create_run(experiment_id, run_name="mims_cnn_seed0").info.run_id  # still RUNNING
    other = client.create_run(experiment_id, run_name="mims_cnn_seed1").info.run_id
    worker.retire_incomplete_runs(run)
    assert client.get_run(crashed).info.run_name == f"mims_cnn_seed0_incomplete_{crashed[:8]}"
    assert client.get_run(crashed).info.status == "FAILED"
    assert client.get_run(other).info.run_name == "mims_cnn_seed1"


@pytest.mark.parametrize("argv", [[], ["a.json", "b.json"]])
def test_worker_needs_one_run_spec(argv):
    with pytest.raises(SystemExit, match="usage: python -m bundle.comparison.worker RUN_SPEC_JSON"):
        worker.main(argv)


def test_recorded_machine_fields():
    from bundle.reports import machine_info

    assert set(worker.MACHINE_FIELDS) <= set(machine_info())


def test_epoch_curves_from_metric_histories():
    histories = {
        "train_loss": [(1, 1.0), (2, 0.5), (3, 0.4), (4, 0.2), (5, 0.1), (6, 0.3)],  # 2 iterations per epoch
        "lr_group_0": [(1, 0.1), (2, 0.09), (3, 0.08), (4, 0.07), (5, 0.06), (6, 0.05)],
        "auroc": [(1, 0.5), (3, 0.75)],  # validated every other epoch
        "val_distinct_classes": [(1, 1.0), (2, 2.0), (3, 2.0)],
        "never": [],
    }
    assert worker.epoch_curves(histories, 2, 3) == {
        "epoch": [1, 2, 3], "train_loss": [0.75, 0.3, 0.2], "lr": [0.09, 0.07, 0.05],
        "val_auroc": [0.5, None, 0.75], "val_distinct_classes": [1.0, 2.0, 2.0],
    }
    assert worker.epoch_curves({"train_loss": [(1, 1 / 3)]}, 1, 1)["train_loss"] == [0.333333]


def test_case_predictions_of_the_predictions_file(tmp_path):
    assert worker.case_predictions(tmp_path / "missing.json") is None
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps([
        {"case": "/data/x/case_1.nii.gz", "label": 1, "prob_normal": 0.25, "prob_lesion": 0.75, "prediction": 1},
        {"case": "case_2.nii.gz", "label": 0, "prob_normal": 0.9, "prob_lesion": 0.1, "prediction": 0},
    ]))
    assert worker.case_predictions(path) == [["case_1.nii.gz", 1, 0.75], ["case_2.nii.gz", 0, 0.1]]
    path.write_text(json.dumps([{"case": "a/b.png", "label": 2, "prob_0": 0.1, "prob_1": 0.2, "prob_2": 0.7}]))
    assert worker.case_predictions(path) == [["b.png", 2, [0.1, 0.2, 0.7]]]
