# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""ICMIL: which parameters each phase trains, the teacher's targets, resuming between phases, MLflow runs per
phase, and the workflow through the bundle's configs."""

from __future__ import annotations

import json

import pytest
import torch

from bundle.icmil import ICMIL, cached_bags, load_initial_weights, pad_embeddings
from bundle.prepare_batch import PrepareBagBatch
from bundle_testing import TINY, TINY_TRAIN, run_workflow
from networks.nets import MIMSCNN, AttentionMIL


def _network(seed: int = 0) -> AttentionMIL:
    torch.manual_seed(seed)
    return AttentionMIL(in_channels=1, num_classes=2, backbone_depth=10, feature_stage=2, attention_dim=8,
                        embedding_dim=16, gated=True)


def _loader(seed: int, num_batches: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(num_batches):
        label = torch.tensor([0, 1])
        image = torch.rand(2, 3, 1, 32, 32, generator=g)
        image[1, 1] += 1.0  # a bright instance in the positive bag
        batches.append({"image": image, "label": label, "mask": torch.tensor([[True, True, False], [True] * 3])})
    return batches


def _icmil(tmp_path, network=None, **kwargs) -> ICMIL:
    options = {"rounds": 1, "classifier_epochs": 2, "classifier_batch_size": 2, "embedder_epochs": 1}
    options.update(kwargs)
    loaders = (_loader(1), _loader(2), _loader(3))
    return ICMIL(network or _network(), *loaders, PrepareBagBatch(), "cpu", tmp_path, **options)


def test_pad_embeddings():
    h, mask = pad_embeddings([torch.ones(2, 3), 2 * torch.ones(1, 3)])
    assert h.shape == (2, 2, 3) and mask.tolist() == [[True, True], [True, False]]
    assert h[1, 1].tolist() == [0.0, 0.0, 0.0] and h[1, 0].tolist() == [2.0, 2.0, 2.0]


def test_cached_bags_keep_real_instances_only():
    cache = cached_bags(_network(), _loader(1), PrepareBagBatch(), torch.device("cpu"))
    assert [tuple(h.shape) for h in cache["embeddings"]] == [(2, 16), (3, 16)] * 2
    assert cache["labels"].tolist() == [0, 1, 0, 1]


def test_each_phase_trains_its_own_part(tmp_path):
    icmil = _icmil(tmp_path)
    icmil.output_dir.mkdir(parents=True, exist_ok=True)
    net = icmil.network
    head = {n for n, _ in net.named_parameters() if n.startswith(("attention.", "classifier."))}
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    icmil.embed(0)
    assert all(torch.equal(b, buffers[n]) for n, b in net.named_buffers())  # embedding runs in eval mode
    icmil.classifier(0)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= head
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    metrics = icmil.embedder(1)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed and not changed & head  # the bag classifier is frozen while it teaches
    assert metrics["embedder_kl"] > 0 and metrics["steps"] == 2
    assert all(p.requires_grad for p in net.parameters())  # unfrozen afterwards


def test_run_resumes_after_the_last_finished_phase(tmp_path):
    first = _icmil(tmp_path, rounds=0).run()
    assert first["completed"] == ["r0_embed", "r0_classifier"]
    assert first["val_auroc_before"] == first["val_auroc_after"]
    model = torch.load(tmp_path / "model.pt")
    assert sorted(p.name for p in tmp_path.glob("model*.pt")) == ["model.pt", "model_r0.pt"]
    resumed = _icmil(tmp_path, network=_network(seed=5), rounds=1)
    state = resumed.run()
    assert state["completed"] == ["r0_embed", "r0_classifier", "r1_embedder", "r1_embed", "r1_classifier"]
    assert state["metrics"]["r0_classifier"] == first["metrics"]["r0_classifier"]  # not run again
    assert 0.0 <= state["val_auroc_after"] <= 1.0
    assert set(model) == set(torch.load(tmp_path / "model.pt"))
    # each round's model is kept: round 0 as it was before the coupling, round 1 as the final model.pt
    kept = {name: torch.load(tmp_path / f"model_{name}.pt") for name in ("r0", "r1")}
    assert all(torch.equal(kept["r0"][k], model[k]) for k in model)
    final = torch.load(tmp_path / "model.pt")
    assert all(torch.equal(kept["r1"][k], final[k]) for k in final)
    assert not all(torch.equal(kept["r0"][k], final[k]) for k in final)
    assert json.loads((tmp_path / "icmil_state.json").read_text())["completed"] == state["completed"]
    with pytest.raises(ValueError, match="not a start of this run's"):
        _icmil(tmp_path, rounds=0).run()  # a state from a longer run does not fit a shorter one


def test_a_null_text_on_the_command_line_stops_before_any_work(tmp_path, monkeypatch):
    from bundle.errors import PreflightError

    main = str(tmp_path / "monai" / "bundle" / "__main__.py")
    monkeypatch.setattr("sys.argv", [main, "run", "--icmil_tracking_uri", "null"])
    with pytest.raises(PreflightError, match="^command line --icmil_tracking_uri null: .* write --icmil_tracking_uri "
                                             "None for no value$"):
        _icmil(tmp_path / "icmil").run()
    assert not (tmp_path / "icmil").exists()


def test_phases_are_tracked_as_nested_mlflow_runs(tmp_path):
    from mlflow import MlflowClient
    from monai.utils import path_to_sqlite_uri

    import mlflow

    uri = path_to_sqlite_uri(str(tmp_path / "mlruns.db"))
    before = mlflow.get_tracking_uri()
    _icmil(tmp_path / "out", tracking_uri=uri, experiment_name="icmil_test").run()
    # no process-wide MLflow state changed: the bundle's own handlers and later runs rely on it
    assert mlflow.get_tracking_uri() == before and mlflow.active_run() is None
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("icmil_test").experiment_id])
    names = sorted(r.info.run_name for r in runs)
    assert names == sorted(["out", "r0_embed", "r0_classifier", "r1_embedder", "r1_embed", "r1_classifier"])
    parent = next(r for r in runs if r.info.run_name == "out")
    assert {"val_auroc_before", "val_auroc_after"} <= set(parent.data.metrics)
    assert {r.info.status for r in runs} == {"FINISHED"}
    classifier = next(r for r in runs if r.info.run_name == "r1_classifier")
    assert classifier.data.tags["mlflow.parentRunId"] == parent.info.run_id and "val_auroc" in classifier.data.metrics


