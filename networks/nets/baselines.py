# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""
The baselines of MIMS-CNN (Li et al., "Multi-Instance Multi-Scale CNN for Medical Image Classification",
MICCAI 2019, arXiv:1907.02413, Table 1), each a composition of :class:`networks.nets.MILNet`.

Variants that differ from MIMS-CNN only in arguments are not classes but arguments of
:class:`networks.nets.MIMSCNN` (MIMS-NoResizing, Pyramid MIMS, MIMS-patchcls, the aggregation ablations)
or of the classes below (Pyramid MI-Pre, MI-Pre-Conv-patchcls); ``configs/methods/`` has one overlay per
method either way.

Choices where the paper is silent (documented per class): MI-Pre-Conv's extra layer is one 3x3
convolution with as many kernels as MSConv has (18); MI-Pre, MI-Pre-Conv, MI-Pre-Trident and FeatPyra
have no magnitude normalisation (the paper adds it as part of MIMS); FeatPyra's two levels are pooled
together by the one top-k pooling ("aggregated").
"""

from __future__ import annotations

from collections.abc import Sequence

from networks.blocks.identity_head import IdentityHead
from networks.blocks.msconv import MSConv
from networks.blocks.trident_conv import TridentConv
from networks.nets.backbone import ResNetBackbone
from networks.nets.mil_net import MILNet

__all__ = ["MIPre", "MIPreConv", "MIPreTrident", "FeatPyra", "ResNet34Scratch", "featpyra_name"]

_COMMON_ARGS = """
        in_channels: channels of every slice. Defaults to 1.
        num_classes: number of output logits. Defaults to 2.
        backbone_depth: ResNet depth, one of 10, 18, 34, 50, 101 (the paper's), 152. Defaults to 18.
        feature_stage: deepest backbone stage used, 1..4 (strides 4, 8, 16, 32; half without the max-pooling).
            Defaults to 4.
        k: activations pooled per channel by top-k pooling. Defaults to 5.
        topk_init_decay: initial ratio between consecutive top-k pooling weights, in ``(0, 1]``: 0.5 gives
            the paper's exponentially decaying weights (half the weight on the largest activation), 1.0 equal
            weights (every one of the k activations gets the same share of the gradient at the start).
            Defaults to 0.5.
        pretrained_weights: torchvision-format ImageNet state dict for the backbone, or ``None``. Defaults to ``None``.
        input_scales: image-pyramid factors applied before the backbone. Defaults to ``(1.0,)``.
        pooling: ``"topk"`` or ``"mean"``. Defaults to ``"topk"``.
        instance_aggregation: ``"none"`` (bag embedding), ``"mean"`` (average slice predictions, "patchcls")
            or ``"max"`` (max-inst). Defaults to ``"none"``.
        backbone_max_pool: whether the backbone's stem has its max-pooling; ``False`` halves every stride, for
            small slices. Defaults to ``True``."""


class MIPre(MILNet):
    """
    MI-Pre: pretrained backbone features pooled directly, no extra layer::

        -- ResNetBackbone -- TopKPool (over x, y, slices) -- Linear --

    With ``input_scales=(0.5, 0.75, 1.0)`` it is Pyramid MI-Pre (the same backbone on an image pyramid, all
    levels pooled together). Widths come from the backbone (e.g. 2048 for ResNet-101 stage 4).

    Args:{common}
        magnitude_norm: add :class:`MagnitudeNorm` per pyramid level (not in the paper's MI-Pre). Defaults to False.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        k: int = 5,
        topk_init_decay: float = 0.5,
        pretrained_weights: str | None = None,
        input_scales: Sequence[float] = (1.0,),
        pooling: str = "topk",
        instance_aggregation: str = "none",
        magnitude_norm: bool = False,
        backbone_max_pool: bool = True,
    ) -> None:
        backbone = ResNetBackbone(
            in_channels, backbone_depth, feature_stage, pretrained_weights, max_pool=backbone_max_pool
        )
        super().__init__(
            backbone,
            [IdentityHead(backbone.out_channels)],
            num_classes=num_classes,
            input_scales=input_scales,
            magnitude_norm=magnitude_norm,
            k=k,
            topk_init_decay=topk_init_decay,
            pooling=pooling,
            instance_aggregation=instance_aggregation,
        )


class MIPreConv(MILNet):
    """
    MI-Pre-Conv: one extra convolution on the backbone features before pooling::

        -- ResNetBackbone -- Conv2d (kernel_size, "same") -- TopKPool -- Linear --

    The paper does not give the layer's size; here it is ``out_channels`` kernels of ``kernel_size``
    (defaults 18 and 3: MSConv's OCT width, one kernel size), no normalisation, no activation. With
    ``instance_aggregation="mean"`` it is MI-Pre-Conv-patchcls.

    Args:{common}
        out_channels: kernels of the extra convolution. Defaults to 18.
        kernel_size: their size. Defaults to 3.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        k: int = 5,
        topk_init_decay: float = 0.5,
        pretrained_weights: str | None = None,
        input_scales: Sequence[float] = (1.0,),
        pooling: str = "topk",
        instance_aggregation: str = "none",
        out_channels: int = 18,
        kernel_size: int = 3,
        backbone_max_pool: bool = True,
    ) -> None:
        backbone = ResNetBackbone(
            in_channels, backbone_depth, feature_stage, pretrained_weights, max_pool=backbone_max_pool
        )
        conv = MSConv(backbone.out_channels, kernel_groups={kernel_size: out_channels}, scales=(1.0,))
        super().__init__(
            backbone,
            [conv],
            num_classes=num_classes,
            input_scales=input_scales,
            magnitude_norm=False,
            k=k,
            topk_init_decay=topk_init_decay,
            pooling=pooling,
            instance_aggregation=instance_aggregation,
        )


class MIPreTrident(MILNet):
    """
    MI-Pre-Trident: MI-Pre-Conv whose one kernel set is applied at several dilations (Trident Networks),
    all branches pooled together::

        -- ResNetBackbone -- TridentConv (dilations 1, 2, 3, shared kernels) -- TopKPool -- Linear --

    Args:{common}
        out_channels: kernels of the shared convolution. Defaults to 18.
        kernel_size: their size. Defaults to 3.
        dilations: one branch per dilation. Defaults to ``(1, 2, 3)`` (the paper's).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        k: int = 5,
        topk_init_decay: float = 0.5,
        pretrained_weights: str | None = None,
        input_scales: Sequence[float] = (1.0,),
        pooling: str = "topk",
        instance_aggregation: str = "none",
        out_channels: int = 18,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 3),
        backbone_max_pool: bool = True,
    ) -> None:
        backbone = ResNetBackbone(
            in_channels, backbone_depth, feature_stage, pretrained_weights, max_pool=backbone_max_pool
        )
        trident = TridentConv(backbone.out_channels, out_channels, kernel_size=kernel_size, dilations=dilations)
        super().__init__(
            backbone,
            [trident],
            num_classes=num_classes,
            input_scales=input_scales,
            magnitude_norm=False,
            k=k,
            topk_init_decay=topk_init_decay,
            pooling=pooling,
            instance_aggregation=instance_aggregation,
        )


