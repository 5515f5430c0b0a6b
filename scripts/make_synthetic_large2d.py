# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Generate the synthetic large-image dataset (8-bit PNG images, lesion masks, datalist.json).

Example::

    python scripts/make_synthetic_large2d.py --out data/synthetic_large2d
    python scripts/make_synthetic_large2d.py --out /tmp/tiny --num-train 4 --num-val 2 --num-test 2 --size 128 128
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bundle.data.datalist_writer import run_datalist_command
from bundle.data.synthetic_large2d import DEFAULT_SIZE, SyntheticLarge2DConfig, make_synthetic_large2d_dataset

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    d = SyntheticLarge2DConfig()
    p = argparse.ArgumentParser(
        description=(
            "Write synthetic large grey 2D images as OUT/images/case_XXXX.png (8-bit), their lesion masks as "
            "OUT/masks/case_XXXX.png (values 0/1) and a MONAI decathlon-style OUT/datalist.json with 'training', "
            "'validation' and 'test' lists. Label 1 images contain 1-2 small bright round lesions, label 0 "
            "images none; both contain faint bright blobs, thin bright fibres and small dark spots."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output folder (created if needed)")
    p.add_argument("--num-train", type=int, default=240, help="number of training images")
    p.add_argument("--num-val", type=int, default=60, help="number of validation images")
    p.add_argument("--num-test", type=int, default=60, help="number of test images")
    p.add_argument("--positive-fraction", type=float, default=0.5, help="fraction of label-1 images in each split")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    p.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"), default=list(DEFAULT_SIZE),
        help="image size in pixels (rows, columns; both >= 64)",
    )
    p.add_argument(
        "--num-lesions", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(d.num_lesions),
        help="number of lesions in a positive image",
    )
    p.add_argument(
        "--lesion-radius", type=float, nargs=2, metavar=("MIN", "MAX"), default=list(d.lesion_radius),
        help="lesion radius in pixels",
    )
    p.add_argument(
        "--lesion-contrast", type=float, nargs=2, metavar=("MIN", "MAX"), default=list(d.lesion_contrast),
        help="brightness a lesion adds at its centre (intensities in [0, 1])",
    )
    p.add_argument(
        "--num-dark-spots", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(d.num_dark_spots),
        help="small dark spots per image, in both classes",
    )
    p.add_argument(
        "--num-fibres", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(d.num_fibres),
        help="thin bright fibres per image, in both classes",
    )
    p.add_argument(
        "--num-blobs", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(d.num_blobs),
        help="large faint bright blobs per image, in both classes",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> SyntheticLarge2DConfig:
    """The generator configuration the parsed arguments describe (defaults for what they do not set)."""
    return SyntheticLarge2DConfig(
        num_lesions=tuple(args.num_lesions),
        lesion_radius=tuple(args.lesion_radius),
        lesion_contrast=tuple(args.lesion_contrast),
        num_dark_spots=tuple(args.num_dark_spots),
        num_fibres=tuple(args.num_fibres),
        num_blobs=tuple(args.num_blobs),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 when the output exists (without ``--overwrite``) or an argument is invalid.
    """
    args = build_parser().parse_args(argv)

    def write() -> Path:
        return make_synthetic_large2d_dataset(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            num_test=args.num_test,
            positive_fraction=args.positive_fraction,
            seed=args.seed,
            size=tuple(args.size),
            overwrite=args.overwrite,
            progress=not args.no_progress,
            config=config_from_args(args),
        )

    return run_datalist_command(write)


if __name__ == "__main__":
    raise SystemExit(main())