def test_other_networks_and_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="needs an attention MIL network"):
        _icmil(tmp_path, network=MIMSCNN(backbone_depth=10, feature_stage=2))
    with pytest.raises(ValueError, match="temperature"):
        _icmil(tmp_path, temperature=0.0)
    with pytest.raises(ValueError, match="rounds"):
        _icmil(tmp_path, rounds=-1)


def test_initial_weights(tmp_path):
    net = _network(seed=1)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    other = load_initial_weights(_network(seed=2), tmp_path / "model.pt")
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))
    with pytest.raises(FileNotFoundError, match="icmil_init_ckpt"):
        load_initial_weights(_network(), tmp_path / "missing.pt")
    torch.save(MIMSCNN(backbone_depth=10, feature_stage=2).state_dict(), tmp_path / "mims.pt")
    with pytest.raises(ValueError, match="mims.pt: not a checkpoint of this network"):
        load_initial_weights(_network(), tmp_path / "mims.pt")


def test_icmil_workflow_through_the_configs(tiny_dataset, bundle_root):
    overrides = {"bundle_root": str(bundle_root), "dataset_dir": str(tiny_dataset), **TINY, **TINY_TRAIN}
    overrides.update(run_stamp="ic", icmil_classifier_epochs=2, icmil_embedder_epochs=1)
    run_workflow(["common.json", "train.json", "methods/abmil.json", "icmil.json"], "train", overrides)
    out = bundle_root / "runs" / "icmil_synthetic_oct_ic"
    state = json.loads((out / "icmil_state.json").read_text())
    assert state["completed"][-1] == "r1_classifier" and (out / "model.pt").is_file()
    assert (bundle_root / "eval" / "mlruns.db").is_file()
    # the model evaluates like any other checkpoint of the method
    evaluate = {k: v for k, v in overrides.items() if not k.startswith(("icmil", "train_", "epochs", "val_"))}
    evaluate["ckpt_path"] = str(out / "model.pt")
    run_workflow(["common.json", "evaluate.json", "methods/abmil.json"], "eval", evaluate)
    assert json.loads((bundle_root / "eval" / "metrics.json").read_text())["num_cases"] == 4
