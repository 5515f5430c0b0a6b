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
import shlex
import sys
from pathlib import Path

from bundle.comparison.cost import CostSetup, measure_methods
from bundle.comparison.settings import MANAGED_KEYS
from bundle.config import REPO
from bundle.methods import expand_method_specs

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script (its description is this module's docstring)."""
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


def main(argv: list[str] | None = None) -> int:
    """Measure the methods and write the page; 0, or 2 for invalid arguments (nothing measured)."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        setup = CostSetup(image_size=tuple(args.image_size), bag_size=args.bag_size, batch_size=args.batch_size,
                          steps=args.steps, warmup=args.warmup, threads=args.threads, overrides=tuple(args.override))
        specs = expand_method_specs(args.methods, MANAGED_KEYS, base_overrides=setup.config_overrides())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, value in (("--bag-size", args.bag_size), ("--batch-size", args.batch_size), ("--steps", args.steps)):
        if value < 1:
            print(f"error: {name} must be >= 1, got {value}", file=sys.stderr)
            return 2
    measure_methods(specs, setup, args.output, "python scripts/method_cost.py " + shlex.join(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
