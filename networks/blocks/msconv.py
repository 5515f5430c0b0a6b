# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.utils import look_up_option

__all__ = ["MSConv", "DEFAULT_KERNEL_GROUPS", "DEFAULT_SCALES", "RESIZE_MODES", "scaled_length", "parse_scales"]

#: the paper's OCT configuration "2(8), 3(10)": 8 kernels of size 2 and 10 of size 3.
DEFAULT_KERNEL_GROUPS: Mapping[int, int] = MappingProxyType({2: 8, 3: 10})
#: the paper's resizing factors {i/4 | i = 2, 3, 4}.
DEFAULT_SCALES: tuple[float, ...] = (0.5, 0.75, 1.0)
#: interpolation modes accepted for the resizing (``F.interpolate`` modes for 4-D input).
RESIZE_MODES: tuple[str, ...] = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")

MIN_SCALE = 0.25
MAX_SCALE = 2.0


def _parse_kernel_groups(kernel_groups: Mapping[int | str, int]) -> dict[int, int]:
    """Convert ``{kernel size: number of kernels}`` with int or str keys (JSON) into a dict sorted by size."""
    if not isinstance(kernel_groups, Mapping) or len(kernel_groups) == 0:
        raise ValueError(
            "kernel_groups must be a non-empty mapping {kernel size: number of output channels}, "
            f"e.g. {{2: 8, 3: 10}}, got {kernel_groups!r}."
        )
    parsed: dict[int, int] = {}
    for key, channels in kernel_groups.items():
        try:
            size = int(str(key).strip()) if not isinstance(key, bool) else -1
        except ValueError:
            size = -1
        if size < 1:
            raise ValueError(
                f"kernel_groups keys must be kernel sizes >= 1 (int or str), got {key!r} in {kernel_groups!r}."
            )
        if size in parsed:
            raise ValueError(f"kernel_groups names kernel size {size} twice: {kernel_groups!r}.")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(
                f"kernel_groups values must be numbers of output channels >= 1, got {channels!r} "
                f"for kernel size {key!r}."
            )
        parsed[size] = channels
    return dict(sorted(parsed.items()))


def scaled_length(length: int, scale: float) -> int:
    """``max(1, floor(scale * length + 0.5))``: a length resized by ``scale``, rounded half up (same in TorchScript)."""
    return max(1, int(math.floor(scale * length + 0.5)))


