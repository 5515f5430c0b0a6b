# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Localization metrics (key-slice hit, pointing game, heatmap AUROC) on tiny hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bundle.localization.metrics import (
    dilate_mask,
    heatmap_auroc,
    key_slice_hit,
    lesion_slice_positions,
    pointing_game_hit,
)

# ================================================================== key_slice_hit
KEY_SLICE_CASES = [
    # ranked slices (best first), lesion slices, top, expected
    ([7, 3, 12], {3, 4}, 1, False),
    ([7, 3, 12], {3, 4}, 2, True),
    ([7, 3, 12], {3, 4}, 3, True),
    ([4, 3, 12], [3, 4], 1, True),
    ([7, 3, 12], {5}, 3, False),
    ([7], {3}, 3, False),  # fewer ranked slices than top
    ([7, 3], {3}, 10, True),
    (torch.tensor([2, 0, 1]), np.array([0]), 2, True),  # tensors and arrays as ids
]


@pytest.mark.parametrize("ranked, lesions, top, expected", KEY_SLICE_CASES)
def test_key_slice_hit_exact(ranked, lesions, top, expected):
    assert key_slice_hit(ranked, lesions, top) is expected


@pytest.mark.parametrize("top", [0, -1, 1.5, True])
def test_key_slice_hit_rejects_bad_top(top):
    with pytest.raises(ValueError, match="top must be a positive integer"):
        key_slice_hit([1, 2], {1}, top)


def test_key_slice_hit_undefined_without_lesion():
    with pytest.raises(ValueError, match="undefined without a lesion"):
        key_slice_hit([1, 2], set(), 1)


def test_lesion_slice_positions():
    mask = np.zeros((4, 2, 3), dtype=np.uint8)
    mask[1, 0, 2] = 1
    mask[3, 1, 0] = 255
    assert lesion_slice_positions(mask) == [1, 3]
    assert lesion_slice_positions(np.zeros((2, 2, 2))) == []
    assert lesion_slice_positions(np.ones((2, 2))) == [0]  # a 2-D image is one slice


# ================================================================== dilate_mask
def test_dilate_mask_disk_within_slices():
    mask = np.zeros((2, 5, 5), dtype=np.uint8)
    mask[0, 2, 2] = 1
    plus = np.zeros((5, 5), dtype=bool)
    plus[2, 1:4] = plus[1:4, 2] = True
    np.testing.assert_array_equal(dilate_mask(mask, 0)[0], mask[0] == 1)
    np.testing.assert_array_equal(dilate_mask(mask, 1)[0], plus)  # 4-neighbours
    square = np.zeros((5, 5), dtype=bool)
    square[1:4, 1:4] = True
    np.testing.assert_array_equal(dilate_mask(mask, 1.5)[0], square)  # 8-neighbours (sqrt 2 <= 1.5)
    assert not dilate_mask(mask, 2).astype(bool)[1].any()  # never across slices
    with pytest.raises(ValueError, match="tolerance_px"):
        dilate_mask(mask, -1)


# ================================================================== pointing_game_hit
def _bag(values, shape=(2, 2, 3)):
    out = np.zeros(shape)
    for (n, y, x), v in values.items():
        out[n, y, x] = v
    return out


