# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The bundle's main job on its embedded default data: generate, train, evaluate, report.

1. generates the synthetic OCT-like volumes into ``data/synthetic_oct`` (skipped when present);
2. trains MIMS-CNN with ``python -m monai.bundle run`` (configs/common.json + configs/train.json),
   tracked in MLflow;
3. evaluates the promoted best checkpoint ``models/model.pt`` on the test split
   (configs/common.json + configs/evaluate.json);
4. prints the test metrics and where the checkpoints, predictions and MLflow runs are.

Every bundle command it runs is printed first, so it can be copied and changed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["build_parser", "main", "run_demo"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bundle-root",
        default=str(ROOT),
        help="folder for everything the demo writes: data/, runs/, models/, eval/ (default: the repository root)",
    )
    parser.add_argument(
        "--data-dir",
        default="data/synthetic_oct",
        help="where the demo volumes are written (relative to --bundle-root)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data generator")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: configs/train.json)")
    parser.add_argument(
        "--num-train", type=int, default=None, help="training volumes to generate (default: the generator's)"
    )
    parser.add_argument("--no-tracking", action="store_true", help="do not track the runs in MLflow")
    parser.add_argument("--regenerate", action="store_true", help="regenerate the demo data even if it exists")
    return parser


def run_demo(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv`` and run :func:`bundle.demo.run_demo`; returns the test metrics (``eval/metrics.json``)."""
    args = build_parser().parse_args(argv)
    from bundle.demo import run_demo as run

    return run(
        bundle_root=args.bundle_root,
        data_dir=args.data_dir,
        seed=args.seed,
        epochs=args.epochs,
        num_train=args.num_train,
        tracking=not args.no_tracking,
        regenerate=args.regenerate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; 1 when a bundle command fails."""
    try:
        run_demo(argv)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
