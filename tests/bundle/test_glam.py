# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""GLAM-style global-local saliency: window selection and fusion on exact arrays, a hand-built network
whose saliency is known (it responds to bright pixels), the bundle's networks, argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bundle.localization.glam import GlobalLocalSaliency, fuse_maps, select_windows
from networks import MIMSCNN, MIPre

# ------------------------------------------------------------------------------------- window selection


@pytest.mark.parametrize(
    "peaks, window, num_windows, max_overlap, expected",
    [
        # one bright pixel: the first (smallest row, then column) window covering it
        ([(5, 7)], (4, 4), 1, 0.0, [[2, 4, 6, 8]]),
        # two peaks far apart, disjoint windows: one window on each, the stronger (listed first) first
        ([(3, 3), (12, 12)], (4, 4), 2, 0.0, [[0, 0, 4, 4], [9, 9, 13, 13]]),
        # a window larger than the map is clipped to the map
        ([(5, 7)], (40, 8), 1, 0.0, [[0, 0, 16, 8]]),
        # rectangular windows
        ([(10, 1)], (2, 6), 1, 0.0, [[9, 0, 11, 6]]),
    ],
)
def test_select_windows_exact(peaks, window, num_windows, max_overlap, expected):
    m = torch.zeros(16, 16)
    for n, (y, x) in enumerate(peaks):
        m[y, x] = 1.0 - 0.1 * n
    windows, scores = select_windows(m, window, num_windows, max_overlap)
    assert windows.tolist() == expected
    area = min(window[0], 16) * min(window[1], 16)
    torch.testing.assert_close(scores, torch.tensor([1.0 - 0.1 * n for n in range(len(peaks))]) / area)


def test_select_windows_nms_disjoint_and_overlap_threshold():
    m = torch.zeros(16, 16)
    m[4:8, 4:8] = 1.0  # one 4x4 block: with disjoint windows the second lands on what is left
    disjoint, _ = select_windows(m, (4, 4), 2, 0.0)
    assert disjoint[0].tolist() == [4, 4, 8, 8]
    y0, x0, y1, x1 = disjoint[1].tolist()
    assert y1 <= 4 or y0 >= 8 or x1 <= 4 or x0 >= 8  # no pixel shared with the first
    # IoU of windows shifted by one pixel: 12 / 20 = 0.6; allowed at 0.6, not at 0.59
    shifted, _ = select_windows(m, (4, 4), 2, 0.6)
    assert shifted[1].tolist() in ([3, 4, 7, 8], [4, 3, 8, 7], [4, 5, 8, 9], [5, 4, 9, 8])
    apart, _ = select_windows(m, (4, 4), 2, 0.59)
    inter = max(0, 4 - abs(apart[1, 0] - 4)) * max(0, 4 - abs(apart[1, 1] - 4))
    assert inter / (32 - inter) <= 0.59


def test_select_windows_fewer_when_none_left():
    windows, scores = select_windows(torch.rand(8, 8), (6, 6), num_windows=3)
    assert windows.shape == (1, 4) and scores.shape == (1,)  # any two 6x6 windows in 8x8 overlap


# ------------------------------------------------------------------------------------------------ fusion


@pytest.mark.parametrize(
    "fusion, weight, inside",
    [("geometric", 0.5, 0.5), ("mean", 0.5, 0.625), ("mean", 0.0, 0.25), ("mean", 1.0, 1.0)],
)
def test_fuse_maps_exact(fusion, weight, inside):
    g = torch.full((6, 8), 0.25)
    fused = fuse_maps(g, [torch.ones(2, 3)], torch.tensor([[1, 2, 3, 5]]), fusion, weight)
    expected = g.clone()
    expected[1:3, 2:5] = inside
    torch.testing.assert_close(fused, expected)


def test_fuse_maps_overlap_keeps_larger_and_zero_local_cancels_geometric():
    g = torch.full((4, 4), 0.25)
    windows = torch.tensor([[0, 0, 2, 2], [1, 1, 3, 3]])
    fused = fuse_maps(g, [torch.ones(2, 2), torch.zeros(2, 2)], windows)
    expected = torch.full((4, 4), 0.25)
    expected[0:2, 0:2] = 0.5
    expected[1:3, 1:3] = torch.maximum(expected[1:3, 1:3], torch.zeros(2, 2))
    expected[1, 1] = 0.5  # overlap: max(0.5, 0)
    expected[1, 2] = expected[2, 1] = expected[2, 2] = 0.0
    torch.testing.assert_close(fused, expected)


