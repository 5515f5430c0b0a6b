# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Localization metrics (key-slice hit, pointing game, peak distance, heatmap AUROC, average precision) on tiny
hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bundle.localization.metrics import (
    average_precision,
    dilate_mask,
    heatmap_auroc,
    instance_score_gap,
    key_slice_hit,
    lesion_slice_positions,
    peak_distances,
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


@pytest.mark.parametrize(
    "scores, lesions, expected",
    [
        ([0.1, 0.6, 0.2, 0.1], [1], 0.6 - 0.4 / 3),
        ([0.1, 0.6, 0.2, float("-inf")], [1, 2], 0.4 - 0.1),  # padding (-inf) left out
        ([0.5, 0.5], [0, 1], None),  # no instance without a lesion
        ([0.5, 0.5], [], None),
    ],
)
def test_instance_score_gap(scores, lesions, expected):
    gap = instance_score_gap(torch.tensor(scores), lesions)
    assert gap == (None if expected is None else pytest.approx(expected))


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


# ================================================================== single images (GLAM page): exact 4 x 4 cases
MASK = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize(
    "heatmap, tolerance, expected",
    [
        (np.array([[0, 0, 0, 0], [0, 2, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 0, 1.0),  # unique max inside
        (np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 3]]), 0, 0.0),  # unique max outside
        (np.array([[0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]), 0, 0.5),  # tie: half inside
        (np.zeros((4, 4)), 0, 2 / 16),  # constant map: chance level
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 0]]), 2, 1.0),  # (3,2) is 2 px from (1,2)
        (np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 5, 0]]), 1.9, 0.0),
    ],
)
def test_pointing_game_single_image(heatmap, tolerance, expected):
    assert pointing_game_hit(heatmap, MASK, tolerance) == pytest.approx(expected)
    # the pointing game is the share of the maxima that lie within the tolerance
    assert float((peak_distances(heatmap, MASK) <= tolerance).mean()) == pytest.approx(expected)


def test_peak_distances_exact():
    heatmap = np.zeros((4, 4))
    heatmap[3, 3] = heatmap[1, 1] = 1.0
    np.testing.assert_allclose(peak_distances(heatmap, MASK), [0.0, np.hypot(2, 1)])


def test_peak_distances_bag_stays_in_the_slice():
    # LESION: two lesion pixels in slice 1; maxima in slice 0 have no lesion in their slice
    heatmap = _bag({(1, 1, 2): 5.0, (0, 0, 1): 5.0})
    np.testing.assert_allclose(peak_distances(heatmap, LESION), [np.inf, 1.0])
    np.testing.assert_allclose(peak_distances(torch.from_numpy(heatmap), torch.from_numpy(LESION), chunk=1),
                               [np.inf, 1.0])


@pytest.mark.parametrize(
    "heatmap, auroc, ap",
    [
        # lesion pixels 0.9 and 0.8 above every background pixel: perfect
        (np.where(MASK == 1, [[0, 0, 0, 0], [0, 0.9, 0.8, 0], [0, 0, 0, 0], [0, 0, 0, 0]], 0.1), 1.0, 1.0),
        # constant map: AUROC 1/2, AP = lesion share
        (np.full((4, 4), 0.3), 0.5, 2 / 16),
        # order: background 1.0 first, then lesion 0.9, lesion 0.5, the rest 0 -> AUROC (13 + 13) / (2 * 14);
        # AP = 1/2 * 1/2 (recall 1/2 at precision 1/2) + 1/2 * 2/3
        (np.array([[1.0, 0, 0, 0], [0, 0.9, 0.5, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 26 / 28, 0.5 * 0.5 + 0.5 * 2 / 3),
        # a tie between a lesion pixel and a background pixel at the top counts as one threshold
        (np.array([[0.7, 0, 0, 0], [0, 0.7, 0.2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), 26.5 / 28, 0.5 * 0.5 + 0.5 * 2 / 3),
    ],
)
def test_pixel_auroc_and_average_precision_exact(heatmap, auroc, ap):
    assert heatmap_auroc(heatmap, MASK) == pytest.approx(auroc)
    assert average_precision(heatmap, MASK) == pytest.approx(ap)


@pytest.mark.parametrize("fn", [pointing_game_hit, average_precision, peak_distances])
def test_metrics_reject_empty_mask_bad_shapes_and_nan(fn):
    with pytest.raises(ValueError, match="no lesion"):
        fn(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        fn(np.zeros((4, 5)), MASK)
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((4, 4), np.nan), MASK)


def test_heatmap_auroc_single_image_errors_and_empty_mask():
    # the AUROC has a value (NaN) without a lesion; bad shapes and NaN are errors as for the other metrics
    assert math.isnan(heatmap_auroc(np.zeros((4, 4)), np.zeros((4, 4))))
    with pytest.raises(ValueError, match="shape"):
        heatmap_auroc(np.zeros((4, 5)), MASK)
    with pytest.raises(ValueError, match="NaN"):
        heatmap_auroc(np.full((4, 4), np.nan), MASK)
