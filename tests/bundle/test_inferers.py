# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
from __future__ import annotations

import pytest
import torch
from monai.networks import eval_mode
from torch import nn

from bundle.inferers import ChunkedBagInferer
from networks import MIMSCNN


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return MIMSCNN(in_channels=1, num_classes=3, backbone_depth=10, feature_stage=2, k=3)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 50])
def test_chunked_equals_full_pass(network, chunk_size):
    x = torch.rand(2, 7, 1, 32, 32)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    with eval_mode(network), torch.no_grad():
        expected = network(x, mask=mask)
        result = ChunkedBagInferer(chunk_size)(x, network, mask=mask)
        scripted = torch.jit.script(network)
        result_scripted = ChunkedBagInferer(chunk_size)(x, scripted, mask=mask)
    assert torch.allclose(result, expected, atol=1e-5)
    assert torch.allclose(result_scripted, expected, atol=1e-5)


def test_training_mode_and_plain_networks_run_in_one_call(network):
    calls = []

    class Plain(nn.Module):
        def forward(self, x):
            calls.append(x.shape)
            return x.mean(dim=(1, 2, 3, 4))[:, None]

    ChunkedBagInferer(2)(torch.rand(1, 5, 1, 4, 4), Plain().eval())
    assert calls == [torch.Size([1, 5, 1, 4, 4])]
    network.train()
    x = torch.rand(2, 6, 1, 32, 32)
    out = ChunkedBagInferer(2)(x, network)
    assert out.shape == (2, 3) and out.requires_grad
    network.eval()


def test_invalid_chunk_size():
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ChunkedBagInferer(0)


@pytest.mark.parametrize(
    "kwargs, method, calls_per_chunk_size",
    [
        ({"instance_aggregation": "max"}, "instance_logits", {1: 7, 3: 3}),
        ({"instance_aggregation": "mean"}, "instance_logits", {1: 7, 3: 3}),
        ({"pooling": "mean"}, "instance_features", {1: 1, 3: 1}),  # mean over the bag: one call
        ({"input_scales": (0.5, 1.0), "scales": (1.0,)}, "instance_features", {1: 7, 3: 3}),
    ],
)
def test_variants_chunk_exactly_or_run_whole(kwargs, method, calls_per_chunk_size):
    torch.manual_seed(1)
    net = MIMSCNN(in_channels=1, num_classes=3, backbone_depth=10, feature_stage=2, k=3, **kwargs)
    x = torch.rand(2, 7, 1, 32, 32)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    seen = []
    original = getattr(net, method)

    def spy(bag, bag_mask=None):
        seen.append(bag.shape[1])
        return original(bag, bag_mask)

    with eval_mode(net), torch.no_grad():
        expected = net(x, mask=mask)
        setattr(net, method, spy)
        for chunk_size, calls in calls_per_chunk_size.items():
            seen.clear()
            torch.testing.assert_close(ChunkedBagInferer(chunk_size)(x, net, mask=mask), expected, atol=1e-5, rtol=0)
            assert len(seen) == calls and sum(seen) == 7


def test_scripted_network_is_chunked_too(network):
    """model.ts keeps ``forward_chunked`` (TorchScript-exported): the inferer streams it as the eager network."""
    scripted = torch.jit.script(network)
    assert hasattr(scripted, "forward_chunked")
    x = torch.rand(1, 9, 1, 32, 32)
    with eval_mode(network), torch.no_grad():
        torch.testing.assert_close(ChunkedBagInferer(4)(x, scripted.eval()), network(x), atol=1e-5, rtol=0)
