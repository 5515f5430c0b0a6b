# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import pytest
import torch

from networks.nets import MIMSCNN

SMALL = {"backbone_depth": 10}

# (constructor kwargs, input shape [B, N, C, H, W], mask as lists or None, expected logits shape)
SHAPE_CASES = [
    ({**SMALL, "in_channels": 1}, (2, 1, 1, 32, 32), None, (2, 2)),  # 2-D images: N = 1
    ({**SMALL, "in_channels": 3, "num_classes": 4}, (2, 1, 3, 32, 32), None, (2, 4)),
    ({"backbone_depth": 18, "feature_stage": 3}, (1, 6, 1, 32, 32), None, (1, 2)),  # 3-D bag of 6 slices
    ({**SMALL, "in_channels": 1}, (3, 4, 1, 32, 32), [[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], (3, 2)),  # mixed N
    ({**SMALL, "kernel_groups": {"1": 4, "2": 6}, "scales": (1.0,), "k": 2}, (2, 3, 1, 32, 48), None, (2, 2)),
    (
        {**SMALL, "feature_stage": 2, "scales": (0.25, 0.5, 2.0), "k": 9, "resize_mode": "nearest"},
        (1, 2, 1, 32, 32),
        None,
        (1, 2),
    ),
    ({"backbone_depth": 50, "feature_stage": 2, "in_channels": 3}, (1, 1, 3, 32, 32), None, (1, 2)),
]


def _mask(mask):
    return None if mask is None else torch.tensor(mask, dtype=torch.bool)


@pytest.mark.parametrize("kwargs, shape, mask, expected", SHAPE_CASES)
def test_shapes(kwargs, shape, mask, expected):
    net = MIMSCNN(**kwargs).eval()
    x, mask = torch.randn(shape), _mask(mask)
    with torch.no_grad():
        logits = net(x, mask)
        feats = net.instance_features(x, mask)
        maps = net.instance_maps(x, mask)
    assert logits.shape == expected
    sizes = net.feature_map_sizes(shape[3], shape[4])
    assert [tuple(m.shape) for m in maps] == [(shape[0], shape[1], net.out_channels, h, w) for h, w in sizes]
    assert feats.shape == (shape[0], net.heads[0].out_channels, shape[1] * sum(h * w for h, w in sizes))
    if mask is not None:  # padding slices are -inf, real slices finite
        per_slice = maps[0].isfinite().flatten(2).all(-1)
        assert torch.equal(per_slice, mask)
        assert bool((maps[0][~mask] == float("-inf")).all())


def test_feature_layout_is_scale_major():
    """flat index = offset_i + n * h_i * w_i + y * w_i + x, offset_i = N * sum_{i' < i} h_i' * w_i'."""
    net = MIMSCNN(**SMALL, feature_stage=3).eval()
    x = torch.randn(2, 3, 1, 48, 32)
    with torch.no_grad():
        maps, feats = net.instance_maps(x), net.instance_features(x)
    n_slices = x.shape[1]
    offset = 0
    for i, (h, w) in enumerate(net.feature_map_sizes(48, 32)):
        for n in range(n_slices):
            for yy in range(h):
                for xx in range(w):
                    flat = offset + n * h * w + yy * w + xx
                    assert torch.equal(feats[:, :, flat], maps[i][:, n, :, yy, xx])
        offset += n_slices * h * w
    assert offset == feats.shape[-1]


def test_forward_is_pool_of_instance_features():
    net = MIMSCNN(**SMALL).eval()
    x = torch.randn(2, 2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.forward_head(net.pool(net.instance_features(x))))


def test_mask_equivalence_with_garbage_padding():
    torch.manual_seed(0)
    net = MIMSCNN(**SMALL).eval()
    short, long = torch.randn(1, 2, 1, 32, 32), torch.randn(1, 5, 1, 32, 32)
    padded = torch.cat([short, torch.randn(1, 3, 1, 32, 32) * 100], dim=1)
    x = torch.cat([padded, long])  # bag 0: 2 real slices + 3 garbage; bag 1: 5 real slices
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    with torch.no_grad():
        batched = net(x, mask)
        torch.testing.assert_close(batched[0:1], net(short))
        torch.testing.assert_close(batched[1:2], net(long))
        torch.testing.assert_close(net(long, torch.ones(1, 5, dtype=torch.bool)), net(long))
        empty = net(short, torch.zeros(1, 2, dtype=torch.bool))  # no real slice: pooled zeros -> bias
    torch.testing.assert_close(empty, net.classifier.bias[None])


def test_padding_stays_out_of_batchnorm_statistics():
    torch.manual_seed(0)
    net_padded, net_plain = MIMSCNN(**SMALL), MIMSCNN(**SMALL)
    net_plain.load_state_dict(net_padded.state_dict())
    real = torch.randn(2, 2, 1, 32, 32)
    x = torch.cat([real, torch.randn(2, 2, 1, 32, 32) * 100], dim=1)
    mask = torch.tensor([[True, True, False, False]] * 2)
    net_padded(x, mask)
    net_plain(real)
    for (name, a), b in zip(net_padded.named_buffers(), net_plain.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_chunked_inference_equals_forward():
    """Top-k of chunk-wise instance features, concatenated, pooled: the bundle's chunked inferer."""
    torch.manual_seed(0)
    net = MIMSCNN(**SMALL, k=5).eval()
    x = torch.randn(2, 7, 1, 32, 32)
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    with torch.no_grad():
        full = net(x, mask)
        tops = []
        for start in range(0, x.shape[1], 3):
            feats = net.instance_features(x[:, start : start + 3], mask[:, start : start + 3])
            tops.append(torch.topk(feats, min(net.pool.k, feats.shape[-1]), dim=-1).values)
        chunked = net.forward_head(net.pool(torch.cat(tops, dim=-1)))
    torch.testing.assert_close(chunked, full)


def test_torchscript_round_trip(round_trip):
    net = MIMSCNN(**SMALL, kernel_groups={"2": 3, "3": 4}).eval()
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    scripted = round_trip(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, mask), net(x, mask))
        torch.testing.assert_close(scripted(x), net(x))
        torch.testing.assert_close(scripted.instance_features(x, mask), net.instance_features(x, mask))
        pooled = net.pool(net.instance_features(x))
        torch.testing.assert_close(scripted.forward_head(pooled), net.forward_head(pooled))
    assert scripted.feature_map_sizes(64, 64) == net.feature_map_sizes(64, 64)
    with pytest.raises(torch.jit.Error, match="expects x of shape"):
        scripted(x[0])


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = MIMSCNN(**SMALL, k=5).train()
    x = torch.randn(2, 3, 1, 32, 32)  # 3 slices x (1 + 1 + 1) positions >= k elements per channel
    mask = torch.tensor([[True, True, True], [True, True, False]])
    net(x, mask).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert bool(p.grad.abs().sum() > 0), name


def test_eval_is_deterministic_and_stateless():
    net = MIMSCNN(**SMALL).eval()
    x = torch.randn(2, 2, 1, 32, 32)
    attributes = set(vars(net))
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)
    assert set(vars(net)) == attributes


