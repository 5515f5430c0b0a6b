# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Networks of the MIMS-CNN bundle: reusable layers in ``networks.blocks``, assembled models in ``networks.nets``."""

from __future__ import annotations

from .blocks import DEFAULT_KERNEL_GROUPS, DEFAULT_SCALES, RESIZE_MODES, MagnitudeNorm, MSConv, TopKPool
from .nets import MIMSCNN, RESNET_LAYOUTS, ResNetBackbone

__all__ = [
    "DEFAULT_KERNEL_GROUPS",
    "DEFAULT_SCALES",
    "MIMSCNN",
    "RESIZE_MODES",
    "RESNET_LAYOUTS",
    "MSConv",
    "MagnitudeNorm",
    "ResNetBackbone",
    "TopKPool",
]
