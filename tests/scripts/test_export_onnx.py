# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/export_onnx.py``: onnxruntime gives the checkpoint's logits (optional extra ``onnx``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import export_onnx  # scripts/ is on sys.path (tests/conftest.py)
from bundle.config import build_network

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "export_onnx.py"
CONFIGS = REPO / "configs"
#: small sizes: a ResNet-10 cut after stage 2 on 32 x 32 slices
OVERRIDES = {"image_size": [32, 32], "backbone_depth": 10, "feature_stage": 2}


def _checkpoint(method: str, path: Path, resumable: bool) -> torch.nn.Module:
    """A checkpoint of ``method``'s network with non-trivial BatchNorm statistics; returns the network."""
    torch.manual_seed(0)
    network, _ = build_network([CONFIGS / "common.json", CONFIGS / "methods" / f"{method}.json"], OVERRIDES)
    with torch.no_grad():  # a few training-mode passes move the running statistics away from (0, 1)
        for _ in range(3):
            network(torch.rand(2, 4, 1, 32, 32) * 2.0)
    network.eval()
    state = network.state_dict()
    torch.save({"model": state, "epoch": 1} if resumable else state, path)
    return network


@pytest.mark.parametrize(
    "method, with_mask, resumable",
    [
        ("mims_cnn", True, False),  # MIMS-CNN, bags padded in a batch, from models/model.pt
        ("mims_cnn", False, True),  # MIMS-CNN, image input alone, from a resumable checkpoint
        ("mi_pre_conv", True, False),  # a baseline: one conv layer + top-k
        ("mims_max_inst", True, False),  # a per-slice network (max-inst aggregation)
    ],
)
def test_onnxruntime_gives_the_checkpoint_logits(method, with_mask, resumable, tmp_path):
    import numpy as np

    script = export_onnx
    ckpt = tmp_path / "model.pt"
    network = _checkpoint(method, ckpt, resumable)
    output = tmp_path / f"{method}.onnx"
    argv = ["--method", method, "--ckpt", str(ckpt), "--output", str(output), "--bag-shape", "1", "6", "1", "32", "32"]
    argv += ["--override"] + [f"{k}={v}".replace(" ", "") for k, v in OVERRIDES.items()] + ["--verify"]
    assert script.main(argv + ([] if with_mask else ["--no-mask"])) == 0

    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == (["image", "mask"] if with_mask else ["image"])
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "slices", 1, 32, 32]

    # other B and N than the export's example; the second bag padded (3 real slices of 5)
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    image = torch.rand(2, 5, 1, 32, 32)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2]) if with_mask else None
    feeds = {"image": image.numpy()} if mask is None else {"image": image.numpy(), "mask": mask.numpy()}
    (logits,) = session.run(["logits"], feeds)
    with torch.no_grad():
        expected = network(image, mask)
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-5)
    if with_mask:  # an all-True mask is the unmasked network
        (unmasked,) = session.run(["logits"], {"image": image.numpy(), "mask": np.ones((2, 5), dtype=bool)})
        with torch.no_grad():
            np.testing.assert_allclose(unmasked, network(image).numpy(), rtol=1e-4, atol=1e-5)


def test_checkpoint_of_another_network_is_refused(tmp_path):
    script = export_onnx
    ckpt = tmp_path / "model.pt"
    _checkpoint("mi_pre_conv", ckpt, resumable=False)
    with pytest.raises(ValueError, match=r"(?s)does not fit MIMSCNN: .*Missing key"):
        script.main(["--method", "mims_cnn", "--ckpt", str(ckpt), "--output", str(tmp_path / "x.onnx")])
    assert not (tmp_path / "x.onnx").exists()
