# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import logging

import pytest
import torch

from networks.nets import ResNetBackbone

LOGGER = "networks.nets.backbone"

# (in_channels, depth, feature_stage, input size, expected out_channels, stride, output size)
SHAPE_CASES = [
    (1, 10, 4, (32, 32), 512, 32, (1, 1)),
    (3, 18, 3, (64, 48), 256, 16, (4, 3)),
    (1, 10, 1, (32, 32), 64, 4, (8, 8)),
    (3, 10, 2, (33, 47), 128, 8, (5, 6)),  # odd sizes: ceil at every stride-2 step
    (3, 50, 2, (32, 32), 512, 8, (4, 4)),  # bottleneck: width from the block expansion
]

# without the stem's max-pooling: (in_channels, depth, feature_stage, input size, out_channels, stride, output size,
# every stage's output size)
NO_MAX_POOL_CASES = [
    (1, 10, 2, (32, 32), 128, 4, (8, 8), [(16, 16), (8, 8)]),  # the small-slice setting: 8x8 instead of 4x4
    (1, 10, 4, (32, 32), 512, 16, (2, 2), [(16, 16), (8, 8), (4, 4), (2, 2)]),
    (3, 18, 1, (64, 96), 64, 2, (32, 48), [(32, 48)]),
    (3, 10, 3, (33, 47), 256, 8, (5, 6), [(17, 24), (9, 12), (5, 6)]),  # odd sizes: ceil at every stride-2 step
    (1, 50, 2, (32, 32), 512, 4, (8, 8), [(16, 16), (8, 8)]),  # bottleneck
]


def torchvision_resnet_keys(depth: int) -> set[str]:
    """torchvision's ``resnet<depth>().state_dict()`` key names, written from its architecture."""
    blocks = {18: ("basic", (2, 2, 2, 2)), 50: ("bottleneck", (3, 4, 6, 3))}[depth]
    kind, layers = blocks
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", *(f"bn1.{b}" for b in bn), "fc.weight", "fc.bias"}
    convs = ("1", "2") if kind == "basic" else ("1", "2", "3")
    for stage, n in enumerate(layers, start=1):
        for i in range(n):
            prefix = f"layer{stage}.{i}"
            for c in convs:
                keys.add(f"{prefix}.conv{c}.weight")
                keys.update(f"{prefix}.bn{c}.{b}" for b in bn)
            if i == 0 and (stage > 1 or kind == "bottleneck"):
                keys.add(f"{prefix}.downsample.0.weight")
                keys.update(f"{prefix}.downsample.1.{b}" for b in bn)
    return keys


@pytest.mark.parametrize("in_channels, depth, stage, size, out_channels, stride, out_size", SHAPE_CASES)
def test_shapes(in_channels, depth, stage, size, out_channels, stride, out_size):
    backbone = ResNetBackbone(in_channels=in_channels, depth=depth, feature_stage=stage)
    assert backbone.out_channels == out_channels and backbone.stride == stride
    y = backbone(torch.randn(2, in_channels, *size))
    assert y.shape == (2, out_channels, *out_size)
    assert backbone.output_size(*size) == out_size


@pytest.mark.parametrize(
    "in_channels, depth, stage, size, out_channels, stride, out_size, stage_sizes", NO_MAX_POOL_CASES
)
def test_shapes_without_max_pool(in_channels, depth, stage, size, out_channels, stride, out_size, stage_sizes):
    backbone = ResNetBackbone(in_channels, depth, stage, return_stages=range(1, stage + 1), max_pool=False)
    assert backbone.out_channels == out_channels and backbone.stride == stride and not backbone.max_pool
    assert isinstance(backbone.maxpool, torch.nn.Identity)
    x = torch.randn(2, in_channels, *size)
    with torch.no_grad():
        assert backbone(x).shape == (2, out_channels, *out_size)
        assert [tuple(o.shape[2:]) for o in backbone.forward_stages(x)] == stage_sizes
    assert backbone.output_size(*size) == out_size
    assert backbone.stage_output_sizes(*size) == stage_sizes
    # the same backbone with the max-pooling: every map is that of an input twice as large without it
    with_pool = ResNetBackbone(in_channels, depth, stage, return_stages=range(1, stage + 1))
    assert with_pool.stride == 2 * stride
    assert with_pool.stage_output_sizes(2 * size[0], 2 * size[1]) == stage_sizes


@pytest.mark.parametrize("depth", [10, 50])
def test_max_pool_changes_no_parameter(depth):
    with_pool, without = ResNetBackbone(depth=depth), ResNetBackbone(depth=depth, max_pool=False)
    assert {k: v.shape for k, v in with_pool.state_dict().items()} == {
        k: v.shape for k, v in without.state_dict().items()
    }
    without.load_state_dict(with_pool.state_dict(), strict=True)  # checkpoints move between the two settings
    assert "max_pool=False" in repr(without) and "max_pool=True" in repr(with_pool)


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_stages_after_feature_stage_are_deleted(stage):
    backbone = ResNetBackbone(depth=10, feature_stage=stage)
    keys = backbone.state_dict().keys()
    for later in range(stage + 1, 5):
        assert getattr(backbone, f"layer{later}") is None
        assert not any(key.startswith(f"layer{later}.") for key in keys)
    assert not any(key.startswith(("fc.", "avgpool")) for key in keys)


