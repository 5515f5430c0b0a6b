# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Resume is a continuation: a training run killed with SIGKILL and resumed with ``--resume_from`` gives what the
uninterrupted run gives (per-epoch metrics, weights, best model) in the same run folder and MLflow run; runs left
``RUNNING`` by a killed process are closed as ``KILLED``; the random, best-so-far and early-stopping states."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from bundle.mlflow_runs import TAGS, close_killed_runs, process_gone, process_tags
from bundle.model_selection import ValidationEarlyStopping, read_provenance
from bundle.resume import RESUME_KEY, random_transforms, read_resume_state, rng_state, set_rng_state
from bundle_testing import CONFIGS, REPO, TINY, TINY_TRAIN, run_workflow

TRAIN = ["common.json", "train.json"]
RUN = "train_synthetic_oct_s"

#: a training run in a child process that stops (sleeps) after iteration ``pause_at`` and writes ``marker``
CHILD = """
import json, sys, time
from pathlib import Path
import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
configs, meta, logging_file, overrides, threads, pause_at, marker = json.loads(sys.argv[1])
torch.set_num_threads(threads)
workflow = ConfigWorkflow(config_file=configs, meta_file=meta, logging_file=logging_file, workflow_type="train",
                          tracking="mlflow", **overrides)
workflow.initialize()
trainer = workflow.parser.get_parsed_content("train#trainer")

@trainer.on(Events.ITERATION_COMPLETED(once=pause_at))
def pause(engine):
    Path(marker).write_text(str(engine.state.iteration))
    time.sleep(600)

workflow.run()
"""


def _overrides(root, dataset, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **TINY_TRAIN, "epochs": 4,
            "num_overlay_cases": 0, "early_stopping_patience": 3, "run_stamp": "s", **extra}


def _client(root):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(root / "eval" / "mlruns.db")))
    return client, client.get_experiment_by_name("mims_cnn").experiment_id


def _histories(client, run_id):
    """Every metric of a run as {name: {step: value}}; a step logged twice (an interrupted epoch run again) must
    have had the same value both times."""
    histories = {}
    for name in client.get_run(run_id).data.metrics:
        values = {}
        for metric in client.get_metric_history(run_id, name):
            assert values.get(metric.step, metric.value) == metric.value, (name, metric.step)
            values[metric.step] = metric.value
        histories[name] = values
    return histories


def _kill_after(root, dataset, pause_at):
    """Train in a child process until iteration ``pause_at`` completes, then SIGKILL it; returns its pid."""
    marker = root / "paused"
    configs = [str(CONFIGS / c) for c in TRAIN]
    args = [configs, str(CONFIGS / "metadata.json"), str(CONFIGS / "logging.conf"), _overrides(root, dataset),
            torch.get_num_threads(), pause_at, str(marker)]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(torch.get_num_threads()))
    log = open(root / "child.log", "w")
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=root, env=env, stdout=log,
                             stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, (root / "child.log").read_text()[-4000:]
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    log.close()
    assert child.returncode == -signal.SIGKILL
    return child.pid


