# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Which slices of a bag hold the evidence: slice scores and key slices of bag networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["class_targets", "key_slices", "slice_scores"]


def class_targets(
    class_index: int | Sequence[int] | torch.Tensor | None, batch_size: int, num_classes: int, device: torch.device
) -> torch.Tensor | None:
    """The class of interest of every bag as int64 ``[batch_size]``, or None for "each bag's predicted class".

    Args:
        class_index: one class for all bags (int), one per bag (sequence or tensor), or None.
        batch_size: ``B``.
        num_classes: ``K`` (valid classes are ``0 .. K - 1``).
        device: where the targets go.

    Raises:
        ValueError: a class outside ``[0, K)`` or a count other than 1 or ``B``.
    """
    if class_index is None:
        return None
    target = torch.as_tensor(class_index, dtype=torch.long, device=device).reshape(-1)
    if target.numel() == 1:
        target = target.expand(batch_size)
    if target.numel() != batch_size or bool(((target < 0) | (target >= num_classes)).any()):
        raise ValueError(
            f"class_index must be one class in [0, {num_classes}) or one per bag ({batch_size}), got {class_index!r}"
        )
    return target


def slice_scores(
    network: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    class_index: int | Sequence[int] | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each slice (instance) supports the class of interest: the network's
    :meth:`networks.nets.BagNetwork.instance_scores`, run in eval mode with gradients enabled.

    For the bundle's :class:`networks.nets.MILNet`: gradient x activation of the pooled features summed per
    slice (bag embedding), or the margin of each slice's own prediction (instance modes).

    Args:
        network: a :class:`networks.nets.BagNetwork`.
        x: bags ``[B, N, C, H, W]``.
        mask: optional ``[B, N]`` bool; padding slices score ``-inf``.
        class_index: class of interest (int or one per bag); None: the predicted class.

    Returns:
        ``(scores [B, N], logits [B, K])``, both detached; the network is put back in its previous mode.
    """
    target = class_targets(class_index, int(x.shape[0]), int(network.num_classes), x.device)
    was_training = network.training
    network.eval()
    try:
        with torch.enable_grad():
            scores, logits = network.instance_scores(x, mask, target)
    finally:
        network.train(was_training)
    scores, logits = scores.detach(), logits.detach()
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    return scores, logits


def key_slices(
    scores: torch.Tensor, slice_indices: torch.Tensor | None = None, top: int = 3
) -> list[list[dict[str, float | int]]]:
    """The ``top`` best-scoring slices of every bag, best first, skipping padding (``-inf``).

    Args:
        scores: ``[B, N]`` from :func:`slice_scores`.
        slice_indices: optional ``[B, N]`` index of each bag slice in the original volume (``-1``: padding);
            without it the bag positions are reported.
        top: how many slices per bag.

    Returns:
        per bag, a list of ``{"slice": original index, "position": bag position, "score": float}``.
    """
    out = []
    for b in range(scores.shape[0]):
        order = torch.argsort(scores[b], descending=True)
        ranked = []
        for pos in order.tolist():
            if len(ranked) == top or scores[b, pos] == float("-inf"):
                break
            original = int(slice_indices[b, pos]) if slice_indices is not None else pos
            ranked.append({"slice": original, "position": pos, "score": round(float(scores[b, pos]), 6)})
        out.append(ranked)
    return out
