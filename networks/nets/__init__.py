# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from .backbone import RESNET_LAYOUTS, ResNetBackbone
from .bag_network import INPUT_LAYER, BagNetwork, target_margin
from .baselines import FeatPyra, MIPre, MIPreConv, MIPreTrident, ResNet34Scratch
from .mil_net import INSTANCE_AGGREGATIONS, POOLINGS, MILNet, decode_feature_index
from .mims_cnn import MIMSCNN
from .volume_as_bag import VolumeAsBag

__all__ = [
    "INPUT_LAYER",
    "INSTANCE_AGGREGATIONS",
    "MIMSCNN",
    "POOLINGS",
    "RESNET_LAYOUTS",
    "BagNetwork",
    "FeatPyra",
    "MILNet",
    "MIPre",
    "MIPreConv",
    "MIPreTrident",
    "ResNet34Scratch",
    "ResNetBackbone",
    "VolumeAsBag",
    "decode_feature_index",
    "target_margin",
]
