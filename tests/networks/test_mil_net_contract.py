# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MILNet as a BagNetwork: exact chunked forward, parameter groups, explanation layer, top-k sources."""

from __future__ import annotations

import pytest
import torch
from monai.networks import eval_mode

from networks import MIMSCNN, BagNetwork, FeatPyra, MIPre, MIPreConv, decode_feature_index

MASK = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])

CHUNK_CASES = [
    ({}, 3),
    ({"instance_aggregation": "max"}, 2),
    ({"instance_aggregation": "mean"}, 1),
    ({"pooling": "mean"}, 3),
    ({"input_scales": (0.5, 1.0), "scales": (1.0,)}, 4),
]


@pytest.mark.parametrize("kwargs, chunk_size", CHUNK_CASES)
def test_forward_chunked_equals_forward_eager_and_scripted(kwargs, chunk_size):
    torch.manual_seed(0)
    net = MIMSCNN(in_channels=1, num_classes=3, backbone_depth=10, feature_stage=2, k=3, **kwargs)
    x = torch.rand(2, 7, 1, 32, 32)
    with eval_mode(net), torch.no_grad():
        expected = net(x, MASK)
        torch.testing.assert_close(net.forward_chunked(x, MASK, chunk_size), expected, atol=1e-5, rtol=0)
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted.forward_chunked(x, MASK, chunk_size), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        net.forward_chunked(x, MASK, 0)


@pytest.mark.parametrize("net", [MIMSCNN(1, 2, 10, 2), MIPreConv(1, 2, 10, 2), FeatPyra(1, 2, 10, 2)])
def test_parameter_groups_split_backbone_from_the_rest(net):
    assert isinstance(net, BagNetwork)
    groups = net.parameter_groups()
    assert {id(p) for p in groups["backbone"]} == {id(p) for p in net.backbone.parameters()}
    all_ids = [id(p) for g in groups.values() for p in g]
    assert sorted(all_ids) == sorted(id(p) for p in net.parameters())  # each parameter exactly once
    assert net.explanation_layer() == "backbone.layer2"
    assert net.explanation_layer() in dict(net.named_modules())


@pytest.mark.parametrize(
    "index, expected",
    [(7, (0, 1, 0, 1)), (13, (1, 0, 0, 1)), (15, (1, 1, 0, 1)), (0, (0, 0, 0, 0)), (11, (0, 1, 1, 2))],
)
def test_decode_feature_index(index, expected):
    # branches of 2x3 and 1x2 cells, 2 slices: branch 0 holds 12 elements, branch 1 holds 4
    decoded = decode_feature_index(torch.tensor([index]), [(2, 3), (1, 2)], num_slices=2)
    assert tuple(int(decoded[k][0]) for k in ("branch", "slice", "y", "x")) == expected


def test_decode_rejects_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        decode_feature_index(torch.tensor([16]), [(2, 3), (1, 2)], num_slices=2)


@pytest.mark.parametrize(
    "net", [MIMSCNN(1, 3, 10, 2, k=3), FeatPyra(1, 3, 10, 2), MIPre(1, 3, 10, 2, input_scales=(0.5, 1.0))]
)
def test_topk_sources_point_at_the_pooled_activations(net):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 1, 32, 48)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    net.train()
    prov = net.topk_sources(x, mask)
    assert net.training  # mode restored
    with torch.no_grad():
        maps = net.eval().instance_maps(x, mask)
    for b in range(2):
        for c in range(net.out_channels):
            for r in range(prov["value"].shape[2]):
                i, n, y, xx = (int(prov[k][b, c, r]) for k in ("branch", "slice", "y", "x"))
                assert maps[i][b, n, c, y, xx] == prov["value"][b, c, r]
                assert mask[b, n]
    assert bool((prov["center_y"] < 32).all()) and bool((prov["center_x"] < 48).all())


@pytest.mark.parametrize("kwargs", [{"instance_aggregation": "max"}, {"pooling": "mean"}])
def test_topk_sources_need_top_k_pooling_over_the_bag(kwargs):
    net = MIMSCNN(1, 2, 10, 2, **kwargs)
    with pytest.raises(ValueError, match="does not pool the bag with top-k"):
        net.topk_sources(torch.rand(1, 2, 1, 32, 32))
