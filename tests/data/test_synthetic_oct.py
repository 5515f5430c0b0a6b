# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of the synthetic OCT generator, its dataset writer and ``scripts/make_synthetic_oct.py``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.data import load_decathlon_datalist

from bundle.data.synthetic_oct import (
    DEFAULT_SHAPE,
    PRESETS,
    SyntheticOCTConfig,
    generate_case,
    make_synthetic_oct_dataset,
    preset_config,
    simulate_case,
)
import make_synthetic_oct  # scripts/ is on sys.path (tests/conftest.py)

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_synthetic_oct.py"
SMALL = (48, 64, 12)  # (H, W, D) for fast dataset tests
SMALL_CFG = SyntheticOCTConfig(central_slices=8)


def _central_range(d: int, central: int) -> range:
    central = min(central, d)
    first = (d - central) // 2
    return range(first, first + central)


# --------------------------------------------------------------------------------------------- generator


def test_same_seed_same_arrays_different_seed_different():
    a_img, a_mask = generate_case(np.random.default_rng(7), positive=True)
    b_img, b_mask = generate_case(np.random.default_rng(7), positive=True)
    c_img, _ = generate_case(np.random.default_rng(8), positive=True)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)


def test_generate_case_matches_simulate_case():
    image, mask = generate_case(np.random.default_rng(3), positive=True)
    case = simulate_case(np.random.default_rng(3), positive=True)
    np.testing.assert_array_equal(image, case.image)
    np.testing.assert_array_equal(mask, case.mask)


