# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MeanPool"]


class MeanPool(nn.Module):
    """
    Mean pooling over all present elements: the "mean" aggregation of the MIL ablation of MIMS-CNN (Li et
    al., MICCAI 2019, arXiv:1907.02413, section 3.3), a drop-in replacement for :class:`TopKPool`::

        -- flatten trailing dims -- mean of the finite elements --

    Absent elements (padding slices) are ``-inf``, as for :class:`TopKPool`, and are left out of the mean;
    a row without any present element pools to 0 (gradient 0). No parameters.

    Example:

    .. code-block:: python

        x = torch.tensor([[[1.0, 4.0, 2.0, float("-inf")]]])  # [B=1, C=1, L=4]
        print(MeanPool()(x))

    output::

        tensor([[2.3333]])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: activations ``[B, C, *D]`` (at least 3 dims); ``-inf`` marks absent elements.

        Returns:
            pooled features ``[B, C]``.
        """
        if x.dim() < 3:
            raise ValueError(f"MeanPool expects x of shape [B, C, *D] with at least 3 dims, got shape {list(x.shape)}.")
        flat = x.flatten(2)
        present = flat != float("-inf")
        total = torch.where(present, flat, torch.zeros_like(flat)).sum(dim=-1)
        count = present.sum(dim=-1).to(flat.dtype)
        return total / torch.clamp(count, min=1.0)
