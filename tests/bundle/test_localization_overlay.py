# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Overlay, montage, PNG and heatmap-volume helpers of ``bundle.localization`` on tiny hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bundle.config import as_bool
from bundle.localization import heatmap_volume, montage, overlay_heatmap, save_png
from bundle.localization.case_outputs import case_file_stem


def test_overlay_grey_is_the_papers_formula():
    r = np.array([[0.0, 1.0], [0.4, 0.2]])
    p = np.array([[200.0, 0.0], [100.0, 300.0]])  # 300 is clipped to 255
    # H = 0.6 * 255 R + 0.3 P*: [[60, 153], [91.2, 107.1]]
    expected = np.array([[60, 153], [91, 107]], dtype=np.uint8)
    out = overlay_heatmap(r, p, colormap=None)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], expected)


def test_overlay_with_colour_map_exact():
    from matplotlib.colors import LinearSegmentedColormap

    black_to_red = LinearSegmentedColormap.from_list("black_to_red", [(0, 0, 0), (1, 0, 0)], N=256)
    r = np.array([[0.1, 0.6]])
    p = np.array([[255.0, 102.0]])  # colour map values: red 1.0 and 0.4 (entry 102 of 256)
    out = overlay_heatmap(r, p, colormap=black_to_red)
    # red: 15.3 + 76.5 = 91.8, 91.8 + 30.6 = 122.4; green and blue: 0.6 * 255 R only
    np.testing.assert_array_equal(out[0, :, 0], [92, 122])
    np.testing.assert_array_equal(out[0, :, 1], [15, 92])
    np.testing.assert_array_equal(out[0, :, 2], [15, 92])


def test_overlay_rgb_slice_and_default_colour_map():
    r = np.zeros((1, 2, 3))
    r[0, 0] = [1.0, 0.5, 0.0]
    out = overlay_heatmap(r, np.zeros((1, 2)))  # inferno: (almost) black where there is no evidence
    np.testing.assert_allclose(out[0, 0], [153, 76.5, 0], atol=1.5)
    assert out[0, 1].max() <= 1
    hot = overlay_heatmap(np.zeros((1, 1)), np.full((1, 1), 255.0))
    assert hot[0, 0, 0] > 70  # inferno's 255 is pale yellow


@pytest.mark.parametrize(
    "slice_2d, heatmap, kwargs, fragment",
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), {}, "does not match"),
        (np.zeros((2, 2, 4)), np.zeros((2, 2)), {}, "grey"),
        (np.zeros((2, 2)), np.zeros((2, 2)), {"colormap": "no_such_map"}, "unknown colour map"),
    ],
)
def test_overlay_rejects(slice_2d, heatmap, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        overlay_heatmap(slice_2d, heatmap, **kwargs)


def test_montage_layout_exact():
    tiles = [np.full((2, 2), v, dtype=np.uint8) for v in (10, 20, 30)]
    out = montage(tiles, columns=2, padding=1, highlight=[False, True, False])
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8  # 2 rows x 2 columns of 4 x 4 cells
    expected = np.zeros((8, 8), dtype=np.uint8)
    expected[1:3, 1:3] = 10
    expected[1:3, 5:7] = 20
    expected[5:7, 1:3] = 30
    np.testing.assert_array_equal(out[..., 0], expected)  # red: the ring is cyan, so only the tiles
    # the highlighted cell (row 0, column 1) has a cyan ring (0, 255, 255) one pixel wide
    ring = np.zeros((8, 8), dtype=bool)
    ring[0:4, 4:8] = True
    ring[1:3, 5:7] = False
    for channel in (1, 2):
        np.testing.assert_array_equal(out[..., channel], np.where(ring, 255, expected))


def test_montage_captions_and_rejects():
    rgb = np.zeros((3, 5, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    out = montage([rgb, rgb], columns=3, captions=["1", "2 #1"], padding=0)
    strip = out.shape[0] - 3
    assert out.shape[1] == 10 and strip > 0  # columns capped at the number of images; caption strip on top
    np.testing.assert_array_equal(out[strip:, :, 1], 200)
    assert out[:strip].max() > 0  # some caption text was drawn
    with pytest.raises(ValueError, match="at least one image"):
        montage([], columns=1)
    with pytest.raises(ValueError, match="columns"):
        montage([rgb], columns=0)
    with pytest.raises(ValueError, match="1 captions given for 2 images"):
        montage([rgb, rgb], columns=1, captions=["a"])
    with pytest.raises(ValueError, match="uint8"):
        montage([np.zeros((2, 2))], columns=1)


def test_save_png_round_trip(tmp_path):
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    path = save_png(tmp_path / "sub" / "x.png", image)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(png), image)
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary file left
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "y.png", image.astype(np.float32))


def test_heatmap_volume_places_slices_back():
    heat = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    volume = heatmap_volume(heat, [0, 2], spatial_shape=(2, 3, 2), slice_axis=1)  # slices [2, 2]: no resizing
    assert volume.shape == (2, 3, 2) and volume.dtype == np.float32
    np.testing.assert_array_equal(volume[:, 0, :], heat[0])
    np.testing.assert_array_equal(volume[:, 2, :], heat[1])
    np.testing.assert_array_equal(volume[:, 1, :], 0)
    # resized to the original slice size (bilinear: a constant stays constant), put at index 1 of axis 2
    volume = heatmap_volume(np.full((1, 2, 2), 100.0), [1], spatial_shape=(4, 6, 3), slice_axis=2)
    np.testing.assert_allclose(volume[..., 1], 100.0)
    np.testing.assert_array_equal(volume[..., [0, 2]], 0)
    image = heatmap_volume(np.full((1, 2, 2), 300.0), [0], spatial_shape=(3, 5))  # a 2-D image: resized only
    assert image.shape == (3, 5) and image.max() == 255.0
    with pytest.raises(ValueError, match=r"slice indices \[3\] out of range for 3 slices along axis 2"):
        heatmap_volume(np.zeros((1, 2, 2)), [3], spatial_shape=(4, 6, 3))


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        (" yes ", True),
        ("off", False),
        (1, True),
        (0, False),
    ],
)
def test_as_bool(value, expected):
    assert as_bool(value) is expected


@pytest.mark.parametrize("value", ["flase", 2, None, 0.5])
def test_as_bool_rejects(value):
    with pytest.raises(ValueError, match="localize must be true or false"):
        as_bool(value, "localize")


@pytest.mark.parametrize(
    "path, stem",
    [
        ("/data/case_1.nii.gz", "case_1"),
        ("/data/scan.NII", "scan"),
        ("b scan (2).png", "b_scan_2_"),
        ("/data/dicom_series/", "dicom_series"),
        ("/data/.nii.gz", "nii.gz"),  # no hidden files
        ("/oct/right eye.e2e", "right_eye"),  # OCT vendor files too
        ("/oct/macula.FDS", "macula"),
    ],
)
def test_case_file_stem(path, stem):
    assert case_file_stem(path) == stem
