# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Training cost of each method on identical bags: parameters, time per training step, peak memory.

The comparison runs (``scripts/compare_methods.py``) record the same numbers during training, but there
they depend on the data (bags of 6-10 random slices), on validation and on whatever else runs on the
machine. This benchmark isolates the network: every method trains for ``--steps`` steps on the same
random batch of ``--batch-size`` bags of ``--bag-size`` slices (forward, cross-entropy, backward, AdamW
step with the bundle's backbone/head parameter groups), each method in a fresh process so that its peak
memory is its own. Reported: the median step time after ``--warmup`` steps, and the peak resident memory
increase over the process's memory after the network and the batch were built (CUDA: peak allocated
memory), both also relative to MI-Pre-Conv. Results go to a markdown page (default
``docs/results/method_cost.md``) with the machine, versions and the command.

Example::

    python scripts/method_cost.py --methods table1 aggregation --image-size 32 48
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from script_support import reset_peak_rss

REPO = Path(__file__).resolve().parents[1]
WORKER_COMMAND = "_measure"
REFERENCE = "mi_pre_conv"


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Build the method's network from the bundle configs and time ``steps`` training steps (worker side)."""
    import torch
    from monai.bundle import ConfigParser
    from monai.utils import set_determinism

    import compare_methods as cm  # method specs, memory helpers, machine facts (scripts/ is on sys.path)
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    set_determinism(seed=0)
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "common.json"), job["overlay"]])
    parser.update({**job["overrides"], "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')"})
    network = parser.get_parsed_content("network").train()
    device = next(network.parameters()).device
    from bundle.optim import backbone_head_param_groups

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

    baseline = cm.rss_bytes()
    reset = reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = [step() for _ in range(job["warmup"] + job["steps"])][job["warmup"] :]
    return {
        "parameters": int(sum(p.numel() for p in network.parameters())),
        "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times),
        "peak_rss_increase_mib": (cm.max_rss_bytes() - baseline) / 2**20,
        "peak_rss_since": "baseline" if reset else "process start",
        "peak_cuda_mib": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "network": type(network).__name__,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["table1", "aggregation"], metavar="SPEC",
                        help="method names, the groups 'table1' and 'aggregation', or name:key=value "
                             "(as in compare_methods.py); default: table1 aggregation")
    parser.add_argument("--image-size", nargs=2, type=int, default=[32, 48], metavar=("H", "W"),
                        help="slice size given to the networks (default: 32 48, as in the synthetic comparison)")
    parser.add_argument("--bag-size", type=int, default=8, help="slices per bag (default: 8)")
    parser.add_argument("--batch-size", type=int, default=4, help="bags per batch (default: 4, train.json's)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per method (default: 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: 5)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per worker; 0: torch's default")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every method (JSON values), e.g. backbone_depth=18")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "results" / "method_cost.md",
                        help="markdown page to write (a .json with every number is written next to it)")
    return parser


def _run_worker(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), WORKER_COMMAND, json.dumps(job)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {job['spec']} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}×" if value is not None and reference else "–"


def render(rows: list[dict[str, Any]], args: argparse.Namespace, command: str, cm: ModuleType) -> str:
    reference = next((r for r in rows if r["spec"] == REFERENCE), None)
    ref_ms = reference["step_ms_median"] if reference else None
    ref_mem = reference["peak_rss_increase_mib"] if reference else None
    lines = [
        "# Training cost per method",
        "",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Machine: {cm._machine_text(cm.machine_info())}; device: {rows[0]['device'] if rows else '–'}; "
        f"torch threads per worker: {rows[0]['torch_threads'] if rows else '–'}",
        f"- Versions: {cm._installed_versions()}",
        f"- Command: `{command}`",
        "- Each method: configs/common.json + configs/methods/<method>.json"
        + (f" + overrides {', '.join(args.override)}" if args.override else "")
        + f"; one batch of {args.batch_size} bags x {args.bag_size} slices of {args.image_size[0]} x "
        f"{args.image_size[1]} pixels; {args.warmup} untimed then {args.steps} timed training steps (forward, "
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
            f"{_ratio(r['step_ms_median'], ref_ms)} | {r['peak_rss_increase_mib']:.1f} | "
            f"{_ratio(r['peak_rss_increase_mib'], ref_mem)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER_COMMAND]:
        print(json.dumps(measure(json.loads(argv[1]))))
        return 0
    args = build_parser().parse_args(argv)
    import compare_methods as cm  # method specs, memory helpers, machine facts (scripts/ is on sys.path)
    registry = cm.load_method_registry()
    try:
        specs = cm.expand_method_specs(args.methods, registry)
        overrides = dict(cm.parse_override(o) for o in args.override)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, value in (("--bag-size", args.bag_size), ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            print(f"error: {name} must be >= 1, got {value}", file=sys.stderr)
            return 2
    command = "python scripts/method_cost.py " + shlex.join(argv)
    rows = []
    for i, spec in enumerate(specs, start=1):
        job = {
            "spec": spec.canonical,
            "overlay": str(registry.method_config(spec.name)),
            "overrides": {**overrides, **dict(spec.overrides), "image_size": list(args.image_size)},
            "image_size": list(args.image_size),
            "bag_size": args.bag_size,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
        }
        print(f"[{i}/{len(specs)}] {spec.canonical} ...", flush=True)
        result = {**_run_worker(job), "spec": spec.canonical, "label": spec.label}
        print(f"[{i}/{len(specs)}] {spec.canonical}: {result['step_ms_median']:.1f} ms/step, "
              f"{result['peak_rss_increase_mib']:.1f} MiB", flush=True)
        rows.append(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(rows, args, command, cm), encoding="utf-8")
    args.output.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
