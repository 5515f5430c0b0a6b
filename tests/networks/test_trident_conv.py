# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""TridentConv: exact values, shapes, TorchScript, gradients, argument checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from networks.blocks import TridentConv

TRIDENT_CASES = [
    # in_channels, out_channels, kernel_size, dilations, input shape
    (4, 6, 3, (1, 2, 3), (2, 4, 7, 9)),
    (3, 2, 2, (1, 2), (1, 3, 5, 4)),
    (1, 1, 1, (1,), (3, 1, 2, 2)),
]


@pytest.mark.parametrize("in_channels, out_channels, kernel_size, dilations, shape", TRIDENT_CASES)
def test_trident_shapes_and_sizes(in_channels, out_channels, kernel_size, dilations, shape):
    trident = TridentConv(in_channels, out_channels, kernel_size, dilations)
    outputs = trident(torch.randn(shape))
    assert [tuple(y.shape) for y in outputs] == [(shape[0], out_channels, shape[2], shape[3])] * len(dilations)
    assert trident.output_sizes(shape[2], shape[3]) == [(shape[2], shape[3])] * len(dilations)


def test_trident_branches_share_one_kernel_at_their_dilation():
    torch.manual_seed(0)
    trident = TridentConv(2, 3, kernel_size=3, dilations=(1, 2))
    x = torch.randn(1, 2, 6, 6)
    one, two = trident(x)
    torch.testing.assert_close(one, F.conv2d(x, trident.weight, trident.bias, padding=1))
    torch.testing.assert_close(two, F.conv2d(x, trident.weight, trident.bias, padding=2, dilation=2))
    assert [name for name, _ in trident.named_parameters()] == ["weight", "bias"]


def test_trident_even_kernel_pads_more_on_the_right():
    trident = TridentConv(1, 1, kernel_size=2, dilations=(2,), bias=False)
    with torch.no_grad():
        trident.weight.fill_(1.0)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0
    (y,) = trident(x)
    # total padding 2 per axis, 1 left/top: output (i, j) sums x at rows i-1, i+1 and columns j-1, j+1
    expected = torch.zeros(4, 4)
    expected[1, 1] = 1.0
    torch.testing.assert_close(y[0, 0], expected)


def test_trident_gradients_and_torchscript(round_trip):
    trident = TridentConv(3, 4, dilations=(1, 3))
    x = torch.randn(2, 3, 8, 8)
    sum(y.square().sum() for y in trident(x)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trident.parameters())
    scripted = round_trip(trident)
    for a, b in zip(scripted(x), trident(x)):
        torch.testing.assert_close(a, b)
    assert scripted.output_sizes(5, 6) == trident.output_sizes(5, 6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"in_channels": 0}, "in_channels"),
        ({"in_channels": 2, "out_channels": -1}, "out_channels"),
        ({"in_channels": 2, "kernel_size": 0}, "kernel_size"),
        ({"in_channels": 2, "dilations": ()}, "dilations"),
        ({"in_channels": 2, "dilations": (1, 1)}, "distinct"),
        ({"in_channels": 2, "dilations": (0, 1)}, "distinct"),
    ],
)
def test_trident_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TridentConv(**kwargs)


def test_trident_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\[M, 3, h, w\]"):
        TridentConv(3)(torch.randn(1, 2, 4, 4))
