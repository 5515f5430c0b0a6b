# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The contract between the bundle and its bag (multiple-instance) networks."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from networks.blocks.bag_mask import check_bag_mask

__all__ = ["BagNetwork", "INPUT_LAYER", "check_bag_input", "target_margin"]

#: layer name meaning "the network input itself" (gradient x input on the image)
INPUT_LAYER = "input"


def check_bag_input(x: torch.Tensor, mask: Optional[torch.Tensor], in_channels: int, name: str) -> None:
    """Raise a ValueError naming network ``name`` unless ``x`` is ``[B, N, in_channels, H, W]`` and ``mask`` is
    None or a bool ``[B, N]``."""
    if x.dim() != 5 or x.shape[2] != in_channels:
        raise ValueError(
            f"{name} expects x of shape [B, N, {in_channels}, H, W] (a 2-D image is N = 1), got shape {list(x.shape)}."
        )
    check_bag_mask(mask, list(x.shape[:2]))


def target_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logit_target - mean(other logits)`` per bag.

    Args:
        logits: ``[B, K]``.
        target: class of interest per bag, int64 ``[B]``.

    Returns:
        ``[B]``; just the logit when there is one class (``K = 1``).
    """
    if logits.shape[1] == 1:
        return logits[:, 0]
    chosen = logits.gather(1, target[:, None])[:, 0]
    others = (logits.sum(dim=1) - chosen) / (logits.shape[1] - 1)
    return chosen - others


class BagNetwork(nn.Module):
    """
    What the bundle needs from a bag network, and all it uses: the trainer, the chunked inferer, the
    optimiser's learning-rate groups, key slices, heatmaps and the exports call these members only.
    A new multiple-instance network plugs into every config (train, evaluate, inference with
    ``--localize``, export) by subclassing this class and setting ``network_def#_target_``.

    A *bag* is ``x [B, N, C, H, W]``: ``N`` instances (the slices of a volume, the patches of an image;
    a 2-D image is ``N = 1``) of ``C x H x W``, with an optional bool ``mask [B, N]`` (True = real
    instance, False = padding added by :func:`bundle.collate.pad_bag_collate`). The members:

    - :meth:`forward` ``(x, mask) -> logits [B, num_classes]`` (required). Padding instances must not
      change the logits.
    - :meth:`instance_scores` ``(x, mask, target) -> (scores [B, N], logits [B, num_classes])``
      (required): how much each instance supports the class of interest; the key slices / key patches
      are the best-scoring instances. It may use autograd (the caller enables gradients and puts the
      network in eval mode).
    - :meth:`forward_chunked` ``(x, mask, chunk_size) -> logits``: the same logits as :meth:`forward` in
      eval mode, computed a chunk of instances at a time so that memory depends on ``chunk_size``, not on
      ``N`` (:class:`bundle.inferers.ChunkedBagInferer` calls it for long bags). The default runs
      :meth:`forward` in one call, which is exact but not bounded.
    - :meth:`parameter_groups` ``() -> {"backbone": [...], "head": [...]}``: the pretrained part that is
      fine-tuned at a lower learning rate (:func:`bundle.optim.backbone_head_param_groups`), and the rest.
      The default puts every parameter in ``"head"``.
    - :meth:`explanation_layer` ``() -> str``: the submodule whose output the gradient x input heatmaps use
      by default (a per-instance feature map ``[M, C', h, w]``), or :data:`INPUT_LAYER`. Default: the input.

    Attributes every bag network sets: ``in_channels`` (``C``) and ``num_classes``.

    Only :meth:`forward` needs to be TorchScript-compatible (the exports script the network).
    """

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance. ``None``: all instances real.

        Returns:
            logits ``[B, num_classes]``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, mask)")

    def forward_chunked(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        """The logits of :meth:`forward`, computed ``chunk_size`` instances at a time where the network can.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.
            chunk_size: instances per chunk, ``>= 1``.

        Returns:
            logits ``[B, num_classes]``, equal to ``forward(x, mask)`` in eval mode.
        """
        return self.forward(x, mask)

    def instance_scores(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """How much each instance supports the class of interest.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real instance.
            target: class of interest per bag, int64 ``[B]``; None: the predicted class.

        Returns:
            ``(scores [B, N], logits [B, num_classes])``, both detached; larger scores = more evidence.
            Scores of padding instances are arbitrary (the caller masks them).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement instance_scores(x, mask, target)")

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """``{"backbone": [...], "head": [...]}``, every parameter in exactly one group."""
        return {"backbone": [], "head": list(self.parameters())}

    def explanation_layer(self) -> str:
        """Name of the submodule (``named_modules()``) for gradient x input heatmaps, or :data:`INPUT_LAYER`."""
        return INPUT_LAYER
