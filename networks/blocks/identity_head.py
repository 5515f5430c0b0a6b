# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn

__all__ = ["IdentityHead"]


class IdentityHead(nn.Module):
    """
    The "no extra layer" head of the MI-Pre baselines (Li et al., MICCAI 2019, arXiv:1907.02413): passes
    the backbone feature map on unchanged, as a one-element list, so it can stand where :class:`MSConv` or
    :class:`TridentConv` stand in :class:`networks.nets.MILNet`::

        -- (identity) --

    Args:
        channels: channels of the feature map (checked in ``forward``; also the head's ``out_channels``).

    Raises:
        ValueError: when ``channels`` is not a positive integer.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}.")
        self.in_channels = channels
        self.out_channels = channels

    @torch.jit.export
    def output_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """``[(height, width)]``: one branch of the input's size."""
        return [(height, width)]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            x: feature map ``[M, channels, h, w]``.

        Returns:
            ``[x]``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"IdentityHead expects x of shape [M, {self.in_channels}, h, w], got shape {list(x.shape)}."
            )
        return [x]

    def extra_repr(self) -> str:
        return f"channels={self.in_channels}"
