# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TopKPool"]


class TopKPool(nn.Module):
    """
    Learnable weighted top-k pooling of MIMS-CNN (Li et al., "Multi-Instance Multi-Scale CNN for Medical
    Image Classification", MICCAI 2019, arXiv:1907.02413, section 2.3)::

        -- flatten trailing dims -- top-k (sorted, descending) -- sum_r w_r * a_r --

    For every (bag, channel) pair all activations of the trailing dimensions (spatial positions, scales,
    slices: whatever the caller flattened into them) are pooled into one value

        Pool_k = sum_{r=1..k} w_r * a_r,    a_1 >= a_2 >= ... >= a_k the k largest activations,

    with one weight vector ``w`` shared by all channels. The paper requires ``w_r >= 0`` and
    ``sum_r w_r = 1`` without saying how; here ``w = softmax(weight_logits)``, and the logits are
    initialised to ``r * log(decay)`` so that the initial weights decay exponentially,
    ``w_r ∝ decay ** r`` (``k=2, decay=0.5`` gives ``w = (2/3, 1/3)``; ``decay=1`` gives the mean of the top k).
    ``k = 1`` is max pooling.

    Absent elements (the padding slices of a bag, see :class:`networks.nets.MIMSCNN`) must be encoded as
    ``-inf``. They never receive weight:

        - with ``L`` elements and ``L < k``, ``k_eff = min(k, L)`` and the softmax runs over the first
          ``k_eff`` logits only;
        - when some of the top ``k_eff`` values are ``-inf``, their weights are set to 0 and the remaining
          weights are renormalised to sum to 1;
        - a row without any finite element pools to ``0`` (not NaN), and its gradient is 0.

    ``-inf * 0`` is never evaluated, so neither the values nor the gradients contain NaN.

    Example:

    .. code-block:: python

        pool = TopKPool(k=2, decay=0.5)
        x = torch.tensor([[[1.0, 4.0, 2.0, float("-inf")]]])  # [B=1, C=1, L=4]
        print(pool(x))

    output::

        tensor([[3.3333]], grad_fn=<SumBackward1>)

    Args:
        k: number of largest activations pooled per channel. Defaults to 5 (the paper's default).
        decay: ratio between consecutive initial weights, in ``(0, 1]``. Defaults to 0.5.

    Raises:
        ValueError: when ``k`` is not a positive integer or ``decay`` is not in ``(0, 1]``.
    """

    def __init__(self, k: int = 5, decay: float = 0.5) -> None:
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if not 0.0 < float(decay) <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay!r}.")
        self.k = k
        self.decay = float(decay)
        self.weight_logits = nn.Parameter(torch.arange(k, dtype=torch.float32) * math.log(self.decay))

    @torch.jit.export
    def weights(self) -> torch.Tensor:
        """
        The current pooling weights ``w = softmax(weight_logits)``, shape ``[k]``, non-negative, sum 1,
        in the order of the sorted activations (``w[0]`` multiplies the largest). Differentiable; call
        ``.detach()`` to log them.
        """
        return F.softmax(self.weight_logits, dim=0)

    @torch.jit.export
    def forward_with_indices(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Pool and also return which elements were pooled with which weight (provenance).

        Args:
            x: activations ``[B, C, *D]`` with at least one trailing dimension; all trailing dimensions are
                flattened together (row-major) into ``L = prod(D)`` elements. ``-inf`` marks absent elements.

        Returns:
            A tuple ``(pooled, indices, weights)``:

                - ``pooled``: ``[B, C]``;
                - ``indices``: ``[B, C, k_eff]`` (int64) positions of the top ``k_eff = min(k, L)`` values in the
                  flattened trailing dimensions, sorted by descending value;
                - ``weights``: ``[B, C, k_eff]`` effective weights applied to them (0 for ``-inf`` elements;
                  each row sums to 1, or to 0 when the row has no finite element).
        """
        if x.dim() < 3:
            raise ValueError(f"TopKPool expects x of shape [B, C, *D] with at least 3 dims, got shape {list(x.shape)}.")
        flat = x.flatten(2)
        k_eff = min(self.k, flat.shape[-1])
        values, indices = torch.topk(flat, k_eff, dim=-1, largest=True, sorted=True)
        present = values != float("-inf")
        weights = F.softmax(self.weight_logits[:k_eff], dim=0).to(values.dtype).expand_as(values)
        weights = torch.where(present, weights, torch.zeros_like(weights))
        total = weights.sum(dim=-1, keepdim=True)
        weights = weights / torch.where(total > 0, total, torch.ones_like(total))
        safe_values = torch.where(present, values, torch.zeros_like(values))
        pooled = (weights * safe_values).sum(dim=-1)
        return pooled, indices, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: activations ``[B, C, *D]``; ``-inf`` marks absent elements.

        Returns:
            pooled features ``[B, C]``.
        """
        return self.forward_with_indices(x)[0]

    def extra_repr(self) -> str:
        return f"k={self.k}, decay={self.decay}"
