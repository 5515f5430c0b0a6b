# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.benchmark``: settings, the markdown report on a hand-made result, the worker entry point (a whole
``--quick`` run is in ``tests/scripts/test_benchmark.py``)."""

from __future__ import annotations

import math

import pytest

from bundle.benchmark import report, settings, timing, workers


def _report(busy: bool, reset: bool = True) -> dict:
    """A report as ``run_benchmark`` returns it: chunked peak ratio 1.1 (PASS), plain 32-slice row measured."""
    memory = []
    for chunked in (True, False):
        for n in (4, 32):
            peak = 500.0 + (0.0 if n == 4 else 50.0) * (1 if chunked else 4)
            memory.append({"slices": n, "chunked": chunked, "chunk_size": 8, "rss_before_mib": 490.0,
                           "peak_mib": peak, "increment_mib": peak - 490.0, "peak_reset": reset,
                           "same_call": not chunked and n <= 8})
    backbone = {"depth": 10, "feature_stage": 2, "out_channels": 128, "params_m": 1.2, "forward_gflop": 0.5,
                "train_gflop": 1.5, "infer_slices_s": 100.0, "train_slices_s": 30.0, "infer_gflops": 50.0,
                "train_gflops": 45.0, "cpu_peak_gflops": 100.0, "infer_fraction": 0.5, "train_fraction": 0.45,
                "infer_peak_mib": 700.0, "infer_increment_mib": 12.5, "train_peak_mib": 800.0,
                "train_increment_mib": -1.5}
    return {
        "date": "2026-01-01 10:00 UTC", "command": "python scripts/benchmark.py --quick",
        "machine": {"cpu": "Test CPU", "logical_cores": 4, "usable_cores": 2, "torch_threads": 2, "ram_gib": 7.75,
                    "platform": "Linux-test", "python": "3.11.7", "torch": "2.13.0", "monai": "1.6.1",
                    "numpy": "2.4.6"},
        "load_start": [1.5, 1.0, 0.5] if busy else [0.1, 0.1, 0.1], "load_end": None,
        "settings": {**settings.QUICK, "seed": 0, "feature_stage": 2, "in_channels": 1},
        "config_overrides": {"image_size": [32, 32], "backbone_depth": 10},
        "training": {"batch_size": 2, "num_volumes": 8, "cache_fill_s": 1.2, "mean_slices": 12.5, "e2e_it_s": 3.0,
                     "model_it_s": 3.1, "ratio": 0.96, "e2e_median_s": 0.33, "model_median_s": 0.32,
                     "data_mean_s": 0.01, "step_mean_s": 0.3, "model_mean_s": 0.29},
        "inference": {"num_volumes": 4, "passes": 1, "batch_size": 1, "loader": "DataLoader", "num_workers": 0,
                      "slices_per_volume": 6.0, "chunk_size": 8, "e2e_vol_s": 10.0, "model_vol_s": 12.0,
                      "ratio": 10.0 / 12.0, "data_mean_s": 0.02, "e2e_mean_s": 0.1, "model_mean_s": 0.083},
        "memory": memory, "memory_concurrent": True, "backbones": [backbone], "backbones_in_process": True,
        "elapsed_s": 42.0,
    }


def test_report_states_machine_figures_and_verdicts():
    text = report.render_markdown(_report(busy=False))
    assert text.startswith("# Performance\n\nWritten by `scripts/benchmark.py`")
    assert ("- Machine: Test CPU; 4 logical cores (2 usable by this process); torch.get_num_threads() = 2 "
            "(torch's default, not changed); RAM 7.8 GiB; Linux-test") in text
    assert "- Load average (1 / 5 / 15 min): 0.10 / 0.10 / 0.10 at the start, n/a at the end" in text
    assert "- Versions: python 3.11.7, torch 2.13.0, monai 1.6.1, numpy 2.4.6" in text
    assert "- Config overrides on configs/*.json: `image_size=[32, 32]`, `backbone_depth=10`" in text
    assert "| Training iterations/s, end to end / model only | 0.960 | >= 0.95 | PASS |" in text
    assert "| Inference volumes/s, end to end / model only | 0.833 | >= 0.9 | MISS |" in text
    assert "| Peak RSS of chunked inference (whole process), 32 / 4 slices | 1.100 | <= 1.2 | PASS |" in text
    assert "- Chunked, increment 32 / 4: **6.000**. No goal is stated for it; against 1.2 it would be MISS." in text
    assert "| plain `network(x)` (same call as the chunked row, N <= chunk_size) | 4 | 490.0 | 500.0 | 10.0 |" in text
    assert "| plain `network(x)` | 32 | 490.0 | 700.0 | 210.0 |" in text
    assert "| ResNet-10 (stage 2, 128 channels) | 1.20 | 0.500 | 100.0 | 50.0 | 50.0% | 30.0 | 45.0 | 45.0% | " \
           "700 (+12.5) | 800 (-1.5) | 100.0 |" in text
    assert "busy" not in text and "reset was not available" not in text
    assert "With --quick these processes ran all at once" in text and "(`--backbones-in-process`)" in text


def test_report_warns_of_a_busy_machine_and_a_missing_peak_reset():
    text = report.render_markdown(_report(busy=True, reset=False))
    assert "**Warning: the machine was busy when the run started** (1-minute load average 1.50 on 2 cores)" in text
    assert "**The peak-RSS reset was not available here: the peaks include the peak of the imports.**" in text


def test_settings_take_options_then_the_preset():
    full = settings.resolve_settings({"iterations": 7, "seed": 3})
    assert full == {**settings.DEFAULTS, "iterations": 7, "seed": 3}
    quick = settings.resolve_settings({"backbones": [18], "output": "ignored"}, quick=True)
    assert quick == {**settings.QUICK, "backbones": [18], "seed": 0}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"slices": [32, 4]}, "--slices needs 1 <= SMALL < LARGE"),
        ({"slices": [0, 4]}, "--slices needs 1 <= SMALL < LARGE"),
        ({"iterations": 0}, "--iterations must be >= 1"),
        ({"matmul_repeats": 0}, "--matmul-repeats must be >= 1"),
        ({"warmup": -1}, "--warmup must be >= 0"),
        ({"backbones": [11, 18]}, r"--backbones \[11\] not supported; allowed: \[10, 18, 34, 50, 101, 152\]"),
        ({"image_size": [0, 8]}, "--image-size must be positive"),
        ({"volume_shape": [8, 8, 0]}, "--volume-shape must be positive"),
    ],
)
def test_invalid_settings_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        settings.resolve_settings(options)


def test_rates_and_ratios():
    assert timing.rate([0.5, 0.5], units=4) == 8.0
    assert math.isnan(timing.rate([])) and math.isnan(timing.ratio(1.0, 0.0))
    assert timing.ratio(3.0, 2.0) == 1.5


def test_unknown_worker_kind_is_refused():
    with pytest.raises(ValueError, match="unknown worker kind 'gpu'; allowed: \\['backbone', 'memory'\\]"):
        workers.worker_main('{"kind": "gpu"}')


# slow (default suite under 15 min): a fresh benchmark worker process
@pytest.mark.slow
def test_worker_runs_as_a_package_entry_point_in_a_fresh_process():
    spec = {"kind": "backbone", "depth": 10, "feature_stage": 1, "in_channels": 1, "image_size": [16, 16],
            "batch": 2, "iterations": 1, "warmup": 0, "matmul_size": 32, "matmul_repeats": 1}
    result = workers.run_worker(spec)
    assert result["depth"] == 10 and result["out_channels"] > 0 and result["forward_gflop"] > 0
    assert result["infer_peak_mib"] > 0 and result["train_slices_s"] > 0
    with pytest.raises(RuntimeError, match="(?s)nope worker failed .*unknown worker kind 'nope'"):
        workers.run_worker({"kind": "nope"})