# slow (default suite under 15 min): three training runs, one killed
@pytest.mark.slow
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tiny_dataset, tmp_path):
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    killed.mkdir(), straight.mkdir()
    # 4 epochs of 2 iterations; killed in epoch 3, after its first iteration
    pid = _kill_after(killed, tiny_dataset, pause_at=5)
    run_dir = killed / "runs" / RUN
    checkpoint = run_dir / "checkpoint_epoch=2.pt"
    assert sorted(p.name for p in run_dir.glob("checkpoint*")) == [checkpoint.name]
    client, experiment = _client(killed)
    (run,) = client.search_runs([experiment])
    assert run.info.status == "RUNNING" and run.data.tags[TAGS["pid"]] == str(pid)
    assert torch.load(checkpoint, weights_only=True)[RESUME_KEY]["mlflow_run_id"] == run.info.run_id
    # another run left RUNNING by the killed process, and one of a live process (this one) and one of another host
    leftover = client.create_run(experiment, run_name="leftover", tags=process_tags(pid)).info.run_id
    live = client.create_run(experiment, run_name="live", tags=process_tags()).info.run_id
    elsewhere = {**process_tags(pid), TAGS["host"]: socket.gethostname() + "-other"}
    other_host = client.create_run(experiment, run_name="other_host", tags=elsewhere).info.run_id

    run_workflow(TRAIN, "train", _overrides(killed, tiny_dataset, run_stamp="t", resume_from=str(checkpoint)), "mlflow")
    run_workflow(TRAIN, "train", _overrides(straight, tiny_dataset), "mlflow")

    # the same run folder and MLflow run, with every parameter, finished
    assert [p.name for p in (killed / "runs").iterdir()] == [RUN]
    resumed = client.get_run(run.info.run_id)
    assert resumed.info.status == "FINISHED" and resumed.data.tags["mims.resume_count"] == "1"
    assert resumed.data.tags[TAGS["pid"]] == str(os.getpid())
    straight_client, straight_experiment = _client(straight)
    (reference,) = straight_client.search_runs([straight_experiment])
    params = {k: v for k, v in resumed.data.params.items() if k != "run_dir"}
    assert params == {k: v for k, v in reference.data.params.items() if k != "run_dir"}
    assert len(params) == len(reference.data.params) - 1 > 25
    # the leftover of the dead process is closed, the live and the other host's runs are not
    statuses = {r: client.get_run(r).info.status for r in (leftover, live, other_host)}
    assert statuses == {leftover: "KILLED", live: "RUNNING", other_host: "RUNNING"}
    assert client.get_run(leftover).data.tags["mims.closed"].startswith(f"marked KILLED by run {RUN}")

    # every metric at every epoch and iteration, the weights, the best model and its promotion: exactly equal
    histories = _histories(client, run.info.run_id)
    expected = _histories(straight_client, reference.info.run_id)
    assert histories == expected
    assert sorted(expected["auroc"]) == [1, 2, 3, 4] and sorted(expected["train_loss"]) == list(range(1, 9))
    for name in ("checkpoint_final.pt", "model.pt"):
        got = torch.load(run_dir / name, weights_only=True)
        want = torch.load(straight / "runs" / RUN / name, weights_only=True)
        got, want = got.get("model", got), want.get("model", want)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), name
    got, want = read_provenance(killed / "models" / "model.pt"), read_provenance(straight / "models" / "model.pt")
    assert (got["epoch"], got["metric"], got["mlflow_run_id"]) == (want["epoch"], want["metric"], run.info.run_id)
    final = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)[RESUME_KEY]
    assert final["handlers"] == torch.load(straight / "runs" / RUN / "checkpoint_final.pt",
                                           weights_only=True)[RESUME_KEY]["handlers"]
    # the checkpoint resumed from and the resumed run's executed config stay; the rest of the folder is the
    # uninterrupted run's (with the interrupted run's executed config)
    files = {p.name for p in run_dir.iterdir()}
    assert files - {p.name for p in (straight / "runs" / RUN).iterdir()} == {checkpoint.name, "config_t.json"}
    assert json.loads((run_dir / "config_t.json").read_text())["resume_from"] == str(checkpoint)


def _loader(generator):
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose, RandFlipd

    from transforms import RandSampleSlicesd

    transform = Compose([RandSampleSlicesd(keys="image", num_central=6, min_slices=2, max_slices=4),
                         RandFlipd(keys="image", prob=0.5, spatial_axis=2)])
    data = [{"image": torch.arange(6 * 4.0).reshape(6, 1, 2, 2) + i} for i in range(5)]
    return DataLoader(Dataset(data, transform), batch_size=1, shuffle=True, generator=generator,
                      collate_fn=lambda items: items[0])


def _draws(loader):
    batches = [(b["image"].shape[0], torch.as_tensor(b["image"]).flatten()[:3].tolist()) for b in loader]
    return batches, random.random(), float(np.random.rand()), float(torch.rand(()))


@pytest.mark.parametrize("generator", [None, "seeded"])
def test_rng_state_round_trip(generator, tmp_path):
    make = (lambda: torch.Generator().manual_seed(3)) if generator else (lambda: None)
    loader = _loader(make())
    _draws(loader)
    state = rng_state(loader)
    assert len(state["transforms"]) == 4  # Compose, RandSampleSlicesd and its sampler, RandFlipd
    assert set(state["generators"]) == ({"dataloader"} if generator else set())
    path = tmp_path / "state.pt"
    torch.save(state, path)
    expected = _draws(loader)
    other = _loader(make())  # another run: freshly seeded, then restored
    _draws(other)
    set_rng_state(torch.load(path, weights_only=True), other)
    assert _draws(other) == expected


def test_rng_state_refuses_other_transforms():
    from monai.data import DataLoader, Dataset

    state = rng_state(_loader(None))
    with pytest.raises(ValueError, match="4 random transform"):
        set_rng_state(state, DataLoader(Dataset([{"image": torch.zeros(1)}]), batch_size=1,
                                        collate_fn=lambda items: items[0]))
    assert random_transforms([]) == []


