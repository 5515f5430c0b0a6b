# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Multi-process training and evaluation: ``torchrun --nproc_per_node=2`` on the CPU (Gloo) with
``configs/multi_gpu_train.json`` and ``configs/multi_gpu_evaluate.json``, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow

TRAIN = ["common.json", "train.json", "multi_gpu_train.json"]
EVALUATE = ["common.json", "evaluate.json", "multi_gpu_evaluate.json"]


def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return args


def _torchrun(configs: list[str], overrides: dict, cwd) -> str:
    """``torchrun --standalone --nproc_per_node=2 -m monai.bundle run ...``; the combined output of both ranks."""
    config_files = "[" + ",".join(repr(str(CONFIGS / c)) for c in configs) + "]"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "monai.bundle", "run", "--config_file", config_files]
    command += ["--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf")]
    command += _cli(overrides)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, encoding="utf-8", timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    return log


def _runs(root):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(root / "eval" / "mlruns.db")))
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return client, runs


# slow (default suite under 15 min): two torchrun processes train and evaluate
@pytest.mark.slow
def test_two_processes_train_and_evaluate_on_cpu(tiny_dataset, bundle_root, tmp_path):
    # 3 test cases on 2 ranks: a sampler that pads to an even split would evaluate one case twice
    datalist = json.loads((tiny_dataset / "datalist.json").read_text())
    datalist["test"] = [
        {**entry, "image": str(tiny_dataset / entry["image"]), "mask": str(tiny_dataset / entry["mask"])}
        for entry in datalist["test"][:3]
    ]
    odd_datalist = tmp_path / "datalist_3_test.json"
    odd_datalist.write_text(json.dumps(datalist))
    tiny = {"bundle_root": str(bundle_root), "dataset_dir": str(tiny_dataset), **TINY}
    # an empty working directory: not tmp_path, whose "bundle" folder would shadow the bundle package
    workdir = tmp_path / "workdir"
    workdir.mkdir()

    # train one epoch: 4 training cases, batch 2 per rank -> one iteration per rank
    log = _torchrun(TRAIN, {**tiny, **TINY_TRAIN, "log_every": 1, "run_stamp": "mp", "tracking": "mlflow"}, workdir)
    assert "rank 0 of 2, backend gloo" in log and "rank 1 of 2, backend gloo" in log
    # rank 0 alone logs: one loss line (of iteration 1 of 1: the sampler split the epoch), one metrics line
    assert log.count("train_loss: ") == 1 and "Iter: 1/1 -- train_loss" in log
    assert log.count("Epoch[1] Metrics -- ") == 1 and log.count("Current learning rate") == 1

    # one set of checkpoints, written by rank 0; the best model promoted
    run_dir = bundle_root / "runs" / "train_synthetic_oct_mp"
    assert sorted(p.name for p in bundle_root.joinpath("runs").iterdir()) == ["train_synthetic_oct_mp"]
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["checkpoint_epoch=1.pt", "checkpoint_final.pt", "model.pt"]
    assert (bundle_root / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()
    resumable = torch.load(run_dir / "checkpoint_final.pt", weights_only=False)
    assert set(resumable) == {"model", "optimizer", "lr_scheduler", "trainer", "resume"}
    assert resumable["trainer"]["epoch_length"] == 1 and resumable["trainer"]["iteration"] == 1  # 2 of 4 cases per rank

    # the saved state dict is the plain network's (no "module." prefix of DistributedDataParallel)
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(TINY)
    network = parser.get_parsed_content("network_def")
    state = torch.load(bundle_root / "models" / "model.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in state)
    network.load_state_dict(state)  # strict
    torch.testing.assert_close(resumable["model"], state)  # same weights: validation ran after the only epoch

    # exactly one MLflow run, rank 0's, with the parameters, metrics and the model
    client, runs = _runs(bundle_root)
    assert [r.info.run_name for r in runs] == ["train_synthetic_oct_mp"] and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert runs[0].data.params["method"] == "mims_cnn"
    assert len(client.get_metric_history(run_id, "train_loss")) == 1
    assert len(client.get_metric_history(run_id, "auroc")) == 1
    assert len(client.get_metric_history(run_id, "val_distinct_classes")) == 1  # both ranks' classes, rank 0 logs
    assert "model.pt" in [a.path for a in client.list_artifacts(run_id)]

    # the decision threshold was chosen on both ranks' validation cases, written once and promoted
    promoted = bundle_root / "models" / "model.decision.json"
    decision = json.loads(promoted.read_text())
    assert decision["num_cases"] == 4 and decision["epoch"] == 1
    assert (run_dir / "model.decision.json").read_bytes() == promoted.read_bytes()

    # the validation metrics, gathered over the ranks, are those of the saved model on the whole split (training's
    # validation decides by argmax: so does this evaluation)
    validation = bundle_root / "validation"
    overrides = {**tiny, "eval_split": "validation", "output_dir": str(validation), "decision_threshold": None}
    run_workflow(["common.json", "evaluate.json"], "eval", overrides)
    expected = json.loads((validation / "metrics.json").read_text())
    for name in ("auroc", "accuracy", "f1"):
        assert runs[0].data.metrics[name] == pytest.approx(expected[name], abs=1e-6), name

    # evaluate on 2 processes: every test case once, metrics and predictions written once by rank 0
    overrides = {**tiny, "datalist": str(odd_datalist), "run_stamp": "mp"}
    log = _torchrun(EVALUATE, {**overrides, "tracking": "mlflow"}, workdir)
    assert log.count("metrics written to") == 1 and log.count("wrote 3 predictions") == 1
    metrics = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    predictions = json.loads((bundle_root / "eval" / "predictions.json").read_text())
    assert metrics["num_cases"] == 3 and len(predictions) == 3
    _, runs = _runs(bundle_root)
    assert sorted(r.info.run_name for r in runs) == ["evaluate_synthetic_oct_mp", "train_synthetic_oct_mp"]

    # the same numbers as one process evaluating the whole split, rows in the datalist's order
    single = bundle_root / "single"
    run_workflow(["common.json", "evaluate.json"], "eval", {**overrides, "output_dir": str(single)})
    expected = json.loads((single / "metrics.json").read_text())
    for name in ("auroc", "accuracy", "f1"):
        assert metrics[name] == pytest.approx(expected[name], abs=1e-6), name
    expected_rows = json.loads((single / "predictions.json").read_text())
    assert [r["case"] for r in predictions] == [r["case"] for r in expected_rows]
    names = [entry["image"].rsplit("/", 1)[-1] for entry in datalist["test"]]
    assert [r["case"].rsplit("/", 1)[-1] for r in predictions] == names
    for row, expected_row in zip(predictions, expected_rows):
        assert row["prob_cyst"] == pytest.approx(expected_row["prob_cyst"], abs=1e-5)


def test_multi_process_config_without_torchrun_says_how_to_start_it(monkeypatch):
    from bundle.distributed import TORCHRUN_VARIABLES, init_process_group

    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match=r"must be started with torchrun \(environment variables RANK, LOCAL_RANK"):
        init_process_group()


def test_handlers_for_rank_in_one_process_keeps_all_but_disabled():
    from monai.handlers import StatsHandler

    from bundle.distributed import handlers_for_rank, is_rank0, world_size

    stats = StatsHandler()
    assert is_rank0() and world_size() == 1
    assert handlers_for_rank([stats, None, "other"], [StatsHandler]) == [stats, "other"]
    assert handlers_for_rank(None) == []


def test_gather_in_order_in_one_process_is_the_items():
    from bundle.distributed import gather_in_order

    assert gather_in_order(({"case": "a"}, {"case": "b"}), expected=5) == [{"case": "a"}, {"case": "b"}]
