# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The padding mask of a batch of bags: which instances are real."""

from __future__ import annotations

from typing import List, Optional

import torch

__all__ = ["check_bag_mask"]


def check_bag_mask(mask: Optional[torch.Tensor], bag_shape: List[int]) -> None:
    """Raise a ValueError unless ``mask`` is None or a bool tensor ``[B, N]`` with ``[B, N] == bag_shape``.

    ``mask[b, n]`` is True when instance ``n`` of bag ``b`` is real, False for padding (TorchScript-compatible).

    Args:
        mask: the padding mask, or None (every instance real).
        bag_shape: ``[B, N]`` of the bags it belongs to (e.g. ``list(x.shape[:2])``).
    """
    if mask is None:
        return
    bad_shape = mask.dim() != 2 or mask.shape[0] != bag_shape[0] or mask.shape[1] != bag_shape[1]
    if mask.dtype != torch.bool or bad_shape:
        raise ValueError(
            f"mask must be a bool tensor of shape [B, N] = {bag_shape}, got {mask.dtype} of shape {list(mask.shape)}."
        )
