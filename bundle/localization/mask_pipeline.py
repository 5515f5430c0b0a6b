# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A lesion mask preprocessed like its image, so that heatmaps and masks share the pixels the network sees."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["datalist_entry_name", "mask_pipeline"]


def datalist_entry_name(entry: Mapping[str, Any]) -> str:
    """The name of a datalist entry in reports: the file name of its ``image``.

    (Not :func:`bundle.result_writers.case_name`, which names a decollated engine item from its metadata.)
    """
    return Path(str(entry["image"])).name


def _flatten(transform: Any) -> list[Any]:
    from monai.transforms import Compose

    if isinstance(transform, Compose):
        return [t for inner in transform.transforms for t in _flatten(inner)]
    return [transform]


def mask_pipeline(preprocessing: Any) -> Callable[[Mapping[str, Any]], tuple[Any, Any, Any]]:
    """A function ``entry -> (image [N, C, h, w], mask [N, h, w] bool, slice indices [N])`` for a config's
    ``preprocessing``.

    The image goes through ``preprocessing`` unchanged. The mask goes through the spatial steps with the same
    parameters (loading, bag of slices, central slices, grid patches of a 2-D image, resize with nearest-neighbour
    instead of the image's mode) and skips the intensity and channel steps; it is then binarised (non-zero in any
    channel). Grid patches: the mask is cut on the same grid and keeps the patches the image kept (the tissue
    filter is decided on the image), so that mask patch ``n`` lies under image patch ``n``.

    Args:
        preprocessing: the deterministic preprocessing of a config (a ``Compose``, nested ones allowed).

    Returns:
        a function of a datalist entry with ``image`` and ``mask`` paths; it raises ``ValueError`` when the mask
        and the image differ in spatial shape.

    Raises:
        ValueError: a transform this function cannot mirror on the mask (the message names it).
    """
    import torch
    from monai.transforms import MapTransform
    from monai.utils import convert_to_tensor

    from transforms import (
        CentralSlicesd,
        EnsureChannelsd,
        GridPatchBag,
        GridPatchBagd,
        LoadVolumed,
        ResizeSlices,
        ResizeSlicesd,
        ToBagd,
    )

    def same(step: Callable[[Any], Any]) -> Callable[[Any, Mapping[str, Any]], Any]:
        return lambda mask, data: step(mask)

    def same_patches(t: GridPatchBagd) -> Callable[[Any, Mapping[str, Any]], Any]:
        grid = GridPatchBag(t.patcher.patch_size, t.patcher.overlap)  # every grid cell, in grid order
        return lambda mask, data: grid(mask)[0][torch.as_tensor(data[t.indices_key or "slice_indices"])]

    steps: list[tuple[Any, Callable[[Any, Mapping[str, Any]], Any] | None]] = []
    for t in _flatten(preprocessing):
        if isinstance(t, LoadVolumed):
            steps.append((t, same(t.loader)))
        elif isinstance(t, ToBagd):
            steps.append((t, same(t.to_bag)))
        elif isinstance(t, CentralSlicesd):
            steps.append((t, same(t.central)))
        elif isinstance(t, GridPatchBagd):
            if t.indices_key is None:
                raise ValueError("GridPatchBagd without indices_key: the lesion mask cannot follow its patches")
            steps.append((t, same_patches(t)))
        elif isinstance(t, ResizeSlicesd):
            steps.append((t, same(ResizeSlices(t.resizer.spatial_size, mode="nearest"))))
        elif isinstance(t, EnsureChannelsd) or (isinstance(t, MapTransform) and "intensity" in type(t).__module__):
            steps.append((t, None))  # intensity and channel steps concern the image only
        else:
            raise ValueError(
                f"cannot apply the preprocessing step {type(t).__name__} to the lesion mask: only loading, "
                "ToBagd, CentralSlicesd, GridPatchBagd, ResizeSlicesd and intensity/channel steps are supported"
            )

    def apply(entry: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        data: dict[str, Any] = {"image": entry["image"]}
        mask: Any = entry["mask"]
        for transform, on_mask in steps:
            data = transform(data)
            if on_mask is not None:
                mask = on_mask(mask, data)
            if isinstance(transform, LoadVolumed) and tuple(mask.shape[1:]) != tuple(data["image"].shape[1:]):
                raise ValueError(
                    f"{entry['mask']}: mask of spatial shape {tuple(mask.shape[1:])} does not match the image "
                    f"{entry['image']} ({tuple(data['image'].shape[1:])})"
                )
        image = convert_to_tensor(data["image"], track_meta=False, dtype=torch.float32)
        binary = convert_to_tensor(mask, track_meta=False) != 0
        binary = binary.any(dim=1)  # [N, C, h, w] -> [N, h, w]
        n = int(image.shape[0])
        indices = data.get("slice_indices", torch.arange(n))
        if tuple(binary.shape) != (n, *image.shape[2:]):
            raise ValueError(f"{entry['mask']}: preprocessed mask {tuple(binary.shape)} does not match the image "
                             f"{tuple(image.shape)}")
        return image, binary, torch.as_tensor(indices, dtype=torch.int64)

    return apply
