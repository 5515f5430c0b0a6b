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

    Networks that classify every slice on their own (``instance_aggregation`` ``"mean"`` or ``"max"``,
    see :class:`networks.nets.MILNet`) are chunked too: the slice logits of all chunks
    (``network.instance_logits``) are concatenated and aggregated once (``network.aggregate_instances``),
    also exact.

    Networks without either interface (e.g. mean pooling over the bag, whose pool has no ``k``),
    networks in training mode (BatchNorm statistics would then depend on the chunking) and bags with
    at most ``chunk_size`` slices are run in one call.

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
    def _chunk_mode(network: nn.Module) -> str:
        """``"instances"``, ``"topk"`` or ``""`` (cannot be chunked exactly)."""
        if getattr(network, "instance_aggregation", "none") != "none":
            ok = all(hasattr(network, name) for name in ("instance_logits", "aggregate_instances"))
            return "instances" if ok else ""
        ok = all(hasattr(network, name) for name in ("instance_features", "forward_head", "pool"))
        return "topk" if ok and hasattr(network.pool, "k") else ""

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        mask = kwargs.pop("mask", None)
        core = getattr(network, "module", network)  # DistributedDataParallel / DataParallel
        n = inputs.shape[1]
        mode = self._chunk_mode(core)
        if network.training or n <= self.chunk_size or not mode:
            return network(inputs, *args, mask=mask, **kwargs) if mask is not None else network(inputs, *args, **kwargs)
        if mode == "instances":
            logits = []
            for start in range(0, n, self.chunk_size):
                chunk_mask = None if mask is None else mask[:, start : start + self.chunk_size]
                logits.append(core.instance_logits(inputs[:, start : start + self.chunk_size], chunk_mask))
            return core.aggregate_instances(torch.cat(logits, dim=1), mask)
        k = int(core.pool.k)
        candidates = []
        for start in range(0, n, self.chunk_size):
            chunk = inputs[:, start : start + self.chunk_size]
            chunk_mask = None if mask is None else mask[:, start : start + self.chunk_size]
            feats = core.instance_features(chunk, chunk_mask)
            candidates.append(torch.topk(feats, min(k, feats.shape[-1]), dim=-1).values)
        return core.forward_head(core.pool(torch.cat(candidates, dim=-1)))
