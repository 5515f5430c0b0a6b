# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""AttentionPool: exact weights on hand-built cases, the gated variant, the squared-average normalisation,
padding, gradients, TorchScript, and equality with MONAI MILModel's attention head."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from monai.networks.nets import MILModel

from networks.blocks import ATTENTION_NORMALIZATIONS, AttentionPool


def _hand_built(gated: bool = False, normalization: str = "softmax") -> AttentionPool:
    """D = 2, hidden 1: V = [1, 0] (reads the first feature), w = 1, biases 0; U = [0, 1] when gated."""
    pool = AttentionPool(2, 1, gated=gated, normalization=normalization)
    with torch.no_grad():
        for layer in (pool.attention_v, pool.attention_w, pool.attention_u):
            if layer is not None:
                layer.weight.zero_()
                layer.bias.zero_()
        pool.attention_v.weight[0, 0] = 1.0
        pool.attention_w.weight[0, 0] = 1.0
        if pool.attention_u is not None:
            pool.attention_u.weight[0, 1] = 1.0
    return pool


H = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [2.0, -1.0]]])  # [B=1, N=3, D=2]


def _softmax(values):
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


def test_softmax_weights_exact():
    z, weights = _hand_built().forward_with_weights(H)
    t = [math.tanh(0.0), math.tanh(1.0), math.tanh(2.0)]
    expected = _softmax(t)
    assert torch.allclose(weights, torch.tensor([expected]), atol=1e-6)
    expected_z = [sum(a * h[d] for a, h in zip(expected, H[0].tolist())) for d in range(2)]
    assert torch.allclose(z, torch.tensor([expected_z]), atol=1e-6)


def test_gated_weights_exact():
    _, weights = _hand_built(gated=True).forward_with_weights(H)
    sigmoid = [1 / (1 + math.exp(-v)) for v in (0.0, 2.0, -1.0)]
    t = [math.tanh(a) * g for a, g in zip((0.0, 1.0, 2.0), sigmoid)]
    assert torch.allclose(weights, torch.tensor([_softmax(t)]), atol=1e-6)


def test_squared_average_weights_exact():
    _, weights = _hand_built(normalization="squared_average").forward_with_weights(H)
    s = [math.log1p(math.exp(math.tanh(v))) for v in (0.0, 1.0, 2.0)]
    expected = [v * v / sum(u * u for u in s) for v in s]
    assert torch.allclose(weights, torch.tensor([expected]), atol=1e-6)


def test_squared_average_separates_more_than_softmax():
    """Liu et al.'s claim on one hand-built bag: a larger weight gap between the top instance and the rest."""
    h = torch.tensor([[[3.0, 0.0], [0.2, 0.0], [0.1, 0.0], [0.0, 0.0]]])
    gaps = {}
    for normalization in ATTENTION_NORMALIZATIONS:
        with torch.no_grad():
            _, weights = _hand_built(normalization=normalization).forward_with_weights(h)
        gaps[normalization] = float(weights[0, 0] - weights[0, 1:].mean())
    assert gaps["squared_average"] > gaps["softmax"] > 0


def test_squared_average_underflow_is_uniform():
    pool = AttentionPool(3, 4, normalization="squared_average")
    scores = torch.tensor([[-200.0, -300.0, -250.0, 0.0]])  # softplus underflows to 0 for the first three
    mask = torch.tensor([[True, True, True, False]])
    weights = pool.normalize(scores, mask)
    assert torch.allclose(weights, torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0]]))


@pytest.mark.parametrize("normalization", ATTENTION_NORMALIZATIONS)
@pytest.mark.parametrize("gated", [False, True])
def test_padding_changes_nothing(normalization, gated):
    torch.manual_seed(0)
    pool = AttentionPool(5, 7, gated=gated, normalization=normalization)
    h = torch.randn(2, 4, 5)
    padded = torch.cat([h, torch.full((2, 3, 5), float("nan"))], dim=1)
    padded[1, 2:] = float("inf")  # the second bag has 2 real instances, followed by non-finite padding
    mask = torch.tensor([[True] * 4 + [False] * 3, [True, True] + [False] * 5])
    z, weights = pool.forward_with_weights(padded, mask)
    z0, w0 = pool.forward_with_weights(h[:1])
    z1, w1 = pool.forward_with_weights(h[1:, :2])
    assert torch.allclose(z, torch.cat([z0, z1]), atol=1e-6)
    assert torch.allclose(weights[0, :4], w0[0], atol=1e-6) and torch.allclose(weights[1, :2], w1[0], atol=1e-6)
    assert torch.count_nonzero(weights[0, 4:]) == 0 and torch.count_nonzero(weights[1, 2:]) == 0
    assert torch.allclose(weights.sum(dim=1), torch.ones(2))


