# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MILNet warns when its MIL head would see a degenerate map (scale-1 map < 8x8 or a branch < 4x4)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from monai.networks import eval_mode

from networks import (
    MIMSCNN,
    MIN_BRANCH_MAP_SIZE,
    MIN_SCALE1_MAP_SIZE,
    FeatPyra,
    MIPre,
    MIPreTrident,
    ResNet34Scratch,
    SmallFeatureMapWarning,
)

COMMON = Path(__file__).resolve().parents[2] / "configs" / "common.json"
ADVICE = (
    "; the MIL head sees a degenerate map (the paper's setting: at least 8x8 at scale 1, so that the 1/2 scale is "
    "at least 4x4). "
)
#: the remedy the message suggests while the backbone has its stem max-pooling
NO_MAX_POOL = "a backbone without its stem max-pooling (backbone_max_pool=False halves every stride)"

# (network factory, slice size (H, W), expected message: None = no warning)
MESSAGE_CASES = [
    (lambda: MIMSCNN(1, 2, 10, 2), (64, 96), None),  # the bundle's default: 8x12, smallest scale 4x6
    (lambda: MIMSCNN(1, 2, 10, 2), (57, 57), None),  # the smallest square that passes: 8x8, 1/2 scale 4x4
    (lambda: MIMSCNN(1, 2, 10, 1), (32, 32), None),  # a shallower stage on small slices: 8x8 and 4x4
    (lambda: FeatPyra(1, 2, 10, 2), (64, 96), None),  # levels 16x24 and 8x12
    (lambda: MIPre(1, 2, 10, 2, input_scales=(0.5, 1.0)), (64, 96), None),  # pyramid level 0.5: 4x6
    (
        lambda: MIMSCNN(1, 2, 10, 2),
        (32, 32),
        "MIMSCNN on 32x32 slices: its scale-1 map (stage 2 = conv3_x, stride 8) is 4x4, below 8x8, and its "
        "smallest branch (input scale 1, stage 2 (conv3_x), MSConv scale 0.5) is 2x2, below 4x4 (2 of 3 branches "
        "are)" + ADVICE + "Use a larger image_size (slices of at least 57x57 pass), a shallower feature_stage "
        "(now 2), " + NO_MAX_POOL + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: MIMSCNN(1, 2, 10, 2),
        (56, 96),
        "MIMSCNN on 56x96 slices: its scale-1 map (stage 2 = conv3_x, stride 8) is 7x12, below 8x8" + ADVICE
        + "Use a larger image_size (slices of at least 57x57 pass), a shallower feature_stage (now 2), "
        + NO_MAX_POOL + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: MIMSCNN(1, 2, 10, 2, scales=(0.25, 1.0)),
        (64, 96),
        "MIMSCNN on 64x96 slices: its smallest branch (input scale 1, stage 2 (conv3_x), MSConv scale 0.25) is 2x3, "
        "below 4x4" + ADVICE + "Use a larger image_size (slices of at least 105x105 pass), a shallower "
        "feature_stage (now 2), " + NO_MAX_POOL + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: FeatPyra(1, 2, 10, 3),
        (64, 96),
        "FeatPyra-3,4 on 64x96 slices: its scale-1 map (stage 3 = conv4_x, stride 16) is 4x6, below 8x8" + ADVICE
        + "Use a larger image_size (slices of at least 113x113 pass), a shallower feature_stage (now 3), "
        + NO_MAX_POOL + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: MIPre(1, 2, 10, 1, input_scales=(0.25, 1.0)),
        (32, 32),
        "MIPre on 32x32 slices: its smallest branch (input scale 0.25, stage 1 (conv2_x), no head) is 2x2, below "
        "4x4" + ADVICE + "Use a larger image_size (slices of at least 50x50 pass), " + NO_MAX_POOL
        + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: MIPreTrident(1, 2, 10, 2),
        (32, 48),
        "MIPreTrident on 32x48 slices: its scale-1 map (stage 2 = conv3_x, stride 8) is 4x6, below 8x8" + ADVICE
        + "Use a larger image_size (slices of at least 57x57 pass), a shallower feature_stage (now 2), "
        + NO_MAX_POOL + " or milder down-scalings (MSConv scales, input_scales).",
    ),
    # without the stem's max-pooling every stride halves: 32x32 slices give the 8x8 / 4x4 maps that 57x57 needed
    (lambda: MIMSCNN(1, 2, 10, 2, backbone_max_pool=False), (32, 32), None),  # 4x4, 6x6, 8x8
    (lambda: MIMSCNN(1, 2, 10, 2, backbone_max_pool=False), (64, 96), None),  # 8x12, 12x18, 16x24
    (lambda: FeatPyra(1, 2, 10, 2, backbone_max_pool=False), (32, 32), None),  # levels 16x16 and 8x8
    (lambda: ResNet34Scratch(1, 2, backbone_max_pool=False), (128, 128), None),  # stride 16: 8x8
    (
        # the smallest square that passes is this backbone's (29x29 without the max-pooling, not 57x57), and the
        # option is no longer suggested
        lambda: MIMSCNN(1, 2, 10, 2, backbone_max_pool=False),
        (24, 40),
        "MIMSCNN on 24x40 slices: its scale-1 map (stage 2 = conv3_x, stride 4) is 6x10, below 8x8, and its "
        "smallest branch (input scale 1, stage 2 (conv3_x), MSConv scale 0.5) is 3x5, below 4x4" + ADVICE
        + "Use a larger image_size (slices of at least 29x29 pass), a shallower feature_stage (now 2) or milder "
        "down-scalings (MSConv scales, input_scales).",
    ),
    (
        lambda: ResNet34Scratch(1, 2, backbone_max_pool=False),
        (64, 96),
        "ResNet34Scratch on 64x96 slices: its scale-1 map (stage 4 = conv5_x, stride 16) is 4x6, below 8x8" + ADVICE
        + "Use a larger image_size (slices of at least 113x113 pass), a shallower feature_stage (now 4) or milder "
        "down-scalings (MSConv scales, input_scales).",
    ),
]


