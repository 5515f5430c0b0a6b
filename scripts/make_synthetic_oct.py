# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Generate the synthetic OCT dataset (NIfTI volumes, lesion masks, datalist.json).

Example::

    python scripts/make_synthetic_oct.py --out data/synthetic_oct
    python scripts/make_synthetic_oct.py --out /tmp/tiny --num-train 8 --num-val 4 --num-test 4 \\
        --shape 64 96 16 --central-slices 8
    python scripts/make_synthetic_oct.py --out data/synthetic_oct_hard --preset hard --num-test 200
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bundle.data.datalist_writer import run_datalist_command
from bundle.data.synthetic_oct import DEFAULT_SHAPE, PRESETS, make_synthetic_oct_dataset, preset_config

__all__ = ["build_parser", "main"]

#: the options that set a SyntheticOCTConfig field (argparse destination = field name)
CONFIG_OPTIONS = (
    "num_lesions",
    "lesion_radius",
    "lesion_slices",
    "lesion_darkening",
    "central_slices",
    "num_confounders",
    "num_vessels",
)


def _preset_values(field: str) -> str:
    """``"per preset: default 1 3, hard 1 2"``: the value of ``field`` in every preset, for --help."""
    values = []
    for name in PRESETS:
        value = getattr(preset_config(name), field)
        values.append(f"{name} {' '.join(map(str, value)) if isinstance(value, tuple) else value}")
    return "per preset: " + ", ".join(values)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Write synthetic OCT-like volumes [H, W, D] (depth, lateral, B-scan; slice_axis = 2) as "
            "OUT/images/case_XXXX.nii.gz, their lesion masks as OUT/masks/case_XXXX.nii.gz and a MONAI "
            "decathlon-style OUT/datalist.json with 'training', 'validation' and 'test' lists. Label 1 "
            "volumes contain small dark cysts near the central B-scans, label 0 volumes none. --preset picks "
            "named generator settings; the lesion and confounder options below override the preset's values "
            "(their defaults are the preset's, listed per preset)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output folder (created if needed)")
    p.add_argument("--num-train", type=int, default=160, help="number of training volumes")
    p.add_argument("--num-val", type=int, default=40, help="number of validation volumes")
    p.add_argument("--num-test", type=int, default=60, help="number of test volumes")
    p.add_argument("--positive-fraction", type=float, default=0.5, help="fraction of label-1 volumes in each split")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical arrays")
    p.add_argument(
        "--shape", type=int, nargs=3, metavar=("H", "W", "D"), default=list(DEFAULT_SHAPE),
        help="volume shape: depth rows, lateral columns, number of B-scans (H, W >= 32)",
    )
    p.add_argument(
        "--preset", choices=list(PRESETS), default="default",
        help="named generator settings: 'default' (the demo's data) or 'hard' (the same cysts anywhere in the "
        "central 30 B-scans, the benchmark of docs/results/synthetic_oct_hard.md, calibrated in "
        "docs/results/synthetic_oct_hard_calibration.md; values listed with each option below); recorded in "
        "datalist.json",
    )
    # the preset's fields: absent from the namespace unless given, so that only explicit options override it
    pair = {"nargs": 2, "metavar": ("MIN", "MAX"), "default": argparse.SUPPRESS}
    p.add_argument(
        "--num-lesions", type=int, **pair,
        help=f"number of cysts in a positive volume ({_preset_values('num_lesions')})",
    )
    p.add_argument(
        "--lesion-radius", type=float, **pair,
        help=f"in-plane semi-axes of a cyst in pixels ({_preset_values('lesion_radius')})",
    )
    p.add_argument(
        "--lesion-slices", type=int, **pair,
        help=f"number of consecutive B-scans a cyst spans ({_preset_values('lesion_slices')})",
    )
    p.add_argument(
        "--lesion-darkening", type=float, **pair,
        help="how far a cyst is pulled towards the vitreous darkness, 0..1 with 1 black "
        f"({_preset_values('lesion_darkening')})",
    )
    p.add_argument(
        "--central-slices", type=int, default=argparse.SUPPRESS,
        help=f"cysts lie within this many central B-scans, clipped to D ({_preset_values('central_slices')})",
    )
    p.add_argument(
        "--num-confounders", type=int, **pair,
        help=f"faint small dark speckle clusters per volume, in both classes ({_preset_values('num_confounders')})",
    )
    p.add_argument(
        "--num-vessels", type=int, **pair,
        help=f"retinal vessels (with vertical shadows) per volume, in both classes ({_preset_values('num_vessels')})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 when the output exists (without ``--overwrite``) or an argument is invalid.
    """
    args = build_parser().parse_args(argv)

    def write() -> Path:
        given = {name: getattr(args, name) for name in CONFIG_OPTIONS if hasattr(args, name)}
        config = preset_config(args.preset, **given)
        return make_synthetic_oct_dataset(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            num_test=args.num_test,
            positive_fraction=args.positive_fraction,
            seed=args.seed,
            shape=tuple(args.shape),
            overwrite=args.overwrite,
            progress=not args.no_progress,
            config=config,
            preset=args.preset,
        )

    return run_datalist_command(write)


if __name__ == "__main__":
    raise SystemExit(main())