@pytest.mark.parametrize(
    "shape, config",
    [
        (DEFAULT_SHAPE, SyntheticOCTConfig()),
        ((64, 96, 32), SyntheticOCTConfig(num_lesions=(3, 3), lesion_radius=(6.0, 7.0), lesion_slices=(4, 4))),
        (SMALL, SMALL_CFG),
        ((40, 48, 3), SyntheticOCTConfig(lesion_slices=(2, 3))),
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_positive_masks_inside_band_and_central_slices(shape, config, seed):
    case = simulate_case(np.random.default_rng(seed), positive=True, shape=shape, config=config)
    h, w, d = shape
    assert case.image.shape == shape and case.mask.shape == shape
    assert case.image.dtype == np.float32 and case.mask.dtype == np.uint8
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    assert set(np.unique(case.mask)) == {0, 1}
    assert config.num_lesions[0] <= len(case.lesions) <= config.num_lesions[1]
    hh, ww, dd = np.nonzero(case.mask)
    # inside the retinal band of its own A-scan
    assert np.all(hh > case.top[ww, dd]) and np.all(hh < case.bottom[ww, dd])
    # inside the central slices
    central = _central_range(d, config.central_slices)
    assert set(dd.tolist()) <= set(central)
    for lesion in case.lesions:
        assert config.lesion_slices[0] <= len(lesion["slices"]) <= config.lesion_slices[1]
        assert set(lesion["slices"]) <= set(central)
        assert config.lesion_radius[0] - 1e-6 <= lesion["radii"][1] <= config.lesion_radius[1] + 1e-6
    # the cysts are dark: mean intensity in the mask well below the retina around it
    band = (np.arange(h)[:, None, None] > case.top[None]) & (np.arange(h)[:, None, None] < case.bottom[None])
    assert case.image[case.mask > 0].mean() < 0.6 * case.image[band & (case.mask == 0)].mean()


# (seed, positive, float64 sum of the image, voxels in the mask, B-scans of each lesion): the default generator's
# output, as it was before the presets and the lesion_darkening knob existed (the demo's data must not change)
DEFAULT_FINGERPRINTS = [
    (0, True, 29392.6937714079, 959, [[8, 9, 10, 11, 12], [13, 14, 15]]),
    (1, False, 28075.22022253078, 0, []),
]


@pytest.mark.parametrize("seed, positive, total, voxels, slices", DEFAULT_FINGERPRINTS)
def test_default_output_is_unchanged(seed, positive, total, voxels, slices):
    for config in (None, SyntheticOCTConfig(), preset_config(), preset_config("default")):
        case = simulate_case(np.random.default_rng(seed), positive=positive, config=config)
        np.testing.assert_allclose(case.image.sum(dtype=np.float64), total, rtol=1e-9)
        assert int(case.mask.sum()) == voxels and [lesion["slices"] for lesion in case.lesions] == slices
    assert SyntheticOCTConfig().lesion_darkening == (0.85, 0.97)  # the constant the generator used before


def test_presets_are_named_configs():
    assert list(PRESETS) == ["default", "hard"]
    assert preset_config() == preset_config("default") == SyntheticOCTConfig()
    hard = preset_config("hard")
    assert hard == SyntheticOCTConfig(**PRESETS["hard"])
    # the frozen benchmark (docs/results/synthetic_oct_hard_calibration.md, candidate D): the demo's cysts,
    # background and confounders, with the cysts anywhere in the central 30 B-scans instead of 16
    assert hard == dataclasses.replace(SyntheticOCTConfig(), central_slices=30)


def test_explicit_values_override_the_preset():
    config = preset_config("hard", num_lesions=(3, 3), lesion_darkening=[0.9, 0.9])
    assert config.num_lesions == (3, 3) and config.lesion_darkening == (0.9, 0.9)
    assert (config.central_slices, config.lesion_radius, config.lesion_slices) == (30, (4.0, 8.0), (3, 6))
    assert preset_config("default", central_slices=8) == SyntheticOCTConfig(central_slices=8)


@pytest.mark.parametrize(
    "preset, overrides, message",
    [("medium", {}, r"unknown synthetic OCT preset 'medium'; valid presets: default, hard"),
     ("hard", {"lesion_size": (1, 2)}, r"unknown SyntheticOCTConfig fields \['lesion_size'\]"),
     ("hard", {"lesion_darkening": (0.5, 1.2)}, "lesion_darkening"),
     ("hard", {"central_slices": 3}, "central_slices")],
)
def test_preset_config_rejects(preset, overrides, message):
    with pytest.raises(ValueError, match=message):
        preset_config(preset, **overrides)


@pytest.mark.parametrize("seed", range(4))
def test_hard_lesions_are_valid(seed):
    config = preset_config("hard")
    case = simulate_case(np.random.default_rng(seed), positive=True, config=config)
    assert 1 <= len(case.lesions) <= 3
    hh, ww, dd = np.nonzero(case.mask)
    assert np.all(hh > case.top[ww, dd]) and np.all(hh < case.bottom[ww, dd])
    for lesion in case.lesions:
        assert 3 <= len(lesion["slices"]) <= 6 and set(lesion["slices"]) <= set(_central_range(32, 30))
        assert 4.0 - 1e-6 <= lesion["radii"][1] <= 8.0 + 1e-6


def test_hard_lesions_can_lie_outside_the_central_16_slices():
    central16 = set(_central_range(DEFAULT_SHAPE[2], 16))
    outside = 0
    for seed in range(10):
        case = simulate_case(np.random.default_rng(seed), positive=True, config=preset_config("hard"))
        outside += any(not set(lesion["slices"]) <= central16 for lesion in case.lesions)
    assert outside >= 3  # cysts placed anywhere in the central 30 B-scans


def test_lower_lesion_darkening_makes_fainter_cysts():
    def contrast(config):
        ratios = []
        for seed in range(4):
            case = simulate_case(np.random.default_rng(seed), positive=True, config=config)
            band = (np.arange(64)[:, None, None] > case.top[None]) & (np.arange(64)[:, None, None] < case.bottom[None])
            ratios.append(case.image[case.mask > 0].mean() / case.image[band & (case.mask == 0)].mean())
        return float(np.mean(ratios))

    # the same cysts (only the darkening differs): fainter cysts keep more of the tissue around them
    assert contrast(preset_config("default", lesion_darkening=(0.6, 0.85))) > contrast(SyntheticOCTConfig()) + 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_negatives_have_empty_masks(seed):
    case = simulate_case(np.random.default_rng(seed), positive=False)
    assert case.mask.shape == DEFAULT_SHAPE and case.mask.dtype == np.uint8
    assert case.mask.sum() == 0 and case.lesions == []
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    # retina-like: the band is brighter than the vitreous above it
    h = np.arange(DEFAULT_SHAPE[0])[:, None, None]
    vitreous = h < case.top[None] - 2
    band = (h > case.top[None]) & (h < case.bottom[None])
    assert case.image[band].mean() > 3 * case.image[vitreous].mean()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lesion_radius": (5.0, 3.0)},
        {"lesion_radius": (3.0,)},
        {"num_lesions": (0, 2)},
        {"lesion_slices": (2.5, 4)},
        {"central_slices": 3},
        {"vessel_shadow": (0.2, 1.5)},
        {"speckle_looks": 0.0},
        {"noise_std": -0.1},
    ],
)
def test_config_rejects_invalid_values(kwargs):
    with pytest.raises(ValueError):
        SyntheticOCTConfig(**kwargs)


