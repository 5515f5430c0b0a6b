# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Patch scoring + attention pooling of the top-scoring patches (Liu et al., 2024) as a bag network."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from networks.nets.attention_mil import AttentionMIL

__all__ = ["PatchScoringAttentionMIL"]


class PatchScoringAttentionMIL(AttentionMIL):
    """
    End-to-end attention pooling with patch scoring (Liu et al., Geomatics and Information Science of Wuhan
    University, 2024): a patch-scoring head scores every instance, the ``num_selected`` best-scoring
    instances of each bag are selected, and attention pooling with the squared-average normalisation fuses
    their embeddings::

        instance -- ResNetBackbone -- global average pool -- [Linear -- ReLU] -- h_n
        h_n -- scorer (Linear) -- instance logits l_n -- score s_n -- top num_selected instances S
        {h_n : n in S} -- AttentionPool (squared average) -- z -- Linear -- bag logits a
        logits = (a + mean_{n in S} l_n) / 2

    The score of an instance is its evidence against class 0 (the bundle's "normal" class):
    ``s_n = max_{c >= 1} l_{n,c} - l_{n,0}`` (the logit itself with one class).

    Choices where the abstract is silent (documented so): the scorer is one linear layer on the instance
    embeddings, and it is trained from the bag label by averaging its logits over the selected instances
    (top-k MIL) and averaging those with the attention branch's logits, as DSMIL (Li et al., CVPR 2021)
    combines its instance and bag branches: one loss on the returned logits trains scorer, attention and
    classifier jointly (the selection itself passes no gradient). Squared average: see
    :class:`networks.blocks.AttentionPool`.

    :meth:`instance_scores` returns the attention weights (0 for unselected instances).

    Args:
        num_selected: instances selected per bag, ``>= 1`` (all of a shorter bag). Defaults to 8.
        attention_normalization: ``"squared_average"`` (Liu et al.) or ``"softmax"``. Defaults to
            ``"squared_average"``.
        in_channels, num_classes, backbone_depth, feature_stage, pretrained_weights, backbone_max_pool,
        embedding_dim, attention_dim, gated, instance_pooling: as for :class:`AttentionMIL`.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        pretrained_weights: Optional[str] = None,
        backbone_max_pool: bool = True,
        embedding_dim: Optional[int] = None,
        attention_dim: int = 128,
        gated: bool = False,
        attention_normalization: str = "squared_average",
        num_selected: int = 8,
        instance_pooling: str = "mean",
    ) -> None:
        super().__init__(
            in_channels,
            num_classes,
            backbone_depth,
            feature_stage,
            pretrained_weights,
            backbone_max_pool,
            embedding_dim,
            attention_dim,
            gated,
            attention_normalization,
            instance_pooling,
        )
        if isinstance(num_selected, bool) or not isinstance(num_selected, int) or num_selected < 1:
            raise ValueError(f"num_selected must be a positive integer, got {num_selected!r}.")
        self.num_selected = num_selected
        self.network_name = "PatchScoringAttentionMIL"
        self.scorer = torch.nn.Linear(self.embedding_dim, num_classes)

    @torch.jit.export
    def evidence(self, instance_logits: torch.Tensor) -> torch.Tensor:
        """
        Args:
            instance_logits: ``[B, N, num_classes]``.

        Returns:
            ``[B, N]``: ``max_{c >= 1} l_c - l_0`` (``l_0`` with one class).
        """
        if instance_logits.shape[-1] == 1:
            return instance_logits[..., 0]
        return instance_logits[..., 1:].max(dim=-1).values - instance_logits[..., 0]

    @torch.jit.export
    def select(self, scores: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        The ``num_selected`` best-scoring real instances of each bag (all of them when fewer).

        Args:
            scores: ``[B, N]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            ``[B, N]`` bool, True = selected.
        """
        present = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask
        ranked = torch.where(present, scores, torch.full_like(scores, float("-inf")))
        # num_selected columns of -inf behind the bag: top-k with a constant k for any bag length N (a k computed
        # from N would be frozen to the example's N by a traced export, e.g. ONNX); they are never kept
        filler = torch.full((scores.shape[0], self.num_selected), float("-inf"), dtype=scores.dtype,
                            device=scores.device)
        top = torch.topk(torch.cat([ranked, filler], dim=1), self.num_selected, dim=1).indices
        chosen = torch.zeros(top.shape[0], scores.shape[1] + self.num_selected, dtype=torch.bool, device=scores.device)
        chosen = chosen.scatter(1, top, torch.ones_like(top, dtype=torch.bool))[:, : scores.shape[1]]
        return chosen & present

    @torch.jit.export
    def head_from_embeddings(
        self, h: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            h: instance embeddings ``[B, N, embedding_dim]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            ``(logits [B, num_classes], attention weights [B, N])`` (weights 0 outside the selection).
        """
        instance_logits = self.scorer(h)
        selected = self.select(self.evidence(instance_logits).detach(), mask)
        z, weights = self.attention.forward_with_weights(h, selected)
        count = selected.sum(dim=1, keepdim=True).clamp(min=1).to(h.dtype)
        scored = (instance_logits * selected.unsqueeze(-1).to(h.dtype)).sum(dim=1) / count
        return 0.5 * (self.classifier(z) + scored), weights

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.head_from_embeddings(self.instance_embeddings(x, mask), mask)[0]

    @torch.jit.export
    def forward_chunked(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        """The logits of :meth:`forward`, embedding ``chunk_size`` instances at a time (exact in eval mode)."""
        return self.head_from_embeddings(self._chunked_embeddings(x, mask, chunk_size), mask)[0]

    @torch.jit.export
    def attention_weights(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, chunk_size: int = 0
    ) -> torch.Tensor:
        """Attention weights ``[B, N]`` over the selected instances (0 elsewhere); see :class:`AttentionMIL`."""
        h = self.instance_embeddings(x, mask) if chunk_size < 1 else self._chunked_embeddings(x, mask, chunk_size)
        return self.head_from_embeddings(h, mask)[1]

    def instance_scores(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(attention weights [B, N], logits [B, num_classes])``, detached; ``target`` is not used."""
        with torch.no_grad():
            logits, weights = self.head_from_embeddings(self.instance_embeddings(x, mask), mask)
        return weights, logits

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_selected={self.num_selected}"
