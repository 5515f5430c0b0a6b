# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Turning a collated bag batch into the network's inputs."""

from __future__ import annotations

from typing import Any

import torch
from monai.data import MetaTensor
from monai.engines import PrepareBatchExtraInput

__all__ = ["PrepareBagBatch", "plain_tensor"]


def plain_tensor(value: Any) -> Any:
    """A ``MetaTensor`` as a plain ``torch.Tensor`` sharing its storage; anything else unchanged."""
    return value.as_tensor() if isinstance(value, MetaTensor) else value


class PrepareBagBatch(PrepareBatchExtraInput):
    """``prepare_batch`` for MONAI engines: ``(image, label, (), {"mask": mask})`` as plain tensors.

    The image ``[B, N, C, H, W]`` and the mask ``[B, N]`` (from :func:`bundle.collate.pad_bag_collate`)
    go to the engine's device and reach the network as ``network(image, mask=mask)``. The image is
    passed as a plain ``torch.Tensor``: a ``MetaTensor`` carrying the NIfTI header would make every
    operation of the network go through MONAI's metadata wrapper (measured about 10 % slower per
    training step). The batch itself keeps its ``MetaTensor``, so handlers still find each case's
    file name in ``engine.state.batch``.

    Args:
        mask_key: key of the bag mask in the batch.
    """

    def __init__(self, mask_key: str = "mask") -> None:
        super().__init__(extra_keys={"mask": mask_key})

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict]:
        image, label, args, extra = super().__call__(batchdata, device, non_blocking, **kwargs)
        return plain_tensor(image), plain_tensor(label), args, {k: plain_tensor(v) for k, v in extra.items()}
