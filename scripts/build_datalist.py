# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Build a MONAI decathlon-style datalist from a folder of images and a labels CSV.

Example (Kermany OCT B-scans, no patient in two splits)::

    python scripts/build_datalist.py --images-dir oct/images --labels-csv oct/labels.csv \\
        --out oct/datalist.json --image-column file --group-column patient_id --val-fraction 0.2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bundle.data.datalist_writer import run_datalist_command
from bundle.data.folder_datalist import build_datalist_from_csv

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Write a datalist JSON with 'training', 'validation' and 'test' lists of {'image', 'label'} entries "
            "for the images named in a CSV. Image paths in the JSON are relative to its folder. The split is "
            "stratified by label and, with --group-column, keeps every group (e.g. patient) in one split."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images-dir", required=True, default=argparse.SUPPRESS,
                   help="folder that the CSV's image entries are relative to")
    p.add_argument("--labels-csv", required=True, default=argparse.SUPPRESS,
                   help="CSV file with a header line, one row per case")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="datalist JSON file to write")
    p.add_argument("--image-column", default="image",
                   help="CSV column with the image file or folder (slices / DICOM series), relative to --images-dir")
    p.add_argument("--label-column", default="label",
                   help="CSV column with the label: integer class indices or class names (mapped to sorted indices)")
    p.add_argument("--group-column", default=None,
                   help="CSV column grouping rows (e.g. patient_id); a group is never split across splits")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of each class for validation")
    p.add_argument("--test-fraction", type=float, default=0.0, help="fraction of each class for test")
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names in index order, e.g. 'NORMAL,CNV,DME,DRUSEN'; "
                        "default: sorted unique names (or class_<k> for integer labels)")
    p.add_argument("--split-scans", action="store_true",
                   help="OCT files holding several scans (a Heidelberg .e2e with both eyes or several visits): one "
                        "case per scan, entries {'image', 'label', 'scan': <index>}, all scans of a file in one split; "
                        "without it such a file is refused when loaded, with the list of its scans")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file instead of refusing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 when an input is missing or invalid or the output exists (without
        ``--overwrite``).
    """
    args = build_parser().parse_args(argv)
    class_names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    return run_datalist_command(
        lambda: build_datalist_from_csv(
            args.images_dir,
            args.labels_csv,
            args.out,
            image_column=args.image_column,
            label_column=args.label_column,
            group_column=args.group_column,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
            class_names=class_names,
            overwrite=args.overwrite,
            split_scans=args.split_scans,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
