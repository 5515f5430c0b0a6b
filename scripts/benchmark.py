# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Measure the bundle's throughput and memory on synthetic data and write ``docs/performance.md``.

Each figure is a RATIO of two measurements taken in the same run; the two sides of a throughput
ratio run in the same process, interleaved iteration by iteration, warm-up iterations excluded:

1. training: iterations/s through the real training pipeline (``train#dataloader`` of
   ``configs/common.json`` + ``configs/train.json``: cache, slice sampling, flip, collate, then the
   trainer's model step) versus the same model step on the same batches already in memory;
2. inference: volumes/s from disk (``dataloader``, ``inferer`` and ``postprocessing`` of
   ``configs/inference.json``) versus the same bags already in memory through the same inferer;
3. memory: peak RSS of inference on a large versus a small bag, each in a fresh process, with the
   chunked inferer and with a plain ``network(x)`` call;
4. backbones: slices/s, FLOPs per slice, peak RSS and the fraction of the CPU's measured matmul peak.

The report states how each number was measured, the goals and whether each was met.

Example::

    python scripts/benchmark.py                                   # writes docs/performance.md
    python scripts/benchmark.py --quick --output /tmp/perf.md     # tiny smoke run, under a minute
    python scripts/benchmark.py --backbones 18 50 101 --iterations 30
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_support import reset_peak_rss

if TYPE_CHECKING:
    from monai.bundle import ConfigParser

__all__ = ["build_parser", "main", "render_markdown", "worker_main"]

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEFAULT_OUTPUT = REPO / "docs" / "performance.md"

TRAIN_GOAL = 0.95  # end-to-end / model-only training iterations/s, at least
INFER_GOAL = 0.9  # end-to-end / model-only inference volumes/s, at least
MEMORY_GOAL = 1.2  # peak RSS of chunked inference, large bag / small bag, at most

#: settings of a full run and of ``--quick``; options given explicitly win over both.
DEFAULTS: dict[str, Any] = {
    "image_size": None,  # None: the configs' image_size
    "volume_shape": [64, 96, 32],
    "train_volumes": 16,
    "test_volumes": 8,
    "slices": [16, 128],
    "iterations": 20,
    "warmup": 3,
    "backbones": [10, 18, 34, 50],
    "backbone_batch": 16,
    "matmul_size": 2048,
    "matmul_repeats": 5,
}
QUICK: dict[str, Any] = {
    "image_size": [32, 32],
    "volume_shape": [32, 32, 16],
    "train_volumes": 8,
    "test_volumes": 4,
    "slices": [4, 32],
    "iterations": 1,
    "warmup": 1,
    "backbones": [10],
    "backbone_batch": 8,
    "matmul_size": 512,
    "matmul_repeats": 3,
}
#: config overrides of ``--quick`` besides ``image_size``: the MIMS-CNN model's own backbone depth.
QUICK_CONFIG: dict[str, Any] = {"backbone_depth": 10}

_RESULT_MARK = "BENCHMARK_RESULT "
# Workers go through a small launcher process: on exec(), Linux carries the high-water RSS of the
# exec'ing process over into the new program's ru_maxrss, so a worker exec'd straight from this (large)
# process would report our peak as its own. The launcher is small, so its child's ru_maxrss is its own.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
_WORKER_STUB = (
    "import importlib.util, os, sys\n"
    "sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))  # scripts/, as `python scripts/x.py` has\n"
    "spec = importlib.util.spec_from_file_location('mims_benchmark_worker', sys.argv[1])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "sys.exit(module.worker_main(sys.argv[2]))\n"
)


# ----------------------------------------------------------------------------------------------- helpers


def _log(message: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _proc_field(path: str, name: str) -> str | None:
    """The value after ``name:`` on the first line of ``path`` (a /proc file) starting with it; None if absent."""
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == name.lower():
                return value.strip()
    return None


def _rss_now_kib() -> int:
    """Current resident set size in KiB (``VmRSS``; ``ru_maxrss`` where /proc is missing)."""
    value = _proc_field("/proc/self/status", "VmRSS")
    return int(value.split()[0]) if value else _ru_maxrss_kib()


def _ru_maxrss_kib() -> int:
    """``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in KiB (macOS reports bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value


def _mib(kib: float) -> float:
    return kib / 1024.0


def _held(batch: tuple) -> tuple:
    """A prepared batch ``(inputs, targets, args, kwargs)`` with every ``MetaTensor`` as a plain tensor."""
    from bundle.prepare_batch import plain_tensor

    inputs, targets, args, kwargs = batch
    return (
        plain_tensor(inputs),
        plain_tensor(targets),
        tuple(map(plain_tensor, args)),
        {k: plain_tensor(v) for k, v in kwargs.items()},
    )


def _rate(times: Sequence[float], units: float = 1.0) -> float:
    """``units`` per timed item, per second, over the timed items."""
    total = sum(times)
    return units * len(times) / total if total > 0 else float("nan")


def _verdict(value: float, goal: float, at_least: bool) -> str:
    return "PASS" if (value >= goal if at_least else value <= goal) else "MISS"


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _config_parser(names: Sequence[str], overrides: dict[str, Any]) -> ConfigParser:
    """``configs/<names>`` parsed like ``monai.bundle run`` does, with ``overrides`` applied."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / name) for name in names])
    parser.update(overrides)
    return parser


def _cycle(loader: Any) -> Iterator[Any]:
    """Batches of ``loader`` without end: a new epoch (a new iterator, reshuffled) after each one."""
    while True:
        yield from loader


def _seconds(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Wall-clock seconds of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _timed_loop(n: int, warmup: int, body: Callable[[int], dict[str, float]], what: str) -> list[dict[str, float]]:
    """Run ``body(i)`` for ``warmup + n`` rounds; keep the timings of the last ``n``; log each round."""
    kept = []
    for i in range(warmup + n):
        times = body(i)
        tag = " (warm-up, not counted)" if i < warmup else ""
        _log(f"{what} {i + 1}/{warmup + n}{tag}: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()))
        if i >= warmup:
            kept.append(times)
    return kept


# ---------------------------------------------------------------------------------------- machine facts


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, torch threads, RAM, platform and library versions."""
    import monai
    import numpy
    import torch

    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine() or "unknown"
    mem_total = _proc_field("/proc/meminfo", "MemTotal")  # "<n> kB"
    if mem_total:
        ram_gib = int(mem_total.split()[0]) / 1024**2
    else:
        try:
            ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
        except (AttributeError, ValueError, OSError):
            ram_gib = float("nan")
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": ram_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
    }


def _load_average() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


# --------------------------------------------------------------------------------------- 1. training


def bench_training(overrides: dict[str, Any], iterations: int, warmup: int, seed: int) -> dict[str, Any]:
    """Training iterations/s end to end versus the model step alone on the same batches.

    Every round takes the next batch of ``train#dataloader`` and applies ``prepare_batch`` (timed), then
    runs the trainer's step (``train#inferer``, ``loss``, backward, ``optimizer``) on that batch as it is,
    completing one end-to-end iteration, and on the same batch held as plain tensors, one model-only
    iteration; which of the two steps goes first alternates. The first ``warmup`` rounds are not counted.
    """
    import torch
    from monai.utils import set_determinism

    parser = _config_parser(["common.json", "train.json"], overrides)
    set_determinism(seed=seed)
    try:
        start = time.perf_counter()
        loader = parser.get_parsed_content("train#dataloader")  # builds the CacheDataset, i.e. fills the cache
        cache_s = time.perf_counter() - start
        _log(f"training: cache of {len(loader.dataset)} volumes filled in {cache_s:.1f} s")
        device = parser.get_parsed_content("device")
        network = parser.get_parsed_content("network")
        loss_function = parser.get_parsed_content("loss")
        optimizer = parser.get_parsed_content("optimizer")
        prepare_batch = parser.get_parsed_content("prepare_batch")
        inferer = parser.get_parsed_content("train#inferer")

        def step(inputs: Any, targets: Any, args: tuple, kwargs: dict) -> None:
            # SupervisedTrainer._iteration without AMP, gradient accumulation and events
            network.train()
            optimizer.zero_grad(set_to_none=False)
            loss = loss_function(inferer(inputs, network, *args, **kwargs), targets).mean()
            loss.backward()
            optimizer.step()

        batches = _cycle(loader)
        slices: list[float] = []

        def one_round(i: int) -> dict[str, float]:
            start = time.perf_counter()
            batch = prepare_batch(next(batches), device, False)
            data = time.perf_counter() - start
            held = _held(batch)
            if i % 2 == 0:  # alternate which step runs first
                e2e_step, model = _seconds(step, *batch), _seconds(step, *held)
            else:
                model, e2e_step = _seconds(step, *held), _seconds(step, *batch)
            if i >= warmup:
                mask = batch[3].get("mask")
                slices.append(float(mask.sum()) if isinstance(mask, torch.Tensor) else float(batch[0].shape[1]))
            return {"end-to-end": data + e2e_step, "data": data, "step": e2e_step, "model-only": model}

        rounds = _timed_loop(iterations, warmup, one_round, "training: iteration")
    finally:
        set_determinism(seed=None)
    e2e = [r["end-to-end"] for r in rounds]
    model = [r["model-only"] for r in rounds]
    return {
        "batch_size": parser.get_parsed_content("train_batch_size"),
        "num_volumes": len(loader.dataset),
        "cache_fill_s": cache_s,
        "mean_slices": statistics.fmean(slices),
        "e2e_it_s": _rate(e2e),
        "model_it_s": _rate(model),
        "ratio": _ratio(_rate(e2e), _rate(model)),
        "e2e_median_s": statistics.median(e2e),
        "model_median_s": statistics.median(model),
        "data_mean_s": statistics.fmean(r["data"] for r in rounds),
        "step_mean_s": statistics.fmean(r["step"] for r in rounds),
        "model_mean_s": statistics.fmean(model),
    }


# -------------------------------------------------------------------------------------- 2. inference


def bench_inference(overrides: dict[str, Any], iterations: int, warmup: int) -> dict[str, Any]:
    """Inference volumes/s end to end (from disk) versus the same bags in memory through the same inferer.

    The ``dataloader`` of ``configs/inference.json`` may prefetch in a background thread, so volumes are
    not timed one by one: a round is one whole pass over the test volumes. In alternating order, an
    end-to-end pass iterates the ``dataloader`` (file read, ``preprocessing``, ``collate_fn``), applies
    ``prepare_batch`` and runs ``inferer`` plus ``postprocessing`` (softmax) on every volume; a model-only
    pass runs the same inferer plus a softmax on the same bags held in memory as plain tensors. A third
    pass iterates the dataloader alone (no model) to show the cost of the data pipeline by itself.
    Everything runs in ``eval_mode``. The first ``warmup`` rounds are not counted.
    """
    import torch
    from monai.data import decollate_batch
    from monai.networks import eval_mode

    parser = _config_parser(["common.json", "inference.json"], overrides)
    loader = parser.get_parsed_content("dataloader")
    device = parser.get_parsed_content("device")
    network = parser.get_parsed_content("network")
    inferer = parser.get_parsed_content("inferer")
    prepare_batch = parser.get_parsed_content("prepare_batch")
    postprocessing = parser.get_parsed_content("postprocessing")
    held = [_held(prepare_batch(batch, device, False)) for batch in loader]
    num_volumes = sum(int(x.shape[0]) for x, *_ in held)
    slices = statistics.fmean(float(x.shape[1]) for x, *_ in held)

    def end_to_end_pass() -> None:
        for batch in loader:
            inputs, _, args, kwargs = prepare_batch(batch, device, False)
            for item in decollate_batch({"pred": inferer(inputs, network, *args, **kwargs)}):
                postprocessing(item)

    def model_only_pass() -> None:
        for x, _, args, kwargs in held:
            torch.softmax(inferer(x, network, *args, **kwargs), dim=1)

    def data_only_pass() -> None:
        for batch in loader:
            prepare_batch(batch, device, False)

    def one_round(i: int) -> dict[str, float]:
        if i % 2 == 0:  # alternate which side runs first
            e2e = _seconds(end_to_end_pass)
            model = _seconds(model_only_pass)
        else:
            model = _seconds(model_only_pass)
            e2e = _seconds(end_to_end_pass)
        return {"end-to-end pass": e2e, "model-only pass": model, "data-only pass": _seconds(data_only_pass)}

    with eval_mode(network):
        rounds = _timed_loop(iterations, warmup, one_round, f"inference: pass over {num_volumes} volumes")
    e2e_s = sum(r["end-to-end pass"] for r in rounds)
    model_s = sum(r["model-only pass"] for r in rounds)
    data_s = sum(r["data-only pass"] for r in rounds)
    volumes = num_volumes * len(rounds)
    return {
        "num_volumes": num_volumes,
        "passes": len(rounds),
        "batch_size": loader.batch_size,
        "loader": type(loader).__name__,
        "num_workers": loader.num_workers,
        "slices_per_volume": slices,
        "chunk_size": parser.get_parsed_content("chunk_size"),
        "e2e_vol_s": volumes / e2e_s,
        "model_vol_s": volumes / model_s,
        "ratio": _ratio(volumes / e2e_s, volumes / model_s),
        "data_mean_s": data_s / volumes,
        "e2e_mean_s": e2e_s / volumes,
        "model_mean_s": model_s / volumes,
    }


# -------------------------------------------------------------------------------- worker measurements


def _memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of inference on one random bag of ``spec["slices"]`` slices (meant for a fresh process)."""
    import torch
    from monai.networks import eval_mode

    parser = _config_parser(["common.json"], spec["overrides"])
    network = parser.get_parsed_content("network")
    inferer = parser.get_parsed_content("inferer")
    h, w = parser.get_parsed_content("image_size")
    n, c = int(spec["slices"]), parser.get_parsed_content("in_channels")
    x = torch.rand(1, n, c, h, w, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, n, dtype=torch.bool)  # what pad_bag_collate gives a batch of one volume
    gc.collect()
    before = _rss_now_kib()
    reset = reset_peak_rss()
    with eval_mode(network):
        for _ in range(int(spec["repeats"])):
            logits = inferer(x, network, mask=mask) if spec["chunked"] else network(x, mask=mask)
            torch.softmax(logits, dim=1)
    peak = _ru_maxrss_kib()
    return {
        "slices": n,
        "chunked": bool(spec["chunked"]),
        "chunk_size": parser.get_parsed_content("chunk_size"),
        "rss_before_mib": _mib(before),
        "peak_mib": _mib(peak),
        "increment_mib": _mib(peak - before),
        "peak_reset": reset,
    }


def _matmul_gflops(size: int, repeats: int) -> float:
    """Best GFLOP/s of ``repeats`` float32 ``size x size`` matmuls (2 size^3 FLOPs each) after one warm-up."""
    import torch

    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0))
    b = torch.randn(size, size, generator=torch.Generator().manual_seed(1))
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def _backbone_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Speed, FLOPs and peak RSS of one ``ResNetBackbone`` (meant for a fresh process)."""
    import torch
    from monai.networks import eval_mode
    from torch.utils.flop_counter import FlopCounterMode

    from networks.nets.backbone import ResNetBackbone

    batch, warmup, iterations = int(spec["batch"]), int(spec["warmup"]), int(spec["iterations"])
    peak_before = _matmul_gflops(spec["matmul_size"], spec["matmul_repeats"])
    backbone = ResNetBackbone(in_channels=spec["in_channels"], depth=spec["depth"], feature_stage=spec["feature_stage"])
    x = torch.randn(batch, spec["in_channels"], *spec["image_size"], generator=torch.Generator().manual_seed(0))

    def train_step() -> None:
        backbone.zero_grad(set_to_none=True)
        backbone(x).mean().backward()

    def phase(fn: Callable[[], Any]) -> tuple[float, float, float]:
        """(slices/s, peak RSS MiB, increment MiB) of ``warmup + iterations`` calls of ``fn``."""
        gc.collect()
        before = _rss_now_kib()
        reset_peak_rss()
        times = []
        for i in range(warmup + iterations):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        peak = _ru_maxrss_kib()
        return _rate(times, batch), _mib(peak), _mib(peak - before)

    with eval_mode(backbone):
        infer_rate, infer_peak, infer_inc = phase(lambda: backbone(x))
    backbone.train()
    train_rate, train_peak, train_inc = phase(train_step)

    with eval_mode(backbone), FlopCounterMode(display=False) as counter:
        backbone(x)
    forward_gflop = counter.get_total_flops() / batch / 1e9
    backbone.train()
    with FlopCounterMode(display=False) as counter:
        train_step()
    train_gflop = counter.get_total_flops() / batch / 1e9
    cpu_peak = max(peak_before, _matmul_gflops(spec["matmul_size"], spec["matmul_repeats"]))
    return {
        "depth": spec["depth"],
        "feature_stage": spec["feature_stage"],
        "out_channels": backbone.out_channels,
        "params_m": sum(p.numel() for p in backbone.parameters()) / 1e6,
        "forward_gflop": forward_gflop,
        "train_gflop": train_gflop,
        "infer_slices_s": infer_rate,
        "train_slices_s": train_rate,
        "infer_gflops": infer_rate * forward_gflop,
        "train_gflops": train_rate * train_gflop,
        "cpu_peak_gflops": cpu_peak,
        "infer_fraction": infer_rate * forward_gflop / cpu_peak,
        "train_fraction": train_rate * train_gflop / cpu_peak,
        "infer_peak_mib": infer_peak,
        "infer_increment_mib": infer_inc,
        "train_peak_mib": train_peak,
        "train_increment_mib": train_inc,
    }


_WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "memory": _memory_worker,
    "backbone": _backbone_worker,
}


def worker_main(spec_json: str) -> int:
    """Entry point of a worker process: run the measurement that ``spec_json`` describes.

    Args:
        spec_json: a JSON object with ``kind`` (``"memory"`` or ``"backbone"``) and its settings.

    Returns:
        0; the result is printed as one JSON line starting with ``BENCHMARK_RESULT``.
    """
    spec = json.loads(spec_json)
    if spec.get("kind") not in _WORKERS:
        raise ValueError(f"unknown worker kind {spec.get('kind')!r}; allowed: {sorted(_WORKERS)}")
    print(_RESULT_MARK + json.dumps(_WORKERS[spec["kind"]](spec)), flush=True)
    return 0


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """``worker_main(spec)`` in a fresh Python process (started through the launcher); its result."""
    script = str(Path(__file__).resolve())
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", _WORKER_STUB, script, json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :])
    raise RuntimeError(f"{spec['kind']} worker failed (exit code {proc.returncode}):\n{proc.stderr[-4000:]}")


# ----------------------------------------------------------------------------------------- 3. memory


def bench_memory(
    overrides: dict[str, Any], slices: Sequence[int], chunk_size: int, concurrent: bool = False
) -> list[dict[str, Any]]:
    """Peak RSS of inference per (inferer, slice count), each in a fresh process.

    The processes run one after the other, or all at once with ``concurrent`` (they measure memory
    only, which does not depend on what other processes do). ``ChunkedBagInferer`` hands bags of at
    most ``chunk_size`` slices to ``network(x)`` unchanged, so for such a bag the plain ``network(x)``
    row reuses the chunked measurement instead of repeating it.
    """
    cases = [(chunked, int(n)) for chunked in (True, False) for n in slices]
    specs = {
        (chunked, n): {"kind": "memory", "overrides": overrides, "slices": n, "chunked": chunked, "repeats": 2}
        for chunked, n in cases
        if chunked or n > chunk_size
    }
    with ThreadPoolExecutor(max_workers=len(specs) if concurrent else 1) as pool:
        measured = dict(zip(specs, pool.map(_run_worker, specs.values())))
    results = []
    for chunked, n in cases:
        if (chunked, n) in measured:
            r = {**measured[chunked, n], "same_call": False}
            _log(
                f"memory: {'ChunkedBagInferer' if chunked else 'network(x)'} N={n}: peak RSS {r['peak_mib']:.0f} MiB, "
                f"{r['increment_mib']:+.1f} MiB over {r['rss_before_mib']:.0f} MiB before inference"
            )
        else:
            r = {**measured[True, n], "chunked": False, "same_call": True}
        results.append(r)
    return results


# -------------------------------------------------------------------------------------- 4. backbones


def bench_backbones(settings: dict[str, Any], in_process: bool) -> list[dict[str, Any]]:
    """One ``_backbone_worker`` per depth: each in a fresh process, or all in this one."""
    results = []
    for depth in settings["backbones"]:
        spec = {
            "kind": "backbone",
            "depth": int(depth),
            "feature_stage": int(settings["feature_stage"]),
            "in_channels": int(settings["in_channels"]),
            "image_size": [int(v) for v in settings["image_size"]],
            "batch": settings["backbone_batch"],
            "iterations": settings["iterations"],
            "warmup": settings["warmup"],
            "matmul_size": settings["matmul_size"],
            "matmul_repeats": settings["matmul_repeats"],
        }
        r = _backbone_worker(spec) if in_process else _run_worker(spec)
        _log(
            f"backbones: ResNet-{depth}: inference {r['infer_slices_s']:.1f} slices/s, training "
            f"{r['train_slices_s']:.1f} slices/s, {r['forward_gflop']:.3f} GFLOP/slice forward, "
            f"{100 * r['infer_fraction']:.1f}% of the {r['cpu_peak_gflops']:.0f} GFLOP/s matmul peak"
        )
        results.append(r)
    return results


# ------------------------------------------------------------------------------------------- report


def _header(report: dict[str, Any]) -> list[str]:
    m, s = report["machine"], report["settings"]
    loads = ["n/a" if v is None else " / ".join(_fmt(x) for x in v) for v in (report["load_start"], report["load_end"])]
    overrides = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in report["config_overrides"].items())
    lines = [
        "# Performance",
        "",
        "Written by `scripts/benchmark.py`: run the command below again rather than editing this file. Every figure "
        "is a ratio of two measurements taken in the same run. The two sides of a throughput ratio run in the same "
        "process, interleaved round by round (which side goes first alternates), warm-up rounds excluded; each side "
        "of a memory ratio runs in a fresh process by design. Absolute rates depend on the machine and its load.",
        "",
        f"- Date: {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Machine: {m['cpu']}; {m['logical_cores']} logical cores ({m['usable_cores']} usable by this process); "
        f"torch.get_num_threads() = {m['torch_threads']} (torch's default, not changed); "
        f"RAM {_fmt(m['ram_gib'], 1)} GiB; {m['platform']}",
        f"- Load average (1 / 5 / 15 min): {loads[0]} at the start, {loads[1]} at the end",
        f"- Versions: python {m['python']}, torch {m['torch']}, monai {m['monai']}, numpy {m['numpy']}",
        "- Device: CPU (the configs' `device` is overridden to cpu)",
        f"- Data: `make_synthetic_oct_dataset` (seed {s['seed']}), volumes of "
        f"{' x '.join(map(str, s['volume_shape']))} (H x W x D), {s['train_volumes']} training and "
        f"{s['test_volumes']} test volumes",
        f"- Config overrides on configs/*.json: {overrides}",
        f"- Timed rounds per measurement: {s['iterations']}, after {s['warmup']} warm-up round(s) that are not counted",
        f"- Total benchmark time: {report['elapsed_s']:.0f} s",
    ]
    load = report["load_start"]
    if load is not None and m["usable_cores"] and load[0] >= 0.5 * m["usable_cores"]:
        lines += [
            "",
            f"**Warning: the machine was busy when the run started** (1-minute load average {_fmt(load[0])} on "
            f"{m['usable_cores']} cores). With torch's default of one thread per core, other processes stall its "
            "parallel regions, which can slow small operations by an order of magnitude and distort even the ratios. "
            "Run the benchmark again on an idle machine before relying on these numbers.",
        ]
    return lines


def _memory_ratios(report: dict[str, Any]) -> dict[str, float]:
    small, large = report["settings"]["slices"]
    rows = {(r["chunked"], r["slices"]): r for r in report["memory"]}
    out = {}
    for name, chunked in (("chunked", True), ("plain", False)):
        out[f"{name}_peak"] = _ratio(rows[chunked, large]["peak_mib"], rows[chunked, small]["peak_mib"])
        out[f"{name}_increment"] = _ratio(rows[chunked, large]["increment_mib"], rows[chunked, small]["increment_mib"])
    return out


def _summary(report: dict[str, Any]) -> list[str]:
    tr, inf = report["training"], report["inference"]
    small, large = report["settings"]["slices"]
    mem = _memory_ratios(report)
    return [
        "",
        "## Summary",
        "",
        "| Figure | Value | Goal | Result |",
        "|---|---|---|---|",
        f"| Training iterations/s, end to end / model only | {_fmt(tr['ratio'], 3)} | >= {TRAIN_GOAL} | "
        f"{_verdict(tr['ratio'], TRAIN_GOAL, True)} |",
        f"| Inference volumes/s, end to end / model only | {_fmt(inf['ratio'], 3)} | >= {INFER_GOAL} | "
        f"{_verdict(inf['ratio'], INFER_GOAL, True)} |",
        f"| Peak RSS of chunked inference (whole process), {large} / {small} slices | {_fmt(mem['chunked_peak'], 3)} | "
        f"<= {MEMORY_GOAL} | {_verdict(mem['chunked_peak'], MEMORY_GOAL, False)} |",
        f"| RSS increment of chunked inference (over the RSS before it), {large} / {small} slices | "
        f"{_fmt(mem['chunked_increment'], 3)} | none stated; {MEMORY_GOAL} applied | "
        f"{_verdict(mem['chunked_increment'], MEMORY_GOAL, False)} |",
    ]


def _training_section(report: dict[str, Any]) -> list[str]:
    tr = report["training"]
    return [
        "",
        "## 1. Training throughput",
        "",
        "How it was measured: `configs/common.json` + `configs/train.json` are parsed with `monai.bundle.ConfigParser` "
        "and `train#dataloader` is built; its `CacheDataset` caches the deterministic transforms (load, channels, "
        f"intensity scaling, to-bag, resize) once, before any timing ({tr['num_volumes']} volumes, "
        f"{_fmt(tr['cache_fill_s'], 1)} s). Each round takes the next batch from the dataloader (copy of the cached "
        "item, `RandSampleSlicesd`, `RandFlipd`, `pad_bag_collate`; a new shuffled epoch when one ends) and applies "
        "the config's `prepare_batch` (timed), then runs the step of `SupervisedTrainer` (`network.train()`, "
        "zero_grad, the config's `network` through `train#inferer`, `loss`, backward, `optimizer` step; no handlers) "
        "twice, in alternating order: on the batch as the pipeline delivers it, which completes one end-to-end "
        "iteration, and on the same batch held in memory as plain tensors, one model-only iteration. Both sides "
        "thus process identical shapes; a rate is timed rounds / their total time.",
        "",
        "| | iterations/s | median s / iteration |",
        "|---|---|---|",
        f"| End to end (dataloader + prepare_batch + step) | {_fmt(tr['e2e_it_s'], 3)} | "
        f"{_fmt(tr['e2e_median_s'], 4)} |",
        f"| Model step only (batch in memory) | {_fmt(tr['model_it_s'], 3)} | {_fmt(tr['model_median_s'], 4)} |",
        "",
        f"- Ratio end to end / model only: **{_fmt(tr['ratio'], 3)}**, goal >= {TRAIN_GOAL}: "
        f"**{_verdict(tr['ratio'], TRAIN_GOAL, True)}**",
        f"- Batch size {tr['batch_size']}, {_fmt(tr['mean_slices'], 1)} real slices per batch on average",
        f"- Where an end-to-end iteration goes (means): {_fmt(1000 * tr['data_mean_s'], 1)} ms to fetch and prepare "
        f"the batch, {_fmt(1000 * tr['step_mean_s'], 1)} ms for the step on the pipeline's batch (a `MetaTensor`), "
        f"against {_fmt(1000 * tr['model_mean_s'], 1)} ms for the same step on plain tensors",
    ]


def _inference_section(report: dict[str, Any]) -> list[str]:
    inf = report["inference"]
    return [
        "",
        "## 2. Inference throughput",
        "",
        "How it was measured: `configs/common.json` + `configs/inference.json` are parsed. The config's "
        f"`dataloader` (a `{inf['loader']}`, {inf['num_workers']} worker processes) may prefetch the next volume "
        "while the model runs, so volumes are not timed one by one: a round is a whole pass over the "
        f"{inf['num_volumes']} test volumes. An end-to-end pass iterates the dataloader (the NIfTI file is read, "
        "from the OS file cache after the first pass, and goes through `preprocessing`: load, channels, intensity "
        "scaling, to-bag, central slices, resize; then `pad_bag_collate`), applies `prepare_batch` and runs the "
        "config's `inferer` (`ChunkedBagInferer`, `eval_mode`, no_grad) and `postprocessing` (softmax) on every "
        "volume; a model-only pass runs the same inferer and a softmax on the same bags held in memory as plain "
        f"tensors. The two alternate which goes first; {inf['passes']} passes of each are timed after the warm-up. "
        f"Batch size {inf['batch_size']}, {_fmt(inf['slices_per_volume'], 0)} slices per volume, chunk size "
        f"{inf['chunk_size']}.",
        "",
        "| | volumes/s | mean s / volume |",
        "|---|---|---|",
        f"| End to end (file + preprocessing + inferer + softmax) | {_fmt(inf['e2e_vol_s'], 3)} | "
        f"{_fmt(inf['e2e_mean_s'], 4)} |",
        f"| Model only (bag in memory, inferer + softmax) | {_fmt(inf['model_vol_s'], 3)} | "
        f"{_fmt(inf['model_mean_s'], 4)} |",
        "",
        f"- Ratio end to end / model only: **{_fmt(inf['ratio'], 3)}**, goal >= {INFER_GOAL}: "
        f"**{_verdict(inf['ratio'], INFER_GOAL, True)}**",
        f"- The data pipeline alone (a pass over the dataloader without the model) takes "
        f"{_fmt(1000 * inf['data_mean_s'], 1)} ms per volume",
    ]


def _memory_section(report: dict[str, Any]) -> list[str]:
    small, large = report["settings"]["slices"]
    rows = {(r["chunked"], r["slices"]): r for r in report["memory"]}
    mem = _memory_ratios(report)
    chunk_size = rows[True, small]["chunk_size"]
    lines = [
        "",
        "## 3. Memory does not grow with the number of slices",
        "",
        "How it was measured: each measurement runs in a FRESH Python process, started through a small launcher "
        "process because Linux carries the peak RSS of a process that calls exec() over into the new program's "
        "`ru_maxrss`. "
        + (
            "With --quick these processes ran all at once, which they can since they measure memory only. "
            if report["memory_concurrent"]
            else "These processes ran one after the other. "
        )
        + "Each imports the bundle, builds `network` and `inferer` from "
        "`configs/common.json` (random weights), makes a random bag `[1, N, C, H, W]` and its all-True mask and "
        "records its RSS (`VmRSS`): *RSS before*. It then resets the kernel's peak-RSS mark to the current RSS "
        "(`/proc/self/clear_refs`, so the peak of the imports does not count) and runs inference twice in "
        "`eval_mode` (no_grad), each followed by a softmax. *Peak RSS* is `resource.getrusage(RUSAGE_SELF).ru_maxrss` "
        "afterwards: the whole process, i.e. libraries, model, input and inference. *Increment* = peak RSS - RSS "
        "before: what the inference itself needed.",
    ]
    if not all(r["peak_reset"] for r in report["memory"]):
        lines += ["", "**The peak-RSS reset was not available here: the peaks include the peak of the imports.**"]
    lines += [
        "",
        "| Inference | N slices | RSS before (MiB) | Peak RSS (MiB) | Increment (MiB) |",
        "|---|---|---|---|---|",
    ]
    for chunked, label in ((True, f"`ChunkedBagInferer(chunk_size={chunk_size})`"), (False, "plain `network(x)`")):
        for n in (small, large):
            r = rows[chunked, n]
            note = " (same call as the chunked row, N <= chunk_size)" if r.get("same_call") else ""
            lines.append(
                f"| {label}{note} | {n} | {_fmt(r['rss_before_mib'], 1)} | {_fmt(r['peak_mib'], 1)} | "
                f"{_fmt(r['increment_mib'], 1)} |"
            )
    lines += [
        "",
        f"- Chunked, peak RSS {large} / {small}: **{_fmt(mem['chunked_peak'], 3)}**, goal <= {MEMORY_GOAL}: "
        f"**{_verdict(mem['chunked_peak'], MEMORY_GOAL, False)}**. This is the stated goal; it includes the fixed RSS "
        "of the libraries and the model, which dominates at these sizes.",
        f"- Chunked, increment {large} / {small}: **{_fmt(mem['chunked_increment'], 3)}**. No goal is stated for it; "
        f"against {MEMORY_GOAL} it would be {_verdict(mem['chunked_increment'], MEMORY_GOAL, False)}. It isolates what "
        "inference needs; increments of a few MiB are noisy.",
        f"- Plain `network(x)`, peak RSS {large} / {small}: {_fmt(mem['plain_peak'], 3)}; increment {large} / {small}: "
        f"{_fmt(mem['plain_increment'], 3)}. The difference to the chunked rows is what chunking buys.",
    ]
    return lines


def _backbone_section(report: dict[str, Any]) -> list[str]:
    s, bbs = report["settings"], report["backbones"]
    where = (
        "all in the benchmark's own process (`--backbones-in-process`), so their peak RSS includes that process's "
        "memory and the increments may be understated by memory freed earlier and reused"
        if report["backbones_in_process"]
        else "each in its own FRESH process, started like the memory workers"
    )
    lines = [
        "",
        "## 4. Backbones",
        "",
        f"How it was measured: the backbones ran {where}. `ResNetBackbone(depth, feature_stage={s['feature_stage']})` "
        f"with random weights processes batches of {s['backbone_batch']} random slices of {s['image_size'][0]} x "
        f"{s['image_size'][1]} ({s['in_channels']} channel(s)). Inference is a forward pass in `eval_mode` (no_grad); "
        "training is zero_grad + forward + `mean()` + backward (no optimizer step). Slices/s = batch x timed "
        "iterations / their total time, warm-up excluded. FLOPs per slice are counted by "
        "`torch.utils.flop_counter.FlopCounterMode` on one batch: convolution and matmul-type operations only, a "
        "multiply-add counted as 2 FLOPs (BatchNorm, ReLU and pooling are not counted); forward only for inference, "
        "forward + backward for training. Achieved GFLOP/s = FLOPs per slice x slices/s. The CPU's practical peak is "
        f"the best of {s['matmul_repeats']} float32 `torch.mm` of two {s['matmul_size']} x {s['matmul_size']} "
        "matrices (2 n^3 FLOPs each, after a warm-up one), measured in the same process right before and right after "
        "the backbone; the higher value is used. Peak RSS is `ru_maxrss` after each phase, the peak mark having been "
        "reset just before it (inference first, then training); the increment is over the RSS just before the phase.",
        "",
        "| Backbone | Params (M) | GFLOP / slice (fwd) | Inference slices/s | Inference GFLOP/s | % of peak | "
        "Training slices/s | Training GFLOP/s | % of peak | Peak RSS inference, MiB (increment) | "
        "Peak RSS training, MiB (increment) | Matmul peak GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in bbs:
        lines.append(
            f"| ResNet-{r['depth']} (stage {r['feature_stage']}, {r['out_channels']} channels) | "
            f"{_fmt(r['params_m'])} | {_fmt(r['forward_gflop'], 3)} | {_fmt(r['infer_slices_s'], 1)} | "
            f"{_fmt(r['infer_gflops'], 1)} | {_fmt(100 * r['infer_fraction'], 1)}% | {_fmt(r['train_slices_s'], 1)} | "
            f"{_fmt(r['train_gflops'], 1)} | {_fmt(100 * r['train_fraction'], 1)}% | "
            f"{_fmt(r['infer_peak_mib'], 0)} ({r['infer_increment_mib']:+.1f}) | "
            f"{_fmt(r['train_peak_mib'], 0)} ({r['train_increment_mib']:+.1f}) | {_fmt(r['cpu_peak_gflops'], 1)} |"
        )
    lines += [
        "",
        "Training GFLOP per slice (forward + backward): "
        + ", ".join(f"ResNet-{r['depth']} {_fmt(r['train_gflop'], 3)}" for r in bbs)
        + ".",
        "",
    ]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report that :func:`main` collects, as markdown."""
    sections = (_header, _summary, _training_section, _inference_section, _memory_section, _backbone_section)
    return "\n".join(line for section in sections for line in section(report))


# --------------------------------------------------------------------------------------------- CLI


def _defaults(key: str) -> str:
    return f"(default: {DEFAULTS[key]}; {QUICK[key]} with --quick)"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Benchmark the MIMS-CNN bundle on synthetic data and write a markdown report: training and inference "
            "throughput end to end versus model only, inference memory versus the number of slices, and speed, "
            "FLOPs and memory of each backbone. Every figure is a ratio of two measurements of the same run."
        ),
    )
    p.add_argument("--output", default=str(DEFAULT_OUTPUT), help="report to write (default: docs/performance.md)")
    p.add_argument(
        "--image-size", type=int, nargs=2, metavar=("H", "W"),
        help="slice size: overrides the configs' image_size (slices are resized to it) and is the size of the "
        f"memory and backbone inputs (default: the configs' image_size; {QUICK['image_size']} with --quick)",
    )
    p.add_argument(
        "--volume-shape", type=int, nargs=3, metavar=("H", "W", "D"),
        help=f"shape of the synthetic volumes, D = number of slices {_defaults('volume_shape')}",
    )
    p.add_argument(
        "--train-volumes", type=int, help=f"synthetic training volumes, all cached {_defaults('train_volumes')}"
    )
    p.add_argument(
        "--test-volumes", type=int,
        help=f"synthetic test volumes, cycled by the inference benchmark {_defaults('test_volumes')}",
    )
    p.add_argument(
        "--slices", type=int, nargs=2, metavar=("SMALL", "LARGE"),
        help=f"bag sizes N that the memory benchmark compares {_defaults('slices')}",
    )
    p.add_argument(
        "--iterations", type=int,
        help="timed iterations of each side of each measurement: training steps, inference volumes, backbone "
        f"batches {_defaults('iterations')}",
    )
    p.add_argument(
        "--warmup", type=int, help=f"iterations run before the timed ones and not counted {_defaults('warmup')}"
    )
    p.add_argument(
        "--backbones", type=int, nargs="+", metavar="DEPTH",
        help=f"ResNet depths of the backbone benchmark, any of 10 18 34 50 101 152 {_defaults('backbones')}",
    )
    p.add_argument(
        "--feature-stage", type=int, choices=(1, 2, 3, 4),
        help="backbone stage up to which the backbone benchmark computes (default: the configs' feature_stage)",
    )
    p.add_argument(
        "--backbone-batch", type=int, help=f"slices per batch in the backbone benchmark {_defaults('backbone_batch')}"
    )
    p.add_argument(
        "--backbones-in-process", action="store_true",
        help="measure the backbones in this process instead of one fresh process each: saves starting a process "
        "per backbone, but their peak RSS then includes this process's memory (implied by --quick)",
    )
    p.add_argument(
        "--matmul-size", type=int,
        help=f"n of the n x n float32 matmul that measures the CPU's practical peak FLOP/s {_defaults('matmul_size')}",
    )
    p.add_argument(
        "--matmul-repeats", type=int, help=f"timed repeats of that matmul, best counts {_defaults('matmul_repeats')}"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the synthetic data and of the training slice sampling (default: 0)"
    )
    p.add_argument(
        "--quick", action="store_true",
        help="tiny settings for tests and CI (the second default of the options above, and backbone_depth "
        f"{QUICK_CONFIG['backbone_depth']} for the MIMS-CNN model); finishes within a minute",
    )
    p.add_argument(
        "--workdir", help="folder for the synthetic data, kept afterwards (default: a temporary folder, then removed)"
    )
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings from the options, ``--quick`` and the defaults; ValueError for invalid values."""
    preset = QUICK if args.quick else DEFAULTS
    s = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in DEFAULTS}
    s["seed"] = args.seed
    for key in ("train_volumes", "test_volumes", "iterations", "backbone_batch", "matmul_size", "matmul_repeats"):
        if s[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {s[key]}.")
    if s["warmup"] < 0:
        raise ValueError(f"--warmup must be >= 0, got {s['warmup']}.")
    for key in ("image_size", "volume_shape"):
        if s[key] is not None and min(s[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be positive, got {s[key]}.")
    if not 1 <= s["slices"][0] < s["slices"][1]:
        raise ValueError(f"--slices needs 1 <= SMALL < LARGE, got {s['slices']}.")
    from networks.nets.backbone import RESNET_LAYOUTS

    unknown = [depth for depth in s["backbones"] if depth not in RESNET_LAYOUTS]
    if unknown:
        raise ValueError(f"--backbones {unknown} not supported; allowed: {sorted(RESNET_LAYOUTS)}.")
    return s


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the report.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when the report was written, whether or not each goal was met; 1 for invalid arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    load_start = _load_average()
    started = time.perf_counter()
    try:
        settings = _settings(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    command = shlex.join(["python", os.path.relpath(Path(__file__).resolve()), *argv])
    machine = machine_info()
    _log(f"{machine['cpu']}, {machine['usable_cores']} usable cores, torch threads {machine['torch_threads']}")

    from bundle.data.synthetic_oct import make_synthetic_oct_dataset

    base = _config_parser(["common.json"], {})
    settings["image_size"] = list(settings["image_size"] or base.get_parsed_content("image_size"))
    settings["feature_stage"] = args.feature_stage or base.get_parsed_content("feature_stage")
    settings["in_channels"] = base.get_parsed_content("in_channels")
    chunk_size = base.get_parsed_content("chunk_size")
    config_overrides = {"image_size": settings["image_size"], **(QUICK_CONFIG if args.quick else {})}
    overrides = {"device": "$torch.device('cpu')", **config_overrides}

    if args.workdir is None:
        folder: contextlib.AbstractContextManager = tempfile.TemporaryDirectory(prefix="mims_benchmark_")
    else:
        folder = contextlib.nullcontext(str(Path(args.workdir).expanduser().resolve()))
    with folder as workdir:
        data_dir = Path(workdir) / "synthetic_oct"
        _log(f"writing {settings['train_volumes']} training + {settings['test_volumes']} test volumes of "
             f"{settings['volume_shape']} to {data_dir}")
        make_synthetic_oct_dataset(
            data_dir, num_train=settings["train_volumes"], num_val=0, num_test=settings["test_volumes"],
            seed=settings["seed"], shape=tuple(settings["volume_shape"]), overwrite=True, progress=False,
        )
        data_overrides = {**overrides, "bundle_root": str(workdir), "dataset_dir": str(data_dir)}
        _log("1/4 training throughput")
        training = bench_training(data_overrides, settings["iterations"], settings["warmup"], settings["seed"])
        _log(f"training: {training['e2e_it_s']:.3f} it/s end to end, {training['model_it_s']:.3f} it/s model only, "
             f"ratio {training['ratio']:.3f}")
        _log("2/4 inference throughput")
        inference = bench_inference(data_overrides, settings["iterations"], settings["warmup"])
        _log(f"inference: {inference['e2e_vol_s']:.3f} volumes/s end to end, {inference['model_vol_s']:.3f} "
             f"model only, ratio {inference['ratio']:.3f}")

    order = "all at once" if args.quick else "one after the other"
    _log(f"3/4 memory versus slices {settings['slices']} (a fresh process each, {order})")
    memory = bench_memory(overrides, settings["slices"], chunk_size, concurrent=args.quick)
    in_process = args.backbones_in_process or args.quick
    _log(f"4/4 backbones {settings['backbones']} ({'in this process' if in_process else 'a fresh process each'})")
    backbones = bench_backbones(settings, in_process)

    report = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": command,
        "machine": machine,
        "load_start": load_start,
        "load_end": _load_average(),
        "settings": settings,
        "config_overrides": config_overrides,
        "training": training,
        "inference": inference,
        "memory": memory,
        "memory_concurrent": args.quick,
        "backbones": backbones,
        "backbones_in_process": in_process,
        "elapsed_s": time.perf_counter() - started,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_markdown(report), encoding="utf-8")
    _log(f"report written to {output} after {report['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