def test_read_resume_state(tmp_path, caplog):
    assert read_resume_state(None) is None
    with pytest.raises(FileNotFoundError, match="resume_from .*missing.pt: no such checkpoint"):
        read_resume_state(tmp_path / "missing.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pt: not a readable checkpoint"):
        read_resume_state(tmp_path / "broken.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="model.pt: not a resumable checkpoint"):
        read_resume_state(tmp_path / "model.pt")
    torch.save({"trainer": {"epoch": 1}}, tmp_path / "old.pt")
    with caplog.at_level("WARNING"):
        assert read_resume_state(tmp_path / "old.pt") is None
    assert "no resume state" in caplog.text
    torch.save({"trainer": {}, RESUME_KEY: {"run_name": "r", "mlflow_run_id": "abc"}}, tmp_path / "new.pt")
    assert read_resume_state(tmp_path / "new.pt") == {"run_name": "r", "mlflow_run_id": "abc"}


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _zombie_pid() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.05)
    return child


@pytest.mark.parametrize(
    "change, gone",
    [
        ({}, False),  # this process
        ({"drop": TAGS["pid"]}, None),  # no process recorded
        ({TAGS["host"]: "another-host"}, None),
        ({TAGS["pid"]: "not-a-number"}, None),
        ({TAGS["boot"]: "another-boot"}, True),
        ({TAGS["start"]: "1"}, True),  # the id now belongs to another process
        ({TAGS["pid"]: "exited"}, True),
        ({TAGS["pid"]: "zombie"}, True),
    ],
)
def test_process_gone(change, gone):
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    tags = process_tags()
    zombie = None
    if change.get(TAGS["pid"]) == "exited":
        change = {TAGS["pid"]: str(_exited_pid())}
    elif change.get(TAGS["pid"]) == "zombie":
        zombie = _zombie_pid()
        change = {TAGS["pid"]: str(zombie.pid)}
    tags = {k: v for k, v in {**tags, **change}.items() if k != change.get("drop") and k != "drop"}
    try:
        assert process_gone(tags) is gone
    finally:
        if zombie is not None:
            zombie.wait()


def test_close_killed_runs_only_closes_runs_of_gone_processes(tmp_path, caplog):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(tmp_path / "mlruns.db")))
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    dead = process_tags(_exited_pid())
    runs = {
        "dead": client.create_run(experiment, run_name="dead", tags=dead),
        "dead_but_kept": client.create_run(experiment, run_name="dead_but_kept", tags=dead),
        "alive": client.create_run(experiment, run_name="alive", tags=process_tags()),
        "untagged": client.create_run(experiment, run_name="untagged"),
        "finished": client.create_run(experiment, run_name="finished", tags=dead),
    }
    client.set_terminated(runs["finished"].info.run_id, "FINISHED")
    ids = {name: run.info.run_id for name, run in runs.items()}
    with caplog.at_level("WARNING"):
        closed = close_killed_runs(client, experiment, keep={ids["dead_but_kept"]}, closer="me")
    assert closed == [ids["dead"]]
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"dead": "KILLED", "dead_but_kept": "RUNNING", "alive": "RUNNING", "untagged": "RUNNING",
                      "finished": "FINISHED"}
    assert client.get_run(ids["dead"]).data.tags["mims.closed"].startswith("marked KILLED by run me: process ")
    assert "MLflow run dead" in caplog.text


@pytest.mark.parametrize("attach_first", [True, False])
def test_early_stopping_state_round_trip(attach_first):
    from ignite.engine import Engine

    def validations(stopper, trainer, validator, scores):
        for score in scores:
            trainer.state.epoch += 1
            validator.state.metrics = {"auroc": score}
            validator.fire_event(Events.EPOCH_COMPLETED)
        return stopper.state_dict(), trainer.should_terminate

    from ignite.engine import Events

    def engines():
        trainer, validator = Engine(lambda e, b: None), Engine(lambda e, b: None)
        validator.state.key_metric_name = "auroc"
        trainer.state.epoch = 0
        return trainer, validator

    trainer, validator = engines()
    stopper = ValidationEarlyStopping(validator, patience=3)
    stopper.attach(trainer)
    state, stopped = validations(stopper, trainer, validator, [0.5, 0.7, 0.6, 0.6])
    assert state == {"counter": 2, "best_score": 0.7, "best_epoch": 2, "stopped_epoch": None} and not stopped
    # resumed: one more validation without improvement stops it (a fresh count would not)
    trainer, validator = engines()
    trainer.state.epoch = 4
    resumed = ValidationEarlyStopping(validator, patience=3)
    if attach_first:
        resumed.attach(trainer)
        resumed.load_state_dict(state)
    else:
        resumed.load_state_dict(state)
        resumed.attach(trainer)
    state, stopped = validations(resumed, trainer, validator, [0.65])
    assert stopped and state == {"counter": 3, "best_score": 0.7, "best_epoch": 2, "stopped_epoch": 5}


