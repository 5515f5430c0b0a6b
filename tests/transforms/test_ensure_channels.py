# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""EnsureChannels / EnsureChannelsd against exact expected arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from transforms import EnsureChannels, EnsureChannelsd

# a 2 x 2 RGB picture, channel-first [3, 2, 2]; pixels (R, G, B)
RGB = torch.tensor(
    [
        [[100.0, 255.0], [0.0, 10.0]],  # R
        [[50.0, 255.0], [0.0, 20.0]],  # G
        [[200.0, 255.0], [0.0, 30.0]],  # B
    ]
)
# 0.299 R + 0.587 G + 0.114 B, by hand: 29.9 + 29.35 + 22.8; 255; 0; 2.99 + 11.74 + 3.42
LUMA = torch.tensor([[[82.05, 255.0], [0.0, 18.15]]])
ALPHA = torch.full((1, 2, 2), 7.0)
GREY = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])

CASES = [
    # name, input, num_channels, expected
    ("1->3 repeats", GREY, 3, GREY.repeat(3, 1, 1)),
    ("3->1 luma", RGB, 1, LUMA),
    ("4->3 drops alpha", torch.cat([RGB, ALPHA]), 3, RGB),
    ("4->1 drops alpha then luma", torch.cat([RGB, ALPHA]), 1, LUMA),
    ("1->1 unchanged", GREY, 1, GREY),
    ("3->3 unchanged", RGB, 3, RGB),
    ("3D volume 1->3", GREY[..., None].repeat(1, 1, 1, 2), 3, GREY[..., None].repeat(3, 1, 1, 2)),
]


@pytest.mark.parametrize("name, img, num_channels, expected", CASES, ids=[c[0] for c in CASES])
def test_exact_values(name, img, num_channels, expected):
    out = EnsureChannels(num_channels)(img)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_luma_weights_sum_to_one_on_grey_pixels():
    grey = torch.tensor([[[0.0, 17.0, 128.0, 255.0]]]).repeat(3, 1, 1)
    torch.testing.assert_close(EnsureChannels(1)(grey), grey[:1], rtol=0, atol=1e-4)


def test_equal_channels_returns_input_object():
    assert EnsureChannels(3)(RGB) is RGB


def test_integer_input_gives_float_luma_and_keeps_dtype_on_repeat():
    rgb8 = RGB.to(torch.uint8)
    out = EnsureChannels(1)(rgb8)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, LUMA, rtol=0, atol=1e-4)
    assert EnsureChannels(3)(GREY.to(torch.uint8)).dtype == torch.uint8


def test_numpy_in_numpy_out():
    out = EnsureChannels(1)(RGB.numpy())
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, LUMA.numpy(), atol=1e-4)


def test_meta_tensor_meta_kept():
    img = MetaTensor(RGB, affine=torch.diag(torch.tensor([2.0, 3.0, 1.0])), meta={"filename_or_obj": "a.png"})
    out = EnsureChannels(1)(img)
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "a.png"
    torch.testing.assert_close(out.affine, img.affine)


@pytest.mark.parametrize(
    "channels, num_channels",
    [(2, 3), (2, 1), (3, 2), (5, 3), (1, 4), (3, 4)],
)
def test_unsupported_conversion_names_file_and_counts(channels, num_channels):
    img = MetaTensor(torch.zeros(channels, 2, 2), meta={"filename_or_obj": "/data/scan7.tif"})
    with pytest.raises(ValueError, match=rf"/data/scan7\.tif: cannot convert {channels} channels to {num_channels}"):
        EnsureChannels(num_channels)(img)


def test_unsupported_conversion_without_file_name():
    with pytest.raises(ValueError, match=r"input image: cannot convert 2 channels to 3"):
        EnsureChannels(3)(torch.zeros(2, 2, 2))


@pytest.mark.parametrize("num_channels", [0, -1, 1.0, True, "3"])
def test_bad_num_channels(num_channels):
    with pytest.raises(ValueError, match="num_channels"):
        EnsureChannels(num_channels)


def test_dictionary_version():
    data = {"image": GREY.clone(), "rgb": RGB.clone(), "label": 2}
    out = EnsureChannelsd(["image", "absent"], num_channels=3, allow_missing_keys=True)(data)
    torch.testing.assert_close(out["image"], GREY.repeat(3, 1, 1))
    assert out["rgb"] is data["rgb"] and out["label"] == 2 and "absent" not in out
    with pytest.raises(KeyError):
        EnsureChannelsd(["absent"], num_channels=3)(data)