@pytest.mark.parametrize("shape", [(64, 96), (16, 96, 32), (64, 96, 0), (64.5, 96, 32)])
def test_invalid_shape_raises(shape):
    with pytest.raises(ValueError, match="shape"):
        generate_case(np.random.default_rng(0), positive=True, shape=shape)


# --------------------------------------------------------------------------------------------- dataset


def _make_small(out, **kwargs):
    args = {"num_train": 4, "num_val": 2, "num_test": 2, "seed": 5, "shape": SMALL}
    args.update(progress=False, config=SMALL_CFG)
    args.update(kwargs)
    return make_synthetic_oct_dataset(out, **args)


def test_dataset_layout_and_datalist(tmp_path):
    path = _make_small(tmp_path / "ds")
    assert path == tmp_path / "ds" / "datalist.json"
    data = json.loads(path.read_text())
    assert data["labels"] == {"0": "normal", "1": "cyst"} and data["num_classes"] == 2
    assert [len(data[k]) for k in ("training", "validation", "test")] == [4, 2, 2]
    names = [e["image"] for k in ("training", "validation", "test") for e in data[k]]
    assert names == [f"images/case_{i:04d}.nii.gz" for i in range(8)]
    for key, n in (("training", 4), ("validation", 2), ("test", 2)):
        assert sum(e["label"] for e in data[key]) == round(n * 0.5)
        items = load_decathlon_datalist(path, data_list_key=key)  # base_dir = the JSON's folder
        assert len(items) == n
        for item in items:
            assert isinstance(item["label"], int)
            assert Path(item["image"]).is_file() and Path(item["mask"]).is_file()
            img = nib.load(item["image"])
            mask = np.asanyarray(nib.load(item["mask"]).dataobj)
            assert img.shape == SMALL and img.get_data_dtype() == np.float32
            np.testing.assert_allclose(img.affine, np.eye(4))
            assert mask.dtype == np.uint8
            assert (mask.sum() > 0) == (item["label"] == 1)
    assert sorted(p.name for p in (tmp_path / "ds" / "masks").iterdir()) == [f"case_{i:04d}.nii.gz" for i in range(8)]
    generator = data["generator"]
    assert generator["preset"] == "default" and generator["overrides"] == {"central_slices": 8}
    assert generator["config"] == json.loads(json.dumps(dataclasses.asdict(SMALL_CFG)))  # every parameter
    assert "preset 'default' with central_slices changed" in data["description"]


def test_dataset_is_deterministic(tmp_path):
    a = _make_small(tmp_path / "a", num_train=3, num_val=1, num_test=0)
    b = _make_small(tmp_path / "b", num_train=3, num_val=1, num_test=0)
    _make_small(tmp_path / "c", num_train=3, num_val=1, num_test=0, seed=6)  # read below as root "c"
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ja["training"] == jb["training"] and ja["test"] == []
    arrays = {}
    for root in ("a", "b", "c"):
        arrays[root] = np.asarray(nib.load(tmp_path / root / "images" / "case_0000.nii.gz").dataobj)
    np.testing.assert_array_equal(arrays["a"], arrays["b"])
    assert not np.array_equal(arrays["a"], arrays["c"])


