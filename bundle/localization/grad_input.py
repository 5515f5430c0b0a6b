# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Gradient x input heatmaps (Li et al., MICCAI 2019, arXiv:1907.02413, appendix C) for bag networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from networks.nets.bag_network import INPUT_LAYER, BagNetwork

from .provenance import class_targets

__all__ = ["GradientTimesInput", "default_layer", "INPUT_LAYER"]



def default_layer(network: nn.Module) -> str:
    """The network's :meth:`networks.nets.BagNetwork.explanation_layer` (for MILNet the deepest backbone stage
    it uses, e.g. ``"backbone.layer2"``); ``"input"`` for a network that is not a ``BagNetwork``."""
    return network.explanation_layer() if isinstance(network, BagNetwork) else INPUT_LAYER


def _as_tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [o for o in output if isinstance(o, torch.Tensor)]
    return []


class GradientTimesInput:
    """Gradient x input heatmaps of a bag classifier at a chosen layer.

    The paper's recipe (appendix C), for bags ``[B, N, C, H, W]`` (a 2-D image is ``N = 1``):

        1. back-propagate from the logit of the class of interest to layer ``l`` (the paper sets that
           class's loss to -1 and the others' to 0; descending that loss raises the class's logit, so the
           gradient used here is ``d logit_c / d x``, which keeps the evidence positive) and form
           ``T_hw = sum_i d_ihw * x_ihw`` over the layer's channels ``i``;
        2. clamp negatives to 0, scale to ``[0, 255]`` and round: ``P``;
        3. interpolate ``P`` (bilinear) to the input size: ``P*`` (the heatmap returned);
        4. the overlay ``H = 0.6 R + 0.3 P*`` is :func:`bundle.localization.overlay.overlay_heatmap`.

    Choices the paper leaves open: the scale of step 2 is shared by all slices of a bag (the bag's
    maximum maps to 255), so a slice without evidence stays dark; ``per_slice=True`` scales every slice
    on its own instead. The layer is any submodule name (``network.named_modules()``) whose output is a
    per-slice feature map ``[M, C', h, w]`` (or a list of them), or ``"input"`` for the image itself. When
    the layer runs more than once per forward pass (an image pyramid), the maps ``T`` of all calls are
    interpolated to the input size and summed before steps 2 and 3. Padding slices (``mask`` False) get 0.

    The network runs in eval mode (BatchNorm on its running statistics, so bags do not influence each
    other) and is put back in its previous mode afterwards.

    Args:
        network: a bag network ``(x [B, N, C, H, W], mask [B, N] | None) -> logits [B, K]``, e.g. any
            :class:`networks.nets.MILNet`.
        layer: submodule name or ``"input"``. Defaults to :func:`default_layer` (the deepest backbone stage).
        per_slice: scale each slice to ``[0, 255]`` on its own instead of per bag. Defaults to False.

    Raises:
        ValueError: when ``layer`` names no submodule (the message lists a few valid names).
    """

    def __init__(self, network: nn.Module, layer: str | None = None, per_slice: bool = False) -> None:
        self.network = network
        self.layer = default_layer(network) if layer is None else layer
        self.per_slice = per_slice
        modules = dict(network.named_modules())
        if self.layer != INPUT_LAYER and self.layer not in modules:
            names = [n for n in modules if n.count(".") <= 1 and n][:12]
            raise ValueError(
                f"layer {self.layer!r} is not a submodule of {type(network).__name__}; use 'input' or a module "
                f"name such as {', '.join(names)}"
            )
        self.module = None if self.layer == INPUT_LAYER else modules[self.layer]

    def attributions(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        class_index: int | Sequence[int] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """Raw maps ``T`` (step 1).

        Args:
            x: bags ``[B, N, C, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice.
            class_index: class of interest per bag (int for all, or ``[B]``); None: the predicted class.

        Returns:
            ``(T, logits, sizes)``: ``T`` is one ``[B, N, h, w]`` map per layer call stacked after
            interpolation to ``[B, N, H, W]`` when there are several calls (then ``sizes`` has one entry per
            call), else at the layer's own ``[B, N, h, w]``; ``logits [B, K]`` (detached); ``sizes`` the
            layer's ``(h, w)`` per call.
        """
        if x.dim() != 5:
            raise ValueError(f"expected bags [B, N, C, H, W], got shape {list(x.shape)}")
        b, n, height, width = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            captured.extend(tensor for tensor in _as_tensors(output) if tensor.requires_grad)

        was_training = self.network.training
        self.network.eval()
        handle = self.module.register_forward_hook(hook) if self.module is not None else None
        try:
            with torch.enable_grad():
                inputs = x.detach().clone().requires_grad_(self.module is None)
                logits = self.network(inputs, mask) if mask is not None else self.network(inputs)
                target = class_targets(class_index, b, int(logits.shape[1]), logits.device)
                target = logits.detach().argmax(dim=1) if target is None else target
                seed = F.one_hot(target, logits.shape[1]).to(logits.dtype)
                wrt = [inputs] if self.module is None else captured
                if not wrt:
                    raise RuntimeError(f"layer {self.layer!r} produced no tensor that depends on the parameters")
                # autograd.grad, not backward: the parameters' .grad stay untouched (a training run in
                # progress keeps its gradients)
                grads = torch.autograd.grad(logits, wrt, grad_outputs=seed, allow_unused=True)
        finally:
            if handle is not None:
                handle.remove()
            self.network.train(was_training)

        grads = [torch.zeros_like(t) if g is None else g for t, g in zip(wrt, grads)]
        if self.module is None:
            maps = [(grads[0] * inputs).sum(dim=2).detach()]  # [B, N, H, W]
        else:
            index = None if mask is None else mask.flatten().nonzero().squeeze(1)
            maps = []
            for act, grad in zip(captured, grads):
                t = (grad * act).sum(dim=1).detach()  # [M, h, w], M = real slices of the batch
                full = t.new_zeros((b * n, *t.shape[1:]))
                full = full.index_copy(0, index, t) if index is not None else t.reshape(b * n, *t.shape[1:])
                maps.append(full.reshape(b, n, *t.shape[1:]))
        sizes = [tuple(int(s) for s in m.shape[2:]) for m in maps]
        if len(maps) == 1:
            return maps[0], logits.detach(), sizes
        upsampled = [F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False) for m in maps]
        return torch.stack(upsampled).sum(dim=0), logits.detach(), sizes

    def scale(self, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Step 2: clamp ``T [B, N, h, w]`` at 0, scale to ``[0, 255]`` (per bag or per slice) and round."""
        t = t.clamp(min=0)
        if mask is not None:
            t = t * mask[:, :, None, None].to(t.dtype)
        peak = t.amax(dim=(2, 3), keepdim=True) if self.per_slice else t.amax(dim=(1, 2, 3), keepdim=True)
        return torch.round(255.0 * t / torch.where(peak > 0, peak, torch.ones_like(peak)))

    def __call__(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        class_index: int | Sequence[int] | torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Heatmaps ``P*`` of the class of interest.

        Args:
            x: bags ``[B, N, C, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice (padding slices get 0).
            class_index: class of interest (int, or one per bag); None: each bag's predicted class.

        Returns:
            ``(heatmaps, logits)``: ``heatmaps [B, N, H, W]`` float in ``[0, 255]`` (the interpolated ``P*``;
            bilinear, so not all integers), ``logits [B, K]``.
        """
        t, logits, _ = self.attributions(x, mask, class_index)
        p = self.scale(t, mask)
        if tuple(p.shape[2:]) != tuple(x.shape[3:]):
            p = F.interpolate(p, size=tuple(x.shape[3:]), mode="bilinear", align_corners=False)
        return p.clamp(0.0, 255.0), logits
