# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from networks.blocks import MagnitudeNorm

# (num_scales, channels, map sizes)
SHAPE_CASES = [
    (3, 18, [(8, 8), (12, 12), (16, 16)]),
    (1, 60, [(7, 5)]),
    (2, 1, [(1, 2), (3, 3)]),
]


@pytest.mark.parametrize("num_scales, channels, sizes", SHAPE_CASES)
def test_shapes(num_scales, channels, sizes):
    norm = MagnitudeNorm(num_scales, channels)
    maps = [torch.randn(2, channels, h, w) for h, w in sizes]
    assert [y.shape for y in norm(maps)] == [m.shape for m in maps]
    assert len(norm.norms) == num_scales and norm.scale_weight.shape == (num_scales, channels)
    assert all(bn.num_features == channels for bn in norm.norms)


def test_per_scale_and_channel_normalisation():
    """Train mode: y_ij = sw_ij * BN_ij(x_ij), with statistics of scale i only."""
    torch.manual_seed(0)
    norm = MagnitudeNorm(2, 3)
    with torch.no_grad():
        norm.scale_weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]))
    maps = [torch.randn(4, 3, 5, 5) * 3 + 1, torch.randn(4, 3, 2, 2) - 2]
    outputs = norm(maps)
    for i, (x, y) in enumerate(zip(maps, outputs)):
        ref = F.batch_norm(x, None, None, training=True, eps=norm.norms[i].eps)
        torch.testing.assert_close(y, ref * norm.scale_weight[i][None, :, None, None])
    # each scale tracked its own running statistics
    assert not torch.allclose(norm.norms[0].running_mean, norm.norms[1].running_mean)


def test_eval_mode_uses_running_statistics():
    norm = MagnitudeNorm(1, 2).eval()
    x = torch.randn(1, 2, 3, 3)
    torch.testing.assert_close(norm([x])[0], x / (1 + norm.norms[0].eps) ** 0.5)


def test_gradients():
    norm = MagnitudeNorm(2, 3)
    sum((y * torch.randn_like(y)).sum() for y in norm([torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)])).backward()
    for name, p in norm.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_torchscript_round_trip(round_trip):
    norm = MagnitudeNorm(2, 3).eval()
    maps = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    for a, b in zip(round_trip(norm)(maps), norm(maps)):
        torch.testing.assert_close(a, b)


def test_wrong_number_of_maps():
    with pytest.raises(ValueError, match="expects 3 maps"):
        MagnitudeNorm(3, 2)([torch.randn(2, 2, 2, 2)] * 2)


@pytest.mark.parametrize("args", [(0, 3), (3, 0), (2.0, 3), (True, 3)])
def test_invalid_arguments(args):
    with pytest.raises(ValueError):
        MagnitudeNorm(*args)
