# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Bags of patches of 2-D images: exact patch contents and coordinates on a tiny image, the tissue filter,
padding, the random training bags, metadata, and invalid arguments."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from transforms import (
    GridPatchBag,
    GridPatchBagd,
    RandGridPatchBag,
    RandGridPatchBagd,
    ToBag,
    patch_locations,
)

#: a 1-channel 10 x 13 image whose pixel (y, x) holds 100 * y + x
IMAGE = (100 * torch.arange(10)[:, None] + torch.arange(13)[None, :]).float()[None]


def test_grid_patches_and_their_coordinates_are_exact():
    bag, index = GridPatchBag(patch_size=4)(IMAGE)
    assert bag.shape == (12, 1, 4, 4) and index.tolist() == list(range(12))  # 3 rows x 4 columns, padded
    assert bag.meta["patch_grid"] == [3, 4] and bag.meta["patch_stride"] == [4, 4]
    assert bag.meta["patch_offset"] == [0, 0] and bag.meta["patch_size"] == [4, 4]
    corners = patch_locations(index, bag.meta)
    assert corners[:5].tolist() == [[0, 0], [0, 4], [0, 8], [0, 12], [4, 0]]
    for patch, (y, x) in zip(bag, corners.tolist()):
        h, w = min(4, 10 - y), min(4, 13 - x)
        assert torch.equal(patch[0, :h, :w], IMAGE[0, y : y + h, x : x + w])
        assert not patch[0, h:].any() and not patch[0, :, w:].any()  # padding with pad_value 0
    assert bag[6, 0, 0, 0] == 100 * 4 + 8  # grid index 6 = row 1, column 2


def test_overlap_and_rectangular_patches():
    bag, index = GridPatchBag(patch_size=(4, 6), overlap=0.5)(IMAGE)
    assert bag.meta["patch_stride"] == [2, 3] and bag.meta["patch_grid"] == [5, 5]
    corners = patch_locations(index, bag.meta)
    assert corners[6].tolist() == [2, 3] and bag[6, 0, 0, 0] == 203


def test_one_slice_bag_and_metadata_are_kept():
    image = MetaTensor(IMAGE.clone(), meta={"filename_or_obj": "/data/slide.png", "spatial_shape": np.array([10, 13])})
    one_slice = ToBag()(image)  # [1, 1, 10, 13], as the configs give a 2-D image
    bag, _ = GridPatchBag(patch_size=5)(one_slice)
    assert isinstance(bag, MetaTensor) and bag.shape == (6, 1, 5, 5)
    assert bag.meta["filename_or_obj"] == "/data/slide.png"
    assert bag.meta["spatial_shape"].tolist() == [10, 13]  # the image's, not the patches'
    assert image.meta.get("patch_grid") is None  # the input's metadata are not changed


@pytest.mark.parametrize(
    "side, threshold, fraction, expected",
    [
        ("below", 0.5, 0.5, [1]),  # the dark square of patch 1 is tissue on a bright background
        ("below", 0.5, 0.3, [1, 8]),  # 6 of the 16 pixels of the edge patch 8 are dark: 0.375
        ("above", 0.5, 0.5, [0, 2, 4, 5, 6, 9, 10]),  # bright tissue; padding is not tissue (3, 7, 11: 0.25)
        ("below", 0.05, 0.0, list(range(12))),  # fraction 0 keeps every patch
    ],
)
def test_tissue_filter(side, threshold, fraction, expected):
    image = torch.ones(1, 10, 13)
    image[0, 0:4, 4:8] = 0.1  # patch 1 is all dark
    image[0, 8:10, 0:3] = 0.0  # part of the padded patch 8
    bag, index = GridPatchBag(4, tissue_threshold=threshold, tissue_side=side, min_tissue_fraction=fraction)(image)
    assert index.tolist() == expected and bag.shape[0] == len(expected)


