# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""What the localization outputs of one case are made of, computed without an engine.

- :func:`localize_case`: gradient x input heatmaps (:class:`GradientTimesInput`) and key slices
  (:func:`slice_scores`, :func:`key_slices`) of one bag, as a :class:`CaseLocalization`.
- :func:`heatmap_volume`: the bag's heatmaps put back into a volume of the original image's shape.
- :func:`paint_patches`: per-patch maps or values of a bag of patches painted back onto the full 2-D image.
- :func:`instance_score_volume`: the bag's instance scores (attention weights for attention MIL) as a volume
  of the original image's shape, one value per slice.
- :func:`case_overlays`, :func:`case_montage`: the overlay pictures of a case.
- :func:`case_file_stem`, :func:`unique_stem`: the names of a case's files.

The ignite handlers that write these files for every case an engine sees are in
:mod:`bundle.localization.handlers`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transforms.io import SUPPORTED_EXTENSIONS
from transforms.patches import patch_locations

from .grad_input import GradientTimesInput
from .overlay import DEFAULT_COLORMAP, montage, overlay_heatmap
from .provenance import key_slices, slice_scores

__all__ = [
    "CaseLocalization",
    "localize_case",
    "heatmap_volume",
    "instance_score_volume",
    "paint_patches",
    "case_overlays",
    "case_montage",
    "case_file_stem",
    "unique_stem",
    "plain_tensor",
]

#: suffixes stripped from a case's file name to name its outputs
#: the input suffixes a case file stem drops (every one ``transforms.LoadVolume`` reads), longest first
_STRIP_SUFFIXES = tuple(sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True))


@dataclass
class CaseLocalization:
    """Heatmaps and key slices of one case (real slices only, in bag order).

    Attributes:
        heatmaps: ``[n, H, W]`` float32 ``P*`` in ``[0, 255]`` at the network's input size.
        slices: ``[n, H, W]`` (grey) or ``[n, H, W, 3]`` (RGB) network input slices in ``[0, 1]``.
        positions: bag position of every slice (padding skipped).
        slice_indices: original slice index of every slice (the bag positions when unknown).
        key_slices: best first, ``{"slice", "position", "score"}`` as :func:`key_slices` gives.
        target: the class the heatmaps explain.
        scores: the instance score of every slice (:meth:`networks.nets.BagNetwork.instance_scores`: the
            attention weight for attention MIL), in the order of :attr:`positions`.
    """

    heatmaps: np.ndarray
    slices: np.ndarray
    positions: list[int]
    slice_indices: list[int]
    key_slices: list[dict]
    target: int
    scores: list[float]

    def overlay_index(self, position: int) -> int:
        """Index in :attr:`heatmaps` (and in :func:`case_overlays`) of the slice at bag ``position``."""
        return self.positions.index(position)


def _background(slices: torch.Tensor) -> np.ndarray:
    """Network input slices ``[n, C, H, W]`` as overlay backgrounds: grey ``[n, H, W]`` or RGB ``[n, H, W, 3]``."""
    if slices.shape[1] == 3:
        return slices.permute(0, 2, 3, 1).numpy()
    return slices.mean(dim=1).numpy()  # grey; other channel counts: their mean


def localize_case(
    explainer: GradientTimesInput,
    image: torch.Tensor,
    mask: torch.Tensor | None = None,
    slice_indices: torch.Tensor | None = None,
    class_index: int | None = None,
    num_key_slices: int = 3,
) -> CaseLocalization:
    """Heatmaps and key slices of one bag.

    The whole bag goes through the network at once, with gradients (no chunking): memory grows with the
    number of slices. The network is used in eval mode and put back in its mode; no parameter's
    ``.grad`` changes and no random number is drawn.

    Args:
        explainer: the heatmap method, bound to the network.
        image: bag ``[N, C, H, W]`` (may be padded).
        mask: ``[N]`` bool, True = real slice; None: all real.
        slice_indices: ``[N]`` original index of every slice (``-1``: padding); None: bag positions.
        class_index: the class to explain; None: the network's predicted class.
        num_key_slices: how many key slices to report.

    Returns:
        the case's :class:`CaseLocalization`.
    """
    network = explainer.network
    device = next(network.parameters()).device
    x = plain_tensor(image).to(device=device, dtype=torch.float32)[None]
    n = int(x.shape[1])
    m = torch.ones(1, n, dtype=torch.bool) if mask is None else plain_tensor(mask).bool()[None]
    m = m.to(device)
    heat, logits = explainer(x, m, class_index)
    target = int(logits[0].argmax()) if class_index is None else int(class_index)
    scores, _ = slice_scores(network, x, m, class_index=target)
    idx = None if slice_indices is None else plain_tensor(slice_indices).reshape(1, -1)
    keys = key_slices(scores.cpu(), idx, top=num_key_slices)[0]
    real = m[0].cpu()
    positions = torch.arange(n)[real]
    originals = positions if idx is None else idx[0][real]
    return CaseLocalization(
        heatmaps=heat[0].detach().cpu()[real].float().numpy(),
        slices=_background(x[0].detach().cpu()[real]),
        positions=[int(p) for p in positions],
        slice_indices=[int(i) for i in originals],
        key_slices=keys,
        target=target,
        scores=[float(v) for v in scores[0].cpu()[real]],
    )


