# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``scripts/method_cost.py``: a two-method run writes the page and the JSON; bad arguments fail early."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

COST_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "method_cost.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(COST_SCRIPT), *args], capture_output=True, encoding="utf-8", timeout=600)


# slow (default suite under 15 min): measures two methods in subprocesses
@pytest.mark.slow
def test_two_methods_measured_relative_to_mi_pre_conv(tmp_path):
    page = tmp_path / "cost.md"
    proc = _run("--methods", "mi_pre_conv", "mims_cnn:top_k=2", "--image-size", "32", "32", "--bag-size", "2",
                "--batch-size", "2", "--steps", "2", "--warmup", "1", "--override", "backbone_depth=10",
                "feature_stage=2", "--output", str(page))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(page.with_suffix(".json").read_text())["rows"]
    assert [r["spec"] for r in rows] == ["mi_pre_conv", "mims_cnn:top_k=2"]
    assert [r["network"] for r in rows] == ["MIPreConv", "MIMSCNN"]
    assert all(r["step_ms_median"] > 0 and r["parameters"] > 0 for r in rows)
    text = page.read_text()
    assert "| MI-Pre-Conv | `MIPreConv` |" in text and "| MIMS (top_k=2) | `MIMSCNN` |" in text
    assert text.count("1.00×") == 2  # the reference row divided by itself
    assert "--methods mi_pre_conv" in text


@pytest.mark.parametrize(
    "args, fragment",
    [(["--methods", "mims"], "unknown method 'mims'"), (["--steps", "0"], "--steps must be >= 1")],
)
def test_bad_arguments_fail_before_any_work(args, fragment, tmp_path):
    proc = _run(*args, "--output", str(tmp_path / "x.md"))
    assert proc.returncode == 2 and fragment in proc.stderr
    assert not (tmp_path / "x.md").exists()
