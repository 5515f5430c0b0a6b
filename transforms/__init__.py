# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Transforms of the MIMS-CNN bundle: loading any volume or image, channel handling, and bags of slices.

A typical pipeline (dictionary keys ``"image"``):

``LoadVolumed -> EnsureChannelsd -> ToBagd -> ResizeSlicesd -> RandSampleSlicesd`` (training) or
``... -> CentralSlicesd`` (evaluation and inference), giving bags ``[N, C, H, W]``.
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
from .io import IMAGE_EXTENSIONS, SUPPORTED_EXTENSIONS, VOLUME_EXTENSIONS, LoadVolume, LoadVolumed, natural_sort_key

__all__ = [
    "IMAGE_EXTENSIONS",
    "LUMA_WEIGHTS",
    "RESIZE_MODES",
    "SLICE_AXIS_KEY",
    "SUPPORTED_EXTENSIONS",
    "VOLUME_EXTENSIONS",
    "CentralSlices",
    "CentralSlicesd",
    "EnsureChannels",
    "EnsureChannelsd",
    "LoadVolume",
    "LoadVolumed",
    "RandSampleSlices",
    "RandSampleSlicesd",
    "ResizeSlices",
    "ResizeSlicesd",
    "SelectSlices",
    "ToBag",
    "ToBagd",
    "natural_sort_key",
]
