# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.comparison.cost``: the jobs of the methods, one measurement in this process, the page.
(Workers in their own processes: ``tests/scripts/test_method_cost.py``.)"""

from __future__ import annotations

import pytest

from bundle.comparison.cost import CostSetup, cost_jobs, measure, render_cost_page
from bundle.methods import expand_method_specs, method_config

SETUP = CostSetup(image_size=(32, 32), bag_size=2, batch_size=2, steps=2, warmup=1,
                  overrides=("backbone_depth=10", "feature_stage=2", "top_k=1"))


def test_jobs_carry_the_setup_and_the_spec_overrides():
    jobs = cost_jobs(expand_method_specs(["mi_pre_conv", "mims_cnn:top_k=2"]), SETUP)
    assert [j["spec"] for j in jobs] == ["mi_pre_conv", "mims_cnn:top_k=2"]
    assert jobs[1]["overlay"] == str(method_config("mims_cnn"))
    assert jobs[0]["overrides"] == {"backbone_depth": 10, "feature_stage": 2, "top_k": 1, "image_size": [32, 32]}
    assert jobs[1]["overrides"]["top_k"] == 2  # the spec's own override wins
    assert {k: jobs[0][k] for k in ("image_size", "bag_size", "batch_size", "steps", "warmup", "threads")} == {
        "image_size": [32, 32], "bag_size": 2, "batch_size": 2, "steps": 2, "warmup": 1, "threads": 0}


def test_malformed_override_is_refused_when_the_setup_is_made():
    with pytest.raises(ValueError, match="key=value"):
        CostSetup(overrides=("backbone_depth",))


def test_measure_one_method_in_this_process():
    (job,) = cost_jobs(expand_method_specs(["mi_pre_conv"]), SETUP)
    result = measure(job)
    assert result["network"] == "MIPreConv" and result["device"] == "cpu" and result["parameters"] > 0
    assert 0 < result["step_ms_min"] <= result["step_ms_median"]
    assert result["peak_cuda_mib"] is None and result["peak_rss_since"] in ("baseline", "process start")


def test_page_rows_relative_to_mi_pre_conv():
    rows = [
        {"spec": "mims_cnn", "label": "MIMS", "network": "MIMSCNN", "parameters": 12345, "step_ms_median": 25.0,
         "peak_rss_increase_mib": 30.0, "device": "cpu", "torch_threads": 2},
        {"spec": "mi_pre_conv", "label": "MI-Pre-Conv", "network": "MIPreConv", "parameters": 1000,
         "step_ms_median": 10.0, "peak_rss_increase_mib": 20.0, "device": "cpu", "torch_threads": 2},
    ]
    page = render_cost_page(rows, SETUP, "python scripts/method_cost.py --steps 2")
    assert "| MIMS | `MIMSCNN` | 12,345 | 25.0 | 2.50× | 30.0 | 1.50× |" in page
    assert "| MI-Pre-Conv | `MIPreConv` | 1,000 | 10.0 | 1.00× | 20.0 | 1.00× |" in page
    assert "- Command: `python scripts/method_cost.py --steps 2`" in page
    assert " + overrides backbone_depth=10, feature_stage=2, top_k=1; one batch of 2 bags x 2 slices of 32 x 32 " \
        "pixels; 1 untimed then 2 timed training steps" in page
    assert "; device: cpu; torch threads per worker: 2" in page
    without_reference = render_cost_page(rows[:1], SETUP, "c")
    assert "| MIMS | `MIMSCNN` | 12,345 | 25.0 | – | 30.0 | – |" in without_reference
