# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The default synthetic task is not solvable by volume-level intensity statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics.rocauc import compute_roc_auc

from bundle.data.synthetic_oct import generate_case


def test_volume_intensity_statistics_do_not_separate_the_classes():
    rng = np.random.default_rng(123)
    labels = np.array([0, 1] * 30)
    stats = {"mean": [], "std": [], "p1": []}
    for label in labels:
        image, mask = generate_case(rng, positive=bool(label))
        assert mask.any() == bool(label)
        stats["mean"].append(image.mean())
        stats["std"].append(image.std())
        stats["p1"].append(np.percentile(image, 1))
    y = torch.as_tensor(labels)
    for name, values in stats.items():
        auc = compute_roc_auc(torch.as_tensor(np.array(values)), y)
        assert 0.25 <= auc <= 0.75, f"volume {name} alone separates the classes (AUROC {auc:.2f})"


@pytest.mark.parametrize("positive", [False, True])
def test_lesions_are_small(positive):
    image, mask = generate_case(np.random.default_rng(7), positive=positive)
    assert mask.mean() < 0.01  # less than 1% of the voxels carry the evidence
