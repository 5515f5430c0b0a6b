# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Global-local saliency for large 2D images, GLAM-style (after Liu et al., MIDL 2021).

GLAM (Global-Local Activation Maps; K. Liu et al., "Weakly-supervised High-resolution Segmentation of
Mammography Images for Breast Cancer Diagnosis", MIDL 2021) localizes small lesions in very large
images with image-level labels only: a *global* network sees the whole image at low resolution and
gives coarse saliency and the image-level prediction; the most salient regions are cropped from the
full-resolution image and a *local* network gives fine saliency there; both are fused into one
high-resolution map.

:class:`GlobalLocalSaliency` does this for any bag network of this bundle with gradient x input
(:class:`~bundle.localization.grad_input.GradientTimesInput`) as the saliency of both passes. What is
simplified compared with GLAM:

- **one network for both passes** (the bundle's classifier, trained on whole images at the global
  resolution), where GLAM trains a separate local network on crops and a global network with its own
  multi-level saliency heads. A window seen at full resolution shows lesions larger (in pixels of the
  network input) than the network saw them in training; the multi-scale networks of the bundle
  (MSConv) are meant to cope with such scale changes, but nothing here adapts the network to them;
- **saliency by gradient x input** at one layer (MIMS-CNN's appendix C recipe), not GLAM's learned
  class activation maps; both passes use the same class of interest;
- **window selection** is greedy on the mean global saliency inside a window of fixed size (all
  positions at a one-pixel stride, windows clipped to the image), with non-maximum suppression by
  intersection over union (``max_overlap``; 0 = disjoint windows), where GLAM selects patches on its
  global saliency maps with its own rules;
- **fusion** is a fixed, parameter-free rule (below), where GLAM learns how to combine the maps;
- no training-time coupling of the two passes, no segmentation loss, no thresholding into masks.

Maps and fusion. The global map ``G`` is the global pass's gradient x input, clamped at 0 and scaled
so that the image's maximum is 1, then interpolated (bilinear) to the full resolution. Each window's
fine map ``L`` is the local pass's gradient x input, clamped and scaled so that the window's maximum
is 1, interpolated to the window's full-resolution size. The fused map equals ``G`` outside the
windows; inside a window it is

- ``"geometric"`` (default): ``sqrt(G * L)``, the geometric mean: high only where the coarse global
  evidence and the fine local evidence agree, so the broad global blob is cut down to the fine map's
  shape, and a local response where the global map is 0 is dropped;
- ``"mean"``: ``(1 - local_weight) * G + local_weight * L``, a weighted arithmetic mean.

Where windows overlap (``max_overlap > 0``), the larger fused value is kept. All maps lie in
``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from monai.utils import look_up_option
from torch import nn

from .grad_input import GradientTimesInput
from .provenance import class_targets

__all__ = ["FUSION_RULES", "GlobalLocalMaps", "GlobalLocalSaliency", "fuse_maps", "select_windows"]

#: fusion rules of :func:`fuse_maps` (see the module docstring)
FUSION_RULES = ("geometric", "mean")


def _size_pair(name: str, value: int | Sequence[int] | None, allow_none: bool = False) -> tuple[int, int] | None:
    if value is None and allow_none:
        return None
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        ok = len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer or a pair of them (height, width), got {value!r}.")
    return int(pair[0]), int(pair[1])


def select_windows(
    saliency: torch.Tensor, window_size: Sequence[int], num_windows: int = 1, max_overlap: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy choice of the most salient windows of one map, with non-maximum suppression.

    Every window of size ``window_size`` that lies inside the map (one-pixel stride) is a candidate,
    scored by the mean saliency it covers (an integral image gives all scores at once). The best
    candidate is taken; candidates whose intersection over union with it exceeds ``max_overlap`` are
    dropped; this repeats until ``num_windows`` are chosen or no candidate is left. Ties go to the
    smallest row, then the smallest column.

    Args:
        saliency: ``[H, W]`` map.
        window_size: ``(h, w)``; clipped to ``(H, W)``.
        num_windows: how many windows to choose, >= 1. Defaults to 1.
        max_overlap: largest intersection over union allowed between chosen windows, in ``[0, 1)``;
            0 (default) keeps them disjoint.

    Returns:
        ``(windows, scores)``: ``windows [n, 4]`` int64 rows ``(y0, x0, y1, x1)`` (end exclusive), in the
        order chosen, ``n <= num_windows`` (fewer only when no candidate is left); ``scores [n]`` the mean
        saliency inside each.

    Example::

        >>> m = torch.zeros(16, 16); m[5, 7] = 1.0
        >>> select_windows(m, (4, 4))[0].tolist()
        [[2, 4, 6, 8]]
    """
    if saliency.dim() != 2:
        raise ValueError(f"saliency must be one map [H, W], got shape {list(saliency.shape)}.")
    if isinstance(num_windows, bool) or not isinstance(num_windows, int) or num_windows < 1:
        raise ValueError(f"num_windows must be an integer >= 1, got {num_windows!r}.")
    if not 0.0 <= float(max_overlap) < 1.0:
        raise ValueError(f"max_overlap must lie in [0, 1), got {max_overlap!r}.")
    wh, ww = _size_pair("window_size", tuple(window_size))
    height, width = saliency.shape
    wh, ww = min(wh, height), min(ww, width)
    integral = F.pad(saliency.detach().to(torch.float64).cumsum(0).cumsum(1), (1, 0, 1, 0))
    sums = integral[wh:, ww:] - integral[:-wh, ww:] - integral[wh:, :-ww] + integral[:-wh, :-ww]
    scores = (sums / (wh * ww)).flatten()  # candidates (y0, x0) in row-major order
    ny, nx = height - wh + 1, width - ww + 1
    ys = torch.arange(ny, device=saliency.device).repeat_interleave(nx)
    xs = torch.arange(nx, device=saliency.device).repeat(ny)
    alive = torch.ones_like(scores, dtype=torch.bool)
    chosen, chosen_scores = [], []
    for _ in range(num_windows):
        if not bool(alive.any()):
            break
        best = int(torch.where(alive, scores, torch.full_like(scores, -torch.inf)).argmax())
        y0, x0 = int(ys[best]), int(xs[best])
        chosen.append([y0, x0, y0 + wh, x0 + ww])
        chosen_scores.append(float(scores[best]))
        inter = (wh - (ys - y0).abs()).clamp(min=0) * (ww - (xs - x0).abs()).clamp(min=0)
        iou = inter.to(torch.float64) / (2 * wh * ww - inter)
        alive &= iou <= max_overlap
        alive[best] = False
    windows = torch.tensor(chosen, dtype=torch.int64, device=saliency.device).reshape(-1, 4)
    return windows, torch.tensor(chosen_scores, dtype=saliency.dtype, device=saliency.device)


def fuse_maps(
    global_map: torch.Tensor,
    local_maps: Sequence[torch.Tensor],
    windows: torch.Tensor,
    fusion: str = "geometric",
    local_weight: float = 0.5,
) -> torch.Tensor:
    """Fuse fine window maps into a global map (the rules are in the module docstring).

    Args:
        global_map: ``[H, W]`` in ``[0, 1]``.
        local_maps: one ``[y1 - y0, x1 - x0]`` map in ``[0, 1]`` per window.
        windows: ``[n, 4]`` rows ``(y0, x0, y1, x1)`` inside the map.
        fusion: ``"geometric"`` (``sqrt(G * L)``) or ``"mean"`` (``(1 - a) G + a L``, ``a = local_weight``).
        local_weight: ``a`` of the ``"mean"`` rule, in ``[0, 1]``. Defaults to 0.5.

    Returns:
        ``[H, W]``: ``G`` outside the windows, the rule inside; the larger value where windows overlap.
    """
    fusion = look_up_option(fusion, FUSION_RULES)
    if not 0.0 <= float(local_weight) <= 1.0:
        raise ValueError(f"local_weight must lie in [0, 1], got {local_weight!r}.")
    if len(local_maps) != len(windows):
        raise ValueError(f"got {len(local_maps)} local maps for {len(windows)} windows.")
    inside = torch.full_like(global_map, -torch.inf)
    for (y0, x0, y1, x1), local in zip(windows.tolist(), local_maps):
        g = global_map[y0:y1, x0:x1]
        if tuple(local.shape) != tuple(g.shape):
            raise ValueError(f"local map of shape {list(local.shape)} for window {[y0, x0, y1, x1]}.")
        if fusion == "geometric":
            fused = (g * local).clamp(min=0).sqrt()
        else:
            fused = (1 - local_weight) * g + local_weight * local
        inside[y0:y1, x0:x1] = torch.maximum(inside[y0:y1, x0:x1], fused)
    return torch.where(torch.isfinite(inside), inside, global_map)


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``[M, C, h, w]``: area averaging when shrinking both sides, bilinear otherwise, as is if equal."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=tuple(size), mode="area")
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


@dataclass
class GlobalLocalMaps:
    """What :class:`GlobalLocalSaliency` returns for a batch of ``B`` images of ``H x W`` pixels.

    Attributes:
        logits: ``[B, K]`` image-level prediction of the global pass (the network's usual output at
            ``input_size``).
        target: ``[B]`` the class the maps explain.
        global_map: ``[B, H, W]`` coarse saliency in ``[0, 1]`` at full resolution.
        fused_map: ``[B, H, W]`` global map with the fine window maps fused in, ``[0, 1]``.
        windows: ``[B, num_windows, 4]`` int64 rows ``(y0, x0, y1, x1)`` in full-resolution pixels, end
            exclusive, most salient first; rows of ``-1`` where fewer windows could be chosen.
        window_scores: ``[B, num_windows]`` mean global saliency inside each window (NaN for ``-1`` rows).
        local_maps: ``[B, num_windows, h, w]`` fine maps in ``[0, 1]`` at full resolution (``h x w`` the
            window size; 0 for ``-1`` rows).
        local_logits: ``[B, num_windows, K]`` the network's logits for each window (NaN for ``-1`` rows).
    """

    logits: torch.Tensor
    target: torch.Tensor
    global_map: torch.Tensor
    fused_map: torch.Tensor
    windows: torch.Tensor
    window_scores: torch.Tensor
    local_maps: torch.Tensor
    local_logits: torch.Tensor


class GlobalLocalSaliency:
    """GLAM-style high-resolution saliency of a bag network for large 2D images (bags of one slice).

    For each full-resolution image ``[C, H, W]`` (given as a bag ``[B, 1, C, H, W]``):

    1. **global pass**: the image resized to ``input_size`` (area averaging, as the bundle's
       ``ResizeSlicesd``) gives the image-level logits and the gradient x input map of the class of
       interest at ``layer``, scaled to ``[0, 1]`` and interpolated to ``H x W``: the global map;
    2. **window selection**: the ``num_windows`` windows of ``window_size`` full-resolution pixels with
       the highest mean global saliency (:func:`select_windows`: non-maximum suppression at
       ``max_overlap``, windows clipped to the image);
    3. **local pass**: each window cropped from the full-resolution image, resized to ``local_size``
       if it differs (area when shrinking, bilinear when enlarging), gives a fine gradient x input map
       of the same class, scaled to ``[0, 1]`` per window and interpolated back to the window's size;
    4. **fusion** (:func:`fuse_maps`): ``sqrt(G * L)`` inside windows by default, ``G`` elsewhere.

    The module docstring lists what is simplified compared with GLAM (one network for both passes,
    among others). The network runs in eval mode and is put back in its previous mode.

    Args:
        network: a bag network ``(x [B, N, C, H, W]) -> logits [B, K]`` of this bundle (``MIMSCNN``,
            ``MIPre``, any ``MILNet``), trained on images resized to ``input_size``.
        input_size: ``(h, w)`` the network's input size for whole images (the bundle's
            ``image_size``), or one int for a square.
        window_size: ``(h, w)`` of a window in full-resolution pixels, or one int. Clipped to the image.
        num_windows: windows re-analysed per image, >= 1. Defaults to 1.
        local_size: ``(h, w)`` the network input size for a window; None (default) = ``input_size``.
            With ``window_size == local_size`` windows are analysed at exactly full resolution.
        layer: layer of the gradient x input maps (see ``GradientTimesInput``); None = the deepest
            backbone stage the network uses.
        fusion: ``"geometric"`` (default) or ``"mean"``, see :func:`fuse_maps`.
        local_weight: weight of the local map in the ``"mean"`` rule, in ``[0, 1]``. Defaults to 0.5.
        max_overlap: largest intersection over union between windows of one image, in ``[0, 1)``.
            Defaults to 0 (disjoint windows).

    Raises:
        ValueError: for an invalid size, ``num_windows``, ``fusion``, ``local_weight``, ``max_overlap``
            or ``layer`` (the message says what was given and what is allowed).

    Example::

        >>> glam = GlobalLocalSaliency(net, input_size=256, window_size=256)  # doctest: +SKIP
        >>> out = glam(image[None, None], class_index=1)  # [1, 1, 1, 512, 512] full resolution  # doctest: +SKIP
        >>> out.fused_map.shape, out.windows[0, 0].tolist()  # doctest: +SKIP
        (torch.Size([1, 512, 512]), [112, 240, 368, 496])
    """

    def __init__(
        self,
        network: nn.Module,
        input_size: int | Sequence[int],
        window_size: int | Sequence[int],
        num_windows: int = 1,
        local_size: int | Sequence[int] | None = None,
        layer: str | None = None,
        fusion: str = "geometric",
        local_weight: float = 0.5,
        max_overlap: float = 0.0,
    ) -> None:
        self.input_size = _size_pair("input_size", input_size)
        self.window_size = _size_pair("window_size", window_size)
        self.local_size = _size_pair("local_size", local_size, allow_none=True) or self.input_size
        if isinstance(num_windows, bool) or not isinstance(num_windows, int) or num_windows < 1:
            raise ValueError(f"num_windows must be an integer >= 1, got {num_windows!r}.")
        self.num_windows = num_windows
        self.fusion = look_up_option(fusion, FUSION_RULES)
        if not 0.0 <= float(local_weight) <= 1.0:
            raise ValueError(f"local_weight must lie in [0, 1], got {local_weight!r}.")
        self.local_weight = float(local_weight)
        if not 0.0 <= float(max_overlap) < 1.0:
            raise ValueError(f"max_overlap must lie in [0, 1), got {max_overlap!r}.")
        self.max_overlap = float(max_overlap)
        self.saliency = GradientTimesInput(network, layer=layer)
        self.network = network

    def _to_maps(self, t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """Raw maps ``T [M, 1, h', w']`` of bags of one slice: clamped, scaled per bag to ``[0, 1]`` (steps 2 of
        ``GradientTimesInput``, divided by 255) and interpolated (bilinear) to ``size``: ``[M, *size]``."""
        p = F.interpolate(self.saliency.scale(t) / 255.0, size=tuple(size), mode="bilinear", align_corners=False)
        return p[:, 0].clamp(0.0, 1.0)

    def __call__(
        self, x: torch.Tensor, class_index: int | Sequence[int] | torch.Tensor | None = None
    ) -> GlobalLocalMaps:
        """Global, local and fused saliency of full-resolution images.

        Args:
            x: ``[B, 1, C, H, W]`` bags of one full-resolution image each, preprocessed as for the network
                (intensities scaled) but not resized.
            class_index: class of interest (one int, or one per image); None = the global pass's predicted
                class. The local passes explain the same class.

        Returns:
            :class:`GlobalLocalMaps`.

        Raises:
            ValueError: when ``x`` is not ``[B, 1, C, H, W]``.
        """
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(
                f"expected bags of one full-resolution 2D image [B, 1, C, H, W], got shape {list(x.shape)}"
            )
        b, _, c, height, width = x.shape
        full = x[:, 0]  # [B, C, H, W]

        # 1. global pass
        small = _resize(full, self.input_size)[:, None]
        t, logits, _ = self.saliency.attributions(small, class_index=class_index)
        target = class_targets(class_index, int(logits.shape[0]), int(logits.shape[1]), logits.device)
        target = logits.detach().argmax(dim=1) if target is None else target  # None: each bag's predicted class
        global_map = self._to_maps(t, (height, width))

        # 2. windows
        wh, ww = min(self.window_size[0], height), min(self.window_size[1], width)
        k = logits.shape[1]
        windows = torch.full((b, self.num_windows, 4), -1, dtype=torch.int64, device=x.device)
        scores = torch.full((b, self.num_windows), float("nan"), dtype=global_map.dtype, device=x.device)
        crops, owners = [], []
        for i in range(b):
            chosen, chosen_scores = select_windows(global_map[i], (wh, ww), self.num_windows, self.max_overlap)
            windows[i, : len(chosen)] = chosen
            scores[i, : len(chosen)] = chosen_scores
            for j, (y0, x0, y1, x1) in enumerate(chosen.tolist()):
                crops.append(full[i, :, y0:y1, x0:x1])
                owners.append((i, j))

        # 3. local passes (all windows of the batch at once)
        local_maps = global_map.new_zeros((b, self.num_windows, wh, ww))
        local_logits = torch.full((b, self.num_windows, k), float("nan"), dtype=logits.dtype, device=x.device)
        if crops:
            local_in = _resize(torch.stack(crops), self.local_size)[:, None]
            rows = torch.tensor([i for i, _ in owners], device=x.device)
            t_local, window_logits, _ = self.saliency.attributions(local_in, class_index=target[rows])
            maps = self._to_maps(t_local, (wh, ww))
            for (i, j), m, lg in zip(owners, maps, window_logits):
                local_maps[i, j], local_logits[i, j] = m, lg

        # 4. fusion
        fused = torch.stack([
            fuse_maps(
                global_map[i],
                [local_maps[i, j] for j in range(self.num_windows) if windows[i, j, 0] >= 0],
                windows[i][windows[i, :, 0] >= 0],
                self.fusion,
                self.local_weight,
            )
            for i in range(b)
        ])
        return GlobalLocalMaps(
            logits=logits,
            target=target,
            global_map=global_map,
            fused_map=fused,
            windows=windows,
            window_scores=scores,
            local_maps=local_maps,
            local_logits=local_logits,
        )
