# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
from __future__ import annotations

import pytest
import torch
from torch import nn

from bundle.collate import PadBagCollate, pad_bag_collate
from bundle.metrics import stacked_output
from bundle.optim import backbone_head_param_groups
from networks import BagNetwork


def test_pad_bag_collate_exact():
    a = {"image": torch.ones(2, 1, 2, 2), "label": 0, "slice_indices": torch.tensor([4, 5])}
    b = {"image": torch.full((3, 1, 2, 2), 2.0), "label": 1, "slice_indices": torch.tensor([1, 2, 3])}
    batch = pad_bag_collate([a, b])
    assert batch["image"].shape == (2, 3, 1, 2, 2)
    assert torch.equal(batch["image"][0, 2], torch.zeros(1, 2, 2))
    assert torch.equal(batch["image"][1], torch.full((3, 1, 2, 2), 2.0))
    assert batch["mask"].tolist() == [[True, True, False], [True, True, True]]
    assert batch["slice_indices"].tolist() == [[4, 5, -1], [1, 2, 3]]
    assert batch["label"].tolist() == [0, 1]


def test_collate_custom_keys_and_empty():
    out = PadBagCollate(bag_keys=("img",), index_keys=(), mask_key="valid")([{"img": torch.zeros(1, 3, 2, 2)}])
    assert out["valid"].tolist() == [[True]]
    with pytest.raises(ValueError, match="empty batch"):
        pad_bag_collate([])


class _Net(BagNetwork):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.classifier = nn.Linear(2, 1)

    def parameter_groups(self):
        return {"backbone": list(self.backbone.parameters()), "head": list(self.classifier.parameters())}


class _NoBackbone(BagNetwork):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(2, 1)


@pytest.mark.parametrize(
    "scale, expected", [(0.5, [("backbone", 0.05), ("head", 0.1)]), (1.0, [("backbone", 0.1), ("head", 0.1)])]
)
def test_param_groups(scale, expected):
    net = _Net()
    groups = backbone_head_param_groups(net, 0.1, scale)
    assert [(g["name"], pytest.approx(g["lr"])) for g in groups] == expected
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in net.parameters()}


def test_param_groups_freeze_and_errors():
    net = _Net()
    groups = backbone_head_param_groups(net, 0.1, 0.0)
    assert [g["name"] for g in groups] == ["head"]
    assert not any(p.requires_grad for p in net.backbone.parameters())
    with pytest.raises(ValueError, match="not a networks.BagNetwork"):
        backbone_head_param_groups(nn.Linear(1, 1), 0.1)
    with pytest.raises(ValueError, match=">= 0"):
        backbone_head_param_groups(_Net(), 0.1, -1)


def test_param_groups_without_backbone_group():
    net = _NoBackbone()
    groups = backbone_head_param_groups(net, 0.1, 0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 0.1)]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in net.parameters()}


def test_stacked_output():
    out = [
        {"pred": torch.tensor([0.2, 0.8]), "label": torch.tensor(1)},
        {"pred": torch.tensor([0.9, 0.1]), "label": torch.tensor(0)},
    ]
    pred, label = stacked_output(["pred", "label"])(out)
    assert torch.equal(pred, torch.tensor([[0.2, 0.8], [0.9, 0.1]]))
    assert torch.equal(label, torch.tensor([1, 0]))


def test_prepare_bag_batch_gives_plain_tensors_and_mask():
    from monai.data import MetaTensor

    from bundle.prepare_batch import PrepareBagBatch

    batch = pad_bag_collate(
        [
            {"image": MetaTensor(torch.ones(2, 1, 2, 2), meta={"filename_or_obj": "a.nii"}), "label": 1},
            {"image": MetaTensor(torch.ones(1, 1, 2, 2), meta={"filename_or_obj": "b.nii"}), "label": 0},
        ]
    )
    image, label, args, kwargs = PrepareBagBatch()(batch, torch.device("cpu"))
    assert type(image) is torch.Tensor and type(label) is torch.Tensor
    assert image.shape == (2, 2, 1, 2, 2) and label.tolist() == [1, 0] and args == ()
    assert kwargs["mask"].tolist() == [[True, True], [True, False]]
    assert batch["image"].meta["filename_or_obj"] == ["a.nii", "b.nii"]  # the batch keeps its metadata