def test_dataset_refuses_to_overwrite(tmp_path):
    out = tmp_path / "ds"
    _make_small(out)
    before = (out / "images" / "case_0000.nii.gz").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        _make_small(out, seed=9)
    assert (out / "images" / "case_0000.nii.gz").read_bytes() == before
    # a stray image in images/ alone is also protected
    lone = tmp_path / "lone"
    (lone / "images").mkdir(parents=True)
    (lone / "images" / "mine.nii.gz").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="images"):
        _make_small(lone)
    # overwrite=True replaces the dataset and removes stale cases of the larger earlier run
    _make_small(out, num_train=2, num_val=1, num_test=0, overwrite=True)
    assert len(list((out / "images").glob("case_*.nii.gz"))) == 3
    assert len(list((out / "masks").glob("case_*.nii.gz"))) == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"num_train": -1}, {"num_train": 0, "num_val": 0, "num_test": 0}, {"positive_fraction": 1.5}],
)
def test_dataset_rejects_invalid_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        _make_small(tmp_path / "ds", **kwargs)


# --------------------------------------------------------------------------------------------- CLI


def test_cli_help_from_another_directory(tmp_path):
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8", check=True
    ).stdout
    for option in ("--out", "--num-train", "--num-val", "--num-test", "--seed", "--shape", "--overwrite"):
        assert option in out


def test_cli_writes_and_refuses(tmp_path, capsys):
    main = make_synthetic_oct.main
    argv = ["--out", str(tmp_path / "ds"), "--num-train", "2", "--num-val", "1", "--num-test", "1",
            "--shape", *map(str, SMALL), "--central-slices", "8", "--no-progress"]
    assert main(argv) == 0
    assert str(tmp_path / "ds" / "datalist.json") in capsys.readouterr().out
    assert main(argv) == 1
    assert "overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--seed", "1"]) == 0


def test_cli_preset_and_explicit_options(tmp_path):
    main = make_synthetic_oct.main
    base = ["--num-train", "2", "--num-val", "1", "--num-test", "1", "--shape", "48", "64", "32", "--no-progress"]
    assert main(["--out", str(tmp_path / "hard"), *base, "--preset", "hard", "--num-lesions", "1", "1"]) == 0
    generator = json.loads((tmp_path / "hard" / "datalist.json").read_text())["generator"]
    assert generator["preset"] == "hard" and generator["overrides"] == {"num_lesions": [1, 1]}
    expected = dataclasses.asdict(preset_config("hard", num_lesions=(1, 1)))
    assert generator["config"] == json.loads(json.dumps(expected))
    # no --preset: the default preset, and the same arrays as the package's default
    assert main(["--out", str(tmp_path / "default"), *base]) == 0
    generator = json.loads((tmp_path / "default" / "datalist.json").read_text())["generator"]
    assert generator["preset"] == "default" and generator["overrides"] == {}
    make_synthetic_oct_dataset(tmp_path / "package", num_train=2, num_val=1, num_test=1, shape=(48, 64, 32),
                               progress=False)
    for name in ("case_0000.nii.gz", "case_0003.nii.gz"):
        arrays = [np.asarray(nib.load(tmp_path / root / "images" / name).dataobj) for root in ("default", "package")]
        np.testing.assert_array_equal(*arrays)


def test_cli_parser_leaves_unset_options_to_the_preset():
    args = make_synthetic_oct.build_parser().parse_args(["--out", "x", "--preset", "hard", "--central-slices", "20"])
    assert args.preset == "hard" and args.central_slices == 20
    assert not any(hasattr(args, name) for name in make_synthetic_oct.CONFIG_OPTIONS if name != "central_slices")
    with pytest.raises(SystemExit):
        make_synthetic_oct.build_parser().parse_args(["--out", "x", "--preset", "medium"])
