# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""PatchScoringAttentionMIL: the exact selection and head on hand-built embeddings, padding, chunking,
TorchScript, gradients, and the attention weights as instance scores."""

from __future__ import annotations

import pytest
import torch
from monai.networks import eval_mode

from networks.nets import PatchScoringAttentionMIL

SMALL = {"in_channels": 1, "num_classes": 2, "backbone_depth": 10, "feature_stage": 2, "attention_dim": 8}


def _build(seed: int = 0, **kwargs) -> PatchScoringAttentionMIL:
    torch.manual_seed(seed)
    return PatchScoringAttentionMIL(**{**SMALL, "num_selected": 2, **kwargs})


def test_selection_and_head_are_exact_on_hand_built_embeddings():
    net = _build(embedding_dim=None)
    d = net.embedding_dim
    h = torch.zeros(1, 4, d)
    h[0, :, 0] = torch.tensor([0.5, 3.0, -1.0, 2.0])  # the scorer reads feature 0
    with torch.no_grad():
        net.scorer.weight.zero_()
        net.scorer.bias.zero_()
        net.scorer.weight[1, 0] = 1.0  # instance logits (0, h_0): evidence = h_0
    logits, weights = net.head_from_embeddings(h)
    assert (weights[0] > 0).tolist() == [False, True, False, True]  # the two best: instances 1 and 3
    assert torch.allclose(weights.sum(), torch.tensor(1.0))
    z = (weights[0, :, None] * h[0]).sum(dim=0)
    scored = torch.tensor([0.0, (3.0 + 2.0) / 2])
    expected = 0.5 * (net.classifier(z) + scored)
    assert torch.allclose(logits[0], expected, atol=1e-6)
    # with a padding mask the best real ones are chosen: instance 1 is padding here
    _, weights = net.head_from_embeddings(h, torch.tensor([[True, False, True, True]]))
    assert (weights[0] > 0).tolist() == [True, False, False, True]


def test_short_bags_select_all_their_instances():
    net = _build(num_selected=5)
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    with eval_mode(net), torch.no_grad():
        weights = net.attention_weights(x, mask)
    assert (weights[0] > 0).all() and (weights[1] > 0).tolist() == [True, False, False]


class _AttentionWeights(torch.nn.Module):
    """The attention weights of the head, as a module to trace."""

    def __init__(self, net: PatchScoringAttentionMIL) -> None:
        super().__init__()
        self.net = net

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net.head_from_embeddings(h)[1]


def test_a_traced_network_selects_for_every_bag_length():
    """Tracing (as the ONNX export does) on a bag of 4 keeps the selection right for shorter and longer bags: the
    number selected is not frozen to min(num_selected, 4)."""
    net = _build(num_selected=6).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        traced = torch.jit.trace(_AttentionWeights(net), torch.rand(1, 4, net.embedding_dim))
        for n in (3, 4, 10):
            h = torch.rand(2, n, net.embedding_dim)
            selected = (traced(h) > 0).sum(dim=1)
            assert selected.tolist() == [min(6, n)] * 2
            assert torch.equal(traced(h), net.head_from_embeddings(h)[1])


@pytest.mark.parametrize("num_classes", [1, 2, 3])
def test_evidence_against_class_zero(num_classes):
    net = _build(num_classes=num_classes)
    logits = torch.tensor([[[1.0, 4.0, 2.0][:num_classes], [0.0, -1.0, 3.0][:num_classes]]])
    expected = {1: [1.0, 0.0], 2: [3.0, -1.0], 3: [3.0, 3.0]}[num_classes]
    assert net.evidence(logits)[0].tolist() == expected


def test_padding_changes_nothing_and_chunking_is_exact():
    net = _build()
    x = torch.randn(2, 5, 1, 32, 32)
    padded = torch.cat([x, torch.randn(2, 2, 1, 32, 32) * 50], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 2] * 2)
    with eval_mode(net), torch.no_grad():
        expected = net(x)
        assert torch.allclose(net(padded, mask), expected, atol=1e-5)
        for chunk_size in (1, 3):
            assert torch.allclose(net.forward_chunked(padded, mask, chunk_size), expected, atol=1e-5)


@pytest.mark.parametrize("instance_pooling", ["mean", "max"])
def test_torchscript_round_trip(round_trip, instance_pooling):
    net = _build(instance_pooling=instance_pooling).eval()
    assert net.instance_pooling == instance_pooling
    scripted = round_trip(net)
    x = torch.randn(2, 4, 1, 32, 32)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    with torch.no_grad():
        assert torch.allclose(scripted(x, mask), net(x, mask), atol=1e-5)
        assert torch.allclose(scripted.forward_chunked(x, mask, 2), net(x, mask), atol=1e-5)
        assert torch.allclose(scripted.attention_weights(x, mask, 0), net.attention_weights(x, mask), atol=1e-6)


@pytest.mark.parametrize("instance_pooling", ["mean", "max"])
def test_every_parameter_gets_a_gradient(instance_pooling):
    net = _build(embedding_dim=16, instance_pooling=instance_pooling)
    x = torch.randn(2, 4, 1, 32, 32)
    net(x, torch.tensor([[True] * 4, [True, True, False, False]])).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_instance_scores_are_the_attention_weights():
    net = _build().eval()
    x = torch.randn(1, 5, 1, 32, 32)
    scores, logits = net.instance_scores(x)
    with torch.no_grad():
        assert torch.allclose(scores, net.attention_weights(x)) and torch.allclose(logits, net(x))
    assert int((scores > 0).sum()) == 2 and net.network_name == "PatchScoringAttentionMIL"
    assert net.attention.normalization == "squared_average"


@pytest.mark.parametrize("value", [0, True, 1.5])
def test_invalid_num_selected(value):
    with pytest.raises(ValueError, match="num_selected"):
        _build(num_selected=value)
