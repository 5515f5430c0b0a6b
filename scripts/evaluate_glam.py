# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Does GLAM-style global-local saliency localize small lesions in large images better than the plain heatmap?

Steps:

1. the synthetic large-image dataset (``bundle.data.synthetic_large2d``; 512 x 512 grey PNGs, label 1 =
   1-2 bright lesions of radius 4-6 px) is generated into ``--data`` unless its ``datalist.json``
   exists there;
2. MIMS-CNN is trained on it through the bundle (``monai.bundle.ConfigWorkflow`` with
   ``configs/common.json`` + ``configs/train.json`` + ``configs/datasets/synthetic_large2d.json``:
   images resized to ``--image-size``, bags of one slice), unless ``--ckpt`` gives a checkpoint;
3. the checkpoint is evaluated on the test split with ``configs/evaluate.json`` (classification AUROC);
4. on every positive test image, the plain gradient x input heatmap of the lesion class (global pass
   at ``--image-size``, upsampled to full resolution) is compared with the GLAM-style fused map of
   :class:`bundle.localization.glam.GlobalLocalSaliency` for each window size x number of windows
   asked for, and with the image intensity itself as a reference: pointing game (the map's maximum
   inside the lesion mask, and within ``--tolerance`` px of it), distance from the maximum to the
   nearest lesion pixel, pixel AUROC and pixel average precision against the mask;
5. a results page (``--report``) with date, machine, versions, the commands, the settings, the table,
   timings and a figure of three examples (``--figure``) is written.

This script parses and checks the arguments; the work is :func:`bundle.localization.glam_evaluation.run`.

Example::

    python scripts/evaluate_glam.py                      # generate, train (~10 min on 2 CPU cores), evaluate, report
    python scripts/evaluate_glam.py --ckpt runs/glam/model.pt --window-sizes 256 --num-windows 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bundle.config import REPO, parse_override

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Train MIMS-CNN on synthetic large 2D images with small lesions (or reuse a checkpoint) and compare "
            "the plain gradient x input heatmap with the GLAM-style global-local fused map on the positive test "
            "images: pointing game, peak distance, pixel AUROC and average precision against the lesion masks. "
            "Writes a markdown page and a PNG figure."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, default=REPO / "data" / "synthetic_large2d",
                   help="dataset folder; generated there unless it holds a datalist.json")
    g.add_argument("--num-train", type=int, default=240, help="training images when generating")
    g.add_argument("--num-val", type=int, default=60, help="validation images when generating")
    g.add_argument("--num-test", type=int, default=60, help="test images when generating")
    g.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=[512, 512],
                   help="full-resolution image size when generating")
    g.add_argument("--lesion-radius", type=float, nargs=2, metavar=("MIN", "MAX"), default=[4.0, 6.0],
                   help="lesion radius in px when generating")
    g.add_argument("--lesion-contrast", type=float, nargs=2, metavar=("MIN", "MAX"), default=[0.25, 0.4],
                   help="brightness a lesion adds (intensities in [0, 1]) when generating")
    g.add_argument("--data-seed", type=int, default=0, help="seed of the generated dataset")
    g = p.add_argument_group("training")
    g.add_argument("--work-dir", type=Path, default=REPO / "runs" / "glam",
                   help="folder for the run: checkpoints (train/), model.pt, eval/, glam_results.json")
    g.add_argument("--ckpt", type=Path, default=None,
                   help="use this checkpoint (a model state dict saved by the bundle) instead of training")
    g.add_argument("--epochs", type=int, default=12, help="training epochs")
    g.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=[256, 256],
                   help="network input size of whole images (global resolution); training uses it too")
    g.add_argument("--seed", type=int, default=0, help="training seed")
    g.add_argument("--override", action="append", type=parse_override, default=[], metavar="KEY=JSON",
                   help="extra bundle config override for training and evaluation, e.g. learning_rate=0.001 "
                        "(value parsed as JSON, else taken as a string); repeatable")
    g = p.add_argument_group("GLAM-style saliency")
    g.add_argument("--window-sizes", type=int, nargs="+", default=[256, 128],
                   help="window sizes (square, full-resolution px) to evaluate; the first is the main setting")
    g.add_argument("--num-windows", type=int, nargs="+", default=[1, 2],
                   help="windows per image to evaluate; the first is the main setting")
    g.add_argument("--layer", default=None,
                   help="layer of the gradient x input maps; default: the deepest backbone stage used")
    g.add_argument("--tolerance", type=float, default=8.0,
                   help="a maximum within this many px of a lesion pixel counts as a tolerant pointing hit")
    g = p.add_argument_group("output")
    g.add_argument("--report", type=Path, default=REPO / "docs" / "results" / "glam.md", help="markdown page")
    g.add_argument("--figure", type=Path, default=REPO / "docs" / "results" / "glam_examples.png",
                   help="PNG figure of three examples (the first three positive test images)")
    g.add_argument("--note", action="append", default=[],
                   help="a paragraph for the page's Notes section (e.g. what was changed since an earlier run); "
                        "repeatable")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.ckpt is not None and not args.ckpt.is_file():
        raise ValueError(f"--ckpt {args.ckpt} is not a file")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if min(args.window_sizes) < 1 or min(args.num_windows) < 1 or min(args.image_size) < 1:
        raise ValueError("--window-sizes, --num-windows and --image-size must be positive")
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must be >= 0, got {args.tolerance}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; returns 0 on success, 1 for invalid arguments."""
    args = build_parser().parse_args(argv)
    try:
        _check_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    from bundle.localization.glam_evaluation import run
    from bundle.localization.glam_options import GlamOptions

    run(GlamOptions(**vars(args)), sys.argv[1:] if argv is None else list(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
