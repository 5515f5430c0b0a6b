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
    "kwargs, mode",
    [
        ({"instance_aggregation": "max"}, "instances"),
        ({"instance_aggregation": "mean"}, "instances"),
        ({"pooling": "mean"}, ""),
        ({"input_scales": (0.5, 1.0), "scales": (1.0,)}, "topk"),
    ],
)
def test_variants_chunk_exactly_or_run_whole(kwargs, mode):
    torch.manual_seed(1)
    net = MIMSCNN(in_channels=1, num_classes=3, backbone_depth=10, feature_stage=2, k=3, **kwargs)
    assert ChunkedBagInferer._chunk_mode(net) == mode
    x = torch.rand(2, 7, 1, 32, 32)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    with eval_mode(net), torch.no_grad():
        expected = net(x, mask=mask)
        for chunk_size in (1, 3):
            torch.testing.assert_close(ChunkedBagInferer(chunk_size)(x, net, mask=mask), expected, atol=1e-5, rtol=0)
