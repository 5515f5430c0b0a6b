# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Every method network of the bundle (MIMS-CNN, its ablations and baselines): shapes, masks, TorchScript,
gradients, arguments reaching their sub-blocks, and the exact instance aggregation."""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks import eval_mode

from networks.blocks import IdentityHead, MeanPool, MSConv, TopKPool, TridentConv
from networks.nets import (
    MIMSCNN,
    FeatPyra,
    MILNet,
    MIPre,
    MIPreConv,
    MIPreTrident,
    ResNet34Scratch,
    ResNetBackbone,
    featpyra_name,
)

SMALL = {"in_channels": 1, "num_classes": 3, "backbone_depth": 10, "feature_stage": 2}

#: method name (as in configs/methods) -> (class, constructor arguments)
METHOD_NETWORKS = {
    "mims_cnn": (MIMSCNN, SMALL),
    "mims_noresizing": (MIMSCNN, {**SMALL, "scales": (1.0,)}),
    "pyramid_mims": (MIMSCNN, {**SMALL, "scales": (1.0,), "input_scales": (0.5, 0.75, 1.0)}),
    "mims_mean": (MIMSCNN, {**SMALL, "pooling": "mean"}),
    "mims_max": (MIMSCNN, {**SMALL, "k": 1}),
    "mims_max_inst": (MIMSCNN, {**SMALL, "instance_aggregation": "max"}),
    "mims_patchcls": (MIMSCNN, {**SMALL, "instance_aggregation": "mean"}),
    "mi_pre": (MIPre, SMALL),
    "pyramid_mi_pre": (MIPre, {**SMALL, "input_scales": (0.5, 0.75, 1.0)}),
    "mi_pre_conv": (MIPreConv, SMALL),
    "mi_pre_conv_patchcls": (MIPreConv, {**SMALL, "instance_aggregation": "mean"}),
    "mi_pre_trident": (MIPreTrident, SMALL),
    "featpyra_4_5": (FeatPyra, SMALL),
    "resnet34_scratch": (ResNet34Scratch, {"in_channels": 1, "num_classes": 3}),
}
NAMES = sorted(METHOD_NETWORKS)


def _build(name: str, seed: int = 0) -> MILNet:
    cls, kwargs = METHOD_NETWORKS[name]
    torch.manual_seed(seed)
    return cls(**kwargs)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 3, 1, 64, 64), (1, 1, 1, 48, 80)])
def test_logits_and_feature_layout_shapes(name, shape):
    net = _build(name)
    x = torch.randn(shape)
    with eval_mode(net), torch.no_grad():
        assert net(x).shape == (shape[0], 3)
        sizes = net.feature_map_sizes(shape[3], shape[4])
        maps = net.instance_maps(x)
        assert [tuple(m.shape[3:]) for m in maps] == sizes and len(maps) == net.num_branches
        feats = net.instance_features(x)
        assert feats.shape == (shape[0], net.out_channels, shape[1] * sum(h * w for h, w in sizes))
        assert net.instance_logits(x).shape == (shape[0], shape[1], 3)


@pytest.mark.parametrize("name", NAMES)
def test_padding_slices_change_nothing(name):
    net = _build(name)
    x = torch.randn(2, 4, 1, 64, 64)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    with eval_mode(net), torch.no_grad():
        padded = net(x, mask)
        torch.testing.assert_close(padded[0], net(x[:1])[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(padded[1], net(x[1:, :2])[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_torchscript_round_trip_of_every_method(name, round_trip):
    net = _build(name)
    x = torch.randn(2, 3, 1, 64, 64)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    with eval_mode(net), torch.no_grad():
        scripted = round_trip(net)
        torch.testing.assert_close(scripted(x, mask), net(x, mask))
        torch.testing.assert_close(scripted.instance_features(x, mask), net.instance_features(x, mask))
        torch.testing.assert_close(scripted.instance_logits(x, mask), net.instance_logits(x, mask))
        assert scripted.feature_map_sizes(64, 64) == net.feature_map_sizes(64, 64)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name):
    net = _build(name).train()
    torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 1, 64, 64)), torch.tensor([0, 2])).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    if getattr(net.pool, "k", None) == 1:  # max pooling: the single weight is softmax of one logit, always 1
        assert missing == ["pool.weight_logits"] and net.pool.weights().item() == 1.0
        missing = []
    assert not missing, f"{name}: no gradient for {missing}"


@pytest.mark.parametrize("name", ["mims_patchcls", "mims_max_inst", "mi_pre_conv_patchcls"])
def test_instance_modes_classify_each_slice_alone(name):
    net = _build(name)
    x = torch.randn(1, 3, 1, 64, 64)
    with eval_mode(net), torch.no_grad():
        slice_logits = net.instance_logits(x)
        for n in range(3):
            alone = net.forward_head(net.pool(net.instance_features(x[:, n : n + 1])))
            torch.testing.assert_close(slice_logits[:, n], alone, atol=1e-5, rtol=1e-5)
        probs = torch.softmax(slice_logits, dim=-1)[0]
        bag = net(x)[0]
    if net.instance_aggregation == "mean":
        torch.testing.assert_close(torch.softmax(bag, dim=-1), probs.mean(dim=0))
    else:
        torch.testing.assert_close(bag, probs.max(dim=0).values.log())


AGGREGATION_CASES = [
    # mode, slice logits [1, N, 2], mask, expected bag logits
    ("mean", [[[0.0, 0.0], [math.log(3.0), 0.0]]], None, [[math.log(0.625), math.log(0.375)]]),
    ("max", [[[0.0, 0.0], [math.log(3.0), 0.0]]], None, [[math.log(0.75), math.log(0.5)]]),
    ("mean", [[[0.0, 0.0], [5.0, -5.0]]], [[True, False]], [[math.log(0.5), math.log(0.5)]]),
    ("max", [[[0.0, 0.0], [5.0, -5.0]]], [[False, False]], [[0.0, 0.0]]),
    ("mean", [[[1.0, 2.0]]], [[False]], [[0.0, 0.0]]),
]


@pytest.mark.parametrize("mode, logits, mask, expected", AGGREGATION_CASES)
def test_aggregate_instances_exact(mode, logits, mask, expected):
    net = MIMSCNN(1, 2, backbone_depth=10, feature_stage=1, instance_aggregation=mode)
    m = None if mask is None else torch.tensor(mask)
    out = net.aggregate_instances(torch.tensor(logits), m)
    torch.testing.assert_close(out, torch.tensor(expected))


ARGUMENT_CASES = [
    (MIPre, {}, lambda n: isinstance(n.heads[0], IdentityHead) and n.out_channels == 128 and n.magnitude_norm is None),
    (MIPre, {"input_scales": (0.5, 1.0), "magnitude_norm": True}, lambda n: len(n.magnitude_norm.norms) == 2),
    (MIPre, {"input_scales": (0.5, 1.0)}, lambda n: n.input_scales == [0.5, 1.0] and n.num_branches == 2),
    (MIPreConv, {"out_channels": 7, "kernel_size": 2}, lambda n: n.heads[0].kernel_groups == {2: 7}),
    (MIPreConv, {"out_channels": 7}, lambda n: n.classifier.in_features == 7 and n.heads[0].scales == (1.0,)),
    (MIPreConv, {"k": 2}, lambda n: isinstance(n.pool, TopKPool) and n.pool.k == 2),
    (MIPreConv, {"pooling": "mean"}, lambda n: isinstance(n.pool, MeanPool)),
    (MIPreTrident, {"dilations": (1, 4)}, lambda n: n.heads[0].dilations == [1, 4] and n.num_branches == 2),
    (MIPreTrident, {"out_channels": 5, "kernel_size": 1}, lambda n: n.heads[0].weight.shape == (5, 128, 1, 1)),
    (FeatPyra, {}, lambda n: n.backbone.return_stages == [1, 2] and [h.in_channels for h in n.heads] == [64, 128]),
    (FeatPyra, {"out_channels": 4, "kernel_size": 1}, lambda n: all(h.kernel_groups == {1: 4} for h in n.heads)),
    (FeatPyra, {"instance_aggregation": "max"}, lambda n: n.instance_aggregation == "max"),
    (MIMSCNN, {"input_scales": (0.5, 1.0), "scales": (1.0,)}, lambda n: len(n.magnitude_norm.norms) == 2),
    (MIMSCNN, {"resize_mode": "nearest", "input_scales": (0.5, 1.0)}, lambda n: n.resize_mode == "nearest"),
    (
        MIMSCNN,
        {"pooling": "mean"},
        lambda n: isinstance(n.pool, MeanPool) and "weight_logits" not in dict(n.named_parameters()),
    ),
]


@pytest.mark.parametrize("cls, kwargs, check", ARGUMENT_CASES)
def test_arguments_reach_their_blocks(cls, kwargs, check):
    assert check(cls(**{**SMALL, **kwargs}))


# every network that builds a backbone, without the stem's max-pooling, on 32x32 slices:
# (class, constructor arguments, exact branch sizes)
SMALL_INPUT_CASES = [
    (MIMSCNN, SMALL, [(4, 4), (6, 6), (8, 8)]),  # stride 4: 8x8 at scale 1, 4x4 at its 1/2 scale
    (MIMSCNN, {**SMALL, "scales": (1.0,), "input_scales": (0.5, 1.0)}, [(4, 4), (8, 8)]),
    (MIPre, SMALL, [(8, 8)]),
    (MIPreConv, SMALL, [(8, 8)]),
    (MIPreTrident, SMALL, [(8, 8), (8, 8), (8, 8)]),
    (FeatPyra, SMALL, [(16, 16), (8, 8)]),
    (ResNet34Scratch, {"in_channels": 1, "num_classes": 3}, [(2, 2)]),  # stride 16
]
SMALL_INPUT_IDS = ["mims_cnn", "pyramid_mims", "mi_pre", "mi_pre_conv", "mi_pre_trident", "featpyra", "resnet34"]


@pytest.mark.parametrize("cls, kwargs, sizes", SMALL_INPUT_CASES, ids=SMALL_INPUT_IDS)
def test_backbone_max_pool_reaches_the_backbone(cls, kwargs, sizes, round_trip):
    torch.manual_seed(0)
    net = cls(**kwargs, backbone_max_pool=False)
    default = cls(**kwargs)
    assert net.backbone.max_pool is False and default.backbone.max_pool is True
    assert net.backbone.stride * 2 == default.backbone.stride
    assert isinstance(net.backbone.maxpool, torch.nn.Identity)
    assert list(net.state_dict()) == list(default.state_dict())  # same parameters: checkpoints are interchangeable
    assert net.feature_map_sizes(32, 32) == sizes == default.feature_map_sizes(64, 64)
    x = torch.randn(2, 3, 1, 32, 32)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    with eval_mode(net), torch.no_grad():
        maps = net.instance_maps(x)
        assert [tuple(m.shape[3:]) for m in maps] == sizes
        assert net(x, mask).shape == (2, 3)
        scripted = round_trip(net)
        torch.testing.assert_close(scripted(x, mask), net(x, mask))
        torch.testing.assert_close(scripted.instance_features(x, mask), net.instance_features(x, mask))
        assert scripted.feature_map_sizes(32, 32) == sizes


@pytest.mark.parametrize("cls, kwargs, sizes", SMALL_INPUT_CASES, ids=SMALL_INPUT_IDS)
def test_every_parameter_gets_a_gradient_without_max_pool(cls, kwargs, sizes):
    torch.manual_seed(0)
    net = cls(**kwargs, backbone_max_pool=False).train()
    torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 1, 32, 32)), torch.tensor([0, 2])).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"{cls.__name__}: no gradient for {missing}"


def test_resnet34_scratch_is_a_full_random_resnet34():
    net = _build("resnet34_scratch")
    assert net.backbone.depth == 34 and net.backbone.feature_stage == 4 and net.out_channels == 512
    assert isinstance(net.heads[0], IdentityHead) and isinstance(net.pool, TopKPool) and net.pool.k == 5


def test_trident_head_type():
    assert isinstance(_build("mi_pre_trident").heads[0], TridentConv)
    assert isinstance(_build("mi_pre_conv").heads[0], MSConv)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: FeatPyra(**{**SMALL, "feature_stage": 1}), "feature_stage >= 2"),
        (lambda: MIMSCNN(**SMALL, pooling="median"), "median"),
        (lambda: MIMSCNN(**SMALL, instance_aggregation="attention"), "attention"),
        (lambda: MIPre(**SMALL, input_scales=(0.1,)), "scale"),
        (lambda: MIPre(**SMALL, input_scales=()), "scales"),
        (lambda: MILNet(ResNetBackbone(1, 10, 2), [IdentityHead(128), IdentityHead(128)]), "one head per"),
        (lambda: MILNet(ResNetBackbone(1, 10, 2), [IdentityHead(64)]), "takes 64 channels"),
        (
            lambda: MILNet(ResNetBackbone(1, 10, 2, return_stages=(1, 2)), [IdentityHead(64), IdentityHead(128)]),
            "same out_channels",
        ),
        (lambda: ResNetBackbone(1, 10, 2, return_stages=(3,)), "return_stages"),
        (lambda: ResNetBackbone(1, 10, 3, return_stages=(2, 1)), "return_stages"),
    ],
)
def test_invalid_compositions_are_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# (feature_stage, backbone stages FeatPyra uses, its name: stage k is the paper's conv{k+1}_x)
FEATPYRA_NAME_CASES = [(2, [1, 2], "FeatPyra-2,3"), (3, [2, 3], "FeatPyra-3,4"), (4, [3, 4], "FeatPyra-4,5")]


@pytest.mark.parametrize("feature_stage, stages, name", FEATPYRA_NAME_CASES)
def test_featpyra_name_says_which_stages(feature_stage, stages, name):
    net = FeatPyra(**{**SMALL, "feature_stage": feature_stage})
    assert net.backbone.return_stages == stages
    assert net.network_name == featpyra_name(feature_stage) == name
    with pytest.raises(ValueError, match=rf"^{name} expects x of shape"):
        net(torch.randn(2, 1, 64, 64))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "featpyra_4_5"])
def test_other_networks_are_named_by_their_class(name):
    net = _build(name)
    assert net.network_name == type(net).__name__


def test_wrong_input_names_the_network():
    with pytest.raises(ValueError, match=r"MIPreTrident expects x of shape \[B, N, 1, H, W\]"):
        _build("mi_pre_trident")(torch.randn(2, 1, 64, 64))


@pytest.mark.parametrize("stages", [(1,), (2,), (1, 2), (1, 3), (2, 3), (1, 2, 3)])
def test_backbone_stage_outputs_match_sizes_and_forward(stages):
    torch.manual_seed(0)
    backbone = ResNetBackbone(1, 10, 3, return_stages=stages).eval()
    x = torch.randn(2, 1, 45, 61)
    with torch.no_grad():
        outputs = backbone.forward_stages(x)
        assert [tuple(o.shape[2:]) for o in outputs] == backbone.stage_output_sizes(45, 61)
        assert [o.shape[1] for o in outputs] == backbone.stage_channels == [64 * 2 ** (s - 1) for s in stages]
        if stages[-1] == 3:
            torch.testing.assert_close(outputs[-1], backbone(x))
