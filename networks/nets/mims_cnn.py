# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from networks.blocks.magnitude_norm import MagnitudeNorm
from networks.blocks.msconv import DEFAULT_KERNEL_GROUPS, DEFAULT_SCALES, MSConv
from networks.blocks.topk_pool import TopKPool
from networks.nets.backbone import ResNetBackbone

__all__ = ["MIMSCNN"]


class MIMSCNN(nn.Module):
    """
    MIMS-CNN, the Multi-Instance Multi-Scale CNN of Li et al., "Multi-Instance Multi-Scale CNN for Medical
    Image Classification", MICCAI 2019 (arXiv:1907.02413): embedding-based multiple-instance learning for
    2-D images and 3-D volumes (bags of 2-D slices) with image- or volume-level labels only::

        -- ResNetBackbone (per slice) -- MSConv -- MagnitudeNorm -- TopKPool (over scales, x, y, slices) -- Linear --

    Bag contract: the input is ``[B, N, C, H, W]``, ``B`` bags of ``N`` slices (instances) each; a plain
    2-D image is a bag with ``N = 1``. Bags with different numbers of slices are padded to the largest
    ``N`` of the batch and described by a boolean ``mask`` ``[B, N]`` (True = real slice, False = padding).
    Only the real slices go through the backbone, MSConv and MagnitudeNorm (padding costs no compute and
    does not enter the BatchNorm statistics); padded positions hold ``-inf`` afterwards, which the top-k
    pooling never selects with a non-zero weight. A bag without any real slice pools to zeros, so its
    logits equal the classifier bias.

    Feature layout (:meth:`instance_features`, relied on by provenance/localisation code): for every bag
    and channel, the MSConv outputs of all scales and slices are flattened into ``L = N * sum_i h_i * w_i``
    elements, scale-major: the element ``(scale i, slice n, row y, column x)`` is at

        ``offset_i + n * h_i * w_i + y * w_i + x``,  with  ``offset_i = N * sum_{i' < i} h_i' * w_i'``,

    where ``(h_i, w_i)`` are given by :meth:`feature_map_sizes` for the input's ``H, W``.

    ``forward`` returns logits only; per-instance maps (:meth:`instance_maps`), flattened features
    (:meth:`instance_features`), pooled features (``pool(...)`` / ``pool.forward_with_indices``) and the head
    (:meth:`forward_head`) are separate methods, all TorchScript-compatible. The paper fine-tunes the
    backbone (the ``backbone`` submodule) at half the learning rate of the layers on top: see
    ``bundle.optim.backbone_head_param_groups``.

    Example:

    .. code-block:: python

        from networks.nets import MIMSCNN

        net = MIMSCNN(in_channels=1, num_classes=2, backbone_depth=18)
        x = torch.randn(2, 6, 1, 64, 64)  # 2 volumes of 6 slices
        print(net(x).shape)

    output::

        torch.Size([2, 2])

    Args:
        in_channels: channels of every slice. Defaults to 1.
        num_classes: number of output logits. Defaults to 2.
        backbone_depth: ResNet depth, one of 10, 18, 34, 50, 101 (the paper's), 152. Defaults to 18.
        feature_stage: backbone stage that feeds MSConv, 1..4 (strides 4, 8, 16, 32). Defaults to 4.
        kernel_groups: MSConv ``{kernel size: output channels}`` (int or str keys). Defaults to
            ``{2: 8, 3: 10}`` (the paper's OCT configuration).
        scales: MSConv resizing factors in ``[0.25, 2]``. Defaults to ``(0.5, 0.75, 1.0)``.
        k: number of pooled activations per channel. Defaults to 5.
        resize_mode: MSConv interpolation mode. Defaults to ``"bilinear"``.
        pretrained_weights: torchvision-format ImageNet state dict for the backbone, or ``None`` for a
            randomly initialised backbone. Defaults to ``None``.

    Raises:
        ValueError: for invalid arguments (raised by the sub-blocks that own them).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        kernel_groups: Mapping[int | str, int] = DEFAULT_KERNEL_GROUPS,
        scales: Sequence[float] = DEFAULT_SCALES,
        k: int = 5,
        resize_mode: str = "bilinear",
        pretrained_weights: str | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.backbone = ResNetBackbone(
            in_channels=in_channels,
            depth=backbone_depth,
            feature_stage=feature_stage,
            pretrained_weights=pretrained_weights,
        )
        self.msconv = MSConv(self.backbone.out_channels, kernel_groups=kernel_groups, scales=scales, mode=resize_mode)
        self.magnitude_norm = MagnitudeNorm(num_scales=len(self.msconv.scales), channels=self.msconv.out_channels)
        self.pool = TopKPool(k=k)
        self.classifier = nn.Linear(self.msconv.out_channels, num_classes)
        self.out_channels = self.msconv.out_channels

    @torch.jit.export
    def feature_map_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """``(h_i, w_i)`` of every MSConv scale for input slices of ``height x width``."""
        h, w = self.backbone.output_size(height, width)
        return self.msconv.output_sizes(h, w)

    def _check_input(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"MIMSCNN expects x of shape [B, N, {self.in_channels}, H, W] (a 2-D image is N = 1), "
                f"got shape {list(x.shape)}."
            )
        if mask is not None:
            bad_shape = mask.dim() != 2 or mask.shape[0] != x.shape[0] or mask.shape[1] != x.shape[1]
            if mask.dtype != torch.bool or bad_shape:
                raise ValueError(
                    f"mask must be a bool tensor of shape [B, N] = {list(x.shape[:2])}, "
                    f"got {mask.dtype} of shape {list(mask.shape)}."
                )

    @torch.jit.export
    def instance_maps(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """
        Magnitude-normalised MSConv maps of every slice and scale.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            one tensor per scale, each ``[B, N, out_channels, h_i, w_i]``; padding slices are ``-inf``.
        """
        self._check_input(x, mask)
        b, n = x.shape[0], x.shape[1]
        slices = x.flatten(0, 1)
        index: Optional[torch.Tensor] = None
        if mask is not None:
            index = mask.flatten().nonzero().squeeze(1)
            slices = slices.index_select(0, index)
        maps = self.magnitude_norm(self.msconv(self.backbone(slices)))
        outputs: List[torch.Tensor] = []
        for y in maps:
            if index is not None:
                full = torch.full(
                    [b * n, y.shape[1], y.shape[2], y.shape[3]], float("-inf"), dtype=y.dtype, device=y.device
                )
                y = full.index_copy(0, index, y)
            outputs.append(y.reshape(b, n, y.shape[1], y.shape[2], y.shape[3]))
        return outputs

    @torch.jit.export
    def instance_features(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Per-channel activations of all scales, positions and slices, ready for top-k pooling.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            ``[B, out_channels, L]`` with ``L = N * sum_i h_i * w_i`` in the scale-major layout described in
            the class docstring; entries of padding slices are ``-inf``.
        """
        flat: List[torch.Tensor] = []
        for y in self.instance_maps(x, mask):
            # [B, N, C, h, w] -> [B, C, N, h, w] -> [B, C, N * h * w]
            flat.append(y.transpose(1, 2).flatten(2))
        return torch.cat(flat, dim=2)

    @torch.jit.export
    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pooled: top-k pooled bag features ``[B, out_channels]``.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.classifier(pooled)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: bags ``[B, N, in_channels, H, W]`` (a 2-D image is ``N = 1``).
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.forward_head(self.pool(self.instance_features(x, mask)))
