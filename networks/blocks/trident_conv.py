# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from collections.abc import Sequence
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TridentConv"]


class TridentConv(nn.Module):
    """
    One convolution applied at several dilations with shared kernels, after Trident Networks (Li et al.,
    "Scale-Aware Trident Networks for Object Detection", ICCV 2019); the multi-scale alternative to MSConv
    in the MI-Pre-Trident baseline of MIMS-CNN (Li et al., MICCAI 2019, arXiv:1907.02413)::

        -- [same-size Conv2d(kernel_size, dilation=d) for d in dilations, one weight shared] --

    Every branch keeps the input size ("same" zero padding ``d * (kernel_size - 1)`` per axis, split as in
    :class:`MSConv`: ``floor`` of half on the left/top), has no activation (the pooling that follows is the
    nonlinearity), and the kernel is Kaiming-normal initialised (fan-in, ReLU gain) with zero bias.

    Example:

    .. code-block:: python

        trident = TridentConv(in_channels=128, out_channels=18, kernel_size=3, dilations=(1, 2, 3))
        print([tuple(y.shape) for y in trident(torch.randn(4, 128, 8, 12))])

    output::

        [(4, 18, 8, 12), (4, 18, 8, 12), (4, 18, 8, 12)]

    Args:
        in_channels: channels of the input feature map.
        out_channels: number of kernels (channels of every branch). Defaults to 18 (MSConv's OCT width).
        kernel_size: kernel size. Defaults to 3.
        dilations: one branch per dilation, each ``>= 1``, no repeats. Defaults to ``(1, 2, 3)`` (the paper's).
        bias: whether the convolution has a bias. Defaults to ``True``.

    Raises:
        ValueError: for a non-positive size or channel count, or invalid dilations.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 18,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 3),
        bias: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(dilations, (str, bytes)) or not isinstance(dilations, Sequence) or len(dilations) == 0:
            raise ValueError(f"dilations must be a non-empty sequence of integers >= 1, got {dilations!r}.")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations) or len(set(dilations)) != len(
            dilations
        ):
            raise ValueError(f"dilations must be distinct integers >= 1, got {dilations!r}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.dilations: List[int] = [int(d) for d in dilations]
        # F.pad order for 2-D input: (left, right, top, bottom), per dilation
        totals = [d * (kernel_size - 1) for d in self.dilations]
        self.paddings: List[List[int]] = [[t // 2, t - t // 2, t // 2, t - t // 2] for t in totals]
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

    @torch.jit.export
    def output_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """``(height, width)`` once per dilation: every branch keeps the input size."""
        sizes: List[Tuple[int, int]] = []
        for _ in self.dilations:
            sizes.append((height, width))
        return sizes

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            x: feature map ``[M, in_channels, h, w]``.

        Returns:
            one tensor per dilation, in the order of ``dilations``, each ``[M, out_channels, h, w]``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"TridentConv expects x of shape [M, {self.in_channels}, h, w], got shape {list(x.shape)}."
            )
        outputs: List[torch.Tensor] = []
        for i, d in enumerate(self.dilations):
            padded = F.pad(x, self.paddings[i], mode="constant", value=0.0)
            outputs.append(F.conv2d(padded, self.weight, self.bias, dilation=d))
        return outputs

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, "
            f"dilations={tuple(self.dilations)}, bias={self.bias is not None}"
        )
