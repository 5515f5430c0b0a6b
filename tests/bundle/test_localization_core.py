# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Gradient x input on hand-built networks with known heatmaps; slice scores and key slices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bundle.localization import GradientTimesInput, default_layer, key_slices, slice_scores
from networks import MIMSCNN, target_margin


class WeightedSum(nn.Module):
    """logit_1 = sum over slices and pixels of W * feat(x), logit_0 = -logit_1; ``feat`` is the identity
    (a 1x1 conv with weight 1), optionally followed by 2x2 average pooling, and optionally applied to an
    extra copy of the input (a two-call "pyramid"). d logit_1 / d feat = W, so the heatmap is W * x."""

    def __init__(self, weight: torch.Tensor, pool: bool = False, twice: bool = False) -> None:
        super().__init__()
        self.feat = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.feat.weight)
        self.register_buffer("w", weight)
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()
        self.twice = twice

    def forward(self, x, mask=None):
        b, n = x.shape[:2]
        slices = x.flatten(0, 1)
        if mask is not None:
            slices = slices[mask.flatten()]
        maps = [self.feat(slices)] + ([self.feat(slices)] if self.twice else [])
        total = sum((self.pool(m) * self.w).sum(dim=(1, 2, 3)) for m in maps)
        per_bag = (
            torch.zeros(b * n).index_put((mask.flatten().nonzero().squeeze(1),), total) if mask is not None else total
        )
        logit = per_bag.reshape(b, n).sum(dim=1)
        return torch.stack([-logit, logit], dim=1)


W = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
X = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[0.5, 0.0], [1.0, 2.0]]]])[None]  # [B=1, N=2, C=1, 2, 2]


@pytest.mark.parametrize("layer", ["feat", "input"])
def test_known_heatmap_of_the_class_of_interest(layer):
    heatmaps, logits = GradientTimesInput(WeightedSum(W), layer=layer)(X, class_index=1)
    t = W * X[0, :, 0]  # [[0, 2], [6, -4]] and [[0, 0], [2, -2]]; bag maximum 6
    expected = torch.round(255 * t.clamp(min=0) / 6.0)
    torch.testing.assert_close(heatmaps[0], expected)
    assert logits.tolist() == [[-4.0, 4.0]]


def test_logit_value_of_the_toy_network():
    # slice 0: 0*1 + 1*2 + 2*3 - 1*4 = 4; slice 1: 0 + 0 + 2 - 2 = 0 -> logit 4
    assert WeightedSum(W)(X).tolist() == [[-4.0, 4.0]]


def test_other_class_flips_the_sign_and_per_slice_scaling():
    heatmaps, _ = GradientTimesInput(WeightedSum(W), layer="feat")(X, class_index=0)
    t = (-W * X[0, :, 0]).clamp(min=0)  # only the -1 weights remain: 4 and 2
    torch.testing.assert_close(heatmaps[0], torch.round(255 * t / 4.0))
    per_slice, _ = GradientTimesInput(WeightedSum(W), layer="feat", per_slice=True)(X, class_index=1)
    torch.testing.assert_close(per_slice[0, 1], torch.tensor([[0.0, 0.0], [255.0, 0.0]]))


def test_coarse_layer_is_rounded_then_interpolated_to_the_input_size():
    # avg-pooled feature map 1x1 per slice: gradient W (1x1 weight 1.0) times mean(x): 2.5 and 0.875
    net = WeightedSum(torch.ones(1, 1), pool=True)
    heatmaps, _ = GradientTimesInput(net, layer="pool")(X, class_index=1)
    assert heatmaps.shape == (1, 2, 2, 2)
    torch.testing.assert_close(heatmaps[0, 0], torch.full((2, 2), 255.0))
    torch.testing.assert_close(heatmaps[0, 1], torch.full((2, 2), float(round(255 * 0.875 / 2.5))))