def forward_warnings(net, size):
    """The SmallFeatureMapWarning messages of one forward of a 2-slice bag of ``size`` slices."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with eval_mode(net), torch.no_grad():
            net(torch.rand(1, 2, 1, *size))
    return [str(w.message) for w in caught if issubclass(w.category, SmallFeatureMapWarning)]


def test_thresholds_and_warning_class():
    assert (MIN_SCALE1_MAP_SIZE, MIN_BRANCH_MAP_SIZE) == (8, 4)
    assert issubclass(SmallFeatureMapWarning, UserWarning)


@pytest.mark.parametrize("factory, size, expected", MESSAGE_CASES)
def test_small_map_message(factory, size, expected):
    net = factory()
    assert net.small_map_message(*size) == expected
    assert forward_warnings(net, size) == ([] if expected is None else [expected])


def test_default_bundle_geometry_does_not_warn():
    config = json.loads(COMMON.read_text(encoding="utf-8"))
    net = MIMSCNN(
        config["in_channels"],
        config["num_classes"],
        config["backbone_depth"],
        config["feature_stage"],
        kernel_groups=config["kernel_groups"],
        scales=config["scales"],
        backbone_max_pool=config["backbone_max_pool"],
    )
    assert net.feature_map_sizes(*config["image_size"]) == [(4, 6), (6, 9), (8, 12)]
    assert net.small_map_message(*config["image_size"]) is None
    assert forward_warnings(net, config["image_size"]) == []


def test_resnet34_scratch_on_default_slices_warns():
    # the full stride-32 ResNet-34 gives a 2x3 map on the bundle's 64x96 slices
    assert "is 2x3, below 8x8" in ResNet34Scratch(1, 2).small_map_message(64, 96)


def test_warns_once_per_size_and_changes_nothing():
    torch.manual_seed(0)
    net = MIMSCNN(1, 2, 10, 2, k=3)
    x = torch.rand(2, 3, 1, 32, 32)
    keys = list(net.state_dict())
    with eval_mode(net), torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = net(x)
        second = net(x)  # same size: no second warning
        net.forward_chunked(x, None, 2)
        net(torch.rand(1, 2, 1, 32, 40))  # another small size: one more
        net(torch.rand(1, 2, 1, 64, 96))  # a good size: none
    messages = [str(w.message) for w in caught if w.category is SmallFeatureMapWarning]
    assert [m.split(":")[0] for m in messages] == ["MIMSCNN on 32x32 slices", "MIMSCNN on 32x40 slices"]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert list(net.state_dict()) == keys  # the de-duplication set is no parameter or buffer
    assert net._warned_sizes == {(32, 32), (32, 40), (64, 96)}
    # another instance warns again: the set belongs to the instance
    assert len(forward_warnings(MIMSCNN(1, 2, 10, 2), (32, 32))) == 1


def test_pytest_warns_and_filtering():
    net = MIMSCNN(1, 2, 10, 2).eval()
    with pytest.warns(SmallFeatureMapWarning, match="MIMSCNN on 24x24 slices"):
        net(torch.rand(1, 1, 1, 24, 24))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=SmallFeatureMapWarning)
        net(torch.rand(1, 1, 1, 16, 16))  # filtered: no error
    with warnings.catch_warnings(), pytest.raises(SmallFeatureMapWarning, match="on 8x8 slices"):
        warnings.simplefilter("error", category=SmallFeatureMapWarning)
        net(torch.rand(1, 1, 1, 8, 8))  # users who want a hard stop turn it into an error


@pytest.mark.parametrize("factory", [lambda: MIMSCNN(1, 2, 10, 2), lambda: FeatPyra(1, 2, 10, 2)])
def test_scripted_network_skips_the_check(factory, round_trip):
    net = factory().eval()
    forward_warnings(net, (32, 32))  # eager: warned, the set is filled; scripting must still work
    scripted = round_trip(net)
    x = torch.rand(1, 2, 1, 16, 16)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        out = scripted(x)
        scripted.forward_chunked(x, None, 1)
    assert not [w for w in caught if issubclass(w.category, SmallFeatureMapWarning)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallFeatureMapWarning)  # the eager network does warn about 16x16
        torch.testing.assert_close(out, net(x), atol=1e-5, rtol=0)


class Logits(torch.nn.Module):
    """A plain wrapper, as ``bundle.export_onnx.BagModel`` traces the network for the ONNX export."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_traced_network_skips_the_check():
    net = MIMSCNN(1, 2, 10, 2).eval()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.jit.trace(Logits(net), (torch.rand(1, 2, 1, 16, 16),), check_trace=False)
    assert not [w for w in caught if issubclass(w.category, SmallFeatureMapWarning)]
    assert net._warned_sizes == set()


