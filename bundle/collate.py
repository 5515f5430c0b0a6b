# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Collating bags of different sizes into one batch.

Volumes give bags with different numbers of slices ``N``. :func:`pad_bag_collate` pads every bag to
the largest ``N`` of the batch with zero slices and adds a boolean ``mask`` ``[B, N_max]`` (``True`` =
real slice). MIMS-CNN runs only the real slices through its backbone, so padding costs nothing and
does not change the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import list_data_collate

__all__ = ["pad_bag_collate", "PadBagCollate"]


class PadBagCollate:
    """Pad bags ``[N_b, C, H, W]`` to ``[N_max, C, H, W]`` and collate with MONAI's ``list_data_collate``.

    Args:
        bag_keys: keys holding bags (padded with zeros along the first axis).
        index_keys: keys holding per-slice 1-D index tensors such as ``slice_indices`` (padded with -1).
        mask_key: key of the added mask ``[B, N_max]`` (``True`` where a slice is real).

    Example:
        >>> batch = pad_bag_collate([{"image": torch.zeros(3, 1, 4, 4)}, {"image": torch.zeros(5, 1, 4, 4)}])
        >>> batch["image"].shape, batch["mask"].tolist()
        (torch.Size([2, 5, 1, 4, 4]), [[True, True, True, False, False], [True, True, True, True, True]])
    """

    def __init__(
        self,
        bag_keys: Sequence[str] = ("image",),
        index_keys: Sequence[str] = ("slice_indices",),
        mask_key: str = "mask",
    ) -> None:
        self.bag_keys = tuple(bag_keys)
        self.index_keys = tuple(index_keys)
        self.mask_key = mask_key

    def __call__(self, batch: Sequence[dict]) -> dict:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        first = self.bag_keys[0]
        sizes = [int(item[first].shape[0]) for item in batch]
        n_max = max(sizes)
        padded = []
        for item, n in zip(batch, sizes):
            item = dict(item)
            if n < n_max:
                for key in self.bag_keys:
                    if key in item:
                        bag = item[key]
                        pad = bag.new_zeros((n_max - n, *bag.shape[1:]))
                        item[key] = torch.cat([bag, pad], dim=0)
                for key in self.index_keys:
                    if key in item:
                        idx = torch.as_tensor(item[key])
                        item[key] = torch.cat([idx, idx.new_full((n_max - n,), -1)])
            item[self.mask_key] = torch.arange(n_max) < n
            padded.append(item)
        return list_data_collate(padded)


def pad_bag_collate(batch: Sequence[dict]) -> dict:
    """:class:`PadBagCollate` with its defaults (``image`` bags, ``slice_indices``, ``mask``)."""
    return PadBagCollate()(batch)
