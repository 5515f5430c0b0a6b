# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""MeanPool: exact values with -inf padding, gradients, TorchScript, shape checks."""

from __future__ import annotations

import pytest
import torch

from networks.blocks import MeanPool

NEG_INF = float("-inf")

MEAN_CASES = [
    ([[[1.0, 4.0, 2.0, NEG_INF]]], [[7.0 / 3.0]]),
    ([[[NEG_INF, NEG_INF]]], [[0.0]]),
    ([[[2.0, -2.0], [5.0, 1.0]]], [[0.0, 3.0]]),
]


@pytest.mark.parametrize("values, expected", MEAN_CASES)
def test_mean_pool_exact_values(values, expected):
    torch.testing.assert_close(MeanPool()(torch.tensor(values)), torch.tensor(expected))


def test_mean_pool_flattens_trailing_dims_and_has_finite_gradients(round_trip):
    x = torch.tensor([[[[1.0, NEG_INF], [3.0, 5.0]]], [[[NEG_INF, NEG_INF], [NEG_INF, NEG_INF]]]], requires_grad=True)
    y = MeanPool()(x)
    torch.testing.assert_close(y.detach(), torch.tensor([[3.0], [0.0]]))
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad[0, 0], torch.tensor([[1 / 3, 0.0], [1 / 3, 1 / 3]]))
    torch.testing.assert_close(round_trip(MeanPool())(x.detach()), y.detach())
    with pytest.raises(ValueError, match="at least 3 dims"):
        MeanPool()(torch.ones(2, 3))
