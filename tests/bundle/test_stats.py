# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.stats``: AUROC on hand cases (ties count one half), resamples as counts, the bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.stats import auroc, bootstrap_counts, mean_auroc, percentile_interval, weighted_auroc


@pytest.mark.parametrize(
    "labels, scores, expected",
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
        ([0, 1], [0.5, 0.5], 0.5),  # one tie: one half
        # pairs (pos, neg): (0.4 vs 0.1) 1, (0.4 vs 0.4) 0.5, (0.3 vs 0.1) 1, (0.3 vs 0.4) 0 -> 2.5 / 4
        ([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.3], 0.625),
        # 3 positives x 2 negatives; ties 0.5 with 0.5 once: (0.5>0.2)1 (0.5=0.5).5 (0.7)1 1 (0.2=0.2).5 (0.2<0.5)0
        ([1, 0, 1, 0, 1], [0.5, 0.2, 0.7, 0.5, 0.2], 4.0 / 6.0),
    ],
)
def test_binary_auroc_on_hand_cases(labels, scores, expected):
    assert auroc(labels, scores) == pytest.approx(expected, abs=1e-12)


def test_multiclass_auroc_is_the_macro_one_vs_rest_mean():
    labels = [0, 1, 2, 0]
    probs = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1]]
    # class 0: positives 0.8, 0.5 vs 0.2, 0.1 -> 1; class 1: 0.7 vs 0.1, 0.6, 0.4 -> 1;
    # class 2: 0.3 vs 0.1, 0.1, 0.1 -> 1
    assert auroc(labels, probs) == pytest.approx(1.0)
    probs[2] = [0.1, 0.8, 0.1]  # class 1: 0.7 vs 0.1, 0.8, 0.4 -> 2/3; class 2: 0.1 vs 0.1 x3 -> 0.5
    assert auroc(labels, probs) == pytest.approx((1.0 + 2.0 / 3.0 + 0.5) / 3.0)


@pytest.mark.parametrize("labels, scores", [([0, 0], [0.1, 0.2]), ([1, 1, 1], [0.1, 0.2, 0.3])])
def test_auroc_needs_both_classes(labels, scores):
    with pytest.raises(ValueError, match="positive and negative"):
        auroc(labels, scores)


def test_weighted_auroc_equals_the_auroc_of_the_written_out_sample():
    labels = np.array([0, 1, 0, 1, 1, 0])
    scores = np.array([0.3, 0.6, 0.6, 0.2, 0.9, 0.1])
    counts = np.array([[1, 1, 1, 1, 1, 1], [2, 0, 1, 3, 0, 0], [0, 2, 0, 0, 1, 3]])
    expected = [auroc(np.repeat(labels, c), np.repeat(scores, c)) for c in counts]
    assert weighted_auroc(labels, scores, counts) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_counts_are_deterministic_resamples_with_both_classes():
    labels = [0] * 9 + [1]  # a resample without the positive case is frequent: they must be redrawn
    counts = bootstrap_counts(labels, n_boot=300, seed=0)
    assert counts.shape == (300, 10) and counts.dtype.kind == "i"
    assert np.all(counts.sum(axis=1) == 10)
    assert np.all(counts[:, 9] > 0) and np.all(counts[:, :9].sum(axis=1) > 0)
    assert np.array_equal(counts, bootstrap_counts(labels, n_boot=300, seed=0))
    assert not np.array_equal(counts, bootstrap_counts(labels, n_boot=300, seed=1))
    with pytest.raises(ValueError, match=r"no case of class\(es\) \[1\]"):
        bootstrap_counts([0, 0, 0])


def test_bootstrap_of_perfect_separation_is_one_one():
    labels = [0, 0, 0, 1, 1, 1]
    counts = bootstrap_counts(labels, n_boot=200)
    perfect = mean_auroc(labels, [[0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.0, 0.1, 0.2, 0.6, 0.6, 1.0]], counts)
    assert percentile_interval(perfect) == (1.0, 1.0)
    constant = mean_auroc(labels, [[0.5] * 6], counts)  # every pair tied: 0.5 on every resample
    assert percentile_interval(constant) == (0.5, 0.5)


def test_percentile_interval():
    values = np.arange(101, dtype=float)  # 0..100: the 2.5th and 97.5th percentiles are 2.5 and 97.5
    assert percentile_interval(values) == pytest.approx((2.5, 97.5))
    assert percentile_interval(values, level=0.5) == pytest.approx((25.0, 75.0))
    with pytest.raises(ValueError, match="level"):
        percentile_interval(values, level=1.0)
