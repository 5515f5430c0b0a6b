# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of the synthetic large-image generator, its dataset writer and ``scripts/make_synthetic_large2d.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from monai.data import load_decathlon_datalist
from PIL import Image

from bundle.data.synthetic_large2d import (
    DEFAULT_SIZE,
    SyntheticLarge2DConfig,
    generate_case,
    make_synthetic_large2d_dataset,
    simulate_case,
    to_uint8,
)
from transforms import LoadVolumed, ToBagd
import make_synthetic_large2d  # scripts/ is on sys.path (tests/conftest.py)

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic_large2d.py"
SMALL = (96, 128)  # (H, W) for fast dataset tests


def _disc_mask(size, lesions):
    rows, cols = np.mgrid[: size[0], : size[1]]
    mask = np.zeros(size, dtype=bool)
    for lesion in lesions:
        (cy, cx), r = lesion["center"], lesion["radius"]
        mask |= np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2) / r <= 1.0
    return mask


# --------------------------------------------------------------------------------------------- generator


def test_same_seed_same_arrays_different_seed_different():
    a_img, a_mask = generate_case(np.random.default_rng(7), positive=True, size=SMALL)
    b_img, b_mask = generate_case(np.random.default_rng(7), positive=True, size=SMALL)
    c_img, _ = generate_case(np.random.default_rng(8), positive=True, size=SMALL)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


@pytest.mark.parametrize(
    "size, config",
    [
        (DEFAULT_SIZE, SyntheticLarge2DConfig()),
        (SMALL, SyntheticLarge2DConfig()),
        ((64, 64), SyntheticLarge2DConfig(num_lesions=(2, 2), lesion_radius=(3.0, 3.5), blob_radius=(4.0, 8.0))),
        ((128, 96), SyntheticLarge2DConfig(num_lesions=(3, 3), lesion_radius=(6.0, 8.0), num_fibres=(0, 0))),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_positive_cases_exact_masks_and_bright_lesions(size, config, seed):
    case = simulate_case(np.random.default_rng(seed), positive=True, size=size, config=config)
    assert case.image.shape == size and case.mask.shape == size
    assert case.image.dtype == np.float32 and case.mask.dtype == np.uint8
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert set(np.unique(case.mask)) == {0, 1}
    assert config.num_lesions[0] <= len(case.lesions) <= config.num_lesions[1]
    # the mask is exactly the union of the discs of the listed lesions
    np.testing.assert_array_equal(case.mask.astype(bool), _disc_mask(size, case.lesions))
    for lesion in case.lesions:
        (cy, cx), r = lesion["center"], lesion["radius"]
        assert config.lesion_radius[0] <= r <= config.lesion_radius[1]
        assert config.lesion_contrast[0] <= lesion["contrast"] <= config.lesion_contrast[1]
        assert r + 3 <= cy <= size[0] - 1 - r - 3 and r + 3 <= cx <= size[1] - 1 - r - 3  # inside, with margin
        # brighter than a ring around it (2 to 3 radii from the centre)
        rows, cols = np.mgrid[: size[0], : size[1]]
        d = np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2)
        ring = (d >= 2 * r) & (d <= 3 * r) & ~case.mask.astype(bool)
        assert case.image[d <= 0.5 * r].mean() > case.image[ring].mean() + 0.5 * lesion["contrast"]
    # lesions do not touch each other
    for i, a in enumerate(case.lesions):
        for b in case.lesions[i + 1 :]:
            distance = np.hypot(a["center"][0] - b["center"][0], a["center"][1] - b["center"][1])
            assert distance > a["radius"] + b["radius"] + 4


def test_default_lesions_are_about_one_percent_of_the_width():
    areas = []
    for seed in range(6):
        case = simulate_case(np.random.default_rng(seed), positive=True)
        for lesion in case.lesions:
            assert 0.007 <= lesion["radius"] / DEFAULT_SIZE[1] <= 0.012
        areas.append(case.mask.sum() / case.mask.size)
    assert max(areas) < 0.001  # at most 2 discs of radius 6 px in 512 x 512


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_negatives_have_empty_masks(seed):
    case = simulate_case(np.random.default_rng(seed), positive=False, size=SMALL)
    assert case.mask.shape == SMALL and case.mask.dtype == np.uint8
    assert case.mask.sum() == 0 and case.lesions == []
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lesion_radius": (5.0, 3.0)},
        {"lesion_radius": (0.5, 3.0)},
        {"num_lesions": (0, 2)},
        {"num_fibres": (1.5, 2)},
        {"lesion_contrast": (0.2, 1.5)},
        {"noise_std": -0.1},
    ],
)
def test_config_rejects_invalid_values(kwargs):
    with pytest.raises(ValueError):
        SyntheticLarge2DConfig(**kwargs)


@pytest.mark.parametrize("size", [(512,), (32, 512), (512, 512, 3), (100.5, 128)])
def test_invalid_size_raises(size):
    with pytest.raises(ValueError, match="size"):
        generate_case(np.random.default_rng(0), positive=True, size=size)


# --------------------------------------------------------------------------------------------- dataset


def _make_small(out, **kwargs):
    args = {"num_train": 4, "num_val": 2, "num_test": 2, "seed": 5, "size": SMALL, "progress": False}
    args.update(kwargs)
    return make_synthetic_large2d_dataset(out, **args)


