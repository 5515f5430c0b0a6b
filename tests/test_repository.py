# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""What the README says about the repository itself holds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked(path: str) -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", path], cwd=REPO, capture_output=True, encoding="utf-8", check=True).stdout
    return out.split()


def test_no_checkpoint_is_committed():
    """README: checkpoints in models/ are made by training and not committed (a committed one goes stale when
    the networks change: the AdrenalMNIST3D checkpoint once stopped loading after a refactor)."""
    committed = [f for f in _tracked("models") if f.endswith((".pt", ".pth", ".ts", ".onnx"))]
    assert committed == []
    assert "/models/**/*.pt" in (REPO / ".gitignore").read_text().split()


@pytest.mark.parametrize(
    "path, ignored",
    [
        ("models/model.pt", True),
        ("models/adrenalmnist3d/model.pt", True),  # checkpoints in models/ subfolders
        ("models/a/b/model.ts", True),
        ("models/a/model.pth", True),
        ("models/a/model.onnx", True),
        ("models/a/model.decision.json", True),  # sidecars that belong to an ignored checkpoint
        ("models/a/model.provenance.json", True),
        ("models/.model.pt.lock", True),  # the promotion lock and a promotion's temporary file
        ("models/a/.tmp_model.pt", True),
        ("models/README.md", False),  # anything else under models/ can still be committed
        ("configs/train.json", False),
    ],
)
def test_gitignore_covers_checkpoints_in_models_subfolders(path, ignored):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert (result.returncode == 0) == ignored