def heatmap_volume(
    heatmaps: np.ndarray | torch.Tensor, slice_indices: Sequence[int], spatial_shape: Sequence[int], slice_axis: int = 2
) -> np.ndarray:
    """Put a bag's heatmaps back into a volume of the original image's shape.

    Every heatmap ``[h, w]`` is resized (bilinear) to the original slice size, the two spatial axes
    other than ``slice_axis`` in their order (as :class:`transforms.ToBag` cut them), and written at
    its original index along ``slice_axis``; slices that were not evaluated stay 0.

    Args:
        heatmaps: ``[n, h, w]`` in ``[0, 255]``.
        slice_indices: the ``n`` original indices.
        spatial_shape: the volume's spatial shape (3 values), or an image's (2 values; then the single
            heatmap is only resized and ``slice_indices`` must be ``[0]``).
        slice_axis: the spatial axis the bag was cut along.

    Returns:
        float32 array of ``spatial_shape`` in ``[0, 255]``.
    """
    heat = torch.as_tensor(np.asarray(heatmaps, dtype=np.float32))
    shape = [int(s) for s in spatial_shape]
    if heat.dim() != 3 or heat.shape[0] != len(slice_indices):
        raise ValueError(f"expected {len(slice_indices)} heatmaps [n, h, w], got shape {list(heat.shape)}")
    if len(shape) == 2:
        if list(slice_indices) != [0]:
            raise ValueError(f"a 2-D image has one slice (index 0), got slice indices {list(slice_indices)}")
        plane, axis = shape, None
    elif len(shape) == 3:
        axis = int(slice_axis) % 3
        plane = [s for i, s in enumerate(shape) if i != axis]
        bad = [int(i) for i in slice_indices if not 0 <= int(i) < shape[axis]]
        if bad:
            raise ValueError(f"slice indices {bad} out of range for {shape[axis]} slices along axis {axis}")
    else:
        raise ValueError(f"spatial_shape must have 2 or 3 values, got {shape}")
    if list(heat.shape[1:]) != plane:
        heat = F.interpolate(heat[:, None], size=plane, mode="bilinear", align_corners=False)[:, 0]
    heat = heat.clamp(0.0, 255.0).numpy()
    if axis is None:
        return heat[0]
    volume = np.zeros(shape, dtype=np.float32)
    np.moveaxis(volume, axis, 0)[list(int(i) for i in slice_indices)] = heat  # a view: writes into volume
    return volume


def paint_patches(
    values: np.ndarray | torch.Tensor | Sequence[float],
    grid_indices: Sequence[int],
    meta: Any,
    spatial_shape: Sequence[int],
) -> np.ndarray:
    """Paint per-patch maps (or one value per patch) back onto the full 2-D image a bag of patches was cut from.

    Every patch's map is resized (bilinear) from the network's input size to the patch size
    (``meta["patch_size"]``) and written at the patch's place (:func:`transforms.patch_locations`); where
    patches overlap the larger value wins; pixels of no kept patch (background patches) are 0.

    Args:
        values: ``[n, h, w]`` maps, ``[n, h, w, 3]`` RGB maps, or ``[n]`` values (a patch filled with its value).
        grid_indices: the ``n`` grid indices of the patches (the bag's ``slice_indices``).
        meta: the bag's metadata (:data:`transforms.PATCH_META_KEYS`).
        spatial_shape: the image's ``[H, W]``.

    Returns:
        float32 ``[H, W]`` (``[H, W, 3]`` for RGB maps).

    Raises:
        ValueError: not a bag of patches, or ``values`` and ``grid_indices`` of different lengths.
    """
    array = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if array.shape[0] != len(grid_indices):
        raise ValueError(f"{array.shape[0]} patch maps for {len(grid_indices)} grid indices")
    height, width = (int(v) for v in spatial_shape)
    size = [int(v) for v in torch.as_tensor(meta["patch_size"]).reshape(-1)[:2]]
    corners = patch_locations(grid_indices, meta)
    rgb = array.dim() == 4
    if array.dim() == 1:
        maps = array[:, None, None, None].expand(-1, 1, size[0], size[1])
    else:
        maps = array.permute(0, 3, 1, 2) if rgb else array[:, None]
        if list(maps.shape[2:]) != size:
            maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    bottom, right = int(corners[:, 0].max(initial=0)) + size[0], int(corners[:, 1].max(initial=0)) + size[1]
    canvas = torch.zeros(maps.shape[1], max(height, bottom), max(width, right))
    for (top, left), patch in zip(corners.tolist(), maps):
        region = canvas[:, top : top + size[0], left : left + size[1]]
        torch.maximum(region, patch, out=region)
    out = canvas[:, :height, :width]
    return (out.permute(1, 2, 0) if rgb else out[0]).numpy().astype(np.float32)


