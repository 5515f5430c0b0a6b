# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Where the evidence is: gradient x input heatmaps, top-k provenance and key slices."""

from __future__ import annotations

from .grad_input import INPUT_LAYER, GradientTimesInput, default_layer
from .provenance import TopKProvenance, decode_feature_index, key_slices, slice_scores, target_margin

__all__ = [
    "INPUT_LAYER",
    "GradientTimesInput",
    "TopKProvenance",
    "decode_feature_index",
    "default_layer",
    "key_slices",
    "slice_scores",
    "target_margin",
]
