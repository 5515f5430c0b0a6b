# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.worker``: MLflow runs of earlier attempts are retired; the entry point's usage.
(A real run, trained and evaluated, is ``tests/scripts/test_compare_methods.py``'s end-to-end test.)"""

from __future__ import annotations

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
