# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Bring grey, RGB and RGBA images to the channel count a network expects."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import get_track_meta
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from ._utils import describe_source

__all__ = ["LUMA_WEIGHTS", "EnsureChannels", "EnsureChannelsd"]

#: ITU-R BT.601 luma weights for R, G, B.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


class EnsureChannels(Transform):
    """Convert a channel-first image ``[C, *spatial]`` to ``num_channels`` channels.

    Conversions (C -> ``num_channels``):

    - equal: unchanged (same object).
    - 1 -> 3: the grey channel repeated.
    - 3 -> 1: ITU-R BT.601 luma, ``0.299 R + 0.587 G + 0.114 B``; integer inputs give float32.
    - 4 (RGBA) -> 3: alpha dropped; 4 -> 1: alpha dropped, then luma.

    ``MetaTensor`` metadata is kept; numpy in gives numpy out.

    Args:
        num_channels: channel count of the output, >= 1 (1 or 3 in practice).

    Raises:
        ValueError: ``num_channels`` < 1, or any other conversion (e.g. 2 -> 3); the message names the
            file (from ``meta["filename_or_obj"]`` of a ``MetaTensor``) and both channel counts.

    Example::

        >>> EnsureChannels(3)(torch.zeros(1, 4, 5)).shape
        torch.Size([3, 4, 5])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, num_channels: int) -> None:
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"num_channels must be an integer >= 1, got {num_channels!r}.")
        self.num_channels = num_channels

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``[C, *spatial]``.

        Returns:
            ``[num_channels, *spatial]``, same container type as ``img``.
        """
        c, target = int(img.shape[0]), self.num_channels
        if c == target:
            return img
        if not ((c == 1 and target == 3) or (c in (3, 4) and target in (1, 3))):
            raise ValueError(
                f"{describe_source(img)}: cannot convert {c} channels to {target}; supported: 1 -> 3, "
                "3 -> 1 (luma), 4 (RGBA) -> 3 or 1, or equal counts."
            )
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        if c == 1:
            out = img_t.repeat(3, *([1] * (img_t.ndim - 1)))
        else:
            out = img_t[:3]
            if target == 1:
                if not out.is_floating_point():
                    out = out.float()
                weights = torch.as_tensor(LUMA_WEIGHTS, dtype=out.dtype, device=out.device)
                out = (out * weights.reshape(3, *([1] * (out.ndim - 1)))).sum(dim=0, keepdim=True)
        result, *_ = convert_to_dst_type(out, dst=img, dtype=out.dtype)
        return result


class EnsureChannelsd(MapTransform):
    """Dictionary-based version of :py:class:`EnsureChannels`.

    Args:
        keys: keys of the channel-first images to convert.
        num_channels: channel count of the outputs.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = EnsureChannels.backend

    def __init__(self, keys: KeysCollection, num_channels: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = EnsureChannels(num_channels)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