@pytest.mark.parametrize(
    "kwargs, check",
    [
        ({"kernel_groups": {2: 5, 4: 7}}, lambda n: n.heads[0].out_channels == 12 and n.classifier.in_features == 12),
        ({"kernel_groups": {2: 5, 4: 7}}, lambda n: n.magnitude_norm.channels == 12 and n.pool.k == 5),
        ({"scales": (0.5, 1.0)}, lambda n: len(n.magnitude_norm.norms) == 2 and n.heads[0].scales == (0.5, 1.0)),
        ({"feature_stage": 2}, lambda n: n.backbone.out_channels == 128 and n.backbone.stride == 8),
        ({"feature_stage": 2}, lambda n: n.heads[0].in_channels == 128),
        ({"backbone_depth": 18}, lambda n: n.backbone.depth == 18 and len(n.backbone.layer1) == 2),
        ({"in_channels": 3}, lambda n: n.backbone.conv1.in_channels == 3),
        ({"k": 3}, lambda n: n.pool.k == 3 and n.pool.weight_logits.shape == (3,)),
        ({"resize_mode": "nearest"}, lambda n: n.heads[0].mode == "nearest"),
        ({"num_classes": 5}, lambda n: n.classifier.out_features == 5),
        ({"backbone_max_pool": False}, lambda n: not n.backbone.max_pool and n.backbone.stride == 16),
        ({}, lambda n: n.backbone.max_pool and n.backbone.stride == 32),  # the default keeps the paper's stem
    ],
)
def test_arguments_reach_sub_blocks(kwargs, check):
    assert check(MIMSCNN(**{**SMALL, **kwargs}))


def test_pretrained_weights_reach_backbone(tmp_path, torchvision_resnet):
    ref = torchvision_resnet(10)
    path = tmp_path / "imagenet.pth"
    torch.save(ref.state_dict(), path)
    net = MIMSCNN(in_channels=3, backbone_depth=10, pretrained_weights=str(path))
    torch.testing.assert_close(net.backbone.layer4[0].conv2.weight, ref.layer4[0].conv2.weight)


def test_parameter_groups_partition_the_model():
    from bundle.optim import backbone_head_param_groups

    net = MIMSCNN(**SMALL)
    backbone, head = (g["params"] for g in backbone_head_param_groups(net, 0.01, 0.5))
    ids = [id(p) for p in backbone + head]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert {id(p) for p in net.backbone.parameters()} == {id(p) for p in backbone}
    assert any(p is net.pool.weight_logits for p in head) and any(p is net.classifier.weight for p in head)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"backbone_depth": 11},
        {"feature_stage": 0},
        {"scales": (3.0,)},
        {"k": 0},
        {"resize_mode": "linear"},
        {"kernel_groups": {}},
        {"num_classes": 0},
        {"in_channels": 0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        MIMSCNN(**{**SMALL, **kwargs})


@pytest.mark.parametrize(
    "shape, mask, message",
    [
        ((2, 1, 32, 32), None, r"\[B, N, 1, H, W\]"),
        ((2, 1, 3, 32, 32), None, r"\[B, N, 1, H, W\]"),
        ((2, 3, 1, 32, 32), torch.ones(2, 2, dtype=torch.bool), r"\[B, N\] = \[2, 3\]"),
        ((2, 3, 1, 32, 32), torch.ones(2, 3), "bool"),
    ],
)
def test_invalid_input(shape, mask, message):
    net = MIMSCNN(**SMALL)
    with pytest.raises(ValueError, match=message):
        net(torch.randn(shape), mask)