class FeatPyra(MILNet):
    """
    FeatPyra-4,5: features of the last two backbone stages used (the paper: conv4_x and conv5_x of
    ResNet-101, i.e. ``feature_stage=4``), each through its own convolution; both levels are pooled
    together by the top-k pooling and classified (FPN-like)::

        -- ResNetBackbone --+-- stage feature_stage - 1 -- Conv2d --+-- TopKPool -- Linear --
                            +-- stage feature_stage     -- Conv2d --+

    Its ``network_name`` says which stages it uses, in the paper's naming (backbone stage ``k`` is
    ``conv{{k+1}}_x``): ``"FeatPyra-4,5"`` for ``feature_stage=4`` (stages 3 and 4), ``"FeatPyra-2,3"`` for
    ``feature_stage=2`` (stages 1 and 2).

    Args:{common}
        out_channels: kernels of each level's convolution. Defaults to 18.
        kernel_size: their size. Defaults to 3.

    Raises:
        ValueError: when ``feature_stage < 2`` (there is no earlier stage).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        k: int = 5,
        topk_init_decay: float = 0.5,
        pretrained_weights: str | None = None,
        input_scales: Sequence[float] = (1.0,),
        pooling: str = "topk",
        instance_aggregation: str = "none",
        out_channels: int = 18,
        kernel_size: int = 3,
        backbone_max_pool: bool = True,
    ) -> None:
        if isinstance(feature_stage, bool) or not isinstance(feature_stage, int) or feature_stage < 2:
            raise ValueError(f"FeatPyra needs feature_stage >= 2 (two stages to combine), got {feature_stage!r}.")
        backbone = ResNetBackbone(
            in_channels,
            backbone_depth,
            feature_stage,
            pretrained_weights,
            return_stages=(feature_stage - 1, feature_stage),
            max_pool=backbone_max_pool,
        )
        convs = [MSConv(c, kernel_groups={kernel_size: out_channels}, scales=(1.0,)) for c in backbone.stage_channels]
        super().__init__(
            backbone,
            convs,
            num_classes=num_classes,
            input_scales=input_scales,
            magnitude_norm=False,
            k=k,
            topk_init_decay=topk_init_decay,
            pooling=pooling,
            instance_aggregation=instance_aggregation,
        )
        self.network_name = featpyra_name(feature_stage)


def featpyra_name(feature_stage: int) -> str:
    """FeatPyra's name for ``feature_stage``: its two stages in the paper's naming (stage ``k`` is
    ``conv{k+1}_x``), e.g. ``"FeatPyra-4,5"`` for ``feature_stage=4`` (stages 3, 4 = conv4_x, conv5_x)."""
    return f"FeatPyra-{feature_stage},{feature_stage + 1}"


class ResNet34Scratch(MIPre):
    """
    ResNet34-scratch: MI-Pre with a full ResNet-34 (stage 4, stride 32; 16 without the max-pooling) that is
    never pretrained::

        -- ResNet-34 (random init) -- TopKPool -- Linear --

    Args:
        in_channels: channels of every slice. Defaults to 1.
        num_classes: number of output logits. Defaults to 2.
        k: activations pooled per channel. Defaults to 5.
        topk_init_decay: initial ratio between consecutive top-k pooling weights, in ``(0, 1]``: 0.5 gives
            the paper's exponentially decaying weights (half the weight on the largest activation), 1.0 equal
            weights (every one of the k activations gets the same share of the gradient at the start).
            Defaults to 0.5.
        backbone_max_pool: whether the backbone's stem has its max-pooling; ``False`` halves every stride, for
            small slices. Defaults to ``True``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        k: int = 5,
        backbone_max_pool: bool = True,
        topk_init_decay: float = 0.5,
    ) -> None:
        super().__init__(
            in_channels,
            num_classes,
            backbone_depth=34,
            feature_stage=4,
            k=k,
            topk_init_decay=topk_init_decay,
            pretrained_weights=None,
            backbone_max_pool=backbone_max_pool,
        )


for _cls in (MIPre, MIPreConv, MIPreTrident, FeatPyra):
    _cls.__doc__ = (_cls.__doc__ or "").format(common=_COMMON_ARGS)
