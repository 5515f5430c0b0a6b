# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Per-patch maps and values painted back onto the full 2-D image (bundle.localization.case_outputs.paint_patches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bundle.localization.case_outputs import paint_patches
from transforms import GridPatchBag

#: a 3 x 4 grid of 4 x 4 patches on a 10 x 13 image (the last row and column cross the edge)
META = {"patch_size": [4, 4], "patch_stride": [4, 4], "patch_offset": [0, 0], "patch_grid": [3, 4]}


def test_values_fill_their_patches_exactly():
    out = paint_patches(np.array([1.0, 2.0, 3.0]), [0, 5, 11], META, [10, 13])
    expected = np.zeros((10, 13), dtype=np.float32)
    expected[0:4, 0:4] = 1.0
    expected[4:8, 4:8] = 2.0
    expected[8:10, 12:13] = 3.0  # grid index 11: row 2, column 3, cut at the image edge
    assert out.dtype == np.float32 and np.array_equal(out, expected)


def test_maps_are_resized_to_the_patch_size_and_overlaps_keep_the_maximum():
    meta = {"patch_size": [4, 4], "patch_stride": [2, 2], "patch_offset": [1, 0], "patch_grid": [2, 2]}
    maps = np.stack([np.full((2, 2), 5.0), np.full((2, 2), 7.0)])  # at the network's size 2 x 2
    out = paint_patches(maps, [0, 1], meta, [6, 6])
    assert np.all(out[1:5, 0:2] == 5.0) and np.all(out[1:5, 2:6] == 7.0)  # columns 2-3 overlap: 7 wins
    assert not out[0].any() and not out[5].any()


def test_image_patches_paint_back_the_image():
    image = torch.rand(1, 10, 13)
    bag, index = GridPatchBag(patch_size=4)(image)
    rgb = bag[:, 0, :, :, None].repeat(1, 1, 1, 3).numpy()  # [n, 4, 4, 3]
    assert np.allclose(paint_patches(bag[:, 0].numpy(), index.tolist(), bag.meta, [10, 13]), image[0].numpy())
    assert np.allclose(paint_patches(rgb, index.tolist(), bag.meta, [10, 13])[..., 1], image[0].numpy())


def test_negative_values_and_mismatches():
    assert not paint_patches(np.array([-1.0]), [3], META, [10, 13]).any()  # negative scores show as 0
    with pytest.raises(ValueError, match="2 patch maps for 1 grid indices"):
        paint_patches(np.zeros((2, 4, 4)), [0], META, [10, 13])
    with pytest.raises(ValueError, match="outside the 3 x 4 patch grid"):
        paint_patches(np.zeros(1), [12], META, [10, 13])
