# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Inference over bags of any size in bounded memory."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["ChunkedBagInferer"]


class ChunkedBagInferer(Inferer):
    """Run a bag network on bags ``[B, N, C, H, W]`` a chunk of instances at a time.

    Bags with more than ``chunk_size`` instances go through the network's
    :meth:`networks.nets.BagNetwork.forward_chunked`, which gives the logits of ``network(x, mask)``
    exactly while its peak memory depends on ``chunk_size``, not on ``N`` (for the bundle's
    :class:`networks.nets.MILNet`: top-k candidates per chunk, or slice logits per chunk). Networks in
    training mode (BatchNorm statistics would then depend on the chunking), bags with at most
    ``chunk_size`` instances and networks without ``forward_chunked`` (not a
    :class:`networks.nets.BagNetwork`, or a scripted one that does not export it) are run in one call.

    Args:
        chunk_size: instances per chunk, ``>= 1``.

    Call:
        ``inferer(inputs [B, N, C, H, W], network, mask=None [B, N] bool) -> logits [B, num_classes]``
    """

    def __init__(self, chunk_size: int = 16) -> None:
        super().__init__()
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        mask = kwargs.pop("mask", None)
        core = getattr(network, "module", network)  # DistributedDataParallel / DataParallel
        forward_chunked = getattr(core, "forward_chunked", None)  # also on a scripted BagNetwork (model.ts)
        if network.training or inputs.shape[1] <= self.chunk_size or forward_chunked is None:
            return network(inputs, *args, mask=mask, **kwargs) if mask is not None else network(inputs, *args, **kwargs)
        return forward_chunked(inputs, mask, self.chunk_size)
