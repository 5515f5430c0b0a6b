# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The training loader seeds its random transforms from the run's seed, whatever was built before it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import RandomizableTransform
from monai.utils import set_determinism

from bundle.loading import SeededDataLoader, transform_seed
from bundle_testing import CONFIGS, TINY, TINY_TRAIN


class DrawNumber(RandomizableTransform):
    """Replaces each item by a number drawn from the transform's own random state."""

    def __call__(self, data):
        return float(self.R.uniform())


def _draws(loader_type, run_seed: int, consumed: int, **kwargs) -> list[float]:
    """Items of a 4-item dataset after ``set_determinism(run_seed)`` and ``consumed`` draws from torch's generator."""
    set_determinism(seed=run_seed)
    torch.rand(consumed)  # what building a network before the loader does
    loader = loader_type(Dataset(data=[0, 1, 2, 3], transform=DrawNumber()), batch_size=4, **kwargs)
    try:
        return next(iter(loader)).tolist()
    finally:
        set_determinism(seed=None)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_transform_seed_is_monai_first_draw(seed):
    """The seed is the number MONAI's loader gives the transforms when nothing was built before it."""
    kwargs = {"seed": seed}
    assert _draws(SeededDataLoader, seed, 0, **kwargs) == _draws(DataLoader, seed, 0)
    generator = torch.Generator().manual_seed(seed)
    expected = torch.empty((), dtype=torch.int64).random_(generator=generator).item()
    assert transform_seed(seed) == expected


@pytest.mark.parametrize("consumed", [1, 7, 1000])
def test_draws_do_not_depend_on_what_was_built_before(consumed):
    seeded = _draws(SeededDataLoader, 3, consumed, seed=3)
    assert seeded == _draws(SeededDataLoader, 3, 0, seed=3)
    # MONAI's own loader gives other numbers: this is the dependence the seeded loader removes
    assert _draws(DataLoader, 3, consumed) != _draws(DataLoader, 3, 0)


def test_without_seed_it_is_monai_loader():
    assert _draws(SeededDataLoader, 5, 7, seed=None) == _draws(DataLoader, 5, 7)


def test_different_seeds_give_different_draws():
    assert _draws(SeededDataLoader, 0, 0, seed=0) != _draws(SeededDataLoader, 0, 0, seed=1)
    assert np.all(np.isfinite(_draws(SeededDataLoader, 0, 0, seed=0)))


def test_training_config_uses_seeded_loader():
    train = json.loads((CONFIGS / "train.json").read_text(encoding="utf-8"))
    loader = train["train"]["dataloader"]
    assert loader["_target_"] == "bundle.loading.SeededDataLoader"
    assert loader["seed"] == "@seed"


def _first_training_batches(tiny_dataset, bundle_root, network_first: bool) -> list[torch.Tensor]:
    """The first epoch's bags of the training config's loader, with or without building the network first."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(CONFIGS / "train.json")])
    parser.update({**TINY, **TINY_TRAIN, "dataset_dir": str(tiny_dataset), "bundle_root": str(bundle_root),
                   "seed": 7})
    set_determinism(seed=7)
    try:
        if network_first:
            parser.get_parsed_content("network_def")  # what the pre-flight does before the datasets exist
        loader = parser.get_parsed_content("train#dataloader")
        return [batch["image"].as_tensor().clone() for batch in loader]
    finally:
        set_determinism(seed=None)


def test_training_bags_do_not_depend_on_building_the_network_first(tiny_dataset, bundle_root):
    """The pre-flight builds the network before the training loader: the sampled slices and flips are the same."""
    first = _first_training_batches(tiny_dataset, bundle_root, network_first=True)
    second = _first_training_batches(tiny_dataset, bundle_root, network_first=False)
    assert len(first) == len(second) == 2
    for a, b in zip(first, second):
        assert torch.equal(a, b)
