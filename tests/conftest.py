# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Fixtures shared by the test folders: a tiny synthetic dataset. Also puts ``scripts/`` on ``sys.path``,
so that the command-line tests import a script as a module (``import compare_methods``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

SCRIPTS_DIR = str(Path(__file__).resolve().parents[1] / "scripts")
if SCRIPTS_DIR not in sys.path:
    sys.path.insert(0, SCRIPTS_DIR)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """4 training, 4 validation and 4 test volumes of 32 x 32 x 8 voxels (read-only: copy to modify)."""
    from bundle.data.synthetic_oct import make_synthetic_oct_dataset

    out = tmp_path_factory.mktemp("synthetic_oct")
    make_synthetic_oct_dataset(out, num_train=4, num_val=4, num_test=4, shape=(32, 32, 8), seed=1, progress=False)
    return out
