# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Helpers of the ``bundle.comparison`` tests: settings of a demo comparison, hand-written results and records,
page tables."""

from __future__ import annotations

import json
from pathlib import Path

from bundle.comparison.settings import Settings, make_settings, run_folder, settings_key

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMAND = "python scripts/compare_methods.py --dataset-name demo (test)"


def write_datalist(tmp_path: Path) -> Path:
    """A datalist file for argument validation (its content is never read by the report)."""
    path = tmp_path / "datalist.json"
    path.write_text(json.dumps({"training": [], "validation": [], "test": []}))
    return path


def demo_settings(tmp_path: Path, datalist: Path, *methods: str, seeds=(0, 1, 2), **options) -> Settings:
    """Settings of the comparison ``demo`` with runs under ``tmp_path/runs`` and the page under ``tmp_path/results``."""
    return make_settings(
        dataset_name="demo", datalist=datalist, methods=methods, seeds=seeds, output_root=tmp_path / "runs",
        results_dir=tmp_path / "results", command=COMMAND, **options,
    )


def write_result(settings, spec, seed, auroc, accuracy, f1, iteration_s, memory_mib, parameters=1000) -> Path:
    """A hand-written result.json where the comparison expects it, with the settings of ``settings``."""
    folder = run_folder(settings, spec, seed)
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "spec": spec.canonical, "seed": seed, "settings": settings_key(settings),
        "test": {"auroc": auroc, "accuracy": accuracy, "f1": f1, "num_cases": 10},
        "eval_split": "test", "validation": {"metric": "auroc", "best": auroc, "best_epoch": 1},
        "cost": {"num_parameters": parameters, "train_iteration_s_median": iteration_s,
                 "peak_rss_increase_mib": memory_mib, "peak_cuda_allocated_mib": None},
        "date": f"2026-01-0{seed + 1}T10:00:00+00:00", "device": "cpu",
        "versions": {"python": "3.11", "torch": "2.13.0", "monai": "1.6.1"},
        "machine": {"cpu": "Test CPU", "usable_cores": 2, "logical_cores": 2},
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def table(page: str, title: str) -> list[list[str]]:
    """The rows (cells) of the table under ``### title``, header first."""
    section = page.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")
            and not line.startswith("|---")]


def fake_record(dataset, spec, seed, probs, labels=None, *, settings=None, load_mean=1.0, cores=2, threshold=0.5,
                accuracy=0.8, f1=0.7, iteration_s=0.1, best_epoch=3, commit="0123456789abcdef", dirty=False,
                display_name=None) -> dict:
    """A hand-made run record of ``spec`` (a MethodSpec) with test cases ``case<i>.nii.gz`` scored ``probs``."""
    labels = labels if labels is not None else [0, 0, 0, 1, 1, 1][: len(probs)]
    return {
        "record_format": 1, "dataset": dataset, "spec": spec.canonical, "slug": spec.slug, "seed": seed,
        "display_name": display_name or spec.label,
        "settings": settings or {"datalist": "data/demo/datalist.json", "configs": [], "overrides": {"epochs": 5}},
        "test": {"auroc": 0.0, "accuracy": accuracy, "f1": f1, "num_cases": len(probs)}, "eval_split": "test",
        "decision_threshold": threshold,
        "test_cases": [[f"case{i}.nii.gz", label, p] for i, (label, p) in enumerate(zip(labels, probs))],
        "validation": {"metric": "auroc", "best": 0.9, "best_epoch": best_epoch},
        "cost": {"num_parameters": 1000, "train_iteration_s_median": iteration_s},
        "load": {"one_minute_mean": load_mean, "usable_cores": cores},
        "code": {"commit": commit, "uncommitted_changes": dirty},
        "command": "python scripts/compare_methods.py --dataset-name demo",
        "started": f"2026-01-0{seed + 1}T09:00:00+00:00", "date": f"2026-01-0{seed + 1}T10:00:00+00:00",
        "device": "cpu", "versions": {"python": "3.11", "torch": "2.13.0", "monai": "1.6.1"},
        "machine": {"cpu": "Test CPU", "usable_cores": cores, "logical_cores": 2},
    }
