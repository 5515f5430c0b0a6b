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

The report states how each number was measured, the goals and whether each was met. The work is done
by ``bundle.benchmark`` (``run.run_benchmark``; the memory and backbone workers run as
``python -m bundle.benchmark.workers``); this script parses the options.

Example::

    python scripts/benchmark.py                                   # writes docs/performance.md
    python scripts/benchmark.py --quick --output /tmp/perf.md     # tiny smoke run, under a minute
    python scripts/benchmark.py --backbones 18 50 101 --iterations 30
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bundle.benchmark.settings import DEFAULTS, QUICK, QUICK_CONFIG
from bundle.config import REPO

__all__ = ["build_parser", "main"]

DEFAULT_OUTPUT = REPO / "docs" / "performance.md"


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the report.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when the report was written, whether or not each goal was met; 1 for invalid arguments.
    """
    from bundle.benchmark.run import run_benchmark
    from bundle.benchmark.settings import resolve_settings
    from bundle.reports import load_average

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    load_start = load_average()
    started = time.perf_counter()
    try:
        settings = resolve_settings(vars(args), quick=args.quick)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    command = shlex.join(["python", os.path.relpath(Path(__file__).resolve()), *argv])
    run_benchmark(settings, args.output, command, quick=args.quick, feature_stage=args.feature_stage,
                  backbones_in_process=args.backbones_in_process, workdir=args.workdir,
                  load_start=load_start, started=started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
