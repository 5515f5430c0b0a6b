# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Fixtures of the bundle tests: an empty bundle root (the tiny dataset is in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def bundle_root(tmp_path) -> Path:
    """An empty bundle root folder for outputs (the configs stay in the repository)."""
    root = tmp_path / "bundle"
    root.mkdir()
    return root
