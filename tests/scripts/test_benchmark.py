# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Tests of ``scripts/benchmark.py``: a ``--quick`` run writes every section of the report (the command line end to end;
the package code is tested in ``tests/bundle/test_benchmark.py``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import benchmark  # scripts/ is on sys.path (tests/conftest.py)

__all__: list[str] = []

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"


def _number_after(text: str, label: str) -> float:
    """The number in bold right after ``label`` (e.g. ``Ratio end to end / model only: **0.873**``)."""
    match = re.search(re.escape(label) + r"[^*\n]*\*\*(-?[0-9.]+|nan|inf)\*\*", text)
    assert match, f"no bold number after {label!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("benchmark") / "perf.md"
    assert benchmark.main(["--quick", "--output", str(out)]) == 0
    return out.read_text(encoding="utf-8")


# slow (default suite under 15 min): runs the quick benchmark (module fixture)
@pytest.mark.slow
def test_quick_report_has_machine_versions_and_command(quick_report):
    assert quick_report.startswith("# Performance\n")
    assert re.search(r"^- Date: \d{4}-\d\d-\d\d \d\d:\d\d", quick_report, re.M)
    assert re.search(r"^- Command: `python \S*benchmark\.py --quick --output \S+perf\.md`$", quick_report, re.M)
    machine = re.search(r"^- Machine: (.+)$", quick_report, re.M).group(1)
    assert re.search(r"\d+ logical cores", machine) and "torch.get_num_threads() = " in machine
    assert re.search(r"RAM \d+\.\d GiB", machine)
    versions = re.search(r"^- Versions: (.+)$", quick_report, re.M).group(1)
    for package in ("python", "torch", "monai", "numpy"):
        assert re.search(rf"\b{package} \d+\.\d+", versions), package


# slow (default suite under 15 min): runs the quick benchmark (module fixture)
@pytest.mark.slow
def test_quick_report_has_every_section_with_numeric_ratios_and_verdicts(quick_report):
    for heading in (
        "## Summary",
        "## 1. Training throughput",
        "## 2. Inference throughput",
        "## 3. Memory does not grow with the number of slices",
        "## 4. Backbones",
    ):
        assert f"\n{heading}\n" in quick_report, heading
    sections = re.split(r"\n## ", quick_report)
    training = next(s for s in sections if s.startswith("1. Training"))
    inference = next(s for s in sections if s.startswith("2. Inference"))
    memory = next(s for s in sections if s.startswith("3. Memory"))
    backbones = next(s for s in sections if s.startswith("4. Backbones"))

    for section, goal in ((training, ">= 0.95"), (inference, ">= 0.9")):
        ratio = _number_after(section, "Ratio end to end / model only:")
        assert 0.0 < ratio < 10.0
        verdict = re.search(rf"goal {goal}: \*\*(PASS|MISS)\*\*", section)
        assert verdict and verdict.group(1) == ("PASS" if ratio >= float(goal.split()[1]) else "MISS")
    peak_ratio = _number_after(memory, "Chunked, peak RSS 32 / 4:")
    increment_ratio = _number_after(memory, "Chunked, increment 32 / 4:")
    assert 0.5 < peak_ratio < 2.0 and increment_ratio == increment_ratio  # not NaN
    verdict = re.search(r"goal <= 1\.2: \*\*(PASS|MISS)\*\*", memory).group(1)
    assert verdict == ("PASS" if peak_ratio <= 1.2 else "MISS")
    assert memory.count("| `ChunkedBagInferer(chunk_size=") == 2 and memory.count("| plain `network(x)`") == 2
    assert "ru_maxrss" in memory and "FRESH" in memory

    row = next(line for line in backbones.splitlines() if line.startswith("| ResNet-10 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 12
    gflop_per_slice, infer_rate, percent_of_peak, matmul_peak = (
        float(cells[2]), float(cells[3]), float(cells[5].rstrip("%")), float(cells[11])
    )
    assert gflop_per_slice > 0 and infer_rate > 0 and percent_of_peak > 0 and matmul_peak > 0
    assert "FlopCounterMode" in backbones and "multiply-add counted as 2 FLOPs" in backbones

    summary = next(s for s in sections if s.startswith("Summary"))
    assert len(re.findall(r"\| (PASS|MISS) \|", summary)) == 4


def test_help_explains_every_option(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, encoding="utf-8", check=True
    )
    parser = benchmark.build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
        for option in action.option_strings:
            assert option in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--slices", "32", "4"],
        ["--iterations", "0"],
        ["--warmup", "-1"],
        ["--backbones", "11"],
        ["--image-size", "0", "8"],
    ],
)
def test_invalid_arguments_are_refused_before_any_work(argv, tmp_path, capsys):
    out = tmp_path / "perf.md"
    assert benchmark.main([*argv, "--output", str(out)]) == 1
    assert "error:" in capsys.readouterr().err
    assert not out.exists()