def instance_score_volume(
    scores: Sequence[float], slice_indices: Sequence[int], spatial_shape: Sequence[int], slice_axis: int = 2
) -> np.ndarray:
    """A volume of the original image's shape in which every voxel of an evaluated slice holds that slice's
    instance score (e.g. its attention weight), so that the scores open as an overlay on the input.

    Args:
        scores: the ``n`` instance scores.
        slice_indices: their ``n`` original indices along ``slice_axis``.
        spatial_shape: the volume's spatial shape (3 values).
        slice_axis: the spatial axis the bag was cut along.

    Returns:
        float32 array of ``spatial_shape``; slices that were not evaluated are 0.

    Raises:
        ValueError: not 3 spatial dims, a different number of scores and indices, or an index out of range.
    """
    shape = [int(s) for s in spatial_shape]
    if len(shape) != 3:
        raise ValueError(f"instance scores go into a volume: spatial_shape must have 3 values, got {shape}")
    if len(scores) != len(slice_indices):
        raise ValueError(f"{len(scores)} instance scores for {len(slice_indices)} slice indices")
    axis = int(slice_axis) % 3
    bad = [int(i) for i in slice_indices if not 0 <= int(i) < shape[axis]]
    if bad:
        raise ValueError(f"slice indices {bad} out of range for {shape[axis]} slices along axis {axis}")
    volume = np.zeros(shape, dtype=np.float32)
    view = np.moveaxis(volume, axis, 0)  # a view: writes into volume
    for index, score in zip(slice_indices, scores):
        view[int(index)] = np.float32(score)
    return volume


def case_overlays(case: CaseLocalization, colormap: Any = DEFAULT_COLORMAP) -> list[np.ndarray]:
    """One ``uint8`` RGB overlay (:func:`overlay_heatmap`) per bag slice, at the network's input size."""
    return [overlay_heatmap(s, h, colormap) for s, h in zip(case.slices, case.heatmaps)]


def case_montage(case: CaseLocalization, columns: int | None = None, colormap: Any = DEFAULT_COLORMAP) -> np.ndarray:
    """All bag slices' overlays in a grid (bag order), captioned with their original index; key slices
    are framed and captioned with their rank (``"12 #1"``). ``columns`` defaults to ``ceil(sqrt(n))``."""
    rank = {k["position"]: r for r, k in enumerate(case.key_slices, start=1)}
    captions, frame = [], []
    for pos, original in zip(case.positions, case.slice_indices):
        captions.append(f"{original} #{rank[pos]}" if pos in rank else str(original))
        frame.append(pos in rank)
    images = case_overlays(case, colormap)
    columns = columns or math.ceil(math.sqrt(len(images)))
    return montage(images, columns, captions=captions, highlight=frame)


def case_file_stem(path: str) -> str:
    """A file-name stem for a case: its file (or folder) name without image suffixes, safe characters only."""
    name = Path(str(path).rstrip("/\\")).name or "case"
    lower = name.lower()
    for suffix in _STRIP_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "case"


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``, ... when taken; the result is added to ``used``."""
    candidate, counter = stem, 1
    while candidate in used:
        counter += 1
        candidate = f"{stem}_{counter}"
    used.add(candidate)
    return candidate


def plain_tensor(value: Any) -> torch.Tensor | None:
    """``value`` as a detached CPU :class:`torch.Tensor` (a ``MetaTensor``'s meta data dropped); None stays None."""
    if value is None:
        return None
    return torch.as_tensor(value).as_subclass(torch.Tensor).detach().cpu()
