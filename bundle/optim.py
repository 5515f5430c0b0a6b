# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Optimizer parameter groups: the pretrained backbone is fine-tuned at a fraction of the head's rate."""

from __future__ import annotations

import logging

from torch import nn

from networks.nets.bag_network import BagNetwork

__all__ = ["backbone_head_param_groups"]

logger = logging.getLogger(__name__)


def backbone_head_param_groups(network: nn.Module, lr: float, backbone_lr_scale: float = 0.5) -> list[dict]:
    """Two parameter groups: the backbone at ``lr * backbone_lr_scale``, everything else at ``lr``.

    MIMS-CNN fine-tunes its backbone with half the learning rate of the layers on top (Li et al.,
    2019), hence the default ``0.5``. A scale of 0 freezes the backbone. The groups come from the
    network's :meth:`networks.nets.BagNetwork.parameter_groups`; a network without a backbone group
    gets one group at ``lr`` (and the log says so).

    Args:
        network: a :class:`networks.nets.BagNetwork`.
        lr: learning rate of the head (MSConv, magnitude normalization, pooling, classifier).
        backbone_lr_scale: factor applied to ``lr`` for the backbone, ``>= 0``.

    Raises:
        ValueError: the network is not a ``BagNetwork``, or the scale is negative.
    """
    if backbone_lr_scale < 0:
        raise ValueError(f"backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
    if not isinstance(network, BagNetwork):
        raise ValueError(
            f"{type(network).__name__} is not a networks.BagNetwork: it has no parameter groups for the "
            "backbone and head learning rates"
        )
    groups = network.parameter_groups()
    backbone_params = [p for p in groups["backbone"] if p.requires_grad]
    head_params = [p for p in groups["head"] if p.requires_grad]
    if not groups["backbone"]:
        logger.info(f"{type(network).__name__} has no backbone parameter group: one learning rate {lr} for all")
        return [{"params": head_params, "lr": lr, "name": "head"}]
    if backbone_lr_scale == 0:
        for p in groups["backbone"]:
            p.requires_grad_(False)
        return [{"params": head_params, "lr": lr, "name": "head"}]
    return [
        {"params": backbone_params, "lr": lr * backbone_lr_scale, "name": "backbone"},
        {"params": head_params, "lr": lr, "name": "head"},
    ]
