# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Attention pooling of instance embeddings (attention-based deep MIL and its squared-average variant)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .bag_mask import check_bag_mask

__all__ = ["ATTENTION_NORMALIZATIONS", "AttentionPool"]

#: how attention scores become weights that sum to 1 over the real instances of a bag
ATTENTION_NORMALIZATIONS = ("softmax", "squared_average")


class AttentionPool(nn.Module):
    """
    Attention pooling of a bag of instance embeddings ``h_n`` into one bag embedding ``z = sum_n a_n h_n``
    (Ilse et al., "Attention-based Deep Multiple Instance Learning", ICML 2018)::

        score  t_n = w^T tanh(V h_n)                          (gated=False)
               t_n = w^T (tanh(V h_n) * sigmoid(U h_n))       (gated=True)
        weight a_n = softmax_n(t_n)                           (normalization="softmax")
               a_n = s_n^2 / sum_m s_m^2,  s_n = softplus(t_n)  (normalization="squared_average")

    The squared average follows the patch-scoring attention pooling of Liu et al. (2024), whose formula
    ``w_n = s_n^2 / sum_m s_m^2`` needs non-negative scores ``s_n``: here ``softplus`` of the attention score.
    Unlike softmax, the ratio of two weights is the square of the ratio of their (non-negative) scores, not
    the exponential of their difference, so that a few clearly higher-scoring instances take a larger share.
    It is computed as ``(s_n / max_m s_m)^2 / sum_m (s_m / max_m s_m)^2`` (the same value, without overflow);
    when every score underflows to 0 the weights are uniform over the real instances.

    Padding: ``mask [B, N]`` (True = real instance) leaves padding instances out: their embeddings are
    replaced by 0 before use (so that non-finite padding values cannot leak through a zero weight), their
    weights are 0, and a bag without any real instance pools to ``z = 0`` with all weights 0.

    Args:
        in_features: width ``D`` of the instance embeddings.
        hidden_features: width of the attention layer (``V``, and ``U`` when gated). Defaults to 128.
        gated: add the sigmoid gate ``U`` (the gated attention of Ilse et al.). Defaults to False.
        normalization: one of :data:`ATTENTION_NORMALIZATIONS`. Defaults to ``"softmax"``.

    Example:

    .. code-block:: python

        pool = AttentionPool(in_features=4, hidden_features=8)
        h = torch.randn(2, 5, 4)                      # [B, N, D]
        mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
        z, weights = pool.forward_with_weights(h, mask)  # [2, 4], [2, 5]; weights[1, 3:] == 0
    """

    def __init__(
        self, in_features: int, hidden_features: int = 128, gated: bool = False, normalization: str = "softmax"
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden_features", hidden_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not isinstance(gated, bool):
            raise ValueError(f"gated must be True or False, got {gated!r}.")
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.gated = gated
        if normalization not in ATTENTION_NORMALIZATIONS:  # named, as AttentionMIL names its instance_pooling
            raise ValueError(
                f"normalization must be one of {list(ATTENTION_NORMALIZATIONS)}, got {normalization!r}."
            )
        self.normalization: str = normalization
        self.attention_v = nn.Linear(in_features, hidden_features)
        self.attention_u = nn.Linear(in_features, hidden_features) if gated else None
        self.attention_w = nn.Linear(hidden_features, 1)

    def _check(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
        if h.dim() != 3 or h.shape[2] != self.in_features:
            raise ValueError(
                f"AttentionPool expects embeddings of shape [B, N, {self.in_features}], got shape {list(h.shape)}."
            )
        check_bag_mask(mask, list(h.shape[:2]))

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """
        Unnormalised attention scores ``t_n``.

        Args:
            h: instance embeddings ``[B, N, in_features]`` (finite).

        Returns:
            ``[B, N]``.
        """
        hidden = torch.tanh(self.attention_v(h))
        if self.attention_u is not None:
            hidden = hidden * torch.sigmoid(self.attention_u(h))
        return self.attention_w(hidden).squeeze(-1)

    def normalize(self, scores: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Attention weights from scores, by ``normalization``, over the real instances of each bag.

        Args:
            scores: ``[B, N]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            weights ``[B, N]``: non-negative, summing to 1 over the real instances of a bag with at least one
            (0 for padding, and for every instance of an empty bag).
        """
        present = torch.ones_like(scores, dtype=torch.bool) if mask is None else mask
        any_present = present.any(dim=1, keepdim=True)
        if self.normalization == "softmax":
            masked = torch.where(present, scores, torch.full_like(scores, float("-inf")))
            # an empty bag would be softmax of all -inf (NaN): give it finite scores, then zero its weights
            masked = torch.where(any_present, masked, torch.zeros_like(masked))
            weights = torch.softmax(masked, dim=1)
        else:
            positive = torch.where(present, F.softplus(scores), torch.zeros_like(scores))
            largest = positive.max(dim=1, keepdim=True).values
            ratio = positive / torch.where(largest > 0, largest, torch.ones_like(largest))
            squared = ratio * ratio
            total = squared.sum(dim=1, keepdim=True)
            uniform = present.to(scores.dtype) / present.sum(dim=1, keepdim=True).clamp(min=1).to(scores.dtype)
            weights = torch.where(total > 0, squared / torch.where(total > 0, total, torch.ones_like(total)), uniform)
        return torch.where(present & any_present, weights, torch.zeros_like(weights))

    def forward_with_weights(
        self, h: torch.Tensor, mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            h: instance embeddings ``[B, N, in_features]``.
            mask: optional ``[B, N]`` bool, True = real instance. ``None``: all instances real.

        Returns:
            ``(z [B, in_features], weights [B, N])``.
        """
        self._check(h, mask)
        if mask is not None:
            h = torch.where(mask.unsqueeze(-1), h, torch.zeros_like(h))
        weights = self.normalize(self.scores(h), mask)
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            h: instance embeddings ``[B, N, in_features]``.
            mask: optional ``[B, N]`` bool, True = real instance.

        Returns:
            bag embeddings ``[B, in_features]``.
        """
        return self.forward_with_weights(h, mask)[0]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, hidden_features={self.hidden_features}, gated={self.gated}, "
            f"normalization={self.normalization}"
        )
