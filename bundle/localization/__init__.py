# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Where the evidence is: gradient x input heatmaps, top-k provenance, key slices and their outputs."""

from __future__ import annotations

from .glam import GlobalLocalSaliency
from .grad_input import INPUT_LAYER, GradientTimesInput, default_layer
from .metrics import heatmap_auroc, key_slice_hit, pointing_game_hit
from .overlay import DEFAULT_COLORMAP, montage, overlay_heatmap, save_png
from .provenance import TopKProvenance, decode_feature_index, key_slices, slice_scores, target_margin
from .writer import LocalizationWriter, ValidationOverlayLogger, heatmap_volume, localize_case

__all__ = [
    "DEFAULT_COLORMAP",
    "INPUT_LAYER",
    "GlobalLocalSaliency",
    "GradientTimesInput",
    "LocalizationWriter",
    "TopKProvenance",
    "ValidationOverlayLogger",
    "decode_feature_index",
    "default_layer",
    "heatmap_auroc",
    "heatmap_volume",
    "key_slice_hit",
    "key_slices",
    "localize_case",
    "montage",
    "overlay_heatmap",
    "pointing_game_hit",
    "save_png",
    "slice_scores",
    "target_margin",
]