def test_dataset_layout_datalist_and_png_contents(tmp_path):
    path = _make_small(tmp_path / "ds")
    assert path == tmp_path / "ds" / "datalist.json"
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "normal", "1": "lesion"} and data["num_classes"] == 2
    assert data["tensorImageSize"] == "2D" and data["generator"]["size"] == list(SMALL)
    assert [len(data[k]) for k in ("training", "validation", "test")] == [4, 2, 2]
    names = [e["image"] for k in ("training", "validation", "test") for e in data[k]]
    assert names == [f"images/case_{i:04d}.png" for i in range(8)]
    assert [e["mask"] for k in ("training", "validation", "test") for e in data[k]] == [
        f"masks/case_{i:04d}.png" for i in range(8)
    ]
    # the files hold exactly the generator's arrays: case i uses the i-th stream spawned from the seed
    streams = np.random.SeedSequence(5).spawn(2)[1].spawn(8)
    for key, n in (("training", 4), ("validation", 2), ("test", 2)):
        assert sum(e["label"] for e in data[key]) == round(n * 0.5)
        items = load_decathlon_datalist(path, data_list_key=key)  # base_dir = the JSON's folder
        for item in items:
            index = int(Path(item["image"]).stem.split("_")[1])
            image, mask = generate_case(np.random.default_rng(streams[index]), bool(item["label"]), size=SMALL)
            with Image.open(item["image"]) as img:
                assert img.mode == "L" and img.size == (SMALL[1], SMALL[0])
                np.testing.assert_array_equal(np.asarray(img), to_uint8(image))
            with Image.open(item["mask"]) as m:
                stored = np.asarray(m)
            np.testing.assert_array_equal(stored, mask)
            assert (stored.sum() > 0) == (item["label"] == 1)
            # the bundle reads it as a bag of one slice
            bag = ToBagd("image")(LoadVolumed("image")({"image": item["image"]}))["image"]
            assert tuple(bag.shape) == (1, 1, *SMALL)


def test_dataset_is_deterministic(tmp_path):
    a = _make_small(tmp_path / "a", num_train=3, num_val=1, num_test=0)
    b = _make_small(tmp_path / "b", num_train=3, num_val=1, num_test=0)
    _make_small(tmp_path / "c", num_train=3, num_val=1, num_test=0, seed=6)  # read below by path
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    for name in ("case_0000.png", "case_0003.png"):
        assert (tmp_path / "a" / "images" / name).read_bytes() == (tmp_path / "b" / "images" / name).read_bytes()
        assert (tmp_path / "a" / "masks" / name).read_bytes() == (tmp_path / "b" / "masks" / name).read_bytes()
    first = "images/case_0000.png"
    assert (tmp_path / "a" / first).read_bytes() != (tmp_path / "c" / first).read_bytes()


def test_dataset_refuses_to_overwrite_and_cleans_on_overwrite(tmp_path):
    out = tmp_path / "ds"
    _make_small(out)
    before = (out / "images" / "case_0000.png").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        _make_small(out, seed=9)
    assert (out / "images" / "case_0000.png").read_bytes() == before
    _make_small(out, num_train=2, num_val=1, num_test=0, overwrite=True)
    assert len(list((out / "images").glob("case_*.png"))) == 3
    assert len(list((out / "masks").glob("case_*.png"))) == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"num_train": -1}, {"num_train": 0, "num_val": 0, "num_test": 0}, {"positive_fraction": 1.5}, {"size": (32, 32)}],
)
def test_dataset_rejects_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        _make_small(tmp_path / "ds", **kwargs)


# --------------------------------------------------------------------------------------------- CLI


def test_cli_help_from_another_directory(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8", check=True
    ).stdout
    for option in ("--out", "--num-train", "--num-val", "--num-test", "--seed", "--size", "--lesion-radius",
                   "--overwrite"):
        assert option in out


def test_cli_writes_with_options_and_refuses(tmp_path, capsys):
    main = make_synthetic_large2d.main
    argv = ["--out", str(tmp_path / "ds"), "--num-train", "2", "--num-val", "1", "--num-test", "1",
            "--size", "64", "80", "--lesion-radius", "3", "3", "--num-lesions", "2", "2", "--no-progress"]
    assert main(argv) == 0
    assert str(tmp_path / "ds" / "datalist.json") in capsys.readouterr().out
    data = json.loads((tmp_path / "ds" / "datalist.json").read_text())
    assert data["generator"]["size"] == [64, 80]
    assert data["generator"]["config"]["lesion_radius"] == [3.0, 3.0]
    assert data["generator"]["config"]["num_lesions"] == [2, 2]
    assert main(argv) == 1
    assert "overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0


def _auroc(scores, labels):
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = scores[labels == 1], np.sort(scores[labels == 0])
    below = np.searchsorted(neg, pos, "left")
    equal = np.searchsorted(neg, pos, "right") - below
    return float((below + 0.5 * equal).sum() / (pos.size * neg.size))


@pytest.mark.parametrize(
    "config",
    [SyntheticLarge2DConfig(), SyntheticLarge2DConfig(lesion_radius=(6.0, 9.0), lesion_contrast=(0.35, 0.5))],
    ids=["default", "larger-lesions"],
)
def test_image_level_statistics_do_not_give_the_label_away(config):
    """After the bundle's per-image min-max scaling, the mean, spread and maximum of the 8-bit image separate
    the classes no better than AUROC 0.25-0.75 on 40 images (the lesion has to be found)."""
    stats, labels = {"mean": [], "std": [], "p1": [], "max_raw": []}, []
    for i in range(40):
        image, _ = generate_case(np.random.default_rng(100 + i), positive=bool(i % 2), config=config)
        raw = to_uint8(image).astype(np.float64)
        scaled = (raw - raw.min()) / (raw.max() - raw.min())
        stats["mean"].append(scaled.mean())
        stats["std"].append(scaled.std())
        stats["p1"].append(np.percentile(scaled, 1))
        stats["max_raw"].append(raw.max())
        labels.append(i % 2)
    for name, values in stats.items():
        assert 0.25 <= _auroc(values, labels) <= 0.75, name
