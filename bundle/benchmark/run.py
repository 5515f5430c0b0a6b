# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""A whole benchmark run: synthetic data, the four measurements, the report."""

from __future__ import annotations

import contextlib
import datetime
import tempfile
import time
from pathlib import Path
from typing import Any

from bundle import reports
from bundle.benchmark.report import render_markdown
from bundle.benchmark.settings import QUICK_CONFIG
from bundle.benchmark.throughput import bench_inference, bench_training
from bundle.benchmark.timing import log
from bundle.benchmark.workers import bench_backbones, bench_memory
from bundle.config import CONFIGS, config_parser

__all__ = ["machine_info", "run_benchmark"]


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, torch threads, RAM, platform and library versions (python, torch, monai, numpy)."""
    import torch

    machine, versions = reports.machine_info(), reports.versions()
    return {
        "cpu": machine["cpu"],
        "logical_cores": machine["logical_cores"],
        "usable_cores": machine["usable_cores"],
        "torch_threads": torch.get_num_threads(),
        "ram_gib": machine["ram_gib"],
        "platform": machine["platform"],
        **{name: versions[name] for name in ("python", "torch", "monai", "numpy")},
    }


def run_benchmark(
    settings: dict[str, Any],
    output: str | Path,
    command: str,
    quick: bool = False,
    feature_stage: int | None = None,
    backbones_in_process: bool = False,
    workdir: str | Path | None = None,
    load_start: list[float] | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """Run the benchmark and write its report to ``output``.

    Args:
        settings: from :func:`bundle.benchmark.settings.resolve_settings`; ``image_size`` None means the configs'.
        output: the markdown report to write (``docs/performance.md``).
        command: the command line the report states.
        quick: the ``--quick`` run: ``QUICK_CONFIG`` overrides, memory workers all at once, backbones in this
            process.
        feature_stage: backbone stage of the backbone benchmark; None: the configs' ``feature_stage``.
        backbones_in_process: measure the backbones in this process instead of one fresh process each.
        workdir: folder for the synthetic data, kept; None: a temporary folder, removed afterwards.
        load_start: the load average when the run started (default: now).
        started: ``time.perf_counter()`` when the run started, for the total time (default: now).

    Returns:
        The report (see :func:`bundle.benchmark.report.render_markdown`).
    """
    load_start = reports.load_average() if load_start is None else load_start
    started = time.perf_counter() if started is None else started
    settings = dict(settings)
    machine = machine_info()
    log(f"{machine['cpu']}, {machine['usable_cores']} usable cores, torch threads {machine['torch_threads']}")

    from bundle.data.synthetic_oct import make_synthetic_oct_dataset

    base = config_parser([CONFIGS / "common.json"])
    settings["image_size"] = list(settings["image_size"] or base.get_parsed_content("image_size"))
    settings["feature_stage"] = feature_stage or base.get_parsed_content("feature_stage")
    settings["in_channels"] = base.get_parsed_content("in_channels")
    chunk_size = base.get_parsed_content("chunk_size")
    config_overrides = {"image_size": settings["image_size"], **(QUICK_CONFIG if quick else {})}
    overrides = {"device": "$torch.device('cpu')", **config_overrides}

    if workdir is None:
        folder: contextlib.AbstractContextManager = tempfile.TemporaryDirectory(prefix="mims_benchmark_")
    else:
        folder = contextlib.nullcontext(str(Path(workdir).expanduser().resolve()))
    with folder as work:
        data_dir = Path(work) / "synthetic_oct"
        log(f"writing {settings['train_volumes']} training + {settings['test_volumes']} test volumes of "
            f"{settings['volume_shape']} to {data_dir}")
        make_synthetic_oct_dataset(
            data_dir, num_train=settings["train_volumes"], num_val=0, num_test=settings["test_volumes"],
            seed=settings["seed"], shape=tuple(settings["volume_shape"]), overwrite=True, progress=False,
        )
        data_overrides = {**overrides, "bundle_root": str(work), "dataset_dir": str(data_dir)}
        log("1/4 training throughput")
        training = bench_training(data_overrides, settings["iterations"], settings["warmup"], settings["seed"])
        log(f"training: {training['e2e_it_s']:.3f} it/s end to end, {training['model_it_s']:.3f} it/s model only, "
            f"ratio {training['ratio']:.3f}")
        log("2/4 inference throughput")
        inference = bench_inference(data_overrides, settings["iterations"], settings["warmup"])
        log(f"inference: {inference['e2e_vol_s']:.3f} volumes/s end to end, {inference['model_vol_s']:.3f} "
            f"model only, ratio {inference['ratio']:.3f}")

    order = "all at once" if quick else "one after the other"
    log(f"3/4 memory versus slices {settings['slices']} (a fresh process each, {order})")
    memory = bench_memory(overrides, settings["slices"], chunk_size, concurrent=quick)
    in_process = backbones_in_process or quick
    log(f"4/4 backbones {settings['backbones']} ({'in this process' if in_process else 'a fresh process each'})")
    backbones = bench_backbones(settings, in_process)

    report = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": command,
        "code": reports.code_state(),
        "machine": machine,
        "load_start": load_start,
        "load_end": reports.load_average(),
        "settings": settings,
        "config_overrides": config_overrides,
        "training": training,
        "inference": inference,
        "memory": memory,
        "memory_concurrent": quick,
        "backbones": backbones,
        "backbones_in_process": in_process,
        "elapsed_s": time.perf_counter() - started,
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown(report), encoding="utf-8")
    log(f"report written to {output} after {report['elapsed_s']:.0f} s")
    return report