@pytest.mark.parametrize("depth", [18, 50])
def test_key_names_and_sizes_equal_torchvision(depth, torchvision_resnet):
    expected = torchvision_resnet_keys(depth)
    assert set(torchvision_resnet(depth).state_dict()) == expected
    assert set(ResNetBackbone(depth=depth).state_dict()) == {k for k in expected if not k.startswith("fc.")}
    # published torchvision parameter counts (with the 1000-class head)
    n_params = sum(p.numel() for p in torchvision_resnet(depth).parameters())
    assert n_params == {18: 11_689_512, 50: 25_557_032}[depth]


@pytest.fixture
def checkpoint(tmp_path, torchvision_resnet):
    """(reference net, path of its torchvision-format state dict)."""
    net = torchvision_resnet(10)
    path = tmp_path / "resnet10_imagenet.pth"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.mark.parametrize("stage", [4, 2])
def test_exact_load_gives_equal_outputs(checkpoint, resnet_features, stage, caplog):
    net, path = checkpoint
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        backbone = ResNetBackbone(in_channels=3, depth=10, feature_stage=stage, pretrained_weights=str(path)).eval()
    assert f"loaded ImageNet weights from {path}" in caplog.text
    assert "fc.weight" in caplog.text  # ignored keys are logged at debug level
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), resnet_features(net, x, stage))


@pytest.mark.parametrize("stage", [4, 2])
def test_exact_load_without_max_pool(checkpoint, stage):
    net, path = checkpoint
    backbone = ResNetBackbone(3, 10, stage, pretrained_weights=str(path), max_pool=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = net.act(net.bn1(net.conv1(x)))  # the reference's own modules, its max-pooling skipped
        for i in range(1, stage + 1):
            expected = getattr(net, f"layer{i}")(expected)
        torch.testing.assert_close(backbone(x), expected)


def test_one_channel_adaptation_equals_rgb_replication(checkpoint, resnet_features, caplog):
    net, path = checkpoint
    backbone = ResNetBackbone(in_channels=1, depth=10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        backbone.load_torchvision_weights(str(path))
    assert "summed over" in caplog.text
    backbone.eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(grey), resnet_features(net, grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": sd, "epoch": 3},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")},  # old checkpoints
    ],
)
def test_wrapped_checkpoints(checkpoint, tmp_path, resnet_features, wrap):
    net, path = checkpoint
    wrapped = tmp_path / "wrapped.pth"
    torch.save(wrap(torch.load(path, weights_only=True)), wrapped)
    backbone = ResNetBackbone(in_channels=3, depth=10, pretrained_weights=str(wrapped)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), resnet_features(net, x))


def _edit_and_save(path, tmp_path, edit):
    sd = torch.load(path, weights_only=True)
    edit(sd)
    out = tmp_path / "edited.pth"
    torch.save(sd, out)
    return out


@pytest.mark.parametrize(
    "edit, in_channels, message",
    [
        (lambda sd: sd.pop("layer1.0.bn1.weight"), 3, r"missing keys \[layer1\.0\.bn1\.weight\]"),
        (lambda sd: sd.update({"layer1.0.extra.weight": torch.zeros(1)}), 3, r"unexpected keys \[layer1\.0\.extra"),
        (lambda sd: sd.update({"layer2.0.conv1.weight": torch.zeros(128, 64, 1, 1)}), 3, "shape mismatches"),
        (lambda sd: None, 2, r"shape mismatches \[conv1\.weight: checkpoint \(64, 3, 7, 7\) vs model \(64, 2, 7, 7\)"),
    ],
)
def test_mismatches_are_strict(checkpoint, tmp_path, edit, in_channels, message):
    _, path = checkpoint
    edited = _edit_and_save(path, tmp_path, edit)
    backbone = ResNetBackbone(in_channels=in_channels, depth=10)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(ValueError, match=message) as error:
        backbone.load_torchvision_weights(str(edited))
    assert str(edited) in str(error.value)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # nothing partially loaded


def test_wrong_depth_lists_first_keys_and_count(tmp_path, torchvision_resnet):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_resnet(18).state_dict(), path)
    with pytest.raises(ValueError, match=r"unexpected keys \[.*\] \.\.\. \(\d+ in total\)"):
        ResNetBackbone(depth=10, pretrained_weights=str(path))


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        ResNetBackbone(depth=10, pretrained_weights=str(path))


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        ResNetBackbone(depth=10, pretrained_weights=str(path))


def test_random_init_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ResNetBackbone(depth=10)
    assert "no pretrained weights given: ResNet-10 backbone randomly initialised" in caplog.text


@pytest.mark.parametrize("max_pool, out_size", [(True, (2, 2)), (False, (4, 4))])
def test_torchscript_round_trip(round_trip, max_pool, out_size):
    backbone = ResNetBackbone(in_channels=1, depth=10, feature_stage=3, return_stages=(2, 3), max_pool=max_pool).eval()
    x = torch.randn(2, 1, 32, 32)
    scripted = round_trip(backbone)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), backbone(x))
        for ours, theirs in zip(scripted.forward_stages(x), backbone.forward_stages(x)):
            torch.testing.assert_close(ours, theirs)
    assert scripted.output_size(32, 32) == backbone.output_size(32, 32) == out_size
    assert scripted.stage_output_sizes(45, 61) == backbone.stage_output_sizes(45, 61)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"depth": 20},
        {"depth": "18"},
        {"feature_stage": 0},
        {"feature_stage": 5},
        {"in_channels": 0},
        {"max_pool": "false"},
        {"max_pool": 0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        ResNetBackbone(**kwargs)
