# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from .attention_mil import INSTANCE_POOLINGS, AttentionMIL
from .backbone import RESNET_LAYOUTS, ResNetBackbone
from .bag_network import INPUT_LAYER, BagNetwork, target_margin
from .baselines import FeatPyra, MIPre, MIPreConv, MIPreTrident, ResNet34Scratch, featpyra_name
from .mil_net import (
    INSTANCE_AGGREGATIONS,
    MIN_BRANCH_MAP_SIZE,
    MIN_SCALE1_MAP_SIZE,
    POOLINGS,
    MILNet,
    SmallFeatureMapWarning,
    decode_feature_index,
)
from .mims_cnn import MIMSCNN
from .patch_scoring_attention import PatchScoringAttentionMIL
from .volume_as_bag import VolumeAsBag

__all__ = [
    "INPUT_LAYER",
    "INSTANCE_AGGREGATIONS",
    "INSTANCE_POOLINGS",
    "MIMSCNN",
    "MIN_BRANCH_MAP_SIZE",
    "MIN_SCALE1_MAP_SIZE",
    "POOLINGS",
    "RESNET_LAYOUTS",
    "AttentionMIL",
    "BagNetwork",
    "FeatPyra",
    "MILNet",
    "MIPre",
    "MIPreConv",
    "MIPreTrident",
    "PatchScoringAttentionMIL",
    "ResNet34Scratch",
    "ResNetBackbone",
    "SmallFeatureMapWarning",
    "VolumeAsBag",
    "decode_feature_index",
    "featpyra_name",
    "target_margin",
]
