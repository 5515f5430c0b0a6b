# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Bag transforms (ToBag, ResizeSlices, SelectSlices, CentralSlices, RandSampleSlices) on tiny hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose

from transforms import (
    CentralSlices,
    CentralSlicesd,
    RandSampleSlices,
    RandSampleSlicesd,
    ResizeSlices,
    ResizeSlicesd,
    SelectSlices,
    ToBag,
    ToBagd,
)


def numbered_bag(n: int, c: int = 1, h: int = 2, w: int = 2) -> torch.Tensor:
    """A bag ``[n, c, h, w]`` whose slice k is filled with the value k."""
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).repeat(1, c, h, w)


# ================================================================== ToBag
# x[0] = [[[0, 1], [2, 3]], [[4, 5], [6, 7]]], indexed (H, W, D)
CUBE = torch.arange(8.0).reshape(1, 2, 2, 2)
TO_BAG_CASES = [
    # slice_axis, expected [N, C, h, w]
    (0, [[[[0.0, 1.0], [2.0, 3.0]]], [[[4.0, 5.0], [6.0, 7.0]]]]),  # x[0, i]: (W, D)
    (1, [[[[0.0, 1.0], [4.0, 5.0]]], [[[2.0, 3.0], [6.0, 7.0]]]]),  # x[0, :, j]: (H, D)
    (2, [[[[0.0, 2.0], [4.0, 6.0]]], [[[1.0, 3.0], [5.0, 7.0]]]]),  # x[0, :, :, k]: (H, W)
    (-1, [[[[0.0, 2.0], [4.0, 6.0]]], [[[1.0, 3.0], [5.0, 7.0]]]]),
    (-3, [[[[0.0, 1.0], [2.0, 3.0]]], [[[4.0, 5.0], [6.0, 7.0]]]]),
]


@pytest.mark.parametrize("slice_axis, expected", TO_BAG_CASES)
def test_to_bag_exact_values(slice_axis, expected):
    out = ToBag(slice_axis)(CUBE)
    torch.testing.assert_close(out, torch.tensor(expected), rtol=0, atol=0)


@pytest.mark.parametrize(
    "slice_axis, shape, take",
    [
        (0, (2, 2, 3, 4), lambda x, n: x[:, n, :, :]),
        (1, (3, 2, 2, 4), lambda x, n: x[:, :, n, :]),
        (2, (4, 2, 2, 3), lambda x, n: x[:, :, :, n]),
    ],
)
def test_to_bag_multichannel_non_cubic(slice_axis, shape, take):
    x = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 2, 3, 4)  # [C=2, H=2, W=3, D=4]
    out = ToBag(slice_axis)(x)
    assert out.shape == shape
    for n in range(shape[0]):
        torch.testing.assert_close(out[n], take(x, n), rtol=0, atol=0)


def test_to_bag_2d_image_is_one_slice():
    img = MetaTensor(torch.arange(6.0).reshape(1, 2, 3), meta={"filename_or_obj": "a.png"})
    out = ToBag(slice_axis=0)(img)
    assert out.shape == (1, 1, 2, 3)
    torch.testing.assert_close(out[0].as_tensor(), img.as_tensor())
    assert out.meta["slice_axis"] == 2 and out.meta["filename_or_obj"] == "a.png"


def test_to_bag_meta_and_numpy():
    vol = MetaTensor(CUBE, meta={"filename_or_obj": "v.nii.gz"})
    out = ToBag(-2)(vol)
    assert isinstance(out, MetaTensor)
    assert out.meta["slice_axis"] == 1 and out.meta["filename_or_obj"] == "v.nii.gz"
    out_np = ToBag(1)(CUBE.numpy())
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_array_equal(out_np, np.array(TO_BAG_CASES[1][1], dtype=np.float32))


@pytest.mark.parametrize("slice_axis", [3, -4, 1.0, True])
def test_to_bag_bad_axis(slice_axis):
    with pytest.raises(ValueError, match="slice_axis"):
        ToBag(slice_axis)


