# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Where the evidence of a bag came from: top-k provenance and key slices of MIL networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["TopKProvenance", "decode_feature_index", "slice_scores", "key_slices", "target_margin"]


def _feature_sizes(network: nn.Module, x: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(s) for s in network.feature_map_sizes(int(x.shape[3]), int(x.shape[4]))]


def decode_feature_index(
    index: torch.Tensor, sizes: Sequence[tuple[int, int]], num_slices: int
) -> dict[str, torch.Tensor]:
    """Positions in the flattened bag features of a :class:`networks.nets.MILNet` as (branch, slice, y, x).

    The layout (``MILNet.instance_features``) is branch-major: branch ``i`` of size ``(h_i, w_i)`` holds
    ``num_slices * h_i * w_i`` elements starting at ``offset_i = num_slices * sum_{i' < i} h_i' * w_i'``,
    element ``(n, y, x)`` at ``offset_i + n * h_i * w_i + y * w_i + x``.

    Args:
        index: int64 positions of any shape.
        sizes: ``(h_i, w_i)`` per branch (``network.feature_map_sizes(H, W)``).
        num_slices: ``N`` of the bag.

    Returns:
        ``{"branch", "slice", "y", "x"}``, each int64 of ``index``'s shape.
    """
    branch = torch.zeros_like(index)
    local = index.clone()
    offset = 0
    for i, (h, w) in enumerate(sizes):
        length = num_slices * h * w
        inside = (index >= offset) & (index < offset + length)
        branch = torch.where(inside, torch.full_like(index, i), branch)
        local = torch.where(inside, index - offset, local)
        offset += length
    if bool((index >= offset).any()) or bool((index < 0).any()):
        raise ValueError(f"feature index out of range [0, {offset}) for sizes {list(sizes)} and {num_slices} slices")
    hw = torch.tensor([h * w for h, w in sizes], dtype=index.dtype, device=index.device)[branch]
    widths = torch.tensor([w for _, w in sizes], dtype=index.dtype, device=index.device)[branch]
    within = local % hw
    return {"branch": branch, "slice": local // hw, "y": within // widths, "x": within % widths}


def target_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logit_target - mean(other logits)`` per bag ``[B]`` (just the logit when there is one class)."""
    if logits.shape[1] == 1:
        return logits[:, 0]
    chosen = logits.gather(1, target[:, None])[:, 0]
    others = (logits.sum(dim=1) - chosen) / (logits.shape[1] - 1)
    return chosen - others


def _targets(logits: torch.Tensor, class_index: int | Sequence[int] | torch.Tensor | None) -> torch.Tensor:
    if class_index is None:
        return logits.argmax(dim=1)
    target = torch.as_tensor(class_index, dtype=torch.long, device=logits.device).reshape(-1)
    return target.expand(logits.shape[0]) if target.numel() == 1 else target


def slice_scores(
    network: nn.Module,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    class_index: int | Sequence[int] | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """How much each slice supports the class of interest.

    - Bag-embedding networks (``instance_aggregation == "none"``): the contribution of every pooled
      activation ``a`` to the margin ``m = logit_c - mean(other logits)`` is ``a * dm/da`` (exact for top-k
      and mean pooling, which are linear in the selected activations, followed by a linear classifier:
      for top-k, ``w_r * a_r * (W_c - mean W_other)`` per channel); a slice's score is the sum over its
      positions, branches and channels. Slices that supplied no top-k activation score 0.
    - Instance-level networks (``"mean"``/``"max"``): the margin of the slice's own prediction.

    Args:
        network: a :class:`networks.nets.MILNet` (anything with its interface).
        x: bags ``[B, N, C, H, W]``.
        mask: optional ``[B, N]`` bool; padding slices score ``-inf``.
        class_index: class of interest (int or one per bag); None: the predicted class.

    Returns:
        ``(scores [B, N], logits [B, K])``, both detached; the network is run in eval mode.
    """
    was_training = network.training
    network.eval()
    try:
        with torch.enable_grad():
            if getattr(network, "instance_aggregation", "none") != "none":
                slice_logits = network.instance_logits(x, mask).detach()
                logits = network.aggregate_instances(slice_logits, mask).detach()
                target = _targets(logits, class_index)
                b, n, k = slice_logits.shape
                scores = target_margin(slice_logits.reshape(b * n, k), target.repeat_interleave(n)).reshape(b, n)
            else:
                feats = network.instance_features(x, mask).detach().requires_grad_(True)
                logits = network.forward_head(network.pool(feats))
                target = _targets(logits.detach(), class_index)
                # autograd.grad, not backward: the head's parameters keep their .grad
                (grad,) = torch.autograd.grad(target_margin(logits, target).sum(), feats)
                present = feats.detach() != float("-inf")
                contrib = torch.where(present, grad * feats.detach(), torch.zeros_like(feats))
                scores = _per_slice_sum(contrib.sum(dim=1), _feature_sizes(network, x), int(x.shape[1]))
                logits = logits.detach()
    finally:
        network.train(was_training)
    if mask is not None:
        scores = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    return scores, logits


def _per_slice_sum(values: torch.Tensor, sizes: Sequence[tuple[int, int]], num_slices: int) -> torch.Tensor:
    """``values [B, L]`` in the branch-major layout summed per slice: ``[B, N]``."""
    total = values.new_zeros((values.shape[0], num_slices))
    offset = 0
    for h, w in sizes:
        length = num_slices * h * w
        total = total + values[:, offset : offset + length].reshape(values.shape[0], num_slices, h * w).sum(dim=2)
        offset += length
    return total


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


class TopKProvenance:
    """Which slice, position and branch (scale) supplied each top-k activation of a bag.

    For a :class:`networks.nets.MILNet` with top-k pooling over the bag (``instance_aggregation="none"``
    and a pool with ``forward_with_indices``), :meth:`__call__` pools the bag's features and decodes the
    indices of the pooled activations with :func:`decode_feature_index`.

    Args:
        network: the network; checked on construction.

    Raises:
        ValueError: for a network that does not pool the bag with top-k pooling (mean pooling, per-slice).
    """

    def __init__(self, network: nn.Module) -> None:
        pool = getattr(network, "pool", None)
        if getattr(network, "instance_aggregation", "none") != "none" or not hasattr(pool, "forward_with_indices"):
            raise ValueError(
                f"{type(network).__name__} does not pool the bag with top-k pooling "
                "(mean pooling or per-slice classification): use slice_scores for its key slices"
            )
        self.network = network

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """
        Args:
            x: bags ``[B, N, C, H, W]``.
            mask: optional ``[B, N]`` bool.

        Returns:
            ``[B, C_out, k]`` tensors: ``value`` (the activation), ``weight`` (its pooling weight), ``branch``,
            ``slice`` (bag position), ``y``, ``x`` (feature-map cell of that branch), and ``center_y``,
            ``center_x`` (the cell centre in input pixels, float); sorted by descending value per channel.
        """
        was_training = self.network.training
        self.network.eval()
        try:
            feats = self.network.instance_features(x, mask)
            _, indices, weights = self.network.pool.forward_with_indices(feats)
        finally:
            self.network.train(was_training)
        sizes = _feature_sizes(self.network, x)
        decoded = decode_feature_index(indices, sizes, int(x.shape[1]))
        heights = torch.tensor([h for h, _ in sizes], dtype=torch.float32)[decoded["branch"]]
        widths = torch.tensor([w for _, w in sizes], dtype=torch.float32)[decoded["branch"]]
        return {
            "value": feats.gather(2, indices),
            "weight": weights,
            **decoded,
            "center_y": (decoded["y"].float() + 0.5) * float(x.shape[3]) / heights,
            "center_x": (decoded["x"].float() + 0.5) * float(x.shape[4]) / widths,
        }
