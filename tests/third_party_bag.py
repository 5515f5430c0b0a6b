# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A bag network from outside the bundle that implements only the :class:`networks.BagNetwork` contract.

The contract tests plug it into the configs (``network_def#_target_: third_party_bag.InstanceMeanBag``) to
show that nothing in ``bundle/`` needs more than the contract.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from networks import BagNetwork, target_margin


class InstanceMeanBag(BagNetwork):
    """Each instance is classified on its own (conv -> ReLU -> global average -> linear); the bag logits are
    the mean of the real instances' logits. ``forward_chunked`` sums the chunks' logits: exact up to rounding.

    ``chunked_calls`` counts the calls of :meth:`forward_chunked` (class-wide), so that tests see the
    inferer use it.
    """

    chunked_calls = 0

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.features = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.classifier = nn.Linear(width, num_classes)

    def _instance_logits(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[0], x.shape[1]
        feats = self.features(x.flatten(0, 1)).mean(dim=(2, 3))
        return self.classifier(feats).reshape(b, n, self.num_classes)

    def _masked_sum(self, logits: torch.Tensor, mask: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            return logits.sum(dim=1), torch.full_like(logits[:, 0, :1], float(logits.shape[1]))
        weight = mask.to(logits.dtype).unsqueeze(-1)
        return (logits * weight).sum(dim=1), weight.sum(dim=1)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        total, count = self._masked_sum(self._instance_logits(x), mask)
        return total / count.clamp(min=1.0)

    def forward_chunked(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        InstanceMeanBag.chunked_calls += 1
        total = torch.zeros(x.shape[0], self.num_classes, dtype=x.dtype, device=x.device)
        count = torch.zeros(x.shape[0], 1, dtype=x.dtype, device=x.device)
        for start in range(0, x.shape[1], chunk_size):
            chunk_mask = None if mask is None else mask[:, start : start + chunk_size]
            chunk_logits = self._instance_logits(x[:, start : start + chunk_size])
            chunk_total, chunk_count = self._masked_sum(chunk_logits, chunk_mask)
            total, count = total + chunk_total, count + chunk_count
        return total / count.clamp(min=1.0)

    def instance_scores(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        instance_logits = self._instance_logits(x).detach()
        total, count = self._masked_sum(instance_logits, mask)
        logits = total / count.clamp(min=1.0)
        target = logits.argmax(dim=1) if target is None else target
        b, n, k = instance_logits.shape
        scores = target_margin(instance_logits.reshape(b * n, k), target.repeat_interleave(n)).reshape(b, n)
        return scores, logits

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {"backbone": list(self.features.parameters()), "head": list(self.classifier.parameters())}

    def explanation_layer(self) -> str:
        return "features"
