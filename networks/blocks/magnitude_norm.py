# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

__all__ = ["MagnitudeNorm"]


class MagnitudeNorm(nn.Module):
    """
    Magnitude normalisation of MIMS-CNN (Li et al., "Multi-Instance Multi-Scale CNN for Medical Image
    Classification", MICCAI 2019, arXiv:1907.02413, section 2.2)::

        -- BatchNorm2d_i (one per scale) -- x sw_i (one learnable scalar per scale and channel) --

    Larger scales have more elements and would otherwise dominate the top-k pooling that follows, so
    every (scale ``i``, channel ``j``) map gets its own batch normalisation ``BN_ij`` (implemented as one
    ``BatchNorm2d(channels)`` per scale, which normalises each channel separately) and its own learnable
    scalar ``sw_ij``: ``y_ij = sw_ij * BN_ij(x_ij)``. ``sw`` is initialised to 1; the BatchNorm layers
    keep their own affine parameters (PyTorch defaults: weight 1, bias 0).

    As with any BatchNorm, training needs more than one value per channel: ``M * h_i * w_i > 1``.

    Example:

    .. code-block:: python

        from networks.blocks import MagnitudeNorm

        norm = MagnitudeNorm(num_scales=3, channels=18)
        print([tuple(y.shape) for y in norm([torch.randn(4, 18, s, s) for s in (8, 12, 16)])])

    output::

        [(4, 18, 8, 8), (4, 18, 12, 12), (4, 18, 16, 16)]

    Args:
        num_scales: number of scales ``m`` (number of maps passed to ``forward``).
        channels: number of channels ``N`` of every map.

    Raises:
        ValueError: when ``num_scales`` or ``channels`` is not a positive integer.
    """

    def __init__(self, num_scales: int, channels: int) -> None:
        super().__init__()
        for name, value in (("num_scales", num_scales), ("channels", channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.num_scales = num_scales
        self.channels = channels
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(num_scales))
        self.scale_weight = nn.Parameter(torch.ones(num_scales, channels))

    def forward(self, maps: List[torch.Tensor]) -> List[torch.Tensor]:
        """
        Args:
            maps: ``num_scales`` tensors, the ``i``-th of shape ``[M, channels, h_i, w_i]``.

        Returns:
            the normalised maps, same shapes and order.
        """
        if len(maps) != self.num_scales:
            raise ValueError(f"MagnitudeNorm expects {self.num_scales} maps (one per scale), got {len(maps)}.")
        outputs: List[torch.Tensor] = []
        for i, norm in enumerate(self.norms):
            outputs.append(norm(maps[i]) * self.scale_weight[i][None, :, None, None])
        return outputs

    def extra_repr(self) -> str:
        return f"num_scales={self.num_scales}, channels={self.channels}"