def test_padding_slices_get_zero_and_repeated_layer_calls_are_summed():
    mask = torch.tensor([[True, False]])
    heatmaps, _ = GradientTimesInput(WeightedSum(W, twice=True), layer="feat")(X, mask, class_index=1)
    torch.testing.assert_close(heatmaps[0, 1], torch.zeros(2, 2))
    t = (W * X[0, 0, 0]).clamp(min=0)  # both calls give W * x; their sum scales to the same P
    torch.testing.assert_close(heatmaps[0, 0], torch.round(255 * t / 6.0))


def test_network_mode_is_restored_and_bad_layer_is_named():
    net = MIMSCNN(1, 2, backbone_depth=10, feature_stage=2).train()
    GradientTimesInput(net)(torch.rand(1, 2, 1, 32, 32))
    assert net.training
    assert default_layer(net) == "backbone.layer2" and default_layer(WeightedSum(W)) == "input"
    with pytest.raises(ValueError, match="layer 'backbone.layer9' is not a submodule of MIMSCNN"):
        GradientTimesInput(net, layer="backbone.layer9")
    with pytest.raises(ValueError, match="class_index"):
        GradientTimesInput(net)(torch.rand(1, 2, 1, 32, 32), class_index=2)


def test_slice_scores_add_up_to_the_margin_without_bias():
    torch.manual_seed(0)
    net = MIMSCNN(1, 3, 10, 2, k=3).eval()
    x = torch.rand(2, 4, 1, 32, 32)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    scores, logits = slice_scores(net, x, mask, class_index=2)
    bias_margin = target_margin(net.classifier.bias[None].detach().expand(2, 3), torch.tensor([2, 2]))
    margin = target_margin(logits, torch.tensor([2, 2]))
    torch.testing.assert_close(scores.masked_fill(~mask, 0).sum(dim=1), margin - bias_margin, atol=1e-5, rtol=1e-5)
    assert bool((scores[1, 2:] == float("-inf")).all())


def test_instance_networks_score_slices_by_their_own_prediction():
    torch.manual_seed(0)
    net = MIMSCNN(1, 2, 10, 2, instance_aggregation="max").eval()
    x = torch.rand(1, 3, 1, 32, 32)
    scores, _ = slice_scores(net, x, class_index=1)
    with torch.no_grad():
        slice_logits = net.instance_logits(x)[0]
    torch.testing.assert_close(scores[0], slice_logits[:, 1] - slice_logits[:, 0])
    with pytest.raises(ValueError, match="class_index"):
        slice_scores(net, x, class_index=[0, 1])


def test_key_slices_rank_and_skip_padding():
    scores = torch.tensor([[0.1, 0.5, -0.2, float("-inf")]])
    ranked = key_slices(scores, torch.tensor([[10, 11, 12, -1]]), top=5)
    assert ranked == [[
        {"slice": 11, "position": 1, "score": 0.5},
        {"slice": 10, "position": 0, "score": 0.1},
        {"slice": 12, "position": 2, "score": -0.2},
    ]]


@pytest.mark.parametrize("name", sorted(__import__("bundle.methods", fromlist=["METHODS"]).METHODS))
def test_every_method_network_gets_heatmaps_and_key_slices(name):
    import json

    from monai.bundle import ConfigParser

    from bundle.methods import method_config
    from bundle_testing import CONFIGS, TINY

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(method_config(name))])
    parser.update({**TINY, "num_classes": 2})
    net = parser.get_parsed_content("network_def")
    x = torch.rand(2, 3, 1, 32, 48)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    heatmaps, logits = GradientTimesInput(net)(x, mask)
    assert heatmaps.shape == (2, 3, 32, 48) and logits.shape == (2, 2)
    assert float(heatmaps.min()) >= 0 and float(heatmaps.max()) <= 255 and float(heatmaps[1, 2].abs().sum()) == 0
    scores, _ = slice_scores(net, x, mask)
    ranked = key_slices(scores, top=2)
    assert [len(r) for r in ranked] == [2, 2] and all(k["position"] < 2 for k in ranked[1])
    assert json.loads(json.dumps(ranked)) == ranked
