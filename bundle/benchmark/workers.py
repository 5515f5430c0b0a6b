# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Parts 3 and 4 of the benchmark: inference memory versus the number of slices, and the backbones.

Each measurement is meant for a FRESH process: :func:`run_worker` starts
``python -m bundle.benchmark.workers <spec-json>`` through a small launcher process, because on exec()
Linux carries the high-water RSS of the exec'ing process over into the new program's ``ru_maxrss``: a
worker exec'd straight from the (large) benchmark process would report that process's peak as its own.
The launcher is small, so its child's ``ru_maxrss`` is its own. The worker prints its result as one JSON
line starting with ``BENCHMARK_RESULT``.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bundle.benchmark.timing import log, rate
from bundle.config import CONFIGS, REPO, config_parser
from bundle.reports import peak_rss_bytes, reset_peak_rss, rss_bytes

__all__ = ["WORKERS", "bench_backbones", "bench_memory", "run_worker", "worker_main"]

_RESULT_MARK = "BENCHMARK_RESULT "
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
_MIB = 1024.0**2


def _memory_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS of inference on one random bag ``[1, spec["slices"], C, H, W]`` (meant for a fresh process)."""
    import torch
    from monai.networks import eval_mode

    parser = config_parser([CONFIGS / "common.json"], spec["overrides"])
    network = parser.get_parsed_content("network")
    inferer = parser.get_parsed_content("inferer")
    h, w = parser.get_parsed_content("image_size")
    n, c = int(spec["slices"]), parser.get_parsed_content("in_channels")
    x = torch.rand(1, n, c, h, w, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, n, dtype=torch.bool)  # what pad_bag_collate gives a batch of one volume
    gc.collect()
    before = rss_bytes()  # VmRSS
    reset = reset_peak_rss()
    with eval_mode(network):
        for _ in range(int(spec["repeats"])):
            logits = inferer(x, network, mask=mask) if spec["chunked"] else network(x, mask=mask)
            torch.softmax(logits, dim=1)
    peak = peak_rss_bytes()
    return {
        "slices": n,
        "chunked": bool(spec["chunked"]),
        "chunk_size": parser.get_parsed_content("chunk_size"),
        "rss_before_mib": before / _MIB,
        "peak_mib": peak / _MIB,
        "increment_mib": (peak - before) / _MIB,
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
    """Speed, FLOPs and peak RSS of one ``ResNetBackbone`` on batches ``[batch, C, H, W]`` (meant for a fresh
    process)."""
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
        before = rss_bytes()
        reset_peak_rss()
        times = []
        for i in range(warmup + iterations):
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        peak = peak_rss_bytes()
        return rate(times, batch), peak / _MIB, (peak - before) / _MIB

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


#: worker kind -> measurement
WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "memory": _memory_worker,
    "backbone": _backbone_worker,
}


def worker_main(spec_json: str) -> int:
    """Entry point of a worker process: run the measurement that ``spec_json`` describes.

    Args:
        spec_json: a JSON object with ``kind`` (``"memory"`` or ``"backbone"``) and its settings.

    Returns:
        0; the result is printed as one JSON line starting with ``BENCHMARK_RESULT``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    spec = json.loads(spec_json)
    if spec.get("kind") not in WORKERS:
        raise ValueError(f"unknown worker kind {spec.get('kind')!r}; allowed: {sorted(WORKERS)}")
    print(_RESULT_MARK + json.dumps(WORKERS[spec["kind"]](spec)), flush=True)
    return 0


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`worker_main` of ``spec`` in a fresh Python process (started through the launcher); its result.

    Raises:
        RuntimeError: the worker printed no result (with the end of its stderr).
    """
    worker = [sys.executable, "-m", "bundle.benchmark.workers", json.dumps(spec)]
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *worker], capture_output=True, text=True, cwd=str(REPO))
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARK):
            return json.loads(line[len(_RESULT_MARK) :])
    raise RuntimeError(f"{spec['kind']} worker failed (exit code {proc.returncode}):\n{proc.stderr[-4000:]}")


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
        measured = dict(zip(specs, pool.map(run_worker, specs.values())))
    results = []
    for chunked, n in cases:
        if (chunked, n) in measured:
            r = {**measured[chunked, n], "same_call": False}
            log(
                f"memory: {'ChunkedBagInferer' if chunked else 'network(x)'} N={n}: peak RSS {r['peak_mib']:.0f} MiB, "
                f"{r['increment_mib']:+.1f} MiB over {r['rss_before_mib']:.0f} MiB before inference"
            )
        else:
            r = {**measured[True, n], "chunked": False, "same_call": True}
        results.append(r)
    return results


def bench_backbones(settings: dict[str, Any], in_process: bool) -> list[dict[str, Any]]:
    """One backbone measurement per depth of ``settings["backbones"]``: each in a fresh process, or all in this
    one."""
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
        r = _backbone_worker(spec) if in_process else run_worker(spec)
        log(
            f"backbones: ResNet-{depth}: inference {r['infer_slices_s']:.1f} slices/s, training "
            f"{r['train_slices_s']:.1f} slices/s, {r['forward_gflop']:.3f} GFLOP/slice forward, "
            f"{100 * r['infer_fraction']:.1f}% of the {r['cpu_peak_gflops']:.0f} GFLOP/s matmul peak"
        )
        results.append(r)
    return results


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1]))
