# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from .attention_pool import ATTENTION_NORMALIZATIONS, AttentionPool
from .bag_mask import check_bag_mask
from .identity_head import IdentityHead
from .magnitude_norm import MagnitudeNorm
from .mean_pool import MeanPool
from .msconv import DEFAULT_KERNEL_GROUPS, DEFAULT_SCALES, RESIZE_MODES, MSConv, parse_scales, scaled_length
from .topk_pool import TopKPool
from .trident_conv import TridentConv

__all__ = [
    "ATTENTION_NORMALIZATIONS",
    "DEFAULT_KERNEL_GROUPS",
    "DEFAULT_SCALES",
    "RESIZE_MODES",
    "AttentionPool",
    "IdentityHead",
    "MSConv",
    "MagnitudeNorm",
    "MeanPool",
    "TopKPool",
    "TridentConv",
    "check_bag_mask",
    "parse_scales",
    "scaled_length",
]
