# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""VolumeAsBag: exact slice order for every slice axis, same logits as the bag network, TorchScript, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from networks import MIPre, VolumeAsBag


class _FirstValues(nn.Module):
    """A 'network' returning x[:, :, 0, 0, 0] (one value per instance) so the bag order is visible."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x[:, :, 0, 0, 0]


# slice_dim, expected bag shape of a [1, 1, 2, 3, 4] volume
CASES = [(-1, (1, 4, 1, 2, 3)), (2, (1, 4, 1, 2, 3)), (0, (1, 2, 1, 3, 4)), (1, (1, 3, 1, 2, 4))]


@pytest.mark.parametrize("slice_dim, bag_shape", CASES)
def test_bag_shape_and_slice_order(slice_dim, bag_shape):
    volume = torch.arange(24, dtype=torch.float32).reshape(1, 1, 2, 3, 4)
    adapter = VolumeAsBag(_FirstValues(), slice_dim=slice_dim)
    bag = adapter.to_bag(volume)
    assert tuple(bag.shape) == bag_shape
    axis = 2 if slice_dim == -1 else slice_dim
    for n in range(bag_shape[1]):  # instance n is the volume's slice n along the chosen axis
        torch.testing.assert_close(bag[0, n], volume[0].select(1 + axis, n))
    first = {0: [0.0, 12.0], 1: [0.0, 4.0, 8.0], 2: [0.0, 1.0, 2.0, 3.0]}[axis]
    assert adapter(volume)[0].tolist() == first


def test_same_logits_as_the_bag_network_and_torchscript():
    torch.manual_seed(0)
    network = MIPre(in_channels=1, num_classes=3, backbone_depth=10, feature_stage=2).eval()
    adapter = VolumeAsBag(network).eval()
    volume = torch.rand(2, 1, 32, 40, 5)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        expected = network(volume.permute(0, 4, 1, 2, 3), mask)
        torch.testing.assert_close(adapter(volume, mask), expected)
        scripted = torch.jit.script(adapter)
        torch.testing.assert_close(scripted(volume, mask), expected)
    assert list(adapter.state_dict()) == ["network." + k for k in network.state_dict()]


@pytest.mark.parametrize("slice_dim", [3, -2])
def test_rejects_a_bad_slice_dim(slice_dim):
    with pytest.raises(ValueError, match="slice_dim must be"):
        VolumeAsBag(_FirstValues(), slice_dim=slice_dim)


def test_rejects_a_non_volume():
    with pytest.raises(ValueError, match=r"expected a volume \[B, C, H, W, D\], got shape \[1, 2, 3, 4\]"):
        VolumeAsBag(_FirstValues())(torch.zeros(1, 2, 3, 4))
