# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Fixtures of the bundle tests: a tiny synthetic dataset and an empty bundle root."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle.data.synthetic_oct import make_synthetic_oct_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """4 training, 4 validation and 4 test volumes of 32 x 32 x 8 voxels (read-only: copy to modify)."""
    out = tmp_path_factory.mktemp("synthetic_oct")
    make_synthetic_oct_dataset(out, num_train=4, num_val=4, num_test=4, shape=(32, 32, 8), seed=1, progress=False)
    return out


@pytest.fixture
def bundle_root(tmp_path) -> Path:
    """An empty bundle root folder for outputs (the configs stay in the repository)."""
    root = tmp_path / "bundle"
    root.mkdir()
    return root
