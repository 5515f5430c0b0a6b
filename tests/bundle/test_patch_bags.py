# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Large 2-D images as bags of patches through the bundle: the patch overlay trains, evaluates (chunked),
infers and explains attention MIL and MIMS-CNN, painting heatmaps and instance scores onto the full image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bundle_testing import TINY, TINY_TRAIN, run_workflow

PATCHES = ["datasets/synthetic_large2d.json", "datasets/patch_bags.json"]
#: 96 x 136 images in 32 x 32 patches: a 3 x 5 grid (the last column padded), chunks of 4 patches
PATCH_SETTINGS = {"patch_size": [32, 32], "train_max_patches": 6, "train_batch_size": 2, "val_batch_size": 2}


@pytest.fixture(scope="module")
def large2d_dataset(tmp_path_factory) -> Path:
    from bundle.data.synthetic_large2d import make_synthetic_large2d_dataset

    out = tmp_path_factory.mktemp("large2d")
    make_synthetic_large2d_dataset(out, num_train=4, num_val=4, num_test=4, size=(96, 136), seed=2, progress=False)
    return out


def _overrides(root, dataset, **extra):
    tiny = {k: v for k, v in TINY.items() if k != "image_size"}  # image_size follows patch_size
    return {"bundle_root": str(root), "dataset_dir": str(dataset), **tiny, **PATCH_SETTINGS, **extra}


def _png(path: Path) -> tuple[str, tuple[int, int]]:
    with Image.open(path) as image:
        return image.mode, image.size


# the gated case is slow (test_methods covers abmil_gated): the default suite stays under 15 min
@pytest.mark.parametrize("method", [None, pytest.param("abmil_gated", marks=pytest.mark.slow)])
def test_patch_bags_train_evaluate_infer_and_explain(method, large2d_dataset, bundle_root):
    overlays = PATCHES + ([f"methods/{method}.json"] if method else [])
    train = {**TINY_TRAIN, "run_stamp": "p", "train_batch_size": 2}
    run_workflow(["common.json", "train.json", *overlays], "train", _overrides(bundle_root, large2d_dataset, **train))
    ckpt = bundle_root / "models" / "synthetic_large2d" / "model.pt"
    assert ckpt.is_file()

    run_workflow(["common.json", "evaluate.json", *overlays], "eval", _overrides(bundle_root, large2d_dataset))
    metrics = json.loads((bundle_root / "eval" / "synthetic_large2d" / "metrics.json").read_text())
    assert metrics["num_cases"] == 4

    images = large2d_dataset / "images"
    overrides = _overrides(bundle_root, large2d_dataset, input=str(images), localize=True, num_key_slices=2)
    run_workflow(["common.json", "inference.json", *overlays], "infer", overrides)
    out = bundle_root / "eval" / "synthetic_large2d" / "inference"
    rows = json.loads((out / "predictions.json").read_text())
    assert len(rows) == 12
    for row in rows[:4]:
        assert row["slice_indices"] == list(range(15))  # every grid cell (no tissue filter), row-major
        stem = Path(row["case"]).name.split(".")[0]
        for name in ("heatmap", "instance_scores"):
            assert _png(out / "localization" / f"{stem}_{name}.png") == ("L", (136, 96))  # the image's size
        assert _png(out / "localization" / f"{stem}_overlay.png") == ("RGB", (136, 96))
        assert len(row["key_slices"]) == 2
        for index in row["key_slices"]:
            assert _png(out / "localization" / f"{stem}_patch{index}.png") == ("RGB", (32, 32))
        scores = np.asarray(Image.open(out / "localization" / f"{stem}_instance_scores.png"))
        best = row["key_slices"][0]
        y, x = (best // 5) * 32, (best % 5) * 32
        assert scores[y : y + 32, x : x + 32].min() == 255  # the best patch holds the largest score
        if method == "abmil_gated":  # attention weights, all positive: every patch is painted
            assert (scores[:, :128] > 0).all()
