# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""check_bag_mask: the padding mask shared by the bag networks and attention pooling."""

from __future__ import annotations

import pytest
import torch

from networks.blocks import check_bag_mask

VALID = [
    (None, [2, 3]),
    (torch.ones(2, 3, dtype=torch.bool), [2, 3]),
    (torch.tensor([[True, False]]), [1, 2]),
]

INVALID = [
    (torch.ones(2, 3), [2, 3], "torch.float32 of shape [2, 3]"),  # not bool
    (torch.ones(2, 4, dtype=torch.bool), [2, 3], "[B, N] = [2, 3], got torch.bool of shape [2, 4]"),
    (torch.ones(3, 3, dtype=torch.bool), [2, 3], "of shape [3, 3]"),
    (torch.ones(2, 3, 1, dtype=torch.bool), [2, 3], "of shape [2, 3, 1]"),
]


@pytest.mark.parametrize("mask, bag_shape", VALID)
def test_valid_masks_pass(mask, bag_shape):
    check_bag_mask(mask, bag_shape)


@pytest.mark.parametrize("mask, bag_shape, message", INVALID)
def test_invalid_masks_name_the_problem(mask, bag_shape, message):
    with pytest.raises(ValueError, match="mask must be a bool tensor") as info:
        check_bag_mask(mask, bag_shape)
    assert message in str(info.value)


def test_scripted_check_raises_the_same():
    scripted = torch.jit.script(check_bag_mask)
    scripted(torch.ones(2, 3, dtype=torch.bool), [2, 3])
    with pytest.raises(torch.jit.Error, match=r"mask must be a bool tensor of shape \[B, N\] = \[2, 3\]"):
        scripted(torch.ones(2, 4, dtype=torch.bool), [2, 3])