def test_mlflow_extras_continue_the_run_of_the_checkpoint(tmp_path, caplog):
    from ignite.engine import Engine
    from mlflow import MlflowClient
    from monai.handlers import MLFlowHandler
    from monai.utils import path_to_sqlite_uri

    from bundle.mlflow_handlers import MLflowRunExtras, share_mlflow_run

    uri = path_to_sqlite_uri(str(tmp_path / "mlruns.db"))

    def train(params, resume_run_id=None):
        engine = Engine(lambda e, b: b)
        handlers = [MLflowRunExtras(params=params, resume_run_id=resume_run_id, resumed_from="ck.pt"),
                    MLFlowHandler(tracking_uri=uri, experiment_name="exp", run_name="r", close_on_complete=True,
                                  iteration_log=False, epoch_log=False)]
        for handler in share_mlflow_run(handlers):
            handler.attach(engine)
        engine.run([1], max_epochs=1)

    train({"lr": 0.1})
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("exp").experiment_id
    (first,) = client.search_runs([experiment])
    with caplog.at_level("WARNING"):
        train({"lr": 0.2, "seed": 0}, first.info.run_id)  # continues the finished run; lr cannot change
    (run,) = client.search_runs([experiment])
    assert run.info.run_id == first.info.run_id and run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "seed": "0", "max_epochs": "1", "epoch_length": "1"}
    assert run.data.tags["mims.params_changed_on_resume"] == "lr: 0.1 -> 0.2"
    assert run.data.tags["mims.resume_count"] == "1"
    assert run.data.tags["mims.resumed_from"] == "ck.pt (the run was FINISHED)"
    assert run.data.tags[TAGS["pid"]] == str(os.getpid())
    assert "lr: 0.1 -> 0.2" in caplog.text
    with caplog.at_level("WARNING"):
        train({"lr": 0.1}, "0" * 32)  # not in this store: a new run
    assert "is not in the tracking store" in caplog.text
    assert len(client.search_runs([experiment])) == 2


def test_resume_state_keeps_the_best_so_far(tmp_path):
    from ignite.engine import Engine, Events

    from bundle.promote_checkpoint import PromoteCheckpoint
    from bundle.model_selection import BestModelSaver
    from bundle.resume import ResumeState
    from bundle.threshold_selection import ThresholdSelector

    network = torch.nn.Linear(1, 1)

    def run():
        """A trainer, its validator and the handlers of train.json that keep the best so far."""
        trainer, validator = Engine(lambda e, b: None), Engine(lambda e, b: None)
        trainer.state.epoch, validator.state.key_metric_name = 0, "auroc"
        validator.state.best_metric, validator.state.best_metric_epoch = -1, -1
        saver = BestModelSaver(save_dir=str(tmp_path), save_dict={"model": network}, save_key_metric=True,
                               key_metric_filename="model.pt", key_metric_greater_or_equal=True)
        selector = ThresholdSelector(tmp_path / "model.pt")
        promote = PromoteCheckpoint(tmp_path / "model.pt", tmp_path / "models" / "model.pt", validator=validator)
        stopper = ValidationEarlyStopping(validator, patience=5)
        for handler in (saver, selector):
            handler.attach(validator)
        for handler in (promote, stopper):
            handler.attach(trainer)
        state = ResumeState("r", [promote, stopper, selector, saver], validator)
        state.attach(trainer)
        return trainer, validator, state

    def validate(trainer, validator, auroc):
        trainer.state.epoch += 1
        validator.state.epoch = trainer.state.epoch
        network.weight.data.fill_(trainer.state.epoch)  # the weights say which epoch's model a file holds
        validator.state.metrics = {"auroc": auroc}
        validator.fire_event(Events.EPOCH_COMPLETED)

    trainer, validator, state = run()
    validate(trainer, validator, 0.8)
    validate(trainer, validator, 0.6)
    saved = state.state_dict()
    torch.save(saved, tmp_path / "state.pt")
    assert [priority for priority, _ in saved["handlers"]["BestModelSaver"]["_saved"]] == [0.8]
    assert saved["handlers"]["PromoteCheckpoint"]["saved"] == {"metric": {"name": "auroc", "value": 0.8}, "epoch": 1}
    assert saved["handlers"]["ValidationEarlyStopping"]["counter"] == 1
    # resumed: a worse validation does not replace the best model of epoch 1
    trainer, validator, resumed = run()
    trainer.state.epoch = 2
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    validate(trainer, validator, 0.7)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].item() == 1.0
    again = resumed.state_dict()
    assert again["handlers"]["PromoteCheckpoint"]["saved"]["epoch"] == 1
    assert again["handlers"]["ValidationEarlyStopping"] == {"counter": 2, "best_score": 0.8, "best_epoch": 1,
                                                             "stopped_epoch": None}
    validate(trainer, validator, 0.9)  # a better one does
    assert torch.load(tmp_path / "model.pt", weights_only=True)["weight"].item() == 4.0
