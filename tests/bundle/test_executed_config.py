# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The executed config of a run (``bundle.executed_config``, ``bundle.mlflow_handlers.ExecutedConfigRecorder``): taken
from the parser that builds the handler, written into the run's own folder and logged into its MLflow run, so that
two tracked runs started in the same second keep their own file (MONAI's copy, named by the second, is off)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from bundle_testing import CONFIGS, TINY, run_workflow
from monai.bundle import ConfigParser

from bundle.executed_config import running_config, write_config


def test_running_config_is_the_config_of_the_parser_building_the_item(tmp_path):
    item = {"_target_": "bundle.executed_config.running_config"}
    parser = ConfigParser({"epochs": 3, "copy": item})
    parser.update({"epochs": 5})  # an override, as the command line's
    assert parser.get_parsed_content("copy") == {"epochs": 5, "copy": item}
    with pytest.raises(RuntimeError, match="no parser is building one"):
        running_config()
    path = write_config({"a": [1, None]}, tmp_path / "new" / "config.json")
    assert json.loads(path.read_text()) == {"a": [1, None]}


@pytest.mark.parametrize(
    "configs, workflow_type, folder",
    [
        (["common.json", "evaluate.json"], "eval", "eval"),
        (["common.json", "inference.json"], "infer", "eval/inference"),
    ],
)
def test_two_tracked_runs_started_in_the_same_second_keep_their_own_config(
    tiny_dataset, bundle_root, monkeypatch, configs, workflow_type, folder
):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    strftime = time.strftime  # MONAI names its copy by the second: the same second for both runs
    monkeypatch.setattr(time, "strftime", lambda fmt, *t: "20260101_120000" if fmt == "%Y%m%d_%H%M%S" and not t
                        else strftime(fmt, *t))
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(TINY)
    (bundle_root / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle_root / "models" / "model.pt")
    runs = {"same_second_a": 4, "same_second_b": 2}  # run_stamp -> chunk_size, an override only that run has
    for stamp, chunk_size in runs.items():
        overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(tiny_dataset), **TINY, "run_stamp": stamp,
                     "chunk_size": chunk_size}
        run_workflow(configs, workflow_type, overrides, tracking="mlflow")

    out = bundle_root / folder
    assert sorted(p.name for p in out.glob("config_*.json")) == [f"config_{stamp}.json" for stamp in runs]
    assert not list((bundle_root / "eval").glob("config_2026*.json"))  # MONAI's shared copy is not written
    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(bundle_root / "eval" / "mlruns.db")))
    experiment = client.get_experiment_by_name("mims_cnn")
    tracked = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert len(tracked) == 2
    for stamp, chunk_size in runs.items():
        config = json.loads((out / f"config_{stamp}.json").read_text())
        assert config["run_stamp"] == stamp and config["chunk_size"] == chunk_size
        assert config["save_execute_config"] is None  # as MONAI leaves it: its own copy off
        assert "MLFlowHandler" in [h.get("_target_") for h in config["handlers"] if isinstance(h, dict)]  # patched
        (run,) = [r for name, r in tracked.items() if name.endswith(stamp)]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"config_{stamp}.json"]
        logged = client.download_artifacts(run.info.run_id, f"config_{stamp}.json", str(bundle_root / stamp))
        assert json.loads(open(logged).read()) == config