def test_no_tissue_keeps_the_best_patch_and_warns(caplog):
    image = MetaTensor(torch.ones(1, 8, 8), meta={"filename_or_obj": "/data/blank.png"})
    image[0, 0, 7] = 0.0  # one dark pixel in patch 1
    with caplog.at_level(logging.WARNING):
        bag, index = GridPatchBag(4, tissue_threshold=0.5, min_tissue_fraction=0.5)(image)
    assert index.tolist() == [1] and bag.shape[0] == 1
    assert "/data/blank.png" in caplog.text and "no patch has a tissue fraction" in caplog.text


def test_dictionary_version_writes_grid_indices():
    data = GridPatchBagd("image", patch_size=4, tissue_threshold=1150.0, min_tissue_fraction=1.0)({"image": IMAGE})
    # tissue: intensity below 1150 (rows 0-9 up to column 12 are all below it); padded patches are dropped
    assert data["slice_indices"].tolist() == [0, 1, 2, 4, 5, 6]
    assert data["image"].shape == (6, 1, 4, 4)


def test_random_bags_are_bounded_seeded_and_on_the_grid():
    image = torch.rand(1, 40, 50)
    sampler = RandGridPatchBag(patch_size=8, max_patches=5).set_random_state(seed=0)
    offsets = set()
    for _ in range(6):
        bag, index = sampler(image)
        assert bag.shape == (5, 1, 8, 8) and index.tolist() == sorted(index.tolist())
        offset = bag.meta["patch_offset"]
        assert 0 <= offset[0] <= 40 % 8 and 0 <= offset[1] <= 50 % 8
        offsets.add(tuple(offset))
        for patch, (y, x) in zip(bag, patch_locations(index, bag.meta).tolist()):
            h, w = min(8, 40 - y), min(8, 50 - x)
            assert torch.equal(patch[0, :h, :w], image[0, y : y + h, x : x + w])
    assert len(offsets) > 1  # the grid moves
    again = RandGridPatchBag(patch_size=8, max_patches=5).set_random_state(seed=0)
    first = RandGridPatchBag(patch_size=8, max_patches=5).set_random_state(seed=0)
    assert torch.equal(again(image)[1], first(image)[1])


def test_random_bag_keeps_everything_below_the_bound():
    bag, index = RandGridPatchBag(patch_size=4, max_patches=None, max_offset=0)(IMAGE)
    assert index.tolist() == list(range(12)) and bag.meta["patch_offset"] == [0, 0]
    data = RandGridPatchBagd("image", patch_size=4, max_patches=3).set_random_state(seed=1)({"image": IMAGE})
    assert data["image"].shape[0] == 3 and data["slice_indices"].shape == (3,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": (4, 4, 4)}, "patch_size"),
        ({"patch_size": 4, "overlap": 1.0}, "overlap"),
        ({"patch_size": 4, "tissue_threshold": "0.5"}, "tissue_threshold"),
        ({"patch_size": 4, "tissue_side": "inside"}, "inside"),
        ({"patch_size": 4, "min_tissue_fraction": 1.5}, "min_tissue_fraction"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GridPatchBag(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_patches": 0}, "max_patches"),
        ({"max_offset": -1}, "max_offset"),
        ({"max_offset": (1, 2, 3)}, "max_offset"),
    ],
)
def test_invalid_random_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandGridPatchBag(4, **kwargs)


def test_volumes_are_refused_with_the_file_name():
    meta = {"filename_or_obj": "/data/scan.nii.gz", "spatial_shape": np.array([8, 8, 4])}
    volume = MetaTensor(torch.zeros(1, 8, 8, 4), meta=meta)
    with pytest.raises(ValueError, match=r"/data/scan.nii.gz: GridPatchBag expects a 2-D image"):
        GridPatchBag(4)(volume)


def test_patch_locations_checks_the_grid():
    meta = {"patch_stride": [4, 4], "patch_offset": [1, 2], "patch_grid": [3, 4]}
    assert patch_locations([0, 7, 11], meta).tolist() == [[1, 2], [5, 14], [9, 14]]
    with pytest.raises(ValueError, match="outside the 3 x 4 patch grid"):
        patch_locations([12], meta)
    with pytest.raises(ValueError, match="not a bag of patches"):
        patch_locations([0], {"spatial_shape": [10, 13]})
