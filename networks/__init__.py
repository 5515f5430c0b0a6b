# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Networks of the MIMS-CNN bundle: reusable layers in ``networks.blocks``, assembled models in ``networks.nets``."""

from __future__ import annotations

from .blocks import (
    DEFAULT_KERNEL_GROUPS,
    DEFAULT_SCALES,
    RESIZE_MODES,
    IdentityHead,
    MagnitudeNorm,
    MeanPool,
    MSConv,
    TopKPool,
    TridentConv,
)
from .nets import (
    INPUT_LAYER,
    INSTANCE_AGGREGATIONS,
    MIMSCNN,
    POOLINGS,
    RESNET_LAYOUTS,
    BagNetwork,
    FeatPyra,
    MILNet,
    MIPre,
    MIPreConv,
    MIPreTrident,
    ResNet34Scratch,
    ResNetBackbone,
    VolumeAsBag,
    decode_feature_index,
    target_margin,
)

__all__ = [
    "DEFAULT_KERNEL_GROUPS",
    "DEFAULT_SCALES",
    "INPUT_LAYER",
    "INSTANCE_AGGREGATIONS",
    "MIMSCNN",
    "POOLINGS",
    "RESIZE_MODES",
    "RESNET_LAYOUTS",
    "BagNetwork",
    "FeatPyra",
    "IdentityHead",
    "MILNet",
    "MIPre",
    "MIPreConv",
    "MIPreTrident",
    "MSConv",
    "MagnitudeNorm",
    "MeanPool",
    "ResNet34Scratch",
    "ResNetBackbone",
    "TopKPool",
    "TridentConv",
    "VolumeAsBag",
    "decode_feature_index",
    "target_margin",
]