def test_fuse_maps_rejects_bad_arguments():
    g = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="geometric"):
        fuse_maps(g, [torch.ones(2, 2)], torch.tensor([[0, 0, 2, 2]]), "product")
    with pytest.raises(ValueError, match="local_weight"):
        fuse_maps(g, [torch.ones(2, 2)], torch.tensor([[0, 0, 2, 2]]), "mean", 1.5)
    with pytest.raises(ValueError, match="local maps"):
        fuse_maps(g, [], torch.tensor([[0, 0, 2, 2]]))
    with pytest.raises(ValueError, match="shape"):
        fuse_maps(g, [torch.ones(3, 3)], torch.tensor([[0, 0, 2, 2]]))


# ---------------------------------------------------------------------- a network with known saliency


class BrightSpotNet(nn.Module):
    """logit_1 = sum of the squared 4x4 block means of the input, logit_0 = -logit_1.

    ``features`` is the identity (a 1x1 conv with weight 1) and ``down`` 4x4 average pooling, so at layer
    ``down`` gradient x input is ``2 f^2`` per block: the saliency is where bright pixels are, at a
    resolution of 4 input pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.features.weight)
        self.down = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        f = self.down(self.features(x.flatten(0, 1)))
        logit = (f**2).flatten(1).sum(dim=1).reshape(x.shape[0], x.shape[1]).sum(dim=1)
        return torch.stack([-logit, logit], dim=1)


def _spot_image(spots, size=128):
    img = torch.zeros(1, 1, 1, size, size)
    for y, x in spots:
        img[..., y - 1 : y + 2, x - 1 : x + 2] = 1.0  # 3x3 bright spot centred at (y, x)
    return img


def _mass_near(m: torch.Tensor, y: int, x: int, radius: float) -> float:
    yy, xx = torch.meshgrid(torch.arange(m.shape[0]), torch.arange(m.shape[1]), indexing="ij")
    near = ((yy - y) ** 2 + (xx - x) ** 2) <= radius**2
    return float(m[near].sum() / m.sum())


def test_window_on_bright_spot_and_fused_map_sharper_there():
    spot = (90, 40)
    glam = GlobalLocalSaliency(BrightSpotNet(), input_size=32, window_size=32, layer="down")
    out = glam(_spot_image([spot]))
    assert out.logits.shape == (1, 2) and out.target.tolist() == [1]
    assert out.global_map.shape == out.fused_map.shape == (1, 128, 128)
    y0, x0, y1, x1 = out.windows[0, 0].tolist()
    assert y1 - y0 == 32 and x1 - x0 == 32 and y0 <= spot[0] < y1 and x0 <= spot[1] < x1
    g, f = out.global_map[0], out.fused_map[0]
    assert 0.0 <= float(g.min()) and 0.8 < float(g.max()) <= 1.0  # 1 at a cell centre, interpolated
    assert 0.0 <= float(f.min()) and float(f.max()) <= 1.0
    # the global map's blob is 16 full-resolution pixels per cell (128 -> 32, then 4x4 blocks); the
    # window is seen at full resolution, 4 pixels per cell: the fused map concentrates near the spot
    assert _mass_near(f, *spot, 6) > 2 * _mass_near(g, *spot, 6)
    half_g, half_f = int((g >= 0.5 * g.max()).sum()), int((f >= 0.5 * f.max()).sum())
    assert half_f < half_g / 4
    peak = divmod(int(f.argmax()), 128)
    assert math.dist(peak, spot) <= 3
    # outside the window the fused map is the global map
    outside = torch.ones(128, 128, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    torch.testing.assert_close(f[outside], g[outside])
    # the window's logits are the network's on the crop
    torch.testing.assert_close(out.local_logits[0, 0], BrightSpotNet()(_spot_image([spot])[..., y0:y1, x0:x1])[0])


def test_two_spots_two_disjoint_windows_and_resized_windows():
    spots = [(20, 100), (100, 20)]
    glam = GlobalLocalSaliency(
        BrightSpotNet(), input_size=32, window_size=48, num_windows=2, local_size=64, layer="down"
    )
    out = glam(_spot_image(spots))
    boxes = out.windows[0].tolist()
    for y, x in spots:
        assert sum(y0 <= y < y1 and x0 <= x < x1 for y0, x0, y1, x1 in boxes) == 1
    assert out.local_maps.shape == (1, 2, 48, 48)
    assert not torch.isnan(out.window_scores).any()


def test_batch_with_fewer_windows_class_index_and_mode_restored():
    net = BrightSpotNet().train()
    glam = GlobalLocalSaliency(net, input_size=32, window_size=(100, 90), num_windows=2, layer="down")
    x = torch.cat([_spot_image([(60, 60)]), _spot_image([(10, 120)])])
    out = glam(x, class_index=[1, 1])
    assert net.training
    assert out.windows.shape == (2, 2, 4)
    assert (out.windows[:, 1] == -1).all()  # no second 100x90 window fits beside the first in 128x128
    assert torch.isnan(out.window_scores[:, 1]).all() and torch.isnan(out.local_logits[:, 1]).all()
    assert (out.local_maps[:, 1] == 0).all()
    for i, (y, x) in enumerate([(60, 60), (10, 120)]):
        y0, x0, y1, x1 = out.windows[i, 0].tolist()
        assert y0 <= y < y1 and x0 <= x < x1


# ------------------------------------------------------------------------------- the bundle's networks


@pytest.mark.parametrize(
    "make_network",
    [
        lambda: MIMSCNN(in_channels=1, num_classes=2, backbone_depth=10, feature_stage=2, kernel_groups={2: 2, 3: 2}),
        lambda: MIPre(in_channels=3, num_classes=3, backbone_depth=10, feature_stage=1),
    ],
    ids=["MIMSCNN", "MIPre"],
)
@pytest.mark.parametrize("fusion", ["geometric", "mean"])
def test_bundle_networks(make_network, fusion):
    torch.manual_seed(0)
    network = make_network()
    x = torch.rand(2, 1, network.backbone.in_channels, 96, 80)
    glam = GlobalLocalSaliency(network, input_size=(48, 40), window_size=(48, 40), fusion=fusion)
    out = glam(x)
    network.eval()
    with torch.no_grad():
        expected = network(torch.nn.functional.interpolate(x[:, 0], size=(48, 40), mode="area")[:, None])
    torch.testing.assert_close(out.logits, expected)
    assert out.global_map.shape == out.fused_map.shape == (2, 96, 80)
    assert out.windows.shape == (2, 1, 4)
    assert (out.windows[:, 0, 2:] - out.windows[:, 0, :2] == torch.tensor([48, 40])).all()
    for m in (out.global_map, out.fused_map, out.local_maps):
        assert torch.isfinite(m).all() and float(m.min()) >= 0.0 and float(m.max()) <= 1.0


# -------------------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": (32, 32, 32)}, "input_size"),
        ({"window_size": "big"}, "window_size"),
        ({"window_size": (32, 0)}, "window_size"),
        ({"local_size": 2.5}, "local_size"),
        ({"num_windows": 0}, "num_windows"),
        ({"num_windows": True}, "num_windows"),
        ({"fusion": "product"}, "geometric"),
        ({"local_weight": -0.1}, "local_weight"),
        ({"max_overlap": 1.0}, "max_overlap"),
        ({"layer": "no_such_layer"}, "no_such_layer"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    args = {"input_size": 32, "window_size": 32, "layer": "down", **kwargs}
    with pytest.raises(ValueError, match=message):
        GlobalLocalSaliency(BrightSpotNet(), **args)


@pytest.mark.parametrize("shape", [(1, 1, 64, 64), (1, 2, 1, 64, 64)])
def test_rejects_inputs_that_are_not_bags_of_one_image(shape):
    glam = GlobalLocalSaliency(BrightSpotNet(), input_size=32, window_size=32, layer="down")
    with pytest.raises(ValueError, match=r"\[B, 1, C, H, W\]"):
        glam(torch.zeros(shape))


@pytest.mark.parametrize("kwargs", [{"num_windows": 0}, {"max_overlap": -0.5}, {"window_size": (0, 3)}])
def test_select_windows_rejects_bad_arguments(kwargs):
    args = {"window_size": (2, 2), **kwargs}
    with pytest.raises(ValueError):
        select_windows(torch.zeros(4, 4), **args)
    with pytest.raises(ValueError, match="one map"):
        select_windows(torch.zeros(1, 4, 4), (2, 2))
