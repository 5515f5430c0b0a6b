# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Dict, List, Optional, Set, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from monai.utils import look_up_option

from networks.blocks.identity_head import IdentityHead
from networks.blocks.magnitude_norm import MagnitudeNorm
from networks.blocks.mean_pool import MeanPool
from networks.blocks.msconv import RESIZE_MODES, MSConv, parse_scales, scaled_length
from networks.blocks.topk_pool import TopKPool
from networks.blocks.trident_conv import TridentConv
from networks.nets.backbone import ResNetBackbone
from networks.nets.bag_network import BagNetwork, check_bag_input, target_margin

__all__ = [
    "MILNet",
    "POOLINGS",
    "INSTANCE_AGGREGATIONS",
    "MIN_BRANCH_MAP_SIZE",
    "MIN_SCALE1_MAP_SIZE",
    "SmallFeatureMapWarning",
    "decode_feature_index",
]

#: pooling of the activations: weighted top-k (:class:`TopKPool`, ``k = 1`` is max pooling) or the mean
POOLINGS: tuple[str, ...] = ("topk", "mean")
#: ``"none"``: pool the whole bag into one embedding (embedding-based MIL, MIMS-CNN);
#: ``"mean"``: classify every slice, average the slice probabilities ("patchcls");
#: ``"max"``: classify every slice, per class the maximum slice probability ("max-inst", instance-based MIL)
INSTANCE_AGGREGATIONS: tuple[str, ...] = ("none", "mean", "max")
#: smallest side (rows and columns) of the scale-1 map, the deepest backbone stage on the full-size slice
MIN_SCALE1_MAP_SIZE = 8
#: smallest side of every branch map that enters the pooling (the 1/2 scale of an 8 x 8 map)
MIN_BRANCH_MAP_SIZE = 4


class SmallFeatureMapWarning(UserWarning):
    """A :class:`MILNet` got slices so small that its MIL head sees a degenerate map (see
    :meth:`MILNet.small_map_message`). Filter it with ``warnings.filterwarnings("ignore",
    category=SmallFeatureMapWarning)`` (or pytest's ``-W ignore::networks.SmallFeatureMapWarning``)."""


