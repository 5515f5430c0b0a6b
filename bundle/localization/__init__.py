# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Where the evidence is: gradient x input heatmaps, slice scores, key slices and their outputs."""

from __future__ import annotations

from .case_outputs import heatmap_volume, instance_score_volume, localize_case
from .glam import GlobalLocalSaliency
from .grad_input import INPUT_LAYER, GradientTimesInput, default_layer
from .handlers import LocalizationWriter, ValidationOverlayLogger
from .metrics import average_precision, heatmap_auroc, key_slice_hit, peak_distances, pointing_game_hit
from .overlay import DEFAULT_COLORMAP, montage, overlay_heatmap, save_png
from .provenance import class_targets, key_slices, slice_scores

__all__ = [
    "DEFAULT_COLORMAP",
    "INPUT_LAYER",
    "GlobalLocalSaliency",
    "GradientTimesInput",
    "LocalizationWriter",
    "ValidationOverlayLogger",
    "average_precision",
    "class_targets",
    "default_layer",
    "heatmap_auroc",
    "heatmap_volume",
    "instance_score_volume",
    "key_slice_hit",
    "key_slices",
    "localize_case",
    "montage",
    "overlay_heatmap",
    "peak_distances",
    "pointing_game_hit",
    "save_png",
    "slice_scores",
]
