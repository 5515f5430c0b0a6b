# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.export`` (TorchScript with the merged config) and ``bundle.export_onnx`` (ONNX; optional extra)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bundle.config import CONFIGS, build_network, config_parser
from bundle.decision import archive_decision, save_decision
from bundle.export import export_checkpoint, load_torchscript
from bundle.export_onnx import BagModel, example_bag_shape, export_onnx

INFERENCE = [CONFIGS / "common.json", CONFIGS / "inference.json"]
#: small sizes: a ResNet-10 cut after stage 2 on 32 x 32 slices
SMALL = {"image_size": [32, 32], "backbone_depth": 10, "feature_stage": 2}


def test_load_torchscript_names_a_plain_archive(tmp_path):
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "plain.ts"))
    with pytest.raises(ValueError, match="plain.ts has no extra file"):
        load_torchscript(tmp_path / "plain.ts")


@pytest.mark.parametrize("resumable", [False, True])
def test_export_checkpoint_gives_the_checkpoint_logits(resumable, tmp_path):
    torch.manual_seed(0)
    network, _ = build_network(INFERENCE, SMALL)
    state = network.state_dict()
    torch.save({"model": state, "epoch": 2} if resumable else state, tmp_path / "ckpt.pt")
    result = export_checkpoint(tmp_path / "ckpt.pt", tmp_path / "out" / "model.ts", INFERENCE,
                               CONFIGS / "metadata.json", SMALL)
    assert result.path == tmp_path / "out" / "model.ts" and result.path.is_file()
    assert result.difference <= 1e-5 and not result.network.training
    assert result.config["image_size"] == [32, 32] and result.metadata["version"]
    assert all(torch.equal(v, result.network.state_dict()[k]) for k, v in state.items())
    # no decision file next to the checkpoint: the archive says argmax
    assert result.metadata["decision"] is None and result.config["decision_threshold"] is None
    assert archive_decision(result.metadata) is None


@pytest.mark.parametrize(
    "setting, expected",
    [("auto", 0.3125), (0.4, 0.4), (None, None)],
)
def test_export_embeds_the_decision(setting, expected, tmp_path):
    network, _ = build_network(INFERENCE, SMALL)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    sidecar = {"positive_class": 1, "threshold": 0.3125, "criterion": "youden", "split": "validation",
               "num_cases": 8, "sensitivity": 1.0, "specificity": 0.75, "epoch": 3}
    save_decision(sidecar, tmp_path / "model.pt")
    result = export_checkpoint(tmp_path / "model.pt", tmp_path / "model.ts", INFERENCE, CONFIGS / "metadata.json",
                               {**SMALL, "decision_threshold": setting})
    decision = archive_decision(result.metadata)
    assert (None if decision is None else decision["threshold"]) == expected
    assert result.config["decision_threshold"] == expected  # the archive's config resolves the same threshold
    if setting == "auto":
        assert decision == {**sidecar, "source": str(tmp_path / "model.decision.json")}
    _, metadata, _ = load_torchscript(result.path)
    assert metadata["decision"] == decision and metadata["version"]


def test_export_checkpoint_names_a_checkpoint_of_another_network(tmp_path):
    network, _ = build_network([*INFERENCE, CONFIGS / "methods" / "mi_pre_conv.json"], SMALL)
    torch.save(network.state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt does not fit MIMSCNN"):
        export_checkpoint(tmp_path / "other.pt", tmp_path / "model.ts", INFERENCE, CONFIGS / "metadata.json", SMALL)
    assert not (tmp_path / "model.ts").exists()


def test_example_bag_shape_is_one_bag_of_the_configs():
    parser = config_parser([CONFIGS / "common.json"], {"image_size": [40, 56], "eval_num_slices": 7})
    assert example_bag_shape(parser) == [1, 7, int(parser.get_parsed_content("in_channels")), 40, 56]


@pytest.mark.parametrize("bag_shape", [[1, 4, 1, 32], [1, 0, 1, 32, 32], [1, 4, 1, 32, 32, 1]])
def test_export_onnx_refuses_a_bad_bag_shape(bag_shape, tmp_path):
    with pytest.raises(ValueError, match="bag_shape must be 5 positive sizes"):
        export_onnx(torch.nn.Identity(), tmp_path / "x.onnx", bag_shape)
    assert not (tmp_path / "x.onnx").exists()


class _MaskRecorder(torch.nn.Module):
    """Returns ``[B, 1]`` logits: the number of real slices per bag (all N without a mask)."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return torch.full((x.shape[0], 1), float(x.shape[1]))
        return mask.sum(dim=1, keepdim=True).float()


def test_bag_model_passes_the_mask_only_with_mask():
    x = torch.zeros(2, 5, 1, 4, 4)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    assert BagModel(_MaskRecorder())(x, mask).flatten().tolist() == [5.0, 3.0]
    assert BagModel(_MaskRecorder(), with_mask=False)(x, mask).flatten().tolist() == [5.0, 5.0]


@pytest.mark.parametrize("method", ["mi_pre_conv", "mims_cnn", "abmil", "abmil_gated", "patch_scoring_attention"])
def test_export_onnx_and_verify_onnx(tmp_path, method):
    """The paper's networks and the attention networks (softmax and squared-average attention, the top-scoring
    selection) export to ONNX and give the network's logits, with a padding mask."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from bundle.export_onnx import verify_onnx

    network, _ = build_network([CONFIGS / "common.json", CONFIGS / "methods" / f"{method}.json"], SMALL)
    network.eval()
    path = export_onnx(network, tmp_path / "sub" / "model.onnx", [1, 4, 1, 32, 32], with_mask=True)
    assert path == Path(tmp_path / "sub" / "model.onnx")
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["image", "mask"]
    assert verify_onnx(path, network, [1, 4, 1, 32, 32], with_mask=True) < 1e-4


def test_archive_records_its_checkpoint_and_warns_when_model_pt_changes(tmp_path, caplog):
    from bundle.export import checkpoint_mismatch
    from bundle.checksums import sha256

    network, _ = build_network(INFERENCE, SMALL)
    models = tmp_path / "models"
    models.mkdir()
    torch.save(network.state_dict(), models / "model.pt")
    built_from = sha256(models / "model.pt")
    result = export_checkpoint(models / "model.pt", models / "model.ts", INFERENCE, CONFIGS / "metadata.json", SMALL)
    assert result.metadata["checkpoint"] == {"file": "model.pt", "sha256": built_from}
    caplog.clear()
    with caplog.at_level("WARNING", logger="bundle.export"):
        load_torchscript(models / "model.ts")
    assert [r for r in caplog.record_tuples if r[0] == "bundle.export"] == []
    torch.save({k: v + 1 for k, v in network.state_dict().items()}, models / "model.pt")  # a newer model promoted
    now = sha256(models / "model.pt")
    message = (f"{models / 'model.ts'} was built from a checkpoint model.pt with sha256 {built_from[:12]}, but "
               f"{models / 'model.pt'} has sha256 {now[:12]}: the archive does not hold that model (export it again "
               f"from {models / 'model.pt'} if it should)")
    with caplog.at_level("WARNING", logger="bundle.export"):
        load_torchscript(models / "model.ts")  # still loads: a warning, not an error
    assert [r for r in caplog.record_tuples if r[0] == "bundle.export"] == [("bundle.export", 30, message)]
    assert checkpoint_mismatch(models / "model.ts", result.metadata) == message
    assert checkpoint_mismatch(models / "model.ts", result.metadata, tmp_path / "absent.pt") is None
    assert checkpoint_mismatch(models / "model.ts", {"decision": None}) is None  # an archive from before the record