class MILNet(BagNetwork):
    """
    The multiple-instance network that MIMS-CNN and all its baselines are compositions of (Li et al.,
    "Multi-Instance Multi-Scale CNN for Medical Image Classification", MICCAI 2019, arXiv:1907.02413)::

        -- [input pyramid] -- backbone stage(s) -- head per stage (MSConv / TridentConv / IdentityHead)
           -- [MagnitudeNorm] -- pool (top-k / mean) over branches, x, y [and slices] -- Linear
           [-- aggregate slice predictions (mean / max)] --

    A *branch* is one map per slice that enters the pooling: every input scale (image pyramid) times
    every backbone stage in ``backbone.return_stages`` times every output of that stage's head (one per
    MSConv scale, per Trident dilation, or one for :class:`IdentityHead`). All heads must have the same
    ``out_channels`` ``C``.

    Bag contract (as :class:`MIMSCNN`): input ``[B, N, C_in, H, W]`` with an optional bool ``mask`` ``[B, N]``
    (True = real slice). Only real slices are computed; padded positions hold ``-inf`` in the maps, which
    both poolings ignore. With ``instance_aggregation="none"`` all branches, positions and slices of a bag
    are pooled into one ``C``-vector (embedding-based MIL); otherwise every slice is pooled and classified
    on its own and the slice predictions are aggregated (instance-based MIL):

        - ``"mean"``: bag probabilities = mean over real slices of the slice softmax; the returned logits are
          their logarithm (so ``softmax(logits)`` gives them back and ``CrossEntropyLoss`` trains on them);
        - ``"max"``: per class the maximum over real slices of the slice log-probability; for two classes the
          bag's positive probability grows with its most positive slice (the paper's "max-inst").

    A bag without any real slice gives logits 0 (uniform) in both instance modes, and the classifier bias
    in embedding mode.

    Map sizes (the paper's setting has the MIL head see a real map: at least 8 x 8 at scale 1, so that its
    1/2 scale is at least 4 x 4). For slices of ``H x W`` the network warns with a
    :class:`SmallFeatureMapWarning` when

        - the *scale-1 map*, the deepest backbone stage's output for the full-size slice
          (``backbone.output_size(H, W)``), has fewer than :data:`MIN_SCALE1_MAP_SIZE` (8) rows or columns, or
        - any *branch* (:meth:`feature_map_sizes`: every MSConv scale, Trident dilation, FeatPyra level and
          input-pyramid level) has fewer than :data:`MIN_BRANCH_MAP_SIZE` (4) rows or columns.

    The message (:meth:`small_map_message`) names the network, the slice size, the offending maps and the
    smallest square slice that passes with this network (its backbone as it is, with or without the stem's
    max-pooling), and suggests a larger ``image_size``, a shallower ``feature_stage``, a backbone without its
    stem max-pooling (``backbone_max_pool=False`` of the networks and the configs, ``max_pool=False`` of
    :class:`ResNetBackbone`: it halves every stride) or milder down-scalings. The check runs at the first
    forward (any method that computes maps) for each slice size, once per size per network instance: the sizes
    already warned about are kept in a plain Python set (``_warned_sizes``), which changes nothing but whether
    the warning repeats (no output, parameter or buffer depends on it; it is not in the state dict). It runs in
    eager mode only: a scripted or traced network skips it.

    Feature layout (:meth:`instance_features`): ``[B, C, L]``, branch-major, with branch ``i`` of size
    ``(h_i, w_i)`` (see :meth:`feature_map_sizes`, which lists branches in the order input scale, stage,
    head output) and element ``(branch i, slice n, y, x)`` at ``offset_i + n * h_i * w_i + y * w_i + x``,
    ``offset_i = N * sum_{i' < i} h_i' * w_i'``.

    The bundle uses it through the :class:`BagNetwork` contract: :meth:`forward`, :meth:`forward_chunked`
    (exact: the top-k of a union is the top-k of the per-chunk top-k; instance modes concatenate the slice
    logits; mean pooling over the bag runs in one call), :meth:`instance_scores` (key slices),
    :meth:`parameter_groups` (backbone vs the rest) and :meth:`explanation_layer` (the deepest backbone
    stage). :meth:`topk_sources` tells which slice, position and branch supplied each pooled activation.

    Subclasses (:class:`MIMSCNN`, :class:`MIPre`, ...) fix the composition; use this class directly only to
    build a new one.

    Args:
        backbone: the per-slice feature extractor; its ``forward_stages`` outputs feed ``heads`` in order.
        heads: one module per backbone return stage, each mapping ``[M, C_stage, h, w]`` to a list of
            ``[M, C, h_j, w_j]`` and exposing ``out_channels`` and ``output_sizes(h, w)``.
        num_classes: number of logits.
        input_scales: image-pyramid factors in ``[0.25, 2]`` applied to the slices before the backbone.
            Defaults to ``(1.0,)`` (no pyramid).
        magnitude_norm: whether every branch gets its own BatchNorm and learnable scalar per channel
            (:class:`MagnitudeNorm`) before pooling. Defaults to ``True``.
        k: activations pooled per channel by top-k pooling (ignored by mean pooling). Defaults to 5.
        topk_init_decay: initial ratio between consecutive top-k pooling weights, in ``(0, 1]``: 0.5 gives
            the paper's exponentially decaying weights (half the weight on the largest activation), 1.0 equal
            weights (every one of the k activations gets the same share of the gradient at the start).
            Defaults to 0.5.
        pooling: one of :data:`POOLINGS`. Defaults to ``"topk"``.
        instance_aggregation: one of :data:`INSTANCE_AGGREGATIONS`. Defaults to ``"none"``.
        resize_mode: interpolation of the image pyramid. Defaults to ``"bilinear"``.

    Raises:
        ValueError: for an invalid option, or heads that do not match the backbone's stages and channels.
    """

    def __init__(
        self,
        backbone: ResNetBackbone,
        heads: Sequence[nn.Module],
        num_classes: int = 2,
        input_scales: Sequence[float] = (1.0,),
        magnitude_norm: bool = True,
        k: int = 5,
        topk_init_decay: float = 0.5,
        pooling: str = "topk",
        instance_aggregation: str = "none",
        resize_mode: str = "bilinear",
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
        if len(heads) != len(backbone.return_stages):
            raise ValueError(
                f"need one head per backbone return stage {backbone.return_stages}, got {len(heads)} heads."
            )
        for head, channels in zip(heads, backbone.stage_channels):
            if getattr(head, "in_channels", channels) != channels:
                raise ValueError(f"a head takes {head.in_channels} channels but its backbone stage gives {channels}.")
        widths = {int(head.out_channels) for head in heads}
        if len(widths) != 1:
            raise ValueError(f"all heads must have the same out_channels, got {sorted(widths)}.")
        self.network_name: str = type(self).__name__
        self.in_channels = backbone.in_channels
        self.num_classes = num_classes
        self.out_channels = widths.pop()
        self.input_scales: List[float] = list(parse_scales(input_scales))
        self.resize_mode = look_up_option(resize_mode, RESIZE_MODES)
        self.align_corners: Optional[bool] = False if self.resize_mode in ("bilinear", "bicubic") else None
        self.pooling = look_up_option(pooling, POOLINGS)
        self.instance_aggregation = look_up_option(instance_aggregation, INSTANCE_AGGREGATIONS)

        self.backbone = backbone
        self.heads = nn.ModuleList(heads)
        branches_per_scale = sum(len(head.output_sizes(8, 8)) for head in heads)
        self.num_branches = len(self.input_scales) * branches_per_scale
        self.magnitude_norm = MagnitudeNorm(self.num_branches, self.out_channels) if magnitude_norm else None
        self.pool = TopKPool(k=k, decay=topk_init_decay) if self.pooling == "topk" else MeanPool()
        #: activations per channel that each chunk must keep for an exact chunked forward (0: not chunkable)
        self.chunk_top_k: int = int(k) if self.pooling == "topk" else 0
        self.classifier = nn.Linear(self.out_channels, num_classes)
        #: slice sizes ``(H, W)`` already warned about (eager mode only; affects nothing but the warning)
        self._warned_sizes: Set[Tuple[int, int]] = set()

    @torch.jit.export
    def feature_map_sizes(self, height: int, width: int) -> List[Tuple[int, int]]:
        """``(h_i, w_i)`` of every branch for input slices of ``height x width``.

        Order: input scale, stage, head output.
        """
        sizes: List[Tuple[int, int]] = []
        for s in self.input_scales:
            stage_sizes = self.backbone.stage_output_sizes(scaled_length(height, s), scaled_length(width, s))
            for i, head in enumerate(self.heads):
                sizes.extend(head.output_sizes(stage_sizes[i][0], stage_sizes[i][1]))
        return sizes

    def branch_names(self) -> List[str]:
        """A readable name of every branch, in the order of :meth:`feature_map_sizes`.

        E.g. ``"input scale 1, stage 2 (conv3_x), MSConv scale 0.5"``; ResNet stage ``k`` is the paper's
        ``conv{k+1}_x``.
        """
        names: List[str] = []
        for s in self.input_scales:
            for stage, head in zip(self.backbone.return_stages, self.heads):
                prefix = f"input scale {s:g}, stage {stage} (conv{stage + 1}_x)"
                if isinstance(head, MSConv):
                    outputs = [f"MSConv scale {h:g}" for h in head.scales]
                elif isinstance(head, TridentConv):
                    outputs = [f"TridentConv dilation {d}" for d in head.dilations]
                elif isinstance(head, IdentityHead):
                    outputs = ["no head"]
                else:
                    outputs = [f"{type(head).__name__} output {j}" for j in range(len(head.output_sizes(8, 8)))]
                names.extend(f"{prefix}, {name}" for name in outputs)
        return names

    def _small_maps(self, height: int, width: int) -> Tuple[Tuple[int, int], List[Tuple[int, Tuple[int, int]]]]:
        """The scale-1 map size and the ``(branch, size)`` of every branch below :data:`MIN_BRANCH_MAP_SIZE`."""
        small = [
            (i, size) for i, size in enumerate(self.feature_map_sizes(height, width)) if min(size) < MIN_BRANCH_MAP_SIZE
        ]
        return self.backbone.output_size(height, width), small

    def _map_ok(self, height: int, width: int) -> bool:
        scale1, small = self._small_maps(height, width)
        return min(scale1) >= MIN_SCALE1_MAP_SIZE and not small

    def small_map_message(self, height: int, width: int) -> Optional[str]:
        """Why slices of ``height x width`` give the MIL head a degenerate map, or ``None`` when they do not.

        The rule is the class docstring's: the scale-1 map needs at least 8 rows and columns, every branch at
        least 4.

        Args:
            height: slice rows ``H``.
            width: slice columns ``W``.
        """
        scale1, small = self._small_maps(height, width)
        if min(scale1) >= MIN_SCALE1_MAP_SIZE and not small:
            return None
        problems: List[str] = []
        stage = self.backbone.feature_stage
        if min(scale1) < MIN_SCALE1_MAP_SIZE:
            problems.append(
                f"its scale-1 map (stage {stage} = conv{stage + 1}_x, stride {self.backbone.stride}) is "
                f"{scale1[0]}x{scale1[1]}, below {MIN_SCALE1_MAP_SIZE}x{MIN_SCALE1_MAP_SIZE}"
            )
        if small:
            names = self.branch_names()
            i, (h, w) = min(small, key=lambda item: (min(item[1]), item[0]))
            more = f" ({len(small)} of {self.num_branches} branches are)" if len(small) > 1 else ""
            problems.append(
                f"its smallest branch ({names[i]}) is {h}x{w}, below {MIN_BRANCH_MAP_SIZE}x{MIN_BRANCH_MAP_SIZE}{more}"
            )
        needed = next((n for n in range(1, 8193) if self._map_ok(n, n)), None)
        larger = f"a larger image_size (slices of at least {needed}x{needed} pass)" if needed else "larger slices"
        fixes = [larger]
        if stage > 1:
            fixes.append(f"a shallower feature_stage (now {stage})")
        if self.backbone.max_pool:
            fixes.append("a backbone without its stem max-pooling (backbone_max_pool=False halves every stride)")
        fixes.append("milder down-scalings (MSConv scales, input_scales)")
        return (
            f"{self.network_name} on {height}x{width} slices: " + ", and ".join(problems) + "; the MIL head sees a "
            "degenerate map (the paper's setting: at least 8x8 at scale 1, so that the 1/2 scale is at least 4x4). "
            "Use " + ", ".join(fixes[:-1]) + " or " + fixes[-1] + "."
        )

    @torch.jit.unused
    def _warn_small_maps(self, height: int, width: int) -> None:
        """Warn once per slice size (eager mode only; see the class docstring)."""
        if torch.jit.is_tracing() or (height, width) in self._warned_sizes:
            return
        self._warned_sizes.add((height, width))
        message = self.small_map_message(height, width)
        if message is not None:
            warnings.warn(message, SmallFeatureMapWarning, stacklevel=3)

    def _check_input(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> None:
        check_bag_input(x, mask, self.in_channels, self.network_name)

    def _branch_maps(self, slices: torch.Tensor) -> List[torch.Tensor]:
        """``[M, C_in, H, W]`` -> one ``[M, C, h_i, w_i]`` per branch (before magnitude normalisation)."""
        maps: List[torch.Tensor] = []
        height, width = slices.shape[2], slices.shape[3]
        for s in self.input_scales:
            size = [scaled_length(height, s), scaled_length(width, s)]
            if size[0] == height and size[1] == width:
                resized = slices
            else:
                resized = F.interpolate(slices, size=size, mode=self.resize_mode, align_corners=self.align_corners)
            stages = self.backbone.forward_stages(resized)
            for i, head in enumerate(self.heads):
                maps.extend(head(stages[i]))
        return maps

    @torch.jit.export
    def instance_maps(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """
        The (magnitude-normalised) maps of every slice and branch, as they enter the pooling.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            one tensor per branch, each ``[B, N, out_channels, h_i, w_i]``; padding slices are ``-inf``.
        """
        self._check_input(x, mask)
        if not torch.jit.is_scripting():
            self._warn_small_maps(int(x.shape[3]), int(x.shape[4]))
        b, n = x.shape[0], x.shape[1]
        slices = x.flatten(0, 1)
        index: Optional[torch.Tensor] = None
        if mask is not None:
            index = mask.flatten().nonzero().squeeze(1)
            slices = slices.index_select(0, index)
        maps = self._branch_maps(slices)
        if self.magnitude_norm is not None:
            maps = self.magnitude_norm(maps)
        outputs: List[torch.Tensor] = []
        for y in maps:
            if index is not None:
                full = torch.full(
                    [b * n, y.shape[1], y.shape[2], y.shape[3]], float("-inf"), dtype=y.dtype, device=y.device
                )
                y = full.index_copy(0, index, y)
            outputs.append(y.reshape(b, n, y.shape[1], y.shape[2], y.shape[3]))
        return outputs

    @torch.jit.export
    def instance_features(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Per-channel activations of all branches, positions and slices of each bag (the bag-level pooling input).

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            ``[B, out_channels, L]`` in the branch-major layout of the class docstring; padding is ``-inf``.
        """
        flat: List[torch.Tensor] = []
        for y in self.instance_maps(x, mask):
            flat.append(y.transpose(1, 2).flatten(2))  # [B, N, C, h, w] -> [B, C, N * h * w]
        return torch.cat(flat, dim=2)

    @torch.jit.export
    def instance_logits(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Every slice pooled and classified on its own (the instance-based modes' slice predictions).

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice. Padding slices get the classifier bias.

        Returns:
            slice logits ``[B, N, num_classes]``.
        """
        flat: List[torch.Tensor] = []
        for y in self.instance_maps(x, mask):
            flat.append(y.flatten(3))  # [B, N, C, h * w]
        per_slice = torch.cat(flat, dim=3)
        b, n = per_slice.shape[0], per_slice.shape[1]
        pooled = self.pool(per_slice.flatten(0, 1))  # [B * N, C]
        return self.classifier(pooled).reshape(b, n, self.num_classes)

    @torch.jit.export
    def aggregate_instances(self, logits: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Bag logits from slice logits, by ``instance_aggregation`` (``"mean"`` or ``"max"``).

        Args:
            logits: slice logits ``[B, N, num_classes]``.
            mask: optional ``[B, N]`` bool, True = real slice; padding slices are left out.

        Returns:
            bag logits ``[B, num_classes]`` (log-probabilities; 0 for a bag without real slices).
        """
        log_p = F.log_softmax(logits, dim=-1)
        present = torch.ones_like(log_p, dtype=torch.bool) if mask is None else mask.unsqueeze(-1).expand_as(log_p)
        masked = torch.where(present, log_p, torch.full_like(log_p, float("-inf")))
        if self.instance_aggregation == "max":
            bag = masked.max(dim=1).values
        elif self.instance_aggregation == "mean":
            count = present[:, :, 0].sum(dim=1, keepdim=True).to(log_p.dtype)
            bag = torch.logsumexp(masked, dim=1) - torch.log(torch.clamp(count, min=1.0))
        else:
            raise ValueError("aggregate_instances needs instance_aggregation 'mean' or 'max'.")
        any_present = present[:, :, 0].any(dim=1, keepdim=True)
        return torch.where(any_present, bag, torch.zeros_like(bag))

    @torch.jit.export
    def forward_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pooled: pooled bag features ``[B, out_channels]``.

        Returns:
            logits ``[B, num_classes]``.
        """
        return self.classifier(pooled)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """
        Args:
            x: bags ``[B, N, in_channels, H, W]`` (a 2-D image is ``N = 1``).
            mask: optional ``[B, N]`` bool, True = real slice, False = padding. ``None``: all slices real.

        Returns:
            logits ``[B, num_classes]``.
        """
        if self.instance_aggregation == "none":
            return self.forward_head(self.pool(self.instance_features(x, mask)))
        return self.aggregate_instances(self.instance_logits(x, mask), mask)

    @torch.jit.export
    def forward_chunked(self, x: torch.Tensor, mask: Optional[torch.Tensor], chunk_size: int) -> torch.Tensor:
        """The logits of :meth:`forward`, ``chunk_size`` slices at a time (see :class:`BagNetwork`).

        Embedding mode with top-k pooling keeps only the ``k`` largest activations per channel of each chunk
        (:meth:`instance_features`) and pools the kept candidates of all chunks: the top-k of a union is the
        top-k of the union of the per-chunk top-k, so the logits equal :meth:`forward` exactly in eval mode.
        Instance modes concatenate the slice logits of all chunks (:meth:`instance_logits`) and aggregate
        them once, also exact. Mean pooling over the bag runs in one call. TorchScript-exported, so a
        scripted network (``model.ts``) is chunked the same way.

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice.
            chunk_size: slices per chunk, ``>= 1``.

        Returns:
            logits ``[B, num_classes]``.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1, got " + str(chunk_size))
        n = x.shape[1]
        if self.instance_aggregation != "none":
            slice_logits: List[torch.Tensor] = []
            for start in range(0, n, chunk_size):
                chunk_mask = None if mask is None else mask[:, start : start + chunk_size]
                slice_logits.append(self.instance_logits(x[:, start : start + chunk_size], chunk_mask))
            return self.aggregate_instances(torch.cat(slice_logits, dim=1), mask)
        if self.chunk_top_k < 1 or n <= chunk_size:
            return self.forward(x, mask)
        candidates: List[torch.Tensor] = []
        for start in range(0, n, chunk_size):
            chunk_mask = None if mask is None else mask[:, start : start + chunk_size]
            feats = self.instance_features(x[:, start : start + chunk_size], chunk_mask)
            candidates.append(torch.topk(feats, min(self.chunk_top_k, feats.shape[-1]), dim=-1).values)
        return self.forward_head(self.pool(torch.cat(candidates, dim=-1)))

    def instance_scores(
        self, x: torch.Tensor, mask: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """How much each slice supports the class of interest (see :class:`BagNetwork`).

        - Embedding mode (``instance_aggregation == "none"``): the contribution of every pooled activation
          ``a`` to the margin ``m = logit_c - mean(other logits)`` is ``a * dm/da`` (exact for top-k and mean
          pooling, which are linear in the selected activations, followed by a linear classifier: for top-k,
          ``w_r * a_r * (W_c - mean W_other)`` per channel); a slice's score is the sum over its positions,
          branches and channels. Slices that supplied no top-k activation score 0.
        - Instance modes (``"mean"``/``"max"``): the margin of the slice's own prediction.

        Needs gradients enabled (:func:`bundle.localization.slice_scores` runs it in eval mode with them).

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool, True = real slice.
            target: class of interest per bag, int64 ``[B]``; None: the predicted class.

        Returns:
            ``(scores [B, N], logits [B, num_classes])``, both detached.
        """
        if self.instance_aggregation != "none":
            slice_logits = self.instance_logits(x, mask).detach()
            logits = self.aggregate_instances(slice_logits, mask).detach()
            target = logits.argmax(dim=1) if target is None else target
            b, n, k = slice_logits.shape
            scores = target_margin(slice_logits.reshape(b * n, k), target.repeat_interleave(n)).reshape(b, n)
            return scores, logits
        feats = self.instance_features(x, mask).detach().requires_grad_(True)
        logits = self.forward_head(self.pool(feats))
        target = logits.detach().argmax(dim=1) if target is None else target
        # autograd.grad, not backward: the head's parameters keep their .grad
        (grad,) = torch.autograd.grad(target_margin(logits, target).sum(), feats)
        present = feats.detach() != float("-inf")
        contrib = torch.where(present, grad * feats.detach(), torch.zeros_like(feats)).sum(dim=1)  # [B, L]
        num_slices = int(x.shape[1])
        scores = contrib.new_zeros((contrib.shape[0], num_slices))
        offset = 0
        for h, w in self.feature_map_sizes(int(x.shape[3]), int(x.shape[4])):
            length = num_slices * h * w
            scores = scores + contrib[:, offset : offset + length].reshape(-1, num_slices, h * w).sum(dim=2)
            offset += length
        return scores, logits.detach()

    def parameter_groups(self) -> Dict[str, List[nn.Parameter]]:
        """``{"backbone": the backbone's parameters, "head": every other parameter}``."""
        backbone = list(self.backbone.parameters())
        backbone_ids = {id(p) for p in backbone}
        return {"backbone": backbone, "head": [p for p in self.parameters() if id(p) not in backbone_ids]}

    def explanation_layer(self) -> str:
        """The deepest backbone stage the network uses, e.g. ``"backbone.layer2"``."""
        return f"backbone.layer{self.backbone.feature_stage}"

    @torch.no_grad()
    def topk_sources(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Which slice, position and branch (scale) supplied each top-k activation of a bag.

        Runs in eval mode (and puts the network back in its previous mode).

        Args:
            x: bags ``[B, N, in_channels, H, W]``.
            mask: optional ``[B, N]`` bool.

        Returns:
            ``[B, out_channels, k]`` tensors: ``value`` (the activation), ``weight`` (its pooling weight),
            ``branch``, ``slice`` (bag position), ``y``, ``x`` (feature-map cell of that branch), and
            ``center_y``, ``center_x`` (the cell centre in input pixels, float); sorted by descending value
            per channel.

        Raises:
            ValueError: the network does not pool the bag with top-k pooling (mean pooling, per-slice
                classification): use :meth:`instance_scores` for its key slices.
        """
        if self.instance_aggregation != "none" or self.chunk_top_k < 1:
            raise ValueError(
                f"{self.network_name} does not pool the bag with top-k pooling "
                "(mean pooling or per-slice classification): use instance_scores for its key slices"
            )
        was_training = self.training
        self.eval()
        try:
            feats = self.instance_features(x, mask)
            _, indices, weights = self.pool.forward_with_indices(feats)
        finally:
            self.train(was_training)
        sizes = self.feature_map_sizes(int(x.shape[3]), int(x.shape[4]))
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

    def extra_repr(self) -> str:
        return (
            f"input_scales={tuple(self.input_scales)}, branches={self.num_branches}, out_channels={self.out_channels}, "
            f"pooling={self.pooling}, instance_aggregation={self.instance_aggregation}"
        )


def decode_feature_index(
    index: torch.Tensor, sizes: Sequence[Tuple[int, int]], num_slices: int
) -> Dict[str, torch.Tensor]:
    """Positions in the flattened bag features of a :class:`MILNet` as (branch, slice, y, x).

    The layout (:meth:`MILNet.instance_features`) is branch-major: branch ``i`` of size ``(h_i, w_i)`` holds
    ``num_slices * h_i * w_i`` elements starting at ``offset_i = num_slices * sum_{i' < i} h_i' * w_i'``,
    element ``(n, y, x)`` at ``offset_i + n * h_i * w_i + y * w_i + x``.

    Args:
        index: int64 positions of any shape.
        sizes: ``(h_i, w_i)`` per branch (:meth:`MILNet.feature_map_sizes`).
        num_slices: ``N`` of the bag.

    Returns:
        ``{"branch", "slice", "y", "x"}``, each int64 of ``index``'s shape.

    Raises:
        ValueError: a position outside the layout.
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
