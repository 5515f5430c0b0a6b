# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Convert a MedMNIST 3D ``.npz`` (e.g. ``adrenalmnist3d_64.npz``) to NIfTI volumes and a datalist.

Example::

    python scripts/medmnist_to_nifti.py --npz adrenalmnist3d_64.npz --out data/adrenal64 \\
        --label-names '{"0": "normal", "1": "hyperplasia"}'

The ``.npz`` is not downloaded here; see ``bundle.data.medmnist`` for how to obtain it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from bundle.data.datalist_writer import run_datalist_command
from bundle.data.medmnist import convert_medmnist3d

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Write every volume of a MedMNIST 3D .npz as OUT/images/<split>_XXXX.nii.gz (float32 uint8/255, "
            "axes (z, y, x) transposed to (y, x, z) so that slice_axis = 2 gives axial slices) and a MONAI "
            "decathlon-style OUT/datalist.json keeping the official train/val/test split."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--npz", required=True, default=argparse.SUPPRESS, help="MedMNIST 3D .npz file")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output folder (created if needed)")
    p.add_argument(
        "--label-names",
        default=None,
        help=(
            "JSON object mapping class index to name, e.g. '{\"0\": \"normal\", \"1\": \"hyperplasia\"}'; "
            "sets num_classes. Default: known names for AdrenalMNIST3D, else class_<k>"
        ),
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing conversion in --out instead of refusing"
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 when the input is missing or invalid or the output exists (without
        ``--overwrite``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    label_names = None
    if args.label_names is not None:
        try:
            label_names = json.loads(args.label_names)
        except json.JSONDecodeError as err:
            parser.error(f"--label-names is not valid JSON ({err}): {args.label_names!r}")
        if not isinstance(label_names, dict):
            parser.error(f"--label-names must be a JSON object like '{{\"0\": \"normal\"}}', got {args.label_names!r}")
    return run_datalist_command(
        lambda: convert_medmnist3d(
            args.npz, args.out, overwrite=args.overwrite, progress=not args.no_progress, label_names=label_names
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
