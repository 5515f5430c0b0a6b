# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Shared helpers of the network tests, handed to tests as fixtures (no cross-directory imports)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
from monai.networks.nets import ResNet

from networks.nets.backbone import RESNET_LAYOUTS


def make_torchvision_resnet(depth: int = 10, in_channels: int = 3, seed: int = 0) -> ResNet:
    """
    A full ResNet with an ImageNet head (``fc``: 1000 classes) whose ``state_dict`` has torchvision's key
    names, standing in for a torchvision checkpoint (torchvision is not a dependency). BatchNorm statistics
    and affine parameters are randomised so that a wrong mapping cannot go unnoticed. Returned in eval mode.
    """
    block, layers = RESNET_LAYOUTS[depth]
    torch.manual_seed(seed)
    net = ResNet(
        block=block,
        layers=list(layers),
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        shortcut_type="B",
        bias_downsample=False,
        num_classes=1000,
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(100)
    return net.eval()


def reference_features(net: ResNet, x: torch.Tensor, stage: int = 4) -> torch.Tensor:
    """Features of ``net`` after ``layer<stage>``, computed from its own modules."""
    x = net.maxpool(net.act(net.bn1(net.conv1(x))))
    for i in range(1, stage + 1):
        x = getattr(net, f"layer{i}")(x)
    return x


def script_round_trip(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """Script ``module``, save it to memory and load it back."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.fixture
def torchvision_resnet() -> Callable[..., ResNet]:
    """Factory ``(depth=10, in_channels=3, seed=0) -> ResNet`` with torchvision key names and an ImageNet head."""
    return make_torchvision_resnet


@pytest.fixture
def resnet_features() -> Callable[..., torch.Tensor]:
    """``(net, x, stage=4) -> features`` computed from a reference ResNet's own modules."""
    return reference_features


@pytest.fixture
def round_trip() -> Callable[[torch.nn.Module], torch.jit.ScriptModule]:
    """Script a module, save it to memory, load it back."""
    return script_round_trip
