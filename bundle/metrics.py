# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Helpers that feed decollated engine outputs to ignite metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.utils import convert_to_tensor

__all__ = ["stacked_output"]


def stacked_output(keys: Sequence[str]) -> Callable:
    """An ``output_transform`` that stacks per-case values of ``keys`` into batch tensors.

    MONAI engines decollate their output into a list of per-case dicts; ignite metrics such as
    ``ignite.metrics.Accuracy`` need batch tensors, e.g. probabilities ``[B, C]`` and labels ``[B]``.

    Example:
        >>> out = [{"pred": torch.tensor([0.2, 0.8]), "label": torch.tensor(1)}] * 2
        >>> [t.shape for t in stacked_output(["pred", "label"])(out)]
        [torch.Size([2, 2]), torch.Size([2])]
    """
    keys = tuple(keys)

    def _transform(output: Sequence[dict] | dict) -> tuple[torch.Tensor, ...]:
        if isinstance(output, dict):
            return tuple(convert_to_tensor(output[k], track_meta=False) for k in keys)
        return tuple(torch.stack([convert_to_tensor(item[k], track_meta=False) for item in output]) for k in keys)

    return _transform
