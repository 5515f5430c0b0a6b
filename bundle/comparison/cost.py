# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Training cost of each method on identical bags: parameters, time per training step, peak memory.

The comparison runs record the same numbers during training, but there they depend on the data, on
validation and on whatever else runs on the machine. Here every method trains for ``steps`` steps on the
same random batch of ``batch_size`` bags ``[B, N, C, H, W]`` (forward, cross-entropy, backward, AdamW step
with the bundle's backbone/head parameter groups), each method in a fresh process
(``python -m bundle.comparison.cost JOB_JSON``) so that its peak memory is its own. :func:`measure_methods`
runs them and writes a markdown page with the machine, versions and the command, and a JSON file with
every number. Importing this module loads neither torch nor MONAI (the worker does).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundle.comparison.pages import REFERENCE_METHOD, format_ratio
from bundle.config import CONFIGS, REPO
from bundle.methods import MethodSpec, method_config, spec_override
from bundle.reports import (
    atomic_write,
    code_state,
    code_text,
    machine_text,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    versions_text,
)

__all__ = ["CostSetup", "cost_jobs", "main", "measure", "measure_methods", "render_cost_page", "run_job"]


@dataclasses.dataclass(frozen=True)
class CostSetup:
    """What every method is measured on.

    Args:
        image_size: slice size ``(H, W)`` in pixels.
        bag_size: slices per bag ``N``.
        batch_size: bags per batch ``B``.
        steps: timed training steps per method.
        warmup: untimed steps first.
        threads: torch threads per worker; 0: torch's default.
        overrides: ``key=value`` config overrides for every method, as given (JSON values,
            :func:`bundle.methods.spec_override`).

    Raises:
        ValueError: a malformed override.
    """

    image_size: tuple[int, int] = (32, 48)
    bag_size: int = 8
    batch_size: int = 4
    steps: int = 30
    warmup: int = 5
    threads: int = 0
    overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.config_overrides()

    def config_overrides(self) -> dict[str, Any]:
        """The overrides as config values: ``{key: value}``."""
        return dict(spec_override(o) for o in self.overrides)


def cost_jobs(specs: Sequence[MethodSpec], setup: CostSetup) -> list[dict[str, Any]]:
    """The worker job of each spec (JSON-able): its overlay and overrides, and the sizes of ``setup``."""
    overrides = setup.config_overrides()
    image_size = list(setup.image_size)
    return [
        {
            "spec": spec.canonical,
            "overlay": str(method_config(spec.name)),
            "overrides": {**overrides, **dict(spec.overrides), "image_size": image_size},
            "image_size": image_size,
            "bag_size": setup.bag_size,
            "batch_size": setup.batch_size,
            "steps": setup.steps,
            "warmup": setup.warmup,
            "threads": setup.threads,
        }
        for spec in specs
    ]


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Build the method's network from the bundle configs and time ``steps`` training steps (worker side).

    Args:
        job: one of :func:`cost_jobs`.

    Returns:
        parameters, median and minimum step time (ms), peak resident memory increase over the memory once the
        network and the batch existed (MiB), peak CUDA memory (MiB; None on CPU), network class, device, threads.
    """
    import torch
    from monai.utils import set_determinism

    from bundle.config import config_parser
    from bundle.optim import backbone_head_param_groups

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    set_determinism(seed=0)
    device_expr = "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')"
    parser = config_parser([CONFIGS / "common.json", job["overlay"]], {**job["overrides"], "device": device_expr})
    network = parser.get_parsed_content("network").train()
    device = next(network.parameters()).device
    optimizer = torch.optim.AdamW(backbone_head_param_groups(network, 1e-3, 0.5), lr=1e-3)
    height, width = job["image_size"]
    channels = int(parser.get_parsed_content("in_channels"))
    x = torch.rand(job["batch_size"], job["bag_size"], channels, height, width, device=device)
    labels = (torch.arange(job["batch_size"], device=device) % int(parser.get_parsed_content("num_classes"))).long()
    loss_fn = torch.nn.CrossEntropyLoss()
    cuda = device.type == "cuda"

    def step() -> float:
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_fn(network(x), labels).backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    baseline = rss_bytes()
    reset = reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = [step() for _ in range(job["warmup"] + job["steps"])][job["warmup"] :]
    return {
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times),
        "peak_rss_increase_mib": (peak_rss_bytes() - baseline) / 2**20,
        "peak_rss_since": "baseline" if reset else "process start",
        "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "network": type(network).__name__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure` ``job`` in a fresh Python process (in the repository); its result.

    Raises:
        RuntimeError: the worker failed (the message has the end of its error output).
    """
    cmd = [sys.executable, "-m", "bundle.comparison.cost", json.dumps(job)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {job['spec']} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render_cost_page(rows: Sequence[dict[str, Any]], setup: CostSetup, command: str) -> str:
    """The markdown page: settings, then one table row per method (``rows`` as :func:`measure_methods` returns)."""
    reference = next((r for r in rows if r["spec"] == REFERENCE_METHOD), None)
    ref_ms = reference["step_ms_median"] if reference else None
    ref_mem = reference["peak_rss_increase_mib"] if reference else None
    lines = [
        "# Training cost per method",
        "",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {machine_text()}; device: {rows[0]['device'] if rows else '–'}; "
        f"torch threads per worker: {rows[0]['torch_threads'] if rows else '–'}",
        f"- Versions: {versions_text(('torch', 'monai'))}",
        f"- Command: `{command}`",
        f"- Code: {code_text(code_state())}",
        "- Each method: configs/common.json + configs/methods/<method>.json"
        + (f" + overrides {', '.join(setup.overrides)}" if setup.overrides else "")
        + f"; one batch of {setup.batch_size} bags x {setup.bag_size} slices of {setup.image_size[0]} x "
        f"{setup.image_size[1]} pixels; {setup.warmup} untimed then {setup.steps} timed training steps (forward, "
        "cross-entropy, backward, AdamW), each method in a fresh process.",
        "",
        "Step time: median over the timed steps. Peak memory increase: the process's peak resident memory "
        "during the steps minus its resident memory once the network and the batch existed (activations, "
        "gradients, optimizer state). × MI-Pre-Conv divides by MI-Pre-Conv's value.",
        "",
        "| Method | Network | Parameters | Step (ms) | × MI-Pre-Conv | Peak memory increase (MiB) | × MI-Pre-Conv |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | `{r['network']}` | {r['parameters']:,} | {r['step_ms_median']:.1f} | "
            f"{format_ratio(r['step_ms_median'], ref_ms)} | {r['peak_rss_increase_mib']:.1f} | "
            f"{format_ratio(r['peak_rss_increase_mib'], ref_mem)} |"
        )
    return "\n".join(lines) + "\n"


def measure_methods(specs: Sequence[MethodSpec], setup: CostSetup, output: Path, command: str) -> list[dict[str, Any]]:
    """Measure every spec, each in its own worker, printing progress; write the page ``output`` and the JSON
    file next to it (``output`` with suffix ``.json``: the command and every row).

    Returns:
        one row per spec: :func:`measure`'s numbers with ``spec`` (canonical) and ``label``.

    Raises:
        RuntimeError: a worker failed.
    """
    jobs = cost_jobs(specs, setup)
    rows = []
    for i, (spec, job) in enumerate(zip(specs, jobs), start=1):
        print(f"[{i}/{len(specs)}] {spec.canonical} ...", flush=True)
        result = {**run_job(job), "spec": spec.canonical, "label": spec.label}
        print(f"[{i}/{len(specs)}] {spec.canonical}: {result['step_ms_median']:.1f} ms/step, "
              f"{result['peak_rss_increase_mib']:.1f} MiB", flush=True)
        rows.append(result)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, render_cost_page(rows, setup, command))
    atomic_write(output.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print(f"wrote {output} and {output.with_suffix('.json')}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m bundle.comparison.cost JOB_JSON``: print :func:`measure`'s result as one JSON line."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m bundle.comparison.cost JOB_JSON")
    print(json.dumps(measure(json.loads(argv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
