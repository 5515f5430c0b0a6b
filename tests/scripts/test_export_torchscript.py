# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""scripts/export_torchscript.py: the archive carries metadata and the merged config, with the checkpoint's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import export_torchscript  # scripts/ is on sys.path (tests/conftest.py)
from bundle.config import build_network
from bundle.export import load_torchscript

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
VERSION = json.loads((CONFIGS / "metadata.json").read_text())["version"]


@pytest.mark.parametrize("method, network_class", [(None, "MIMSCNN"), ("mi_pre_conv", "MIPreConv")])
def test_export_matches_the_checkpoint_and_carries_the_config(method, network_class, tmp_path, capsys):
    files = [CONFIGS / "common.json"] + ([CONFIGS / "methods" / f"{method}.json"] if method else [])
    torch.manual_seed(0)
    network, _ = build_network(files, {"image_size": [32, 32]})
    torch.save({"model": network.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")  # resumable layout
    args = ["--ckpt", str(tmp_path / "checkpoint.pt"), "--output", str(tmp_path / "model.ts"),
            "--override", "image_size=[32,32]"] + (["--method", method] if method else [])
    assert export_torchscript.main(args) == 0
    assert f"({network_class}, bundle {VERSION}" in capsys.readouterr().out
    module, meta, config = load_torchscript(tmp_path / "model.ts")
    assert meta["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    assert config["image_size"] == [32, 32] and config["network_def"]["_target_"].endswith(network_class)
    assert {"preprocessing", "inferer", "postprocessing", "class_names"} <= set(config)
    bag = torch.rand(1, 4, 1, 32, 32)
    network.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(bag, None), network(bag, None))


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert export_torchscript.main(["--ckpt", str(tmp_path / "none.pt"), "--output", str(tmp_path / "m.ts")]) == 1
    assert "none.pt" in capsys.readouterr().err

