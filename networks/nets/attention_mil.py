# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Attention-based deep multiple-instance learning (Ilse et al., ICML 2018) as a bag network of the bundle."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from networks.blocks.attention_pool import AttentionPool
from networks.nets.backbone import ResNetBackbone
from networks.nets.bag_network import BagNetwork, check_bag_input

__all__ = ["AttentionMIL", "INSTANCE_POOLINGS"]

#: how an instance's backbone feature map ``[C, h, w]`` becomes one vector ``[C]``
INSTANCE_POOLINGS = ("mean", "max")


class AttentionMIL(BagNetwork):
    """
    Attention MIL (Ilse et al., "Attention-based Deep Multiple Instance Learning", ICML 2018): every instance
    (slice or patch) is embedded on its own, attention weights over the instances pool the embeddings into
    one bag embedding, and a linear layer classifies it::

        instance [C, H, W] -- ResNetBackbone -- global mean (or max) pool -- [Linear -- ReLU] -- h_n [D]
        bag {h_n}          -- AttentionPool (weights a_n) -- z = sum_n a_n h_n -- Linear -- logits

    The attention weights ``a_n`` are the instance-level explanation: :meth:`instance_scores` returns them,
    so key slices / key patches and the instance-score maps of ``--localize`` come from them (they do not
    depend on the class of interest: one weight per instance).

    Compared with MONAI's :class:`monai.networks.nets.MILModel` (``mil_mode="att"``), whose attention head
    is the same plain (non-gated) softmax attention, this network adds what the bundle needs: a padding mask
    (bags of different lengths in one batch; padding changes nothing), the gated variant, the
    squared-average normalisation of Liu et al. (2024), an exact chunked forward for long bags, the weights
    as an output, and the bundle's ResNet backbones (any depth and stage, torchvision weights, 1-channel input).

    Args:
        in_channels: channels of every instance. Defaults to 1.
        num_classes: number of output logits. Defaults to 2.
        backbone_depth: ResNet depth, one of 10, 18, 34, 50, 101, 152. Defaults to 18.
        feature_stage: deepest backbone stage used, 1..4. Defaults to 4.
        pretrained_weights: torchvision-format ImageNet state dict for the backbone, or ``None``. Defaults to ``None``.
        backbone_max_pool: whether the backbone's stem has its max-pooling (``False`` for small instances).
            Defaults to ``True``.
        embedding_dim: width ``D`` of a ``Linear`` + ``ReLU`` embedding layer after the global pooling
            (Ilse et al.'s instance embedding); ``None`` uses the pooled backbone features directly
            (``D = backbone.out_channels``). Defaults to ``None``.
        instance_pooling: how each instance's feature map becomes one vector: ``"mean"`` (global average
            pooling, Ilse et al.) or ``"max"`` (the largest value of each channel over the map), which keeps the
            response to a lesion that covers a small part of the instance from being averaged away with the
            rest of the map. Defaults to ``"mean"``.
        attention_dim: width of the attention layer. Defaults to 128.
        gated: gated attention. Defaults to False.
        attention_normalization: ``"softmax"`` (Ilse et al.) or ``"squared_average"`` (Liu et al., 2024).
            Defaults to ``"softmax"``.

    Attributes:
        embedding_dim: ``D``, the width of the instance and bag embeddings.
        network_name: ``"AttentionMIL"`` or ``"GatedAttentionMIL"``.
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
        attention_normalization: str = "softmax",
        instance_pooling: str = "mean",
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if embedding_dim is not None and (
            isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1
        ):
            raise ValueError(f"embedding_dim must be a positive integer or None, got {embedding_dim!r}.")
        if instance_pooling not in INSTANCE_POOLINGS:
            raise ValueError(f"instance_pooling must be one of {list(INSTANCE_POOLINGS)}, got {instance_pooling!r}.")
        self.instance_pooling: str = instance_pooling
        self.backbone = ResNetBackbone(
            in_channels, backbone_depth, feature_stage, pretrained_weights, max_pool=backbone_max_pool
        )
        self.in_channels = self.backbone.in_channels
        self.num_classes = num_classes
        self.network_name: str = "GatedAttentionMIL" if gated else "AttentionMIL"
        width = self.backbone.out_channels
        self.embedding = None
        if embedding_dim is not None:
            self.embedding = nn.Sequential(nn.Linear(width, embedding_dim), nn.ReLU())
            width = embedding_dim
        self.embedding_dim: int = width
        self.attention = AttentionPool(width, attention_dim, gated=gated, normalization=attention_normalization)
        self.classifier = nn.Linear(width, num_classes)

    def _check_input(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
        check_bag_input(x, mask, self.in_channels, self.network_name)

    @torch.jit.export
    def instance_embeddings(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        The embedding ``h_n`` of every instance; only real instances go through the backbone (padding does not
        enter batch-norm statistics).

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            ``[B, N, embedding_dim]``; padding instances are 0.
        """
        self._check_input(x, mask)
        b, n = x.shape[0], x.shape[1]
        instances = x.flatten(0, 1)
        index: Optional[torch.Tensor] = None
        if mask is not None:
            index = mask.flatten().nonzero().squeeze(1)
            instances = instances.index_select(0, index)
        features = self.backbone(instances)
        h = features.amax(dim=(2, 3)) if self.instance_pooling == "max" else features.mean(dim=(2, 3))
        if self.embedding is not None:
            h = self.embedding(h)
        if index is not None:
            h = torch.zeros([b * n, h.shape[1]], dtype=h.dtype, device=h.device).index_copy(0, index, h)
        return h.reshape(b, n, h.shape[1])

    def _chunked_embeddings(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1, got " + str(chunk_size))
        parts: List[torch.Tensor] = []
        for start in range(0, x.shape[1], chunk_size):
            chunk_mask = None if mask is None else mask[:, start : start + chunk_size]
            parts.append(self.instance_embeddings(x[:, start : start + chunk_size], chunk_mask))
        return torch.cat(parts, dim=1)

    @torch.jit.export
    def forward_head(self, z: torch.Tensor) -> torch.Tensor:
        """
        Args:
            z: bag embeddings ``[B, embedding_dim]``.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.classifier(z)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: bags ``[B, N, in_channels, H, W]`` (a 2-D image is ``N = 1``).
            mask: optional ``[B, N]`` bool, True = real instance, False = padding. ``None``: all real.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.forward_head(self.attention(self.instance_embeddings(x, mask), mask))

    @torch.jit.export
    def forward_chunked(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        """The logits of :meth:`forward`, embedding ``chunk_size`` instances at a time (see :class:`BagNetwork`).

        The embeddings ``[B, N, embedding_dim]`` of all chunks are kept (a few hundred numbers per instance)
        and pooled once, so the logits equal :meth:`forward` exactly in eval mode; the backbone's activations,
        the memory that grows with the instance size, exist for one chunk at a time.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.
            chunk_size: instances per chunk, ``>= 1``.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.forward_head(self.attention(self._chunked_embeddings(x, mask, chunk_size), mask))

    @torch.jit.export
    def attention_weights(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, chunk_size: int = 0
    ) -> torch.Tensor:
        """
        The attention weight of every instance.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.
            chunk_size: instances embedded per call; ``0`` embeds the whole bag at once.

        Returns:
            ``[B, N]``, summing to 1 over the real instances of each bag; 0 for padding.
        """
        h = self.instance_embeddings(x, mask) if chunk_size < 1 else self._chunked_embeddings(x, mask, chunk_size)
        return self.attention.forward_with_weights(h, mask)[1]

    def instance_scores(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The attention weights as instance scores (see :class:`BagNetwork`).

        Attention MIL's explanation is its attention weights (Ilse et al., section 2.4): one weight per
        instance, whatever the class of interest, so ``target`` is accepted and not used.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.
            target: class of interest per bag (unused: the weights do not depend on it).

        Returns:
            ``(attention weights [B, N], logits [B, num_classes])``, both detached.
        """
        with torch.no_grad():
            h = self.instance_embeddings(x, mask)
            z, weights = self.attention.forward_with_weights(h, mask)
            logits = self.forward_head(z)
        return weights, logits

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """``{"backbone": the backbone's parameters, "head": embedding, attention and classifier}``."""
        backbone = list(self.backbone.parameters())
        backbone_ids = {id(p) for p in backbone}
        return {"backbone": backbone, "head": [p for p in self.parameters() if id(p) not in backbone_ids]}

    def explanation_layer(self) -> str:
        """The deepest backbone stage the network uses, e.g. ``"backbone.layer2"``."""
        return f"backbone.layer{self.backbone.feature_stage}"

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}"
