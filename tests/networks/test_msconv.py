# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from networks.blocks import MSConv

# (in_channels, kernel_groups, scales, mode, input shape, expected output shapes)
SHAPE_CASES = [
    (8, {2: 8, 3: 10}, (0.5, 0.75, 1.0), "bilinear", (2, 8, 16, 16), [(2, 18, 8, 8), (2, 18, 12, 12), (2, 18, 16, 16)]),
    (4, {"1": 20, "2": 40}, (1.0,), "bilinear", (1, 4, 7, 5), [(1, 60, 7, 5)]),  # str keys (JSON), histology config
    (3, {3: 2, 1: 1}, (0.25, 2.0), "nearest", (1, 3, 5, 6), [(1, 3, 1, 2), (1, 3, 10, 12)]),  # 1.5 rounds half up
    (2, {4: 3}, (0.5,), "bicubic", (1, 2, 5, 5), [(1, 3, 3, 3)]),  # 2.5 -> 3; even kernel 4
    (2, {2: 1}, (0.25, 0.5), "area", (3, 2, 1, 1), [(3, 1, 1, 1), (3, 1, 1, 1)]),  # never below 1
    (5, {2: 10, 3: 10}, (0.5, 0.75, 1.0), "nearest-exact", (1, 5, 2, 2), [(1, 20, 1, 1), (1, 20, 2, 2), (1, 20, 2, 2)]),
]


@pytest.mark.parametrize("in_channels, kernel_groups, scales, mode, shape, expected", SHAPE_CASES)
def test_shapes(in_channels, kernel_groups, scales, mode, shape, expected):
    msconv = MSConv(in_channels, kernel_groups=kernel_groups, scales=scales, mode=mode)
    outputs = msconv(torch.randn(shape))
    assert [tuple(y.shape) for y in outputs] == expected
    assert msconv.output_sizes(shape[2], shape[3]) == [s[2:] for s in expected]
    assert msconv.out_channels == sum(kernel_groups.values())


def test_defaults_are_the_papers():
    msconv = MSConv(16)
    assert msconv.kernel_groups == {2: 8, 3: 10}
    assert msconv.scales == (0.5, 0.75, 1.0)
    assert msconv.mode == "bilinear" and msconv.align_corners is False
    assert msconv.out_channels == 18


def test_same_kernels_on_every_scale_with_same_padding():
    """Each scale equals an independent reference: resize, then conv2d with symmetric padding, cropped."""
    torch.manual_seed(0)
    msconv = MSConv(3, kernel_groups={3: 2, 2: 4}, scales=(0.5, 1.0))  # unsorted on purpose
    x = torch.randn(2, 3, 9, 9)
    small, full = msconv(x)
    conv2, conv3 = msconv.convs  # sorted by kernel size
    assert conv2.kernel_size == (2, 2) and conv3.kernel_size == (3, 3)
    for y, inp in ((full, x), (small, F.interpolate(x, size=(5, 5), mode="bilinear", align_corners=False))):
        # even kernel: pad 1 on both sides gives one extra row/column at the top/left; the layer pads right/bottom
        ref2 = F.conv2d(inp, conv2.weight, conv2.bias, padding=1)[:, :, 1:, 1:]
        ref3 = F.conv2d(inp, conv3.weight, conv3.bias, padding=1)
        torch.testing.assert_close(y, torch.cat([ref2, ref3], dim=1))


def test_resize_mode_reaches_interpolation():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 8, 8)
    bilinear = MSConv(2, kernel_groups={1: 1}, scales=(0.5,), mode="bilinear")
    nearest = MSConv(2, kernel_groups={1: 1}, scales=(0.5,), mode="nearest")
    nearest.load_state_dict(bilinear.state_dict())
    assert nearest.mode == "nearest" and nearest.align_corners is None
    conv = bilinear.convs[0]
    torch.testing.assert_close(nearest(x)[0], conv(F.interpolate(x, size=(4, 4), mode="nearest")))
    reference = conv(F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False))
    torch.testing.assert_close(bilinear(x)[0], reference)


def test_init_and_bias():
    msconv = MSConv(4, kernel_groups={1: 3, 2: 3})
    assert all(torch.count_nonzero(c.bias) == 0 for c in msconv.convs)
    assert all(c.bias is None for c in MSConv(4, bias=False).convs)


def test_gradients():
    msconv = MSConv(4, kernel_groups={2: 3, 3: 2})
    sum(y.square().sum() for y in msconv(torch.randn(2, 4, 6, 6))).backward()
    for name, p in msconv.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_torchscript_round_trip(round_trip):
    msconv = MSConv(4, kernel_groups={"2": 3, "3": 2}, scales=(0.5, 0.75, 1.0)).eval()
    x = torch.randn(2, 4, 7, 6)
    scripted = round_trip(msconv)
    for a, b in zip(scripted(x), msconv(x)):
        torch.testing.assert_close(a, b)
    assert scripted.output_sizes(7, 6) == msconv.output_sizes(7, 6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"kernel_groups": {}},
        {"kernel_groups": {0: 3}},
        {"kernel_groups": {2: 0}},
        {"kernel_groups": {"a": 3}},
        {"kernel_groups": {2: 1, "2": 3}},
        {"kernel_groups": [(2, 8)]},
        {"scales": ()},
        {"scales": (0.2,)},
        {"scales": (1.0, 2.5)},
        {"scales": (0.5, 0.5)},
        {"scales": "0.5"},
        {"mode": "linear"},
        {"mode": "trilinear"},
    ],
)
def test_invalid_arguments(kwargs):
    kwargs = {"in_channels": 4, **kwargs}
    with pytest.raises(ValueError):
        MSConv(**kwargs)


@pytest.mark.parametrize("shape", [(2, 4, 8), (2, 3, 8, 8)])
def test_invalid_input(shape):
    with pytest.raises(ValueError, match=r"\[M, 4, h, w\]"):
        MSConv(4)(torch.randn(shape))
