# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import List, Tuple

import torch
import torch.nn as nn

from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck
from monai.utils import look_up_option

from ..utils import state_dict_mismatch

__all__ = ["ResNetBackbone", "RESNET_LAYOUTS"]

logger = logging.getLogger(__name__)

#: depth -> (block, blocks per stage). 10 is MONAI's shallow variant (no torchvision weights exist for it).
RESNET_LAYOUTS: dict[int, tuple[type[ResNetBlock | ResNetBottleneck], tuple[int, int, int, int]]] = {
    10: (ResNetBlock, (1, 1, 1, 1)),
    18: (ResNetBlock, (2, 2, 2, 2)),
    34: (ResNetBlock, (3, 4, 6, 3)),
    50: (ResNetBottleneck, (3, 4, 6, 3)),
    101: (ResNetBottleneck, (3, 4, 23, 3)),
    152: (ResNetBottleneck, (3, 8, 36, 3)),
}
BLOCK_INPLANES = (64, 128, 256, 512)
FEATURE_STAGES = (1, 2, 3, 4)
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")


def _short_list(keys: list[str] | set[str], limit: int = 10) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    more = f" ... ({len(keys)} in total)" if len(keys) > limit else f" ({len(keys)} in total)"
    return f"[{shown}]{more}"


class ResNetBackbone(nn.Module):
    """
    2-D ResNet feature extractor for MIMS-CNN (Li et al., MICCAI 2019, arXiv:1907.02413: "primary
    features" from an ImageNet-pretrained ResNet-101 without its classification head)::

        -- conv1 (7x7, /2) -- bn1 -- relu -- [maxpool (/2)] -- layer1 -- ... -- layer<feature_stage> --

    Built from :class:`monai.networks.nets.ResNet` (2-D, shortcut "B" without bias, no FC head), whose
    parameter names equal torchvision's (``conv1``, ``bn1``, ``layer1..4`` with ``downsample.0/1``), so
    torchvision ImageNet checkpoints load directly with :meth:`load_torchvision_weights`. The stages after
    ``feature_stage`` are deleted (set to ``None``), so they are neither computed nor stored, and the
    average pooling and FC layer are dropped.

    Small inputs: ``max_pool=False`` drops the stem's max-pooling (MONAI's ``no_max_pool``), which halves
    every stride, so the deepest stage sees a map twice as large in each direction (a 32 x 32 slice gives
    8 x 8 at stage 2 instead of 4 x 4). The max-pooling has no parameters: the state dict, its key names and
    the torchvision weights are the same either way.

    Args:
        in_channels: number of input image channels. With 1 channel an RGB checkpoint's ``conv1`` is summed
            over its input channels when loaded. Defaults to 3.
        depth: ResNet depth, one of 10, 18, 34, 50, 101 (the paper's), 152. Defaults to 18.
        feature_stage: the stage whose output is returned, 1..4 (``layer1``..``layer4``, strides 4, 8, 16,
            32; 2, 4, 8, 16 without the max-pooling). Defaults to 4.
        pretrained_weights: path of a torchvision-format ImageNet state dict, loaded strictly; ``None``
            keeps the random (Kaiming) initialisation. Defaults to ``None``.
        return_stages: the stages whose outputs :meth:`forward_stages` returns, increasing, each in
            ``1..feature_stage`` (e.g. ``(3, 4)`` for a feature pyramid over conv4_x and conv5_x).
            Defaults to ``(feature_stage,)``.
        max_pool: whether the stem has its 3x3 stride-2 max-pooling (torchvision's and the paper's ResNet);
            ``False`` halves the stride of every stage, for small inputs. Defaults to ``True``.

    Attributes:
        out_channels: channels of the returned feature map (``block_inplanes[stage] * block.expansion``).
        stride: total down-sampling factor of the returned feature map (``2 ** (feature_stage + 1)``, or
            ``2 ** feature_stage`` without the max-pooling).
        return_stages: the validated ``return_stages`` as a list.
        stage_channels: channels of each of the ``return_stages`` outputs.

    Raises:
        ValueError: for an unsupported ``depth`` or ``feature_stage``, or a checkpoint that does not match.
        FileNotFoundError: when ``pretrained_weights`` does not exist.
    """

    def __init__(
        self,
        in_channels: int = 3,
        depth: int = 18,
        feature_stage: int = 4,
        pretrained_weights: str | None = None,
        return_stages: Sequence[int] | None = None,
        max_pool: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
        block, layers = look_up_option(depth, RESNET_LAYOUTS)
        feature_stage = look_up_option(feature_stage, FEATURE_STAGES)
        if not isinstance(max_pool, bool):
            raise ValueError(f"max_pool must be True or False, got {max_pool!r}.")
        self.in_channels = in_channels
        self.depth = depth
        self.feature_stage = feature_stage
        self.max_pool = max_pool
        self.out_channels = BLOCK_INPLANES[feature_stage - 1] * block.expansion
        #: stride-2 steps before the stage-1 output: conv1, and the max-pooling when there is one
        self._stem_halvings: int = 2 if max_pool else 1
        self.stride = 2 ** (feature_stage + self._stem_halvings - 1)
        stages = [feature_stage] if return_stages is None else list(return_stages)
        if (
            len(stages) == 0
            or any(isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= feature_stage for s in stages)
            or sorted(set(stages)) != stages
        ):
            raise ValueError(
                f"return_stages must be increasing stages in 1..feature_stage={feature_stage}, got {return_stages!r}."
            )
        self.return_stages: List[int] = stages
        self.stage_channels: List[int] = [BLOCK_INPLANES[s - 1] * block.expansion for s in stages]

        net = ResNet(
            block=block,
            layers=list(layers),
            block_inplanes=list(BLOCK_INPLANES),
            spatial_dims=2,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=2,
            shortcut_type="B",
            bias_downsample=False,
            feed_forward=False,
            no_max_pool=not max_pool,
        )
        self.conv1 = net.conv1
        self.bn1 = net.bn1
        self.act = net.act
        # MONAI's ResNet keeps its maxpool module with no_max_pool and skips it in its forward; the stage-wise
        # forward here calls the module, so without the max-pooling it is an Identity (no parameters either way)
        self.maxpool = nn.Identity() if net.no_max_pool else net.maxpool
        self.layer1 = net.layer1
        self.layer2 = net.layer2 if feature_stage >= 2 else None
        self.layer3 = net.layer3 if feature_stage >= 3 else None
        self.layer4 = net.layer4 if feature_stage >= 4 else None

        if pretrained_weights is None:
            logger.info(f"no pretrained weights given: ResNet-{depth} backbone randomly initialised")
        else:
            self.load_torchvision_weights(pretrained_weights)

    @torch.jit.export
    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """
        Spatial size of the returned feature map for an input of ``height x width``: every one of the
        ``feature_stage + 1`` stride-2 steps (``feature_stage`` without the max-pooling) maps ``n`` to
        ``(n - 1) // 2 + 1`` (i.e. ``ceil(n / 2)``).
        """
        for _ in range(self.feature_stage + self._stem_halvings - 1):
            height = (height - 1) // 2 + 1
            width = (width - 1) // 2 + 1
        return height, width

    @torch.jit.export
    def stage_output_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """Spatial size of each :meth:`forward_stages` output (stage ``s`` has stride ``2 ** (s + 1)``, or
        ``2 ** s`` without the max-pooling)."""
        sizes: List[Tuple[int, int]] = []
        for stage in range(1, self.feature_stage + 1):
            # stage 1: conv1 /2 and the max-pooling /2 (when there is one); every later stage: /2
            for _ in range(self._stem_halvings if stage == 1 else 1):
                height, width = (height - 1) // 2 + 1, (width - 1) // 2 + 1
            if stage in self.return_stages:
                sizes.append((height, width))
        return sizes

    @torch.jit.export
    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """
        Args:
            x: images ``[M, in_channels, H, W]``.

        Returns:
            the outputs of ``return_stages``, in that order, each ``[M, stage_channels[i], *stage size]``.
        """
        outputs: List[torch.Tensor] = []
        x = self.layer1(self.maxpool(self.act(self.bn1(self.conv1(x)))))
        if 1 in self.return_stages:
            outputs.append(x)
        if self.layer2 is not None:
            x = self.layer2(x)
            if 2 in self.return_stages:
                outputs.append(x)
        if self.layer3 is not None:
            x = self.layer3(x)
            if 3 in self.return_stages:
                outputs.append(x)
        if self.layer4 is not None:
            x = self.layer4(x)
            if 4 in self.return_stages:
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: images ``[M, in_channels, H, W]``.

        Returns:
            features ``[M, out_channels, ceil(H / stride), ceil(W / stride)]``.
        """
        x = self.maxpool(self.act(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        if self.layer2 is not None:
            x = self.layer2(x)
        if self.layer3 is not None:
            x = self.layer3(x)
        if self.layer4 is not None:
            x = self.layer4(x)
        return x

    def load_torchvision_weights(self, path: str) -> None:
        """
        Load a torchvision-format ResNet state dict (e.g. ImageNet weights) strictly.

        Accepted files: a raw state dict, or a dict holding it under ``"state_dict"`` or ``"model"``; a
        leading ``"module."`` (DataParallel) prefix is stripped. ``fc.*`` and the keys of the deleted stages
        are ignored (logged at debug level). If the checkpoint's ``conv1`` has 3 input channels and this
        backbone has 1, the kernel is summed over its input channels, which is exactly equivalent to
        feeding the grey image replicated to RGB. BatchNorm ``num_batches_tracked`` counters missing from
        old checkpoints are kept at their current value (they are bookkeeping, not weights). Anything else
        that does not match raises.

        Args:
            path: file written by ``torch.save(state_dict)``; read with ``weights_only=True``.

        Raises:
            FileNotFoundError: when ``path`` does not exist.
            ValueError: when the file holds no state dict, or keys are missing, unexpected, or of the wrong
                shape (the error names the file and the first 10 offending keys with their count).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"pretrained weights file not found: {path!r}.")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(checkpoint, Mapping):
            for wrapper in ("state_dict", "model"):
                if isinstance(checkpoint.get(wrapper), Mapping):
                    checkpoint = checkpoint[wrapper]
                    break
        if not isinstance(checkpoint, Mapping) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            raise ValueError(f"{path!r} does not hold a state dict of tensors (raw or under 'state_dict'/'model').")

        own = self.state_dict()
        deleted = tuple(f"{name}." for name in STAGE_NAMES[self.feature_stage :])
        loaded: dict[str, torch.Tensor] = {}
        ignored: list[str] = []
        for key, value in checkpoint.items():
            key = key[len("module.") :] if key.startswith("module.") else key
            if key.startswith("fc.") or key.startswith(deleted):
                ignored.append(key)
                continue
            loaded[key] = value
        if ignored:
            logger.debug(
                f"ignored {len(ignored)} checkpoint keys of the head and deleted stages: {_short_list(ignored)}"
            )

        notes = []
        conv1 = loaded.get("conv1.weight")
        if conv1 is not None and conv1.dim() == 4 and conv1.shape[1] == 3 and self.in_channels == 1:
            loaded["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
            notes.append("conv1 summed over its 3 RGB input channels for 1-channel input")
            logger.info(f"{path}: conv1 weights summed over the RGB input channels to accept 1-channel images")

        for key in own:
            if key.endswith("num_batches_tracked") and key not in loaded:
                loaded[key] = own[key]
        missing, unexpected, mismatched_keys = state_dict_mismatch(own, loaded)
        mismatched = [
            f"{key}: checkpoint {tuple(loaded[key].shape)} vs model {tuple(own[key].shape)}"
            for key in sorted(mismatched_keys)
        ]
        errors = []
        if missing:
            errors.append(f"missing keys {_short_list(missing)}")
        if unexpected:
            errors.append(f"unexpected keys {_short_list(unexpected)}")
        if mismatched:
            errors.append(f"shape mismatches {_short_list(mismatched)}")
        if errors:
            raise ValueError(
                f"cannot load {path!r} into a ResNet-{self.depth} backbone (in_channels={self.in_channels}, "
                f"feature_stage={self.feature_stage}): " + "; ".join(errors) + "."
            )
        self.load_state_dict(loaded, strict=True)
        notes.append(f"{len(loaded)} tensors")
        if ignored:
            notes.append(f"{len(ignored)} head/deleted-stage keys ignored")
        logger.info(f"loaded ImageNet weights from {path} ({'; '.join(notes)})")

    def extra_repr(self) -> str:
        return (
            f"depth={self.depth}, in_channels={self.in_channels}, feature_stage={self.feature_stage}, "
            f"out_channels={self.out_channels}, stride={self.stride}, return_stages={tuple(self.return_stages)}, "
            f"max_pool={self.max_pool}"
        )
