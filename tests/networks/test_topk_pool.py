# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).

from __future__ import annotations

import pytest
import torch

from networks.blocks import TopKPool

INF = float("-inf")

# (k, input shape, expected output shape, expected k_eff)
SHAPE_CASES = [
    (5, (2, 3, 10), (2, 3), 5),
    (5, (2, 3, 4, 5, 6), (2, 3), 5),  # spatial x scale x slice dims pooled together
    (5, (1, 1, 2), (1, 1), 2),  # fewer elements than k
    (1, (4, 18, 7, 7), (4, 18), 1),
    (3, (2, 1, 1), (2, 1), 1),
]

# (k, decay, x [1, 1, L], expected pooled value, expected weights of the top k_eff)
VALUE_CASES = [
    (2, 0.5, [1.0, 4.0, 2.0, INF], 4 * 2 / 3 + 2 / 3, [2 / 3, 1 / 3]),
    (3, 0.5, [5.0, 1.0], 5 * 2 / 3 + 1 / 3, [2 / 3, 1 / 3]),  # L < k: softmax over the first 2 logits
    (3, 0.5, [3.0, INF, INF, INF], 3.0, [1.0, 0.0, 0.0]),  # -inf among the top k: zero weight
    (3, 0.5, [3.0, 1.0, INF], 3 * 2 / 3 + 1 / 3, [2 / 3, 1 / 3, 0.0]),  # renormalised 4/7, 2/7 -> 2/3, 1/3
    (3, 0.5, [INF, INF], 0.0, [0.0, 0.0]),  # nothing present: 0, not NaN
    (1, 0.5, [0.5, -2.0, 7.0], 7.0, [1.0]),  # k = 1 is max pooling
    (3, 1.0, [1.0, 2.0, 3.0, 6.0], (2 + 3 + 6) / 3, [1 / 3, 1 / 3, 1 / 3]),  # decay 1: mean of the top k
    (4, 0.5, [-1.0, -2.0, -3.0, -4.0, -5.0], -(8 + 8 + 6 + 4) / 15, [8 / 15, 4 / 15, 2 / 15, 1 / 15]),
]


@pytest.mark.parametrize("k, shape, expected_shape, k_eff", SHAPE_CASES)
def test_shapes(k, shape, expected_shape, k_eff):
    pool = TopKPool(k=k)
    x = torch.randn(shape)
    pooled, indices, weights = pool.forward_with_indices(x)
    assert pool(x).shape == expected_shape
    assert pooled.shape == expected_shape
    assert indices.shape == (*expected_shape, k_eff) and indices.dtype == torch.int64
    assert weights.shape == (*expected_shape, k_eff)
    # indices point into the flattened trailing dims and give back the sorted top values
    values = x.flatten(2).gather(-1, indices)
    torch.testing.assert_close(values, x.flatten(2).topk(k_eff, dim=-1).values)


@pytest.mark.parametrize("k, decay, x, expected, expected_weights", VALUE_CASES)
def test_exact_values(k, decay, x, expected, expected_weights):
    pool = TopKPool(k=k, decay=decay)
    pooled, _, weights = pool.forward_with_indices(torch.tensor([[x]]))
    torch.testing.assert_close(pooled, torch.tensor([[expected]]))
    torch.testing.assert_close(weights, torch.tensor([[expected_weights]]))


def test_initial_weights_decay_exponentially():
    pool = TopKPool(k=5, decay=0.5)
    w = pool.weights()
    assert pool.k == 5 and w.shape == (5,)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    torch.testing.assert_close(w[1:] / w[:-1], torch.full((4,), 0.5))
    torch.testing.assert_close(TopKPool(k=2, decay=0.5).weights(), torch.tensor([2 / 3, 1 / 3]))


def test_weights_are_learnable_and_stay_a_distribution():
    pool = TopKPool(k=3)
    with torch.no_grad():
        pool.weight_logits.copy_(torch.tensor([-3.0, 10.0, 0.0]))
    w = pool.weights()
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))


def test_gradients_finite_with_absent_elements():
    pool = TopKPool(k=3)
    x = torch.tensor([[[2.0, INF, 1.0, INF], [INF, INF, INF, INF]]], requires_grad=True)  # [1, 2, 4]
    pooled = pool(x)
    assert bool(torch.isfinite(pooled).all())
    torch.testing.assert_close(pooled[0, 1], torch.tensor(0.0))
    pooled.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert bool(torch.isfinite(pool.weight_logits.grad).all())
    # absent elements receive no gradient, present ones receive their weight
    torch.testing.assert_close(x.grad, torch.tensor([[[2 / 3, 0.0, 1 / 3, 0.0], [0.0, 0.0, 0.0, 0.0]]]))
    assert bool((pool.weight_logits.grad != 0).any())


def test_torchscript_round_trip(round_trip):
    pool = TopKPool(k=3, decay=0.7)
    x = torch.randn(2, 4, 3, 5)
    x[0, 0] = INF
    scripted = round_trip(pool)
    torch.testing.assert_close(scripted(x), pool(x))
    for a, b in zip(scripted.forward_with_indices(x), pool.forward_with_indices(x)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(scripted.weights(), pool.weights())


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": -2}, {"k": 2.5}, {"k": True}, {"decay": 0.0}, {"decay": 1.5}])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        TopKPool(**kwargs)


def test_invalid_input():
    with pytest.raises(ValueError, match=r"\[B, C, \*D\]"):
        TopKPool()(torch.randn(2, 3))