# (network factory, branch names in the order of feature_map_sizes)
BRANCH_CASES = [
    (
        lambda: MIMSCNN(1, 2, 10, 2, input_scales=(0.5, 1.0), scales=(0.5, 1.0)),
        [
            "input scale 0.5, stage 2 (conv3_x), MSConv scale 0.5",
            "input scale 0.5, stage 2 (conv3_x), MSConv scale 1",
            "input scale 1, stage 2 (conv3_x), MSConv scale 0.5",
            "input scale 1, stage 2 (conv3_x), MSConv scale 1",
        ],
    ),
    (
        lambda: FeatPyra(1, 2, 10, 3),
        ["input scale 1, stage 2 (conv3_x), MSConv scale 1", "input scale 1, stage 3 (conv4_x), MSConv scale 1"],
    ),
    (
        lambda: MIPreTrident(1, 2, 10, 2, dilations=(1, 3)),
        [
            "input scale 1, stage 2 (conv3_x), TridentConv dilation 1",
            "input scale 1, stage 2 (conv3_x), TridentConv dilation 3",
        ],
    ),
    (lambda: MIPre(1, 2, 10, 4), ["input scale 1, stage 4 (conv5_x), no head"]),
]


@pytest.mark.parametrize("factory, expected", BRANCH_CASES)
def test_branch_names(factory, expected):
    net = factory()
    assert net.branch_names() == expected
    assert len(net.branch_names()) == len(net.feature_map_sizes(64, 64)) == net.num_branches


@pytest.mark.parametrize("max_pool", [True, False])
def test_every_method_config_passes_backbone_max_pool(max_pool):
    from bundle.config import build_network
    from bundle.methods import METHODS, method_config

    overrides = {} if max_pool else {"backbone_max_pool": False}
    for name in METHODS:
        net, _ = build_network([COMMON, method_config(name)], overrides)
        assert net.backbone.max_pool is max_pool, name
