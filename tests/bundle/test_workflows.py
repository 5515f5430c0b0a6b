# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Train, evaluate and infer end to end through ``monai.bundle.ConfigWorkflow`` on tiny data."""

from __future__ import annotations

import csv
import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle.decision import load_decision
from bundle.model_selection import read_provenance, validation_data_hash
from bundle_testing import TINY, TINY_TRAIN, copy_dataset, run_workflow

TRAIN = ["common.json", "train.json"]
EVALUATE = ["common.json", "evaluate.json"]
INFERENCE = ["common.json", "inference.json"]


def _overrides(root, dataset, train=False, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **(TINY_TRAIN if train else {}), **extra}


def _mlflow_runs(root):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    client = MlflowClient(tracking_uri=path_to_sqlite_uri(str(root / "eval" / "mlruns.db")))
    experiment = client.get_experiment_by_name("mims_cnn")
    return client, ([] if experiment is None else client.search_runs([experiment.experiment_id]))


def test_train_evaluate_infer_with_mlflow(tiny_dataset, bundle_root):
    # train, tracked: checkpoints in the run folder, best model promoted, params + metrics + model in MLflow
    run_workflow(TRAIN, "train", _overrides(bundle_root, tiny_dataset, train=True, epochs=2, run_stamp="r1"), "mlflow")
    run_dir = bundle_root / "runs" / "train_synthetic_oct_r1"
    assert (run_dir / "model.pt").is_file() and (run_dir / "checkpoint_final.pt").is_file()
    assert (bundle_root / "models" / "model.pt").read_bytes() == (run_dir / "model.pt").read_bytes()
    resumable = torch.load(run_dir / "checkpoint_final.pt", weights_only=False)
    assert set(resumable) == {"model", "optimizer", "lr_scheduler", "trainer", "resume"}
    assert resumable["resume"]["run_name"] == "train_synthetic_oct_r1" and resumable["resume"]["epoch"] == 2
    client, runs = _mlflow_runs(bundle_root)
    train_runs = [r for r in runs if r.info.run_name == "train_synthetic_oct_r1"]
    assert len(train_runs) == 1 and train_runs[0].info.status == "FINISHED"
    run = train_runs[0]
    assert run.data.params["method"] == "mims_cnn" and run.data.params["backbone_depth"] == "10"
    assert run.data.params["class_weighting"] == "auto" and run.data.params["class_weights"] == "None"  # 2 / 2
    assert len(client.get_metric_history(run.info.run_id, "auroc")) == 2
    assert len(client.get_metric_history(run.info.run_id, "val_distinct_classes")) == 2
    assert {"accuracy", "f1", "train_loss"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "model.decision.json", "config_r1.json"} <= artifacts
    executed = json.loads((run_dir / "config_r1.json").read_text())  # the executed config, in the run's folder
    assert executed["run_stamp"] == "r1" and executed["epochs"] == 2 and executed["save_execute_config"] is None
    assert not list((bundle_root / "eval").glob("config_*.json"))  # MONAI's copy, named by the second, is off
    # the decision threshold of the kept model's validation, next to it and promoted with it
    decision = load_decision(run_dir / "model.pt")
    assert decision["criterion"] == "youden" and decision["split"] == "validation" and decision["epoch"] in (1, 2)
    assert decision["num_cases"] == 4 and 0.0 <= decision["threshold"] <= 1.0
    promoted = bundle_root / "models" / "model.decision.json"
    assert promoted.read_bytes() == (run_dir / "model.decision.json").read_bytes()
    # the first model of this bundle: promoted, its provenance beside it, the outcome a tag of the run
    provenance = read_provenance(bundle_root / "models" / "model.pt")
    assert provenance["run_name"] == "train_synthetic_oct_r1" and provenance["run_dir"] == str(run_dir)
    assert provenance["mlflow_run_id"] == run.info.run_id and provenance["source"] == str(run_dir / "model.pt")
    aurocs = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "auroc")}
    assert provenance["metric"] == {"name": "auroc", "value": pytest.approx(aurocs[provenance["epoch"]])}
    assert provenance["validation"]["sha256"] == validation_data_hash(tiny_dataset / "datalist.json")
    assert provenance["reason"] == f"no current model at {bundle_root / 'models' / 'model.pt'}"
    assert run.data.tags["promotion"] == "promoted"
    history = client.get_metric_history(run.info.run_id, "decision_threshold")
    assert history and max(history, key=lambda m: m.step).value == pytest.approx(decision["threshold"])

    # export the promoted checkpoint to TorchScript with MONAI's ckpt_export: same logits as the checkpoint
    from monai.bundle import ConfigParser, ckpt_export

    from bundle_testing import CONFIGS

    overrides = _overrides(bundle_root, tiny_dataset)
    ts_path = bundle_root / "models" / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(bundle_root / "models" / "model.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "common.json"),
        key_in_ckpt="model",
        **{k: v for k, v in overrides.items() if k not in ("bundle_root", "dataset_dir")},
    )
    exported = torch.jit.load(str(ts_path))
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(overrides)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle_root / "models" / "model.pt", weights_only=True))
    bag, mask = torch.rand(2, 5, 1, 32, 32), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        network.eval()
        torch.testing.assert_close(exported(bag, mask), network(bag, mask))
        torch.testing.assert_close(exported.instance_features(bag, mask), network.instance_features(bag, mask))
    # evaluate the promoted checkpoint on the test split
    run_workflow(EVALUATE, "eval", _overrides(bundle_root, tiny_dataset))
    metrics = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    assert {"auroc", "accuracy", "f1"} <= set(metrics) and metrics["num_cases"] == 4
    assert 0.0 <= metrics["auroc"] <= 1.0
    threshold = decision["threshold"]
    assert metrics["decision_threshold"] == threshold  # the promoted sidecar, found by decision_threshold 'auto'
    rows = list(csv.DictReader((bundle_root / "eval" / "predictions.csv").open()))
    assert len(rows) == 4
    decided = [int(float(row["prob_cyst"]) >= threshold) for row in rows]
    assert metrics["accuracy"] == pytest.approx(np.mean([d == int(row["label"]) for d, row in zip(decided, rows)]))
    for row, expected in zip(rows, decided):
        p = float(row["prob_normal"]) + float(row["prob_cyst"])
        assert p == pytest.approx(1.0, abs=1e-5)
        assert float(row["threshold"]) == threshold and int(row["prediction"]) == expected
        assert row["case"].endswith(".nii.gz") and row["label"] in ("0", "1")
        assert json.loads(row["slice_indices"]) == [1, 2, 3, 4, 5, 6]  # 6 central of 8 slices

    # inference on a folder of volumes without labels
    run_workflow(INFERENCE, "infer", _overrides(bundle_root, tiny_dataset, input=str(tiny_dataset / "images")))
    predictions = json.loads((bundle_root / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12 and all("label" not in p for p in predictions)
    assert all(p["threshold"] == threshold and p["prediction"] == int(p["prob_cyst"] >= threshold) for p in predictions)

    # the same model on plain 2D images (a bag of one slice each), grey and RGB
    from PIL import Image

    images = bundle_root / "images_2d"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(images / "grey.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(images / "rgb.jpg")
    run_workflow(INFERENCE, "infer", _overrides(bundle_root, tiny_dataset, input=str(images)))
    predictions = json.loads((bundle_root / "eval" / "inference" / "predictions.json").read_text())
    assert [p["case"].rsplit("/", 1)[-1] for p in predictions] == ["grey.png", "rgb.jpg"]
    assert all(p["slice_indices"] == [0] for p in predictions)


def test_resume_continues_from_checkpoint(tiny_dataset, bundle_root):
    run_workflow(TRAIN, "train", _overrides(bundle_root, tiny_dataset, train=True, run_stamp="first"))
    first = bundle_root / "runs" / "train_synthetic_oct_first" / "checkpoint_final.pt"
    workflow = run_workflow(
        TRAIN,
        "train",
        _overrides(bundle_root, tiny_dataset, train=True, epochs=2, run_stamp="second", resume_from=str(first)),
    )
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2 and trainer.state.iteration == 4  # one epoch resumed + one trained
    # the same run goes on, in its own folder (run_stamp "second" is not used)
    assert workflow.parser.get_parsed_content("run_name") == "train_synthetic_oct_first"
    assert [p.name for p in (bundle_root / "runs").iterdir()] == ["train_synthetic_oct_first"]


def test_collapsed_validation_is_loud_and_imbalance_is_weighted(tiny_dataset, bundle_root, tmp_path, caplog):
    """A model that answers 'normal' for everything (zero classifier weights, bias [8, -8], learning rate 0), on a
    training split of 3 'normal' and 1 'cyst': the loss is weighted; the collapse is a WARNING and MLflow metrics."""
    dataset = copy_dataset(tiny_dataset, tmp_path / "data")
    entries = json.loads((dataset / "datalist.json").read_text())["training"]
    _write_datalist(dataset, [dict(entry, label=int(i == 3)) for i, entry in enumerate(entries)])
    head = "$[m for m in @network.modules() if isinstance(m, torch.nn.Linear)][-1]"
    overrides = _overrides(bundle_root, dataset, train=True, run_stamp="collapsed", learning_rate=0.0, head=head,
                           num_overlay_cases=0)
    overrides["initialize"] = [
        "$monai.utils.set_determinism(seed=@seed)",
        "$torch.nn.init.zeros_(@head.weight)",
        "$@head.bias.data.copy_(torch.tensor([8.0, -8.0]))",
    ]
    logger = logging.getLogger("bundle")  # the workflow's logging file replaces the root logger's handlers
    logger.addHandler(caplog.handler)
    try:
        run_workflow(TRAIN, "train", overrides, "mlflow")
    finally:
        logger.removeHandler(caplog.handler)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, "validation epoch 1: all 4 validation cases predicted 'normal' (class 0): the model "
            "answers one class for everything (collapsed); AUROC may still rank them") in messages
    assert any(m.startswith("class weighting 'auto': training split 3 'normal', 1 'cyst' is imbalanced") for _, m in
               messages)
    client, runs = _mlflow_runs(bundle_root)
    run = next(r for r in runs if r.info.run_name == "train_synthetic_oct_collapsed")
    assert run.data.params["class_weighting"] == "auto" and run.data.params["class_weights"] == "[0.6667, 2.0]"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_single_class")] == [(1, 1.0)]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "val_distinct_classes")] == [(1, 1.0)]
    assert run.data.metrics["f1"] == 0.0


def _write_datalist(dataset, training):
    content = json.loads((dataset / "datalist.json").read_text())
    content["training"] = training
    (dataset / "datalist.json").write_text(json.dumps(content))


@pytest.mark.parametrize(
    "breakage, fragment",
    [
        ("missing_file", "1 file(s) do not exist"),
        ("label_not_a_class", "label 7 is not a class: allowed 0..1"),
        ("empty_split", "split 'training' is empty"),
        ("nan_volume", "NaN"),
        ("corrupt_file", "cannot be read"),
    ],
)
def test_bad_input_fails_early_and_keeps_previous_outputs(tiny_dataset, bundle_root, tmp_path, breakage, fragment):
    dataset = copy_dataset(tiny_dataset, tmp_path / "data")
    entries = json.loads((dataset / "datalist.json").read_text())["training"]
    broken = dataset / entries[0]["image"]
    if breakage == "missing_file":
        broken.unlink()
    elif breakage == "label_not_a_class":
        _write_datalist(dataset, [dict(entries[0], label=7)] + entries[1:])
    elif breakage == "empty_split":
        _write_datalist(dataset, [])
    elif breakage == "nan_volume":
        volume = nib.load(broken)
        data = np.asarray(volume.dataobj, dtype=np.float32).copy()
        data[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(data, volume.affine), broken)
    elif breakage == "corrupt_file":
        broken.write_bytes(broken.read_bytes()[:200])
    previous = bundle_root / "models" / "model.pt"
    previous.parent.mkdir()
    previous.write_bytes(b"a model from an earlier run")
    with pytest.raises(Exception) as e:
        run_workflow(TRAIN, "train", _overrides(bundle_root, dataset, train=True, run_stamp="bad"), "mlflow")
    message = "".join(str(x) for x in _exception_chain(e.value))
    assert fragment in message
    if breakage not in ("label_not_a_class", "empty_split"):
        assert broken.name in message
    assert previous.read_bytes() == b"a model from an earlier run"
    assert not list((bundle_root / "runs").glob("bad/*.pt"))  # no checkpoint of the failed run
    _, runs = _mlflow_runs(bundle_root)
    assert all(r.info.status != "FINISHED" for r in runs)


def _exception_chain(error):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__
