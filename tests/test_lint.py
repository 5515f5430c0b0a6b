# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The whole repository passes ruff with the configuration of ``pyproject.toml`` (120 columns, pycodestyle and
pyflakes, the model zoo's lint)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    assert importlib.util.find_spec("ruff") is not None, (
        "ruff is not installed in this environment; install the test extra: pip install -e .[test]"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        encoding="utf-8",
    )
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"
