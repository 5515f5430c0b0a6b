# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Large 2-D images (histology, fundus, mammograms) as bags of patches.

:class:`GridPatchBag` tiles an image on a regular grid with MONAI's :class:`monai.transforms.GridPatch`
(evaluation and inference: every patch that holds enough tissue); :class:`RandGridPatchBag` does the same
with MONAI's :class:`monai.transforms.RandGridPatch` (a random grid offset) and keeps a random subset of at
most ``max_patches`` tissue patches (training). Both give a bag ``[N, C, p_h, p_w]`` (the instances of
attention MIL or MIMS-CNN, as the slices of a volume are) and the row-major *grid index* of every patch,
written where the slice pipeline writes its original slice indices (``slice_indices``), so that key patches
are reported and heatmaps painted back onto the full image (:func:`patch_locations`).

The bag keeps the image's metadata (its ``spatial_shape`` stays the image's ``[H, W]``) and adds the grid:

- ``patch_size``: ``[p_h, p_w]``; ``patch_stride``: ``[s_h, s_w]`` (``patch_size`` without overlap);
- ``patch_offset``: ``[o_h, o_w]``, the top-left corner of grid cell 0 in image pixels;
- ``patch_grid``: ``[rows, cols]`` of the full grid before background patches are dropped.

Grid index ``g`` is the patch whose top-left corner is ``(o_h + (g // cols) * s_h, o_w + (g % cols) * s_w)``.
Patches that cross the image's bottom or right edge are padded with ``pad_value``.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import GridPatch, MapTransform, Randomizable, RandGridPatch, Transform
from monai.utils import ensure_tuple_rep, look_up_option

from ._utils import describe_source

__all__ = [
    "PATCH_META_KEYS",
    "TISSUE_SIDES",
    "GridPatchBag",
    "GridPatchBagd",
    "RandGridPatchBag",
    "RandGridPatchBagd",
    "patch_locations",
]

logger = logging.getLogger(__name__)

#: the metadata keys the patch transforms add to the bag (see the module docstring)
PATCH_META_KEYS = ("patch_size", "patch_stride", "patch_offset", "patch_grid")
#: which side of ``tissue_threshold`` counts as tissue: ``"below"`` (dark tissue on a bright background, e.g.
#: H&E histology) or ``"above"`` (bright tissue on a dark background, e.g. fundus photographs, mammograms)
TISSUE_SIDES = ("below", "above")


def patch_locations(grid_indices: Sequence[int] | torch.Tensor, meta: Mapping[str, Any]) -> np.ndarray:
    """Top-left corners ``[n, 2]`` (row, column; image pixels) of the patches with these grid indices.

    Args:
        grid_indices: row-major grid indices (the bag's ``slice_indices``).
        meta: the bag's metadata with ``patch_stride``, ``patch_offset`` and ``patch_grid``.

    Raises:
        ValueError: metadata without the patch grid, or an index outside the grid.
    """
    missing = [k for k in ("patch_stride", "patch_offset", "patch_grid") if meta.get(k) is None]
    if missing:
        raise ValueError(f"not a bag of patches: its metadata lack {missing}")

    def pair(key: str) -> np.ndarray:
        return np.asarray(torch.as_tensor(meta[key]).reshape(-1)[:2].cpu(), dtype=np.int64)

    stride, offset, grid = pair("patch_stride"), pair("patch_offset"), pair("patch_grid")
    index = np.asarray(torch.as_tensor(grid_indices).reshape(-1).cpu(), dtype=np.int64)
    bad = index[(index < 0) | (index >= grid[0] * grid[1])]
    if bad.size:
        raise ValueError(f"grid indices {bad.tolist()} outside the {grid[0]} x {grid[1]} patch grid")
    rows, cols = index // grid[1], index % grid[1]
    return np.stack([offset[0] + rows * stride[0], offset[1] + cols * stride[1]], axis=1)


def _check_positive_pair(name: str, value: Any) -> tuple[int, int]:
    try:
        pair = ensure_tuple_rep(value, 2)
    except ValueError:
        pair = ()
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or two of them, got {value!r}.")
    return int(pair[0]), int(pair[1])


class GridPatchBag(Transform):
    """
    Tile a 2-D image into a bag of patches on a regular grid, dropping background patches.

    The image is ``[C, H, W]``, or the one-slice bag ``[1, C, H, W]`` that :class:`transforms.ToBag` makes of
    a 2-D image. MONAI's :class:`monai.transforms.GridPatch` cuts every grid cell (row-major, the last row and
    column padded with ``pad_value``); then a patch is kept when the fraction of its pixels that are tissue
    is at least ``min_tissue_fraction``. A pixel is tissue when the mean over channels of its intensity is
    below (``tissue_side="below"``) or above (``"above"``) ``tissue_threshold``; padding is never tissue.
    ``tissue_threshold=None`` keeps every patch. When no patch passes, the one with the most tissue is kept
    and a warning names the image (a bag is never empty).

    MONAI's own ``threshold`` option of ``GridPatch`` (keep patches whose intensity *sum* is below a value)
    is not used: a sum depends on the patch size and channel count, and it can drop every patch.

    Args:
        patch_size: patch height and width in pixels (one value: square).
        overlap: fraction of a patch shared with its neighbour, in ``[0, 1)`` (MONAI's ``overlap``). Defaults to 0.
        tissue_threshold: intensity threshold of a tissue pixel (after intensity scaling), or None to keep
            every patch. Defaults to None.
        tissue_side: one of :data:`TISSUE_SIDES`. Defaults to ``"below"``.
        min_tissue_fraction: smallest fraction of tissue pixels of a kept patch, in ``[0, 1]``. Defaults to 0.5.
        pad_value: value of the padding of patches that cross the image edge. Defaults to 0.

    Returns (``__call__``): ``(bag [N, C, p_h, p_w], grid indices int64 [N])``; the bag is a MetaTensor with
    the image's metadata and :data:`PATCH_META_KEYS`.

    Example::

        >>> bag, index = GridPatchBag(patch_size=4)(torch.zeros(1, 10, 13))
        >>> bag.shape, index.tolist(), bag.meta["patch_grid"]
        (torch.Size([12, 1, 4, 4]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 4])
    """

    backend = [*GridPatch.backend]

    def __init__(
        self,
        patch_size: int | Sequence[int],
        overlap: float = 0.0,
        tissue_threshold: float | None = None,
        tissue_side: str = "below",
        min_tissue_fraction: float = 0.5,
        pad_value: float = 0.0,
    ) -> None:
        self.patch_size = _check_positive_pair("patch_size", patch_size)
        if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be a number in [0, 1), got {overlap!r}.")
        self.overlap = float(overlap)
        if tissue_threshold is not None and (
            isinstance(tissue_threshold, bool) or not isinstance(tissue_threshold, (int, float))
        ):
            raise ValueError(f"tissue_threshold must be a number or None, got {tissue_threshold!r}.")
        self.tissue_threshold = None if tissue_threshold is None else float(tissue_threshold)
        self.tissue_side = look_up_option(tissue_side, TISSUE_SIDES)
        fraction = min_tissue_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"min_tissue_fraction must be a number in [0, 1], got {min_tissue_fraction!r}.")
        self.min_tissue_fraction = float(fraction)
        self.pad_value = float(pad_value)

    def _image(self, img: torch.Tensor) -> torch.Tensor:
        spatial = img.meta.get("spatial_shape") if isinstance(img, MetaTensor) else None
        if spatial is not None and len(np.asarray(spatial).reshape(-1)) == 3:
            raise ValueError(
                f"{describe_source(img)}: {type(self).__name__} expects a 2-D image, got a volume of spatial shape "
                f"{np.asarray(spatial).reshape(-1).tolist()} (patch bags are for 2-D images; set spatial_dims 2)."
            )
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim != 3:
            raise ValueError(
                f"{describe_source(img)}: {type(self).__name__} expects a 2-D image [C, H, W] or a one-slice bag "
                f"[1, C, H, W], got shape {tuple(img.shape)} (a volume? patch bags are for 2-D images)."
            )
        return img

    def _grid(self, offset: tuple[int, int]) -> GridPatch:
        return GridPatch(
            self.patch_size, offset=offset, overlap=self.overlap, pad_mode="constant", constant_values=self.pad_value
        )

    def tile(self, img: torch.Tensor, offset: tuple[int, int] = (0, 0)) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Every grid patch and the tissue fraction of each.

        Args:
            img: ``[C, H, W]`` or ``[1, C, H, W]``.
            offset: top-left corner of grid cell 0.

        Returns:
            ``(patches [M, C, p_h, p_w], tissue fraction float [M], grid metadata)``.
        """
        image = self._image(img)
        plain = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
        cut = self._grid(offset)(plain)
        patches = cut.as_tensor()
        locations = np.asarray(cut.meta["location"]).T  # [M, 2] top-left corners, row-major
        ys, xs = np.unique(locations[:, 0]), np.unique(locations[:, 1])
        stride = (
            int(ys[1] - ys[0]) if len(ys) > 1 else self.patch_size[0],
            int(xs[1] - xs[0]) if len(xs) > 1 else self.patch_size[1],
        )
        grid = {
            "patch_size": list(self.patch_size),
            "patch_stride": list(stride),
            "patch_offset": [int(offset[0]), int(offset[1])],
            "patch_grid": [len(ys), len(xs)],
        }
        # which pixels of each patch lie inside the image (padding is never tissue), from the patch corners
        rows = torch.as_tensor(locations[:, 0])[:, None] + torch.arange(self.patch_size[0])[None, :]
        cols = torch.as_tensor(locations[:, 1])[:, None] + torch.arange(self.patch_size[1])[None, :]
        inside_patches = (rows < plain.shape[1])[:, :, None] & (cols < plain.shape[2])[:, None, :]  # [M, p_h, p_w]
        if self.tissue_threshold is None:
            fraction = inside_patches.flatten(1).float().mean(dim=1)
        else:
            mean = patches.float().mean(dim=1)
            tissue = mean < self.tissue_threshold if self.tissue_side == "below" else mean > self.tissue_threshold
            fraction = (tissue & inside_patches).flatten(1).float().mean(dim=1)
        return patches, fraction, grid

    def select(self, fraction: torch.Tensor, source: Any) -> torch.Tensor:
        """Grid indices of the patches with enough tissue (the one with the most when none has; warned)."""
        if self.tissue_threshold is None:
            return torch.arange(fraction.shape[0], dtype=torch.int64)
        keep = torch.nonzero(fraction >= self.min_tissue_fraction).reshape(-1)
        if keep.numel() == 0:
            best = int(torch.argmax(fraction))
            logger.warning(
                f"{describe_source(source)}: no patch has a tissue fraction of at least {self.min_tissue_fraction} "
                f"(tissue: intensity {self.tissue_side} {self.tissue_threshold}); kept the patch with the most "
                f"tissue ({float(fraction[best]):.3f}). Check tissue_threshold and tissue_side for these images."
            )
            keep = torch.tensor([best], dtype=torch.int64)
        return keep.to(torch.int64)

    @staticmethod
    def _bag(img: Any, patches: torch.Tensor, grid: dict) -> torch.Tensor:
        meta = dict(img.meta) if isinstance(img, MetaTensor) else {}
        meta.update(grid)
        return MetaTensor(patches, meta=meta)

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: ``[C, H, W]`` or ``[1, C, H, W]``.

        Returns:
            ``(bag [N, C, p_h, p_w], grid indices int64 [N])``.
        """
        patches, fraction, grid = self.tile(img)
        keep = self.select(fraction, img)
        return self._bag(img, patches[keep], grid), keep


class RandGridPatchBag(Randomizable, GridPatchBag):
    """
    Training version of :class:`GridPatchBag`: a random grid offset drawn by MONAI's
    :class:`monai.transforms.RandGridPatch` (by default, within the part of the image a whole number of
    patches leaves over, as MONAI does), the same tissue filter, then a random subset of at most
    ``max_patches`` of the kept patches (in grid order), so that training bags have a bounded size.

    Args:
        patch_size: patch height and width in pixels.
        max_patches: largest bag, >= 1; None keeps every tissue patch. Defaults to 64.
        max_offset: largest grid offset (one value or two); None: MONAI's default (the image size modulo the
            patch size, per axis). Defaults to None.
        overlap, tissue_threshold, tissue_side, min_tissue_fraction, pad_value: as for :class:`GridPatchBag`.

    Returns (``__call__``): ``(bag [n, C, p_h, p_w], grid indices int64 [n])`` with ``n <= max_patches``.
    """

    def __init__(
        self,
        patch_size: int | Sequence[int],
        max_patches: int | None = 64,
        max_offset: int | Sequence[int] | None = None,
        overlap: float = 0.0,
        tissue_threshold: float | None = None,
        tissue_side: str = "below",
        min_tissue_fraction: float = 0.5,
        pad_value: float = 0.0,
    ) -> None:
        GridPatchBag.__init__(self, patch_size, overlap, tissue_threshold, tissue_side, min_tissue_fraction, pad_value)
        bad_max = isinstance(max_patches, bool) or not isinstance(max_patches, int) or max_patches < 1
        if max_patches is not None and bad_max:
            raise ValueError(f"max_patches must be a positive integer or None, got {max_patches!r}.")
        self.max_patches = max_patches
        if max_offset is not None:
            try:
                pair = ensure_tuple_rep(max_offset, 2)
            except ValueError:
                pair = ()
            bad = [v for v in pair if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0]
            if len(pair) != 2 or bad:
                raise ValueError(f"max_offset must be a non-negative integer, two of them or None, got {max_offset!r}.")
        self.offset_sampler = RandGridPatch(self.patch_size, max_offset=max_offset)
        self._offset: tuple[int, int] = (0, 0)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandGridPatchBag:
        super().set_random_state(seed, state)
        self.offset_sampler.set_random_state(seed, state)
        return self

    def randomize(self, data: torch.Tensor) -> None:
        """Draw the grid offset for image ``data`` ``[C, H, W]``."""
        self.offset_sampler.randomize(data)
        self._offset = tuple(int(v) for v in self.offset_sampler.offset)

    def subset(self, keep: torch.Tensor) -> torch.Tensor:
        """At most ``max_patches`` of the grid indices ``keep``, drawn without replacement, in grid order."""
        if self.max_patches is None or keep.numel() <= self.max_patches:
            return keep
        chosen = np.sort(self.R.choice(keep.numel(), size=self.max_patches, replace=False))
        return keep[torch.as_tensor(chosen, dtype=torch.int64)]

    def __call__(self, img: torch.Tensor, randomize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            img: ``[C, H, W]`` or ``[1, C, H, W]``.
            randomize: draw a new offset and subset (True) or reuse the last offset (False; the subset is drawn).

        Returns:
            ``(bag [n, C, p_h, p_w], grid indices int64 [n])``.
        """
        image = self._image(img)
        if randomize:
            self.randomize(image)
        patches, fraction, grid = self.tile(image, self._offset)
        keep = self.subset(self.select(fraction, img))
        return self._bag(img, patches[keep], grid), keep


class GridPatchBagd(MapTransform):
    """Dictionary-based version of :class:`GridPatchBag`: the image under each key becomes a bag of patches
    and the grid indices go to ``indices_key`` (where the slice pipeline writes its slice indices).

    Args:
        keys: keys of the images (one key: the grid indices are those of its patches).
        patch_size, overlap, tissue_threshold, tissue_side, min_tissue_fraction, pad_value: see :class:`GridPatchBag`.
        indices_key: where to write the grid indices, a 1-D int64 tensor; None to skip. Defaults to ``"slice_indices"``.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = GridPatchBag.backend

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int | Sequence[int],
        overlap: float = 0.0,
        tissue_threshold: float | None = None,
        tissue_side: str = "below",
        min_tissue_fraction: float = 0.5,
        pad_value: float = 0.0,
        indices_key: str | None = "slice_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.patcher = GridPatchBag(patch_size, overlap, tissue_threshold, tissue_side, min_tissue_fraction, pad_value)
        self.indices_key = indices_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key], indices = self.patcher(d[key])
            if self.indices_key is not None:
                d[self.indices_key] = indices
        return d


class RandGridPatchBagd(Randomizable, GridPatchBagd):
    """Dictionary-based version of :class:`RandGridPatchBag` (each call draws a new offset and subset per image).

    Args:
        keys: keys of the images.
        patch_size, max_patches, max_offset, overlap, tissue_threshold, tissue_side, min_tissue_fraction,
            pad_value: see :class:`RandGridPatchBag`.
        indices_key: where to write the grid indices; None to skip. Defaults to ``"slice_indices"``.
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = GridPatchBag.backend

    def __init__(
        self,
        keys: KeysCollection,
        patch_size: int | Sequence[int],
        max_patches: int | None = 64,
        max_offset: int | Sequence[int] | None = None,
        overlap: float = 0.0,
        tissue_threshold: float | None = None,
        tissue_side: str = "below",
        min_tissue_fraction: float = 0.5,
        pad_value: float = 0.0,
        indices_key: str | None = "slice_indices",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.patcher = RandGridPatchBag(
            patch_size, max_patches, max_offset, overlap, tissue_threshold, tissue_side, min_tissue_fraction, pad_value
        )
        self.indices_key = indices_key

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandGridPatchBagd:
        super().set_random_state(seed, state)
        self.patcher.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        """Nothing to draw here: :class:`RandGridPatchBag` draws per image."""
