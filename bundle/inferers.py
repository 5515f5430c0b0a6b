# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Inference over bags of any size in bounded memory."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer
from torch import nn

__all__ = ["ChunkedBagInferer"]


class ChunkedBagInferer(Inferer):
    """Run a top-k pooling MIL network on a bag ``[B, N, C, H, W]`` a chunk of slices at a time.

    Each chunk of ``chunk_size`` slices goes through ``network.instance_features`` and only the ``k``
    largest activations per channel are kept; the kept candidates of all chunks are pooled by
    ``network.pool`` and classified by ``network.forward_head``. The top-k of a union is the top-k
    of the union of the per-chunk top-k, so in eval mode the logits equal ``network(x, mask)``
    exactly while peak memory depends on ``chunk_size``, not on ``N``.

    Networks without that interface, networks in training mode (BatchNorm statistics would then
    depend on the chunking) and bags with at most ``chunk_size`` slices are run in one call.

    Args:
        chunk_size: slices per chunk, ``>= 1``.

    Call:
        ``inferer(inputs [B, N, C, H, W], network, mask=None [B, N] bool) -> logits [B, num_classes]``
    """

    def __init__(self, chunk_size: int = 16) -> None:
        super().__init__()
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = int(chunk_size)

    @staticmethod
    def _supports_chunks(network: nn.Module) -> bool:
        return all(hasattr(network, name) for name in ("instance_features", "forward_head", "pool"))

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        mask = kwargs.pop("mask", None)
        core = getattr(network, "module", network)  # DistributedDataParallel / DataParallel
        n = inputs.shape[1]
        if network.training or n <= self.chunk_size or not self._supports_chunks(core):
            return network(inputs, *args, mask=mask, **kwargs) if mask is not None else network(inputs, *args, **kwargs)
        k = int(core.pool.k)
        candidates = []
        for start in range(0, n, self.chunk_size):
            chunk = inputs[:, start : start + self.chunk_size]
            chunk_mask = None if mask is None else mask[:, start : start + self.chunk_size]
            feats = core.instance_features(chunk, chunk_mask)
            candidates.append(torch.topk(feats, min(k, feats.shape[-1]), dim=-1).values)
        return core.forward_head(core.pool(torch.cat(candidates, dim=-1)))