LESION = _bag({(1, 0, 1): 1, (1, 0, 2): 1})  # two lesion pixels in slice 1
POINTING_CASES = [
    # heatmap, tolerance, expected
    (_bag({(1, 0, 2): 5.0, (0, 0, 2): 4.0}), 0, 1.0),  # unique maximum inside
    (_bag({(0, 0, 2): 5.0, (1, 0, 2): 4.0}), 0, 0.0),  # the maximum over the whole bag is in slice 0
    (_bag({(1, 0, 1): 5.0, (1, 1, 1): 5.0}), 0, 0.5),  # tie: one of two maxima inside
    (_bag({(1, 0, 1): 5.0, (1, 1, 1): 5.0, (0, 0, 0): 5.0, (0, 1, 2): 5.0}), 0, 0.25),
    (np.zeros((2, 2, 3)), 0, 2 / 12),  # constant heatmap: the lesion's share of the bag (chance)
    (_bag({(1, 1, 2): 5.0}), 0, 0.0),  # next to the lesion ...
    (_bag({(1, 1, 2): 5.0}), 1, 1.0),  # ... counts with tolerance 1
    (_bag({(1, 1, 0): 5.0}), 1, 0.0),  # diagonal neighbour: distance sqrt 2 > 1
    (_bag({(1, 1, 0): 5.0}), 1.5, 1.0),
    (_bag({(0, 0, 1): 5.0}), 3, 0.0),  # same (y, x) in another slice: the tolerance stays in the slice
    (_bag({(1, 0, 1): 2.0}) - 3.0, 0, 1.0),  # negative values are fine
]


@pytest.mark.parametrize("heatmap, tolerance, expected", POINTING_CASES)
def test_pointing_game_exact(heatmap, tolerance, expected):
    assert pointing_game_hit(heatmap, LESION, tolerance_px=tolerance) == expected


def test_pointing_game_tensors_and_2d():
    heat = torch.tensor([[0.0, 2.0], [2.0, 1.0]])
    assert pointing_game_hit(heat, torch.tensor([[0, 1], [0, 0]])) == 0.5
    assert pointing_game_hit(heat[None], torch.tensor([[[0, 1], [1, 0]]])) == 1.0


@pytest.mark.parametrize(
    "heatmap, mask, message",
    [
        (np.zeros((2, 2, 3)), np.zeros((2, 2, 3)), "no lesion pixel"),
        (np.zeros((2, 2, 3)), np.ones((2, 3, 2)), "same shape"),
        (np.full((2, 2, 3), np.nan), LESION, "NaN"),
        (np.zeros((1, 2, 2, 3)), np.ones((1, 2, 2, 3)), r"\[N, H, W\]"),
    ],
)
def test_pointing_game_errors(heatmap, mask, message):
    with pytest.raises(ValueError, match=message):
        pointing_game_hit(heatmap, mask)


# ================================================================== heatmap_auroc
AUROC_CASES = [
    # heatmap, mask, expected
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ([0.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], 1.0),
    ([1.0, 1.0, 0.0, 0.0], [0, 0, 1, 1], 0.0),
    ([3.0, 3.0, 3.0, 3.0], [0, 1, 0, 1], 0.5),  # constant: ties count one half
    ([0.0, 1.0, 1.0, 2.0], [0, 0, 1, 1], 0.875),  # one tie between a lesion and a background pixel
    ([[[0.0, 1.0], [2.0, 0.0]], [[0.0, 3.0], [0.0, 0.0]]], [[[0, 0], [1, 0]], [[0, 1], [0, 0]]], 1.0),
    # the background pixel 5 beats both lesion pixels (2 and 3), which beat the other five: 10 of 12 pairs
    ([[[5.0, 1.0], [2.0, 0.0]], [[0.0, 3.0], [0.0, 0.0]]], [[[0, 0], [1, 0]], [[0, 255], [0, 0]]], 10 / 12),
]


@pytest.mark.parametrize("heatmap, mask, expected", AUROC_CASES)
def test_heatmap_auroc_exact(heatmap, mask, expected):
    assert heatmap_auroc(np.array(heatmap), np.array(mask)) == pytest.approx(expected, abs=1e-12)


def test_heatmap_auroc_tensor_input():
    assert heatmap_auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == pytest.approx(0.75)


@pytest.mark.parametrize("mask", [np.zeros((2, 2, 3)), np.ones((2, 2, 3))])
def test_heatmap_auroc_nan_for_one_class(mask):
    assert math.isnan(heatmap_auroc(np.arange(12.0).reshape(2, 2, 3), mask))


def test_heatmap_auroc_errors():
    with pytest.raises(ValueError, match="same shape"):
        heatmap_auroc(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        heatmap_auroc(np.array([np.inf, 0.0]), np.array([1, 0]))
