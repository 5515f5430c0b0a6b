# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A third-party network that implements only the BagNetwork contract runs through every config: train,
chunked evaluation, inference with key slices and heatmaps, and TorchScript export."""

from __future__ import annotations

import json

import torch

from bundle.export import export_torchscript, load_torchscript
from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow
from third_party_bag import InstanceMeanBag

NETWORK = {
    "network_def": {
        "_target_": "third_party_bag.InstanceMeanBag",
        "in_channels": "@in_channels",
        "num_classes": "@num_classes",
    }
}


def _overrides(root, dataset, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **NETWORK, **extra}


def test_third_party_network_trains_evaluates_explains_and_exports(tiny_dataset, bundle_root):
    run_workflow(
        ["common.json", "train.json"], "train", _overrides(bundle_root, tiny_dataset, **TINY_TRAIN, run_stamp="r1")
    )
    ckpt = bundle_root / "models" / "model.pt"
    assert ckpt.is_file()

    # evaluation: bags of 6 slices in chunks of 4 go through forward_chunked
    InstanceMeanBag.chunked_calls = 0
    run_workflow(["common.json", "evaluate.json"], "eval", _overrides(bundle_root, tiny_dataset))
    assert InstanceMeanBag.chunked_calls > 0
    assert json.loads((bundle_root / "eval" / "metrics.json").read_text())["num_cases"] == 4

    # inference with key slices and heatmaps at the network's explanation layer
    run_workflow(
        ["common.json", "inference.json"],
        "infer",
        _overrides(bundle_root, tiny_dataset, input=str(tiny_dataset / "images"), localize=True, num_key_slices=2),
    )
    predictions = json.loads((bundle_root / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12
    assert all(len(p["key_slices"]) == 2 and set(p["key_slices"]) <= set(p["slice_indices"]) for p in predictions)
    localization = bundle_root / "eval" / "inference" / "localization"
    assert len(list(localization.rglob("*_heatmap.nii.gz"))) == 12
    assert len(list(localization.rglob("*_instance_scores.nii.gz"))) == 12

    # TorchScript export through the bundle's exporter: the same logits as the checkpoint
    overrides = {k: v for k, v in _overrides(bundle_root, tiny_dataset).items() if k not in ("bundle_root",)}
    ts = export_torchscript(
        ckpt,
        bundle_root / "models" / "model.ts",
        [CONFIGS / "common.json", CONFIGS / "inference.json"],
        CONFIGS / "metadata.json",
        overrides,
    )
    module, _, config = load_torchscript(ts)
    assert config["network_def"]["_target_"] == "third_party_bag.InstanceMeanBag"
    network = InstanceMeanBag(1, 2)
    network.load_state_dict(torch.load(ckpt, weights_only=True))
    bag, mask = torch.rand(2, 5, 1, 32, 32), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        torch.testing.assert_close(module(bag, mask), network.eval()(bag, mask))