@pytest.mark.parametrize("normalization", ATTENTION_NORMALIZATIONS)
def test_empty_bag_pools_to_zero(normalization):
    pool = AttentionPool(3, 2, normalization=normalization)
    z, weights = pool.forward_with_weights(torch.randn(2, 3, 3), torch.tensor([[False] * 3, [True, False, True]]))
    assert torch.equal(z[0], torch.zeros(3)) and torch.equal(weights[0], torch.zeros(3))
    assert torch.isfinite(z).all() and math.isclose(float(weights[1].sum().detach()), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("normalization", ATTENTION_NORMALIZATIONS)
@pytest.mark.parametrize("gated", [False, True])
def test_every_parameter_gets_a_gradient(normalization, gated):
    torch.manual_seed(1)
    pool = AttentionPool(4, 3, gated=gated, normalization=normalization)
    h = torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    (pool(h, mask) ** 2).sum().backward()
    for name, p in pool.named_parameters():
        if normalization == "softmax" and name == "attention_w.bias":
            # softmax is invariant to a shift of all scores: this bias only matters for the squared average
            assert abs(float(p.grad)) < 1e-5
            continue
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name
    assert torch.count_nonzero(h.grad[1, 2:]) == 0 and torch.isfinite(h.grad).all()


@pytest.mark.parametrize("normalization", ATTENTION_NORMALIZATIONS)
@pytest.mark.parametrize("gated", [False, True])
def test_torchscript(normalization, gated):
    torch.manual_seed(2)
    pool = AttentionPool(4, 3, gated=gated, normalization=normalization)
    scripted = torch.jit.script(pool)
    h = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [False, True, False, True, True]])
    for m in (None, mask):
        assert torch.allclose(scripted(h, m), pool(h, m), atol=1e-6)
        assert torch.allclose(scripted.forward_with_weights(h, m)[1], pool.forward_with_weights(h, m)[1], atol=1e-6)


def test_same_pooling_as_monai_milmodel_attention_head():
    """With MILModel's weights copied in, the non-gated softmax pool equals MONAI's ``att`` mode pooling."""
    torch.manual_seed(3)
    width = 32  # a custom (identity) backbone: MILModel's own default backbone needs torchvision
    reference = MILModel(
        num_classes=2, mil_mode="att", pretrained=False, backbone=nn.Identity(), backbone_num_features=width
    )
    pool = AttentionPool(width, reference.attention[0].out_features)
    with torch.no_grad():
        pool.attention_v.load_state_dict(reference.attention[0].state_dict())
        pool.attention_w.load_state_dict(reference.attention[2].state_dict())
    h = torch.randn(2, 6, width)
    expected = reference.calc_head(h)  # MILModel's att head: attention softmax over instances, then its classifier
    assert torch.allclose(reference.myfc(pool(h)), expected, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"in_features": 0}, "in_features"),
        ({"in_features": 3, "hidden_features": True}, "hidden_features"),
        ({"in_features": 3, "gated": 1}, "gated"),
        ({"in_features": 3, "normalization": "sparsemax"},
         r"normalization must be one of \['softmax', 'squared_average'\], got 'sparsemax'"),
    ],
)
def test_invalid_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AttentionPool(**kwargs)


@pytest.mark.parametrize(
    "h, mask, message",
    [
        (torch.zeros(2, 3), None, r"\[B, N, 4\]"),
        (torch.zeros(2, 3, 5), None, r"\[B, N, 4\]"),
        (torch.zeros(2, 3, 4), torch.ones(2, 3), "bool"),
        (torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool), r"\[2, 3\]"),
    ],
)
def test_invalid_inputs(h, mask, message):
    with pytest.raises(ValueError, match=message):
        AttentionPool(4)(h, mask)
