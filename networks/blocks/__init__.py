# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from .magnitude_norm import MagnitudeNorm
from .msconv import DEFAULT_KERNEL_GROUPS, DEFAULT_SCALES, RESIZE_MODES, MSConv
from .topk_pool import TopKPool

__all__ = ["DEFAULT_KERNEL_GROUPS", "DEFAULT_SCALES", "RESIZE_MODES", "MSConv", "MagnitudeNorm", "TopKPool"]
