# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Optimizer parameter groups: the pretrained backbone is fine-tuned at a fraction of the head's rate."""

from __future__ import annotations

from torch import nn

__all__ = ["backbone_head_param_groups"]


def backbone_head_param_groups(network: nn.Module, lr: float, backbone_lr_scale: float = 0.5) -> list[dict]:
    """Two parameter groups: the backbone at ``lr * backbone_lr_scale``, everything else at ``lr``.

    MIMS-CNN fine-tunes its backbone with half the learning rate of the layers on top (Li et al.,
    2019), hence the default ``0.5``. A scale of 0 freezes the backbone.

    Args:
        network: a module with a ``backbone`` submodule.
        lr: learning rate of the head (MSConv, magnitude normalization, pooling, classifier).
        backbone_lr_scale: factor applied to ``lr`` for the backbone, ``>= 0``.

    Raises:
        ValueError: the network has no ``backbone`` submodule, or the scale is negative.
    """
    if backbone_lr_scale < 0:
        raise ValueError(f"backbone_lr_scale must be >= 0, got {backbone_lr_scale}")
    backbone = getattr(network, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"{type(network).__name__} has no 'backbone' submodule to give its own learning rate")
    backbone_ids = {id(p) for p in backbone.parameters()}
    backbone_params = [p for p in backbone.parameters() if p.requires_grad]
    head_params = [p for p in network.parameters() if id(p) not in backbone_ids and p.requires_grad]
    if backbone_lr_scale == 0:
        for p in backbone_params:
            p.requires_grad_(False)
        return [{"params": head_params, "lr": lr, "name": "head"}]
    return [
        {"params": backbone_params, "lr": lr * backbone_lr_scale, "name": "backbone"},
        {"params": head_params, "lr": lr, "name": "head"},
    ]
