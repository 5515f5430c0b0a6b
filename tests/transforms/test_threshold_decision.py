# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``ThresholdDecision`` / ``ThresholdDecisiond``: probabilities to the one-hot decision, on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import AsDiscrete

from transforms import ThresholdDecision, ThresholdDecisiond

CASES = [
    # threshold, probabilities, expected one-hot
    (None, [0.7, 0.3], [1.0, 0.0]),
    (None, [0.5, 0.5], [1.0, 0.0]),  # argmax: the first class on a tie
    (0.5, [0.5, 0.5], [0.0, 1.0]),  # p >= threshold is positive
    (0.25, [0.75, 0.25], [0.0, 1.0]),
    (0.3, [0.75, 0.25], [1.0, 0.0]),
    (0.0, [1.0, 0.0], [0.0, 1.0]),
    (1.0, [0.01, 0.99], [1.0, 0.0]),
    (None, [0.2, 0.5, 0.3], [0.0, 1.0, 0.0]),
]


@pytest.mark.parametrize("threshold, probs, expected", CASES)
def test_threshold_decision_exact(threshold, probs, expected):
    out = ThresholdDecision(threshold)(torch.tensor(probs))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.tolist() == expected
    out_np = ThresholdDecision(threshold)(np.asarray(probs, dtype=np.float64))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64 and out_np.tolist() == expected


def test_argmax_equals_monai_asdiscrete():
    probs = torch.tensor([[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]])
    for p in probs:
        assert ThresholdDecision()(p).tolist() == AsDiscrete(argmax=True, to_onehot=2)(p).tolist()


def test_channel_first_maps():
    probs = torch.tensor([[[0.8, 0.4]], [[0.2, 0.6]]])  # [C=2, 1, 2]
    assert ThresholdDecision(0.1)(probs).tolist() == [[[0.0, 0.0]], [[1.0, 1.0]]]
    assert ThresholdDecision()(probs).tolist() == [[[1.0, 0.0]], [[0.0, 1.0]]]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.3", True])
def test_bad_threshold_is_named(threshold):
    with pytest.raises(ValueError, match="threshold must be null .argmax. or a number in .0, 1."):
        ThresholdDecision(threshold)


def test_threshold_needs_two_classes():
    with pytest.raises(ValueError, match="needs 2 classes .binary task., got 3 channels"):
        ThresholdDecision(0.4)(torch.tensor([0.2, 0.5, 0.3]))


def test_dictionary_version_replaces_the_keys_only():
    data = {"pred_onehot": torch.tensor([0.65, 0.35]), "pred": torch.tensor([0.65, 0.35])}
    out = ThresholdDecisiond("pred_onehot", threshold=0.35)(data)
    assert out["pred_onehot"].tolist() == [0.0, 1.0] and out["pred"] is data["pred"]
    assert ThresholdDecisiond("missing", allow_missing_keys=True)(data).keys() == data.keys()
