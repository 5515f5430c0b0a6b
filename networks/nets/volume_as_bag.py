# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A channel-first volume interface ``[B, C, H, W, D]`` for the bag networks of the bundle."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VolumeAsBag"]


class VolumeAsBag(nn.Module):
    """Run a bag network on MONAI-style volumes: ``[B, C, H, W, D] -> bag [B, D, C, H, W] -> network``.

    The bag networks (:class:`networks.MILNet` and its subclasses) take the slices of a volume as
    instances, ``x [B, N, C, H, W]``. Tools that speak MONAI's channel-first convention (the model
    zoo's ``verify_net_in_out``, a Deploy or Label pipeline that ends with ``EnsureChannelFirst``)
    hand over ``[B, C, *spatial]`` instead. This wrapper moves the slice axis ``slice_dim`` of the
    volume to the instance axis; it holds no parameters of its own, so ``network``'s state dict and
    checkpoints are unchanged (keys gain the ``network.`` prefix only if this module is saved).

    Args:
        network: a bag network, ``forward(x [B, N, C, H, W], mask [B, N] | None) -> logits [B, classes]``.
        slice_dim: spatial axis of the volume that indexes the slices: 0, 1 or 2 for ``H``, ``W``, ``D``
            of ``[B, C, H, W, D]``, or -1 (the last, ``D``). Defaults to -1. The two other spatial axes
            must already have the network's in-plane size (``image_size`` of the bundle).

    Example::

        >>> net = VolumeAsBag(networks.MIMSCNN(in_channels=1, num_classes=2, backbone_depth=10, feature_stage=2))
        >>> net(torch.rand(2, 1, 64, 96, 30)).shape
        torch.Size([2, 2])
    """

    def __init__(self, network: nn.Module, slice_dim: int = -1) -> None:
        super().__init__()
        if slice_dim not in (-1, 0, 1, 2):
            raise ValueError(f"slice_dim must be -1, 0, 1 or 2 (a spatial axis of [B, C, H, W, D]), got {slice_dim}")
        self.network = network
        self.slice_dim = 2 if slice_dim == -1 else slice_dim
        axis = 2 + self.slice_dim
        self.permutation = [0, axis, 1] + [d for d in (2, 3, 4) if d != axis]

    def to_bag(self, volume: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W, D]`` -> ``[B, N, C, S1, S2]``: the slice axis first, the other two spatial axes in order."""
        if volume.dim() != 5:
            raise ValueError(f"expected a volume [B, C, H, W, D], got shape {list(volume.shape)}")
        return volume.permute(self.permutation).contiguous()

    def forward(self, volume: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of ``volume [B, C, H, W, D]``; ``mask [B, N]`` marks real slices (None: all)."""
        return self.network(self.to_bag(volume), mask)
