# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from .backbone import RESNET_LAYOUTS, ResNetBackbone
from .mims_cnn import MIMSCNN

__all__ = ["MIMSCNN", "RESNET_LAYOUTS", "ResNetBackbone"]
