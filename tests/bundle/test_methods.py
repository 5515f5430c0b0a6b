# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Every method overlay under configs/methods trains, evaluates, infers and exports through the bundle."""

from __future__ import annotations

import json

import pytest
import torch

from bundle.methods import AGGREGATION_METHODS, METHODS, METHODS_DIR, TABLE1_METHODS, method_config
from bundle_testing import CONFIGS, TINY, TINY_TRAIN, run_workflow

#: config ids an overlay may set besides ``method_name`` and ``network_def`` (method-specific settings)
OVERLAY_EXTRAS = {"top_k", "input_scales", "dilations", "pretrained_weights"}


def test_registry_and_overlay_files_agree():
    assert sorted(p.stem for p in METHODS_DIR.glob("*.json")) == sorted(METHODS)
    assert set(TABLE1_METHODS) <= set(METHODS)
    assert {spec.split(":")[0] for spec in AGGREGATION_METHODS} <= set(METHODS)
    for name in METHODS:
        overlay = json.loads(method_config(name).read_text())
        assert overlay["method_name"] == name
        assert overlay["network_def"]["_target_"].startswith("networks.")
        assert set(overlay) - {"method_name", "network_def"} <= OVERLAY_EXTRAS, name


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown method 'mims'; valid methods: mims_cnn, mi_pre, .*mims_max_inst"):
        method_config("mims")


def _overrides(root, dataset, train=False, **extra):
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **TINY, **(TINY_TRAIN if train else {}), **extra}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_evaluates_infers_and_exports(name, tiny_dataset, bundle_root):
    from monai.bundle import ConfigParser, ckpt_export

    overlay = f"methods/{name}.json"
    run_workflow(
        ["common.json", "train.json", overlay], "train", _overrides(bundle_root, tiny_dataset, True, run_stamp="r")
    )
    ckpt = bundle_root / "models" / "model.pt"
    assert ckpt.is_file()

    run_workflow(["common.json", "evaluate.json", overlay], "eval", _overrides(bundle_root, tiny_dataset))
    metrics = json.loads((bundle_root / "eval" / "metrics.json").read_text())
    assert metrics["num_cases"] == 4 and 0.0 <= metrics["auroc"] <= 1.0

    overrides = _overrides(bundle_root, tiny_dataset, input=str(tiny_dataset / "images"))
    run_workflow(["common.json", "inference.json", overlay], "infer", overrides)
    predictions = json.loads((bundle_root / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12

    ts_path = bundle_root / "models" / "model.ts"
    configs = [str(CONFIGS / "common.json"), str(CONFIGS / overlay)]
    tiny = {k: v for k, v in TINY.items()}
    ckpt_export(
        net_id="network_def",
        filepath=str(ts_path),
        ckpt_file=str(ckpt),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=configs,
        key_in_ckpt="model",
        **tiny,
    )
    parser = ConfigParser()
    parser.read_config(configs)
    parser.update(tiny)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(ckpt, weights_only=True))
    exported = torch.jit.load(str(ts_path))
    bag, mask = torch.rand(2, 5, 1, 32, 32), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        network.eval()
        torch.testing.assert_close(exported(bag, mask), network(bag, mask))
    target = json.loads(method_config(name).read_text())["network_def"]["_target_"]
    assert type(network).__name__ == target.split(".")[-1]
