# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

from collections.abc import Mapping, Sequence

from networks.blocks.msconv import DEFAULT_KERNEL_GROUPS, DEFAULT_SCALES, MSConv
from networks.nets.backbone import ResNetBackbone
from networks.nets.mil_net import MILNet

__all__ = ["MIMSCNN"]


class MIMSCNN(MILNet):
    """
    MIMS-CNN, the Multi-Instance Multi-Scale CNN of Li et al., "Multi-Instance Multi-Scale CNN for Medical
    Image Classification", MICCAI 2019 (arXiv:1907.02413): embedding-based multiple-instance learning for
    2-D images and 3-D volumes (bags of 2-D slices) with image- or volume-level labels only::

        -- ResNetBackbone (per slice) -- MSConv -- MagnitudeNorm -- TopKPool (over scales, x, y, slices) -- Linear --

    Bag contract: the input is ``[B, N, C, H, W]``, ``B`` bags of ``N`` slices (instances) each; a plain
    2-D image is a bag with ``N = 1``. Bags with different numbers of slices are padded to the largest
    ``N`` of the batch and described by a boolean ``mask`` ``[B, N]`` (True = real slice, False = padding).
    Only the real slices go through the backbone, MSConv and MagnitudeNorm (padding costs no compute and
    does not enter the BatchNorm statistics); padded positions hold ``-inf`` afterwards, which the top-k
    pooling never selects with a non-zero weight. A bag without any real slice pools to zeros, so its
    logits equal the classifier bias.

    Feature layout (:meth:`instance_features`, relied on by provenance/localisation code): for every bag
    and channel, the MSConv outputs of all scales and slices are flattened into ``L = N * sum_i h_i * w_i``
    elements, scale-major: the element ``(scale i, slice n, row y, column x)`` is at

        ``offset_i + n * h_i * w_i + y * w_i + x``,  with  ``offset_i = N * sum_{i' < i} h_i' * w_i'``,

    where ``(h_i, w_i)`` are given by :meth:`feature_map_sizes` for the input's ``H, W``.

    MIMS-CNN is one composition of :class:`MILNet`: ``ResNetBackbone`` -> ``MSConv`` -> ``MagnitudeNorm`` ->
    ``TopKPool`` -> ``Linear``. The paper's ablations are arguments of this class (method overlays under
    ``configs/methods/`` set them): ``scales=(1.0,)`` is MIMS-NoResizing; ``scales=(1.0,)`` with
    ``input_scales=(0.5, 0.75, 1.0)`` is Pyramid MIMS (multi-scale by an image pyramid instead of feature
    resizing, same kernels); ``pooling="mean"``, ``k=1`` (max pooling), ``instance_aggregation="max"``
    (max-inst) and ``"mean"`` (MIMS-patchcls) are the MIL aggregation ablations.

    ``forward`` returns logits only; per-instance maps (:meth:`instance_maps`), flattened features
    (:meth:`instance_features`), pooled features (``pool(...)`` / ``pool.forward_with_indices``) and the head
    (:meth:`forward_head`) are separate methods, all TorchScript-compatible. The paper fine-tunes the
    backbone (the ``backbone`` submodule) at half the learning rate of the layers on top: see
    ``bundle.optim.backbone_head_param_groups``. Submodules: ``backbone``, ``heads`` (one :class:`MSConv`),
    ``magnitude_norm``, ``pool``, ``classifier``.

    Example:

    .. code-block:: python

        from networks.nets import MIMSCNN

        net = MIMSCNN(in_channels=1, num_classes=2, backbone_depth=18)
        x = torch.randn(2, 6, 1, 64, 64)  # 2 volumes of 6 slices
        print(net(x).shape)

    output::

        torch.Size([2, 2])

    Args:
        in_channels: channels of every slice. Defaults to 1.
        num_classes: number of output logits. Defaults to 2.
        backbone_depth: ResNet depth, one of 10, 18, 34, 50, 101 (the paper's), 152. Defaults to 18.
        feature_stage: backbone stage that feeds MSConv, 1..4 (strides 4, 8, 16, 32; half without the
            max-pooling). Defaults to 4.
        kernel_groups: MSConv ``{kernel size: output channels}`` (int or str keys). Defaults to
            ``{2: 8, 3: 10}`` (the paper's OCT configuration).
        scales: MSConv resizing factors in ``[0.25, 2]``. Defaults to ``(0.5, 0.75, 1.0)``.
        k: number of pooled activations per channel. Defaults to 5.
        topk_init_decay: initial ratio between consecutive top-k pooling weights, in ``(0, 1]``: 0.5 gives
            the paper's exponentially decaying weights (half the weight on the largest activation), 1.0 equal
            weights (every one of the k activations gets the same share of the gradient at the start).
            Defaults to 0.5.
        resize_mode: interpolation mode of MSConv and of the image pyramid. Defaults to ``"bilinear"``.
        pretrained_weights: torchvision-format ImageNet state dict for the backbone, or ``None`` for a
            randomly initialised backbone. Defaults to ``None``.
        input_scales: image-pyramid factors applied to the slices before the backbone. Defaults to ``(1.0,)``.
        pooling: ``"topk"`` or ``"mean"``. Defaults to ``"topk"``.
        instance_aggregation: ``"none"`` (one embedding per bag, MIMS-CNN), ``"mean"`` or ``"max"`` (classify
            every slice, aggregate the slice predictions). Defaults to ``"none"``.
        backbone_max_pool: whether the backbone's stem has its max-pooling (the paper's ResNet); ``False``
            halves every stride, for small slices (:class:`ResNetBackbone`'s ``max_pool``). Defaults to ``True``.

    Raises:
        ValueError: for invalid arguments (raised by the sub-blocks that own them).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        backbone_depth: int = 18,
        feature_stage: int = 4,
        kernel_groups: Mapping[int | str, int] = DEFAULT_KERNEL_GROUPS,
        scales: Sequence[float] = DEFAULT_SCALES,
        k: int = 5,
        topk_init_decay: float = 0.5,
        resize_mode: str = "bilinear",
        pretrained_weights: str | None = None,
        input_scales: Sequence[float] = (1.0,),
        pooling: str = "topk",
        instance_aggregation: str = "none",
        backbone_max_pool: bool = True,
    ) -> None:
        backbone = ResNetBackbone(
            in_channels=in_channels,
            depth=backbone_depth,
            feature_stage=feature_stage,
            pretrained_weights=pretrained_weights,
            max_pool=backbone_max_pool,
        )
        msconv = MSConv(backbone.out_channels, kernel_groups=kernel_groups, scales=scales, mode=resize_mode)
        super().__init__(
            backbone,
            [msconv],
            num_classes=num_classes,
            input_scales=input_scales,
            magnitude_norm=True,
            k=k,
            topk_init_decay=topk_init_decay,
            pooling=pooling,
            instance_aggregation=instance_aggregation,
            resize_mode=resize_mode,
        )
