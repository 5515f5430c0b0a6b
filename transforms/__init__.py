# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Transforms of the MIMS-CNN bundle: loading any volume or image, channel handling, and bags of slices.

A typical pipeline (dictionary keys ``"image"``):

``LoadVolumed -> EnsureChannelsd -> ToBagd -> ResizeSlicesd -> RandSampleSlicesd`` (training) or
``... -> CentralSlicesd`` (evaluation and inference), giving bags ``[N, C, H, W]``. Large 2-D images become
bags of patches instead: ``... -> ToBagd -> RandGridPatchBagd -> ResizeSlicesd`` (training) or
``... -> GridPatchBagd -> ResizeSlicesd`` (evaluation and inference).
After the network, ``ThresholdDecisiond`` turns class probabilities into the one-hot decision (argmax, or a
threshold on the positive class).
"""

from __future__ import annotations

from .bag import (
    RESIZE_MODES,
    SLICE_AXIS_KEY,
    CentralSlices,
    CentralSlicesd,
    RandSampleSlices,
    RandSampleSlicesd,
    ResizeSlices,
    ResizeSlicesd,
    SelectSlices,
    ToBag,
    ToBagd,
)
from .channels import LUMA_WEIGHTS, EnsureChannels, EnsureChannelsd
from .decision import ThresholdDecision, ThresholdDecisiond, check_threshold
from .io import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS, VOLUME_EXTENSIONS, LoadVolume, LoadVolumed, natural_sort_key
from .oct_formats import OCT_EXTENSIONS, OCTReaderMissing
from .patches import (
    PATCH_META_KEYS,
    TISSUE_SIDES,
    GridPatchBag,
    GridPatchBagd,
    RandGridPatchBag,
    RandGridPatchBagd,
    patch_locations,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "OCT_EXTENSIONS",
    "OCTReaderMissing",
    "PATCH_META_KEYS",
    "TISSUE_SIDES",
    "LUMA_WEIGHTS",
    "RESIZE_MODES",
    "SLICE_AXIS_KEY",
    "SUPPORTED_EXTENSIONS",
    "VOLUME_EXTENSIONS",
    "CentralSlices",
    "CentralSlicesd",
    "EnsureChannels",
    "EnsureChannelsd",
    "GridPatchBag",
    "GridPatchBagd",
    "LoadVolume",
    "LoadVolumed",
    "RandGridPatchBag",
    "RandGridPatchBagd",
    "RandSampleSlices",
    "RandSampleSlicesd",
    "ResizeSlices",
    "ResizeSlicesd",
    "SelectSlices",
    "ThresholdDecision",
    "ThresholdDecisiond",
    "ToBag",
    "ToBagd",
    "check_threshold",
    "natural_sort_key",
    "patch_locations",
]