def test_to_bag_bad_rank():
    with pytest.raises(ValueError, match=r"v\.nii: ToBag expects \[C, H, W, D\] or \[C, H, W\], got shape \(1, 2\)"):
        ToBag()(MetaTensor(torch.zeros(1, 2), meta={"filename_or_obj": "v.nii"}))


def test_to_bagd_same_axis_for_all_keys():
    data = {"image": CUBE.clone(), "mask": CUBE.clone() * 10}
    out = ToBagd(["image", "mask", "absent"], slice_axis=0, allow_missing_keys=True)(data)
    torch.testing.assert_close(out["image"], torch.tensor(TO_BAG_CASES[0][1]))
    torch.testing.assert_close(out["mask"], torch.tensor(TO_BAG_CASES[0][1]) * 10)


# ================================================================== ResizeSlices
SQUARE = torch.arange(16.0).reshape(4, 4)
TWO_BY_TWO = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
TWO_BY_TWO_X2 = [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]
RESIZE_CASES = [
    # mode, input slice, spatial_size, expected slice
    ("area", SQUARE, (2, 2), [[2.5, 4.5], [10.5, 12.5]]),  # means of the 2x2 blocks
    ("nearest", SQUARE, (2, 2), [[0.0, 2.0], [8.0, 10.0]]),
    ("area", SQUARE, (1, 4), [[6.0, 7.0, 8.0, 9.0]]),  # column means
    ("nearest", TWO_BY_TWO, (4, 4), TWO_BY_TWO_X2),  # each pixel repeated 2 x 2
    ("bilinear", SQUARE, (4, 4), SQUARE),  # same size: unchanged
]


@pytest.mark.parametrize("mode, slice_, spatial_size, expected", RESIZE_CASES)
def test_resize_slices_exact_values(mode, slice_, spatial_size, expected):
    # bag of N=2 slices with C=2 channels; each (n, c) plane is the slice plus 100 * (2n + c)
    offsets = torch.tensor([[0.0, 100.0], [200.0, 300.0]]).reshape(2, 2, 1, 1)
    bag = slice_.reshape(1, 1, *slice_.shape) + offsets
    out = ResizeSlices(spatial_size, mode)(bag)
    assert out.shape == (2, 2, *spatial_size) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.as_tensor(expected).reshape(1, 1, *spatial_size) + offsets)


