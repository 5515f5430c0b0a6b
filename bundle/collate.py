# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Collating bags of different sizes into one batch.

Volumes give bags with different numbers of slices ``N``. :func:`pad_bag_collate` pads every bag to
the largest ``N`` of the batch with zero slices and adds a boolean ``mask`` ``[B, N_max]`` (``True`` =
real slice). MIMS-CNN runs only the real slices through its backbone, so padding costs nothing and
does not change the result.

Failed cases (:mod:`bundle.case_errors`): a :class:`PadBagCollate` with ``keep_failed=True`` collates the good
cases of a batch and carries the failure records under ``failed_cases``, so that one bad case never takes its
batch-mates down; with ``keep_failed=False`` (the default, and :func:`pad_bag_collate`) a failure record or a
batch mixing 2-D images and 3-D volumes raises a :class:`bundle.case_errors.CaseError` naming the files.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import list_data_collate
from monai.utils import MetaKeys

from bundle.case_errors import FAILED_CASES_KEY, FAILURE_KEY, CaseError, case_path, is_failure

__all__ = ["pad_bag_collate", "PadBagCollate"]


class PadBagCollate:
    """Pad bags ``[N_b, C, H, W]`` to ``[N_max, C, H, W]`` and collate with MONAI's ``list_data_collate``.

    Args:
        bag_keys: keys holding bags (padded with zeros along the first axis).
        index_keys: keys holding per-slice 1-D index tensors such as ``slice_indices`` (padded with -1).
        mask_key: key of the added mask ``[B, N_max]`` (``True`` where a slice is real).
        keep_failed: failure records (:func:`bundle.case_errors.failure_record`) among the items, and the items
            whose spatial dimensions differ from most of the batch (2-D images among 3-D volumes, whose
            metadata cannot be stacked; ties keep the 3-D ones), go to ``batch["failed_cases"]``: a list of
            ``{"position": <index in the batch>, "case": <path>, "reason": <one line>[, "label": ...]}``
            that :class:`bundle.case_errors.CaseReportingEvaluator` takes out. A batch without any good case is
            ``{"failed_cases": [...]}`` alone. False: such items raise :class:`bundle.case_errors.CaseError`.

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
        keep_failed: bool = False,
    ) -> None:
        self.bag_keys = tuple(bag_keys)
        self.index_keys = tuple(index_keys)
        self.mask_key = mask_key
        self.keep_failed = bool(keep_failed)

    def _spatial_rank(self, item: dict) -> int | None:
        """Spatial dimensions of the image a bag was cut from (its metadata), None when unknown."""
        meta = getattr(item.get(self.bag_keys[0]), "meta", None)
        shape = meta.get(MetaKeys.SPATIAL_SHAPE) if meta else None
        return None if shape is None else len(torch.as_tensor(shape).reshape(-1))

    def _split_failed(self, batch: Sequence[dict]) -> tuple[list[dict], list[dict]]:
        """The good items and the failed ones (``{"position", "case", "reason"[, "label"]}``), in batch order."""
        failed = {i: item[FAILURE_KEY] for i, item in enumerate(batch) if is_failure(item)}
        ranks = {i: self._spatial_rank(item) for i, item in enumerate(batch) if i not in failed}
        known = [r for r in ranks.values() if r is not None]
        if len(set(known)) > 1:
            majority = max(sorted(set(known), reverse=True), key=known.count)
            for i, rank in ranks.items():
                if rank is not None and rank != majority:
                    path = case_path(batch[i])
                    failed[i] = str(
                        CaseError(
                            path,
                            f"a {rank}-D image in a batch of {majority}-D ones: set spatial_dims {majority} to reject "
                            f"{rank}-D inputs, or batch size 1",
                            "PadBagCollate",
                        )
                    )
        if failed and not self.keep_failed:
            reasons = [failed[i] for i in sorted(failed)]
            raise CaseError("batch", f"{len(reasons)} case(s) cannot be collated: " + " | ".join(reasons))
        records = []
        for i in sorted(failed):
            record = {"position": i, "case": case_path(batch[i]), "reason": failed[i]}
            label = batch[i].get("label") if isinstance(batch[i], dict) else None
            if label is not None:
                record["label"] = label
            records.append(record)
        return [item for i, item in enumerate(batch) if i not in failed], records

    def __call__(self, batch: Sequence[dict]) -> dict:
        if not batch:
            raise ValueError("cannot collate an empty batch")
        batch, failed = self._split_failed(batch)
        if not batch:
            return {FAILED_CASES_KEY: failed}
        collated = self._collate(batch)
        if failed:
            collated[FAILED_CASES_KEY] = failed
        return collated

    def _collate(self, batch: Sequence[dict]) -> dict:
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
