# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""AttentionMIL: shapes, padding invariance, batch-norm statistics, exact chunking, TorchScript, gradients,
arguments reaching its blocks, pretrained weights, and attention weights as instance scores."""

from __future__ import annotations

import pytest
import torch
from monai.networks import eval_mode

from networks.blocks import ATTENTION_NORMALIZATIONS
from networks.nets import AttentionMIL, BagNetwork

SMALL = {"in_channels": 1, "num_classes": 3, "backbone_depth": 10, "feature_stage": 2, "attention_dim": 16}
VARIANTS = {
    "plain": SMALL,
    "gated": {**SMALL, "gated": True},
    "embedded": {**SMALL, "embedding_dim": 24},
    "squared_average": {**SMALL, "attention_normalization": "squared_average"},
    "max_pooled": {**SMALL, "instance_pooling": "max"},
}
NAMES = sorted(VARIANTS)


def _build(name: str, seed: int = 0) -> AttentionMIL:
    torch.manual_seed(seed)
    return AttentionMIL(**VARIANTS[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 1, 32, 32), (1, 1, 1, 24, 40)])
def test_shapes(name, shape):
    net = _build(name)
    x = torch.randn(shape)
    with eval_mode(net), torch.no_grad():
        logits = net(x)
        h = net.instance_embeddings(x)
        weights = net.attention_weights(x)
    assert logits.shape == (shape[0], 3)
    assert h.shape == (shape[0], shape[1], net.embedding_dim)
    assert weights.shape == shape[:2] and torch.allclose(weights.sum(dim=1), torch.ones(shape[0]))
    assert net.embedding_dim == (24 if name == "embedded" else 128)


@pytest.mark.parametrize("name", NAMES)
def test_padding_changes_nothing(name):
    net = _build(name)
    x = torch.randn(2, 4, 1, 32, 32)
    padded = torch.cat([x, torch.randn(2, 2, 1, 32, 32) * 100], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 4 + [False] * 2])
    with eval_mode(net), torch.no_grad():
        assert torch.allclose(net(padded, mask), net(x), atol=1e-5)
        weights = net.attention_weights(padded, mask)
    assert torch.count_nonzero(weights[:, 4:]) == 0


def test_padding_does_not_enter_batch_norm_statistics():
    x = torch.randn(2, 3, 1, 32, 32)
    padded = torch.cat([x, torch.full((2, 2, 1, 32, 32), 50.0)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 2] * 2)
    nets = [_build("plain"), _build("plain")]
    nets[0](x)
    nets[1](padded, mask)
    for a, b in zip(nets[0].state_dict().values(), nets[1].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_forward_chunked_is_exact(name, chunk_size):
    net = _build(name)
    x = torch.randn(2, 5, 1, 32, 32)
    mask = torch.tensor([[True] * 5, [True, False, True, True, False]])
    with eval_mode(net), torch.no_grad():
        expected = net(x, mask)
        assert torch.allclose(net.forward_chunked(x, mask, chunk_size), expected, atol=1e-5)
        assert torch.allclose(
            net.attention_weights(x, mask, chunk_size=chunk_size), net.attention_weights(x, mask), atol=1e-6
        )
    with pytest.raises(ValueError, match="chunk_size"):
        net.forward_chunked(x, mask, 0)


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_round_trip(name, round_trip):
    net = _build(name).eval()
    scripted = round_trip(net)
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True] * 3, [True, True, False]])
    with torch.no_grad():
        for m in (None, mask):
            assert torch.allclose(scripted(x, m), net(x, m), atol=1e-5)
        assert torch.allclose(scripted.forward_chunked(x, mask, 2), net(x, mask), atol=1e-5)
        assert torch.allclose(scripted.attention_weights(x, mask, 1), net.attention_weights(x, mask), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    net = _build(name)
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True] * 3, [True, True, False]])
    net(x, mask).sum().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, pname


def test_arguments_reach_the_blocks():
    net = AttentionMIL(
        in_channels=2, num_classes=4, backbone_depth=18, feature_stage=3, backbone_max_pool=False,
        embedding_dim=20, attention_dim=12, gated=True, attention_normalization="squared_average",
    )
    assert (net.backbone.depth, net.backbone.feature_stage, net.backbone.max_pool) == (18, 3, False)
    assert net.backbone.in_channels == 2 and net.in_channels == 2 and net.num_classes == 4
    assert net.embedding is not None and net.embedding[0].in_features == 256 and net.embedding[0].out_features == 20
    pool = net.attention
    assert (pool.in_features, pool.hidden_features, pool.gated, pool.normalization) == (20, 12, True, "squared_average")
    assert net.classifier.in_features == 20 and net.classifier.out_features == 4
    assert net.network_name == "GatedAttentionMIL" and _build("plain").network_name == "AttentionMIL"
    assert net.explanation_layer() == "backbone.layer3"
    assert dict(net.named_modules())["backbone.layer3"] is net.backbone.layer3


def test_parameter_groups_split_backbone_and_head():
    net = _build("embedded")
    groups = net.parameter_groups()
    backbone_ids = {id(p) for p in net.backbone.parameters()}
    assert {id(p) for p in groups["backbone"]} == backbone_ids
    assert all(id(p) not in backbone_ids for p in groups["head"])
    assert len(groups["backbone"]) + len(groups["head"]) == len(list(net.parameters()))


def test_pretrained_weights_load_into_the_backbone(tmp_path, torchvision_resnet):
    reference = torchvision_resnet(depth=10, in_channels=3)
    path = tmp_path / "resnet10.pth"
    torch.save(reference.state_dict(), path)
    net = AttentionMIL(in_channels=3, backbone_depth=10, feature_stage=2, pretrained_weights=str(path))
    assert torch.equal(net.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.backbone.layer2[0].bn1.running_var, reference.layer2[0].bn1.running_var)


@pytest.mark.parametrize("normalization", ATTENTION_NORMALIZATIONS)
def test_instance_scores_are_the_attention_weights(normalization):
    torch.manual_seed(4)
    net = AttentionMIL(**{**SMALL, "attention_normalization": normalization}).eval()
    x = torch.randn(2, 4, 1, 32, 32)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    scores, logits = net.instance_scores(x, mask, torch.tensor([0, 2]))
    assert not scores.requires_grad and not logits.requires_grad
    with torch.no_grad():
        assert torch.allclose(scores, net.attention_weights(x, mask))
        assert torch.allclose(logits, net(x, mask))
    assert torch.allclose(net.instance_scores(x, mask)[0], scores)  # the class of interest does not matter


@pytest.mark.parametrize("pooling, reduce", [("mean", torch.mean), ("max", torch.amax)])
def test_instance_pooling_reduces_each_feature_map(pooling, reduce):
    """Without an embedding layer an instance's embedding is its backbone map reduced over (h, w)."""
    torch.manual_seed(2)
    net = AttentionMIL(**{**SMALL, "instance_pooling": pooling}).eval()
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True] * 3, [True, False, False]])
    with torch.no_grad():
        h = net.instance_embeddings(x, mask)
        maps = net.backbone(x.flatten(0, 1))  # [6, C, 4, 4]
    expected = reduce(maps, dim=(2, 3)).reshape(2, 3, -1)
    assert net.instance_pooling == pooling
    assert torch.allclose(h[0], expected[0], atol=1e-6) and torch.allclose(h[1, 0], expected[1, 0], atol=1e-6)
    assert torch.count_nonzero(h[1, 1:]) == 0  # padding


def test_is_a_bag_network():
    assert isinstance(_build("plain"), BagNetwork)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": True}, "embedding_dim"),
        ({"attention_dim": 0}, "hidden_features"),
        ({"attention_normalization": "sparsemax"},
         r"normalization must be one of \['softmax', 'squared_average'\], got 'sparsemax'"),
        ({"instance_pooling": "avg"}, r"instance_pooling must be one of \['mean', 'max'\], got 'avg'"),
        ({"backbone_depth": 11}, "11"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionMIL(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "x, mask, message",
    [
        (torch.zeros(2, 1, 32, 32), None, r"\[B, N, 1, H, W\]"),
        (torch.zeros(2, 3, 2, 32, 32), None, r"\[B, N, 1, H, W\]"),
        (torch.zeros(2, 3, 1, 32, 32), torch.ones(2, 3), "bool"),
        (torch.zeros(2, 3, 1, 32, 32), torch.ones(3, 2, dtype=torch.bool), r"\[2, 3\]"),
    ],
)
def test_invalid_inputs(x, mask, message):
    with pytest.raises(ValueError, match=message):
        _build("plain")(x, mask)