def test_resize_slices_meta_and_numpy():
    bag = MetaTensor(SQUARE.reshape(1, 1, 4, 4), meta={"filename_or_obj": "v.nii", "slice_axis": 2})
    out = ResizeSlices((2, 2))(bag)
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "v.nii" and out.meta["slice_axis"] == 2
    assert len(out.applied_operations) == 0
    out_np = ResizeSlices([2, 2])(SQUARE.reshape(1, 1, 4, 4).numpy())
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_allclose(out_np[0, 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize(
    "spatial_size, mode, match",
    [
        ((2, 2), "trilinear", "trilinear"),
        ((2, 2), "cubic", "cubic"),
        ((2, 2, 2), "area", "spatial_size"),
        ((0, 2), "area", "spatial_size"),
        (2, "area", "spatial_size"),
        ((2.5, 2), "area", "spatial_size"),
    ],
)
def test_resize_slices_bad_arguments(spatial_size, mode, match):
    with pytest.raises(ValueError, match=match):
        ResizeSlices(spatial_size, mode)


def test_resize_slices_needs_a_bag():
    with pytest.raises(ValueError, match=r"expects a bag \[N, C, H, W\], got shape \(1, 4, 4\)"):
        ResizeSlices((2, 2))(SQUARE.reshape(1, 4, 4))


def test_resize_slicesd():
    data = {"image": SQUARE.reshape(1, 1, 4, 4), "label": 0}
    out = ResizeSlicesd("image", (2, 2), mode="nearest")(data)
    torch.testing.assert_close(out["image"][0, 0], torch.tensor([[0.0, 2.0], [8.0, 10.0]]))
    assert out["label"] == 0


# ================================================================== SelectSlices
def test_select_slices_order_and_types():
    bag = numbered_bag(5)
    out = SelectSlices([3, 0, 4])(bag)
    assert out[:, 0, 0, 0].tolist() == [3.0, 0.0, 4.0]
    out_np = SelectSlices(torch.tensor([1]))(bag.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.shape == (1, 1, 2, 2) and out_np[0, 0, 0, 0] == 1.0


@pytest.mark.parametrize("indices", [[5], [-1], [0, 7]])
def test_select_slices_out_of_range(indices):
    bag = MetaTensor(numbered_bag(5), meta={"filename_or_obj": "v.nii"})
    with pytest.raises(ValueError, match=r"v\.nii: slice indices .* out of range for a bag of 5 slices"):
        SelectSlices(indices)(bag)


# ================================================================== CentralSlices
CENTRAL_CASES = [
    # n, num_slices, expected indices
    (40, 30, list(range(5, 35))),
    (10, 30, list(range(10))),
    (30, 30, list(range(30))),
    (31, 30, list(range(0, 30))),  # start = 1 // 2 = 0
    (33, 30, list(range(1, 31))),
    (40, None, list(range(40))),
    (7, 1, [3]),
    (1, 30, [0]),
]


@pytest.mark.parametrize("n, num_slices, expected", CENTRAL_CASES)
def test_central_slices(n, num_slices, expected):
    out = CentralSlices(num_slices)(numbered_bag(n))
    assert out[:, 0, 0, 0].long().tolist() == expected


@pytest.mark.parametrize("n, num_slices, expected", CENTRAL_CASES)
def test_central_slicesd_writes_indices(n, num_slices, expected):
    data = {"image": numbered_bag(n), "mask": numbered_bag(n) * 2, "label": 1}
    out = CentralSlicesd(["image", "mask"], num_slices=num_slices)(data)
    assert out["slice_indices"].dtype == torch.int64 and out["slice_indices"].ndim == 1
    assert out["slice_indices"].tolist() == expected
    assert out["image"][:, 0, 0, 0].long().tolist() == expected
    assert (out["mask"][:, 0, 0, 0] / 2).long().tolist() == expected


def test_central_slicesd_options():
    data = {"image": numbered_bag(40)}
    out = CentralSlicesd("image", num_slices=30, indices_key=None)(data)
    assert set(out) == {"image"} and out["image"].shape[0] == 30
    out = CentralSlicesd("image", indices_key="idx")(data)
    assert out["idx"][0] == 5
    assert CentralSlicesd("absent", allow_missing_keys=True)(data) == data


def test_central_slicesd_misaligned_keys():
    data = {"image": MetaTensor(numbered_bag(40), meta={"filename_or_obj": "m.nii"}), "mask": numbered_bag(39)}
    data["mask"] = MetaTensor(data["mask"], meta={"filename_or_obj": "m.nii"})
    with pytest.raises(ValueError, match=r"m\.nii: key 'mask' has 39 slices but key 'image' has 40"):
        CentralSlicesd(["image", "mask"])(data)


@pytest.mark.parametrize("num_slices", [0, -3, 2.0])
def test_central_slices_bad_arguments(num_slices):
    with pytest.raises(ValueError, match="num_slices"):
        CentralSlices(num_slices)


# ================================================================== RandSampleSlices
PINNED_SEED0_N40 = [7, 10, 13, 15, 16, 18, 19, 21, 22, 25, 27, 28, 29, 30, 32, 34]  # computed once, pinned


def test_rand_sample_slicesd_pinned_draw():
    out = RandSampleSlicesd("image").set_random_state(seed=0)({"image": numbered_bag(40)})
    assert out["slice_indices"].tolist() == PINNED_SEED0_N40
    assert out["image"][:, 0, 0, 0].long().tolist() == PINNED_SEED0_N40


@pytest.mark.parametrize(
    "n, num_central, min_slices, max_slices, window",
    [
        (49, 30, 12, 18, range(9, 39)),  # window start (49 - 30) // 2 = 9
        (40, 30, 12, 18, range(5, 35)),
        (20, 30, 12, 18, range(0, 20)),  # fewer slices than the window: all of them
        (64, 10, 2, 5, range(27, 37)),
    ],
)
def test_rand_sample_slicesd_properties(n, num_central, min_slices, max_slices, window):
    sampler = RandSampleSlicesd(["image", "mask"], num_central, min_slices, max_slices).set_random_state(seed=3)
    sizes = set()
    for _ in range(100):
        out = sampler({"image": numbered_bag(n), "mask": numbered_bag(n, c=2) + 1000, "label": 1})
        idx = out["slice_indices"].tolist()
        sizes.add(len(idx))
        assert out["slice_indices"].dtype == torch.int64
        assert min_slices <= len(idx) <= max_slices
        assert idx == sorted(set(idx))  # sorted and unique
        assert all(i in window for i in idx)
        assert out["image"][:, 0, 0, 0].long().tolist() == idx  # the slices really taken
        assert (out["mask"][:, 1, 0, 0] - 1000).long().tolist() == idx  # same draw for every key
        assert out["label"] == 1
    assert min(sizes) == min_slices and max(sizes) == max_slices  # both bounds reachable


@pytest.mark.parametrize("n, expected", [(3, [0, 1, 2]), (1, [0]), (12, list(range(12)))])
def test_rand_sample_slicesd_tiny_volume_uses_all_slices(n, expected):
    out = RandSampleSlicesd("image").set_random_state(seed=1)({"image": numbered_bag(n)})
    assert out["slice_indices"].tolist() == expected


def test_rand_sample_slicesd_reproducible():
    def draws(seed):
        sampler = RandSampleSlicesd("image").set_random_state(seed=seed)
        return [sampler({"image": numbered_bag(40)})["slice_indices"].tolist() for _ in range(5)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)

    def compose_draw(seed):  # MONAI's Compose passes its seeding on to the sampler
        pipe = Compose([RandSampleSlicesd("image")]).set_random_state(seed=seed)
        return pipe({"image": numbered_bag(40)})["slice_indices"].tolist()

    assert compose_draw(7) == compose_draw(7)


def test_rand_sample_slicesd_options():
    data = {"image": numbered_bag(40)}
    out = RandSampleSlicesd("image", indices_key=None).set_random_state(0)(data)
    assert set(out) == {"image"}
    assert RandSampleSlicesd("absent", allow_missing_keys=True)(data) == data
    with pytest.raises(ValueError, match=r"key 'mask' has 39 slices but key 'image' has 40"):
        RandSampleSlicesd(["image", "mask"])({"image": numbered_bag(40), "mask": numbered_bag(39)})
    with pytest.raises(ValueError, match="empty bag"):
        RandSampleSlicesd("image")({"image": numbered_bag(0)})


def test_rand_sample_slices_array_level():
    sampler = RandSampleSlices(num_central=30, min_slices=4, max_slices=4).set_random_state(seed=0)
    bag = numbered_bag(40)
    first = sampler(bag)
    assert first.shape == (4, 1, 2, 2)
    assert first[:, 0, 0, 0].long().tolist() == sampler.indices.tolist()
    again = sampler(bag * 2, randomize=False)  # reuse the draw, e.g. for a mask
    torch.testing.assert_close(again, first * 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_slices": 0}, "min_slices"),
        ({"min_slices": 19}, r"min_slices must be <= max_slices, got min_slices=19, max_slices=18"),
        ({"min_slices": 5, "max_slices": 4}, "min_slices must be <= max_slices"),
        ({"num_central": 0}, "num_central"),
        ({"max_slices": 0}, "max_slices"),
        ({"min_slices": 2.5}, "min_slices"),
    ],
)
def test_rand_sample_slices_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandSampleSlicesd("image", **kwargs)
    with pytest.raises(ValueError, match=match):
        RandSampleSlices(**kwargs)
