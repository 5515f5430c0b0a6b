# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The README's first command, end to end (slow: about 6 minutes on 2 CPU cores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import run_demo  # scripts/ is on sys.path (tests/conftest.py)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_demo.py"


def test_help_runs_from_another_folder(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True,
                            encoding="utf-8")
    assert result.returncode == 0 and "--bundle-root" in result.stdout


@pytest.mark.slow
def test_demo_learns_the_synthetic_task(tmp_path):
    metrics = run_demo.run_demo(["--bundle-root", str(tmp_path)])
    assert metrics["num_cases"] == 60
    assert metrics["auroc"] >= 0.85, metrics  # docs/README.md reports what the demo reaches
    assert (tmp_path / "models" / "model.pt").is_file()
    assert (tmp_path / "eval" / "mlruns.db").is_file()