def parse_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """Validate resizing factors: a non-empty sequence of distinct numbers in ``[0.25, 2]``, returned as floats."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or len(scales) == 0:
        raise ValueError(f"scales must be a non-empty sequence of resizing factors, got {scales!r}.")
    parsed = []
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not MIN_SCALE <= float(s) <= MAX_SCALE:
            raise ValueError(
                f"every scale must be a number in [{MIN_SCALE}, {MAX_SCALE}] (the paper's range), "
                f"got {s!r} in {scales!r}."
            )
        parsed.append(float(s))
    if len(set(parsed)) != len(parsed):
        raise ValueError(
            f"scales must not repeat (a repeated scale counts its activations twice in top-k), got {scales!r}."
        )
    return tuple(parsed)


class MSConv(nn.Module):
    """
    Multi-scale convolutional layer (MSConv) of MIMS-CNN (Li et al., "Multi-Instance Multi-Scale CNN for
    Medical Image Classification", MICCAI 2019, arXiv:1907.02413, section 2.1)::

        -- Resize_i (one per scale) -- [same-size Conv2d per kernel-size group (shared by all scales)] -- concat --

    The input feature map is resized to every scale ``s_i`` and the SAME set of kernels ``F_1..F_N`` is
    applied to each resized copy, ``y_ij = F_j(Resize_i(x))``, so ``m`` scales and ``n`` kernel sizes give
    up to ``m * n`` receptive fields with the parameters of ``n`` convolutions.

    Details the paper does not state, and the choices made here:

        - output size of scale ``i``: ``h_i = max(1, floor(s_i * h + 0.5))`` (rounded half up, identical in
          eager mode and TorchScript), ``w_i`` likewise; no resizing when the size is unchanged
          (``s_i = 1``); ``align_corners=False`` for bilinear/bicubic;
        - padding: each convolution keeps the size ("same"): total zero padding ``k - 1`` per axis,
          ``(k - 1) // 2`` on the left/top and the rest on the right/bottom (exact for even ``k``);
        - no activation after the convolution: the top-k pooling that follows is the nonlinearity
          (and :class:`MagnitudeNorm` sits in between);
        - the output channels are the groups' outputs concatenated in increasing kernel size;
        - Kaiming-normal initialisation (fan-in, ReLU gain) of the kernels and zero bias.

    Example:

    .. code-block:: python

        from networks.blocks import MSConv

        msconv = MSConv(in_channels=512, kernel_groups={2: 8, 3: 10}, scales=(0.5, 0.75, 1.0))
        print(msconv)
        print([tuple(y.shape) for y in msconv(torch.randn(4, 512, 16, 16))])

    output::

        MSConv(
          in_channels=512, out_channels=18, kernel_groups={2: 8, 3: 10}, scales=(0.5, 0.75, 1.0), mode=bilinear
          (convs): ModuleList(
            (0): Conv2d(512, 8, kernel_size=(2, 2), stride=(1, 1))
            (1): Conv2d(512, 10, kernel_size=(3, 3), stride=(1, 1))
          )
        )
        [(4, 18, 8, 8), (4, 18, 12, 12), (4, 18, 16, 16)]

    Args:
        in_channels: number of channels of the input feature map.
        kernel_groups: ``{kernel size: number of output channels}``; keys may be int or str (JSON configs).
            The paper's configurations are ``{2: 8, 3: 10}`` (OCT), ``{2: 10, 3: 10}`` (fundus) and
            ``{1: 20, 2: 40}`` (histology). Defaults to ``{2: 8, 3: 10}``.
        scales: resizing factors, each in ``[0.25, 2]``, no repeats. Defaults to ``(0.5, 0.75, 1.0)``.
        mode: interpolation mode of the resizing, one of ``"bilinear"`` (the paper's), ``"bicubic"``,
            ``"nearest"``, ``"nearest-exact"``, ``"area"``. Defaults to ``"bilinear"``.
        bias: whether the convolutions have a bias. Defaults to ``True``.

    Attributes:
        out_channels: ``sum(kernel_groups.values())``.
        kernel_groups: the parsed ``{kernel size: channels}``, sorted by kernel size.
        scales: the scales as a tuple of floats.

    Raises:
        ValueError: for an invalid ``in_channels``, ``kernel_groups``, ``scales`` or ``mode``.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_groups: Mapping[int | str, int] = DEFAULT_KERNEL_GROUPS,
        scales: Sequence[float] = DEFAULT_SCALES,
        mode: str = "bilinear",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
        groups = _parse_kernel_groups(kernel_groups)
        self.in_channels = in_channels
        self.kernel_groups = groups
        self.scales = parse_scales(scales)
        self.mode = look_up_option(mode, RESIZE_MODES)
        self.align_corners = False if self.mode in ("bilinear", "bicubic") else None
        self.out_channels = sum(groups.values())
        # F.pad order for 2-D input: (left, right, top, bottom)
        self.paddings: List[List[int]] = [
            [(k - 1) // 2, k - 1 - (k - 1) // 2, (k - 1) // 2, k - 1 - (k - 1) // 2] for k in groups
        ]
        self.convs = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=k, bias=bias) for k, c in groups.items())

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @torch.jit.export
    def output_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """
        The spatial size ``(h_i, w_i)`` of every scale's output for an input of size ``height x width``:
        ``h_i = max(1, floor(s_i * height + 0.5))``, ``w_i`` likewise.
        """
        sizes: List[Tuple[int, int]] = []
        for s in self.scales:
            sizes.append((scaled_length(height, s), scaled_length(width, s)))
        return sizes

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            x: feature map ``[M, C_in, h, w]`` (``M`` = number of 2-D instances, e.g. bags x slices).

        Returns:
            one tensor per scale, in the order of ``scales``, each ``[M, out_channels, h_i, w_i]``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MSConv expects x of shape [M, {self.in_channels}, h, w], got shape {list(x.shape)}."
            )
        outputs: List[torch.Tensor] = []
        for size in self.output_sizes(x.shape[2], x.shape[3]):
            if size[0] == x.shape[2] and size[1] == x.shape[3]:
                resized = x
            else:
                resized = F.interpolate(x, size=[size[0], size[1]], mode=self.mode, align_corners=self.align_corners)
            groups: List[torch.Tensor] = []
            for i, conv in enumerate(self.convs):
                groups.append(conv(F.pad(resized, self.paddings[i], mode="constant", value=0.0)))
            outputs.append(torch.cat(groups, dim=1))
        return outputs

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_groups={self.kernel_groups}, "
            f"scales={self.scales}, mode={self.mode}"
        )
