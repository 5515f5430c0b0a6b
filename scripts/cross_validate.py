# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""K-fold cross-validation of one method on a labelled image folder: folds, one run per fold, mean and spread.

Builds k stratified folds from a labels CSV (no group of --group-column split across folds), trains and
evaluates the method on every fold in a fresh worker process (the engine of ``scripts/compare_methods.py``),
skipping finished folds, then prints and writes the per-fold test AUROC, accuracy and F1 with their mean,
standard deviation, minimum and maximum. The engine and the layout under ``--output-dir`` are in
:mod:`bundle.comparison.cross_validation`.

Example::

    python scripts/cross_validate.py --images-dir data/oct/images --labels-csv data/oct/labels.csv \\
        --group-column patient_id --k 5 --output-dir runs/cv/oct --override epochs=20
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the package imports MONAI and torch: seconds that --help and argument errors do without
    from bundle.comparison.cross_validation import CrossValidation

__all__ = ["build_parser", "main", "validate_arguments"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "K-fold cross-validation of one method of the MIMS-CNN bundle: stratified (and grouped) folds from a "
            "labels CSV; per fold, test = the fold, validation = --val-fraction of the other folds, training = the "
            "rest; each fold trained and evaluated in its own worker (MLflow-tracked); finished folds are skipped, "
            "so the command resumes. Writes cross_validation.md/.json under --output-dir. Exit code: 0, or 1 when "
            "a fold failed, or 2 for invalid arguments."
        ),
    )
    p.add_argument("--images-dir", required=True, help="folder the CSV's image entries are relative to")
    p.add_argument("--labels-csv", required=True, help="CSV with a header line: image, label and optional group column")
    p.add_argument("--output-dir", required=True,
                   help="folder of the folds (folds/), the runs (runs/) and the summary (cross_validation.md/.json)")
    p.add_argument("--name", default="cv",
                   help="name of the cross-validation: runs go to runs/<name>_fold<i>/ (default: cv)")
    p.add_argument("--k", type=int, default=5,
                   help="number of folds, at most the groups (or cases) of the rarest class (default: 5)")
    p.add_argument("--image-column", default="image", help="CSV column with the image path (default: image)")
    p.add_argument("--label-column", default="label",
                   help="CSV column with the label, class indices or class names (default: label)")
    p.add_argument("--group-column", default=None,
                   help="CSV column grouping rows (e.g. patient_id): no group is split across folds (default: none)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of the other folds' cases used for validation, per class (default: 0.2)")
    p.add_argument("--fold-seed", type=int, default=0, help="seed of the folds and validation splits (default: 0)")
    p.add_argument("--method", default="mims_cnn",
                   help="one method spec, e.g. mims_cnn or mims_cnn:top_k=3 (default: mims_cnn)")
    p.add_argument("--seed", type=int, default=0, help="training seed (config 'seed') of every fold (default: 0)")
    p.add_argument(
        "--config", nargs="+", action="extend", default=[], metavar="FILE",
        help="config overlays applied after configs/common.json and configs/train.json (or evaluate.json), in "
        "order, before the method's overlay",
    )
    p.add_argument("--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides for every fold, values parsed as JSON where possible (epochs=5)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failed fold (default: report it and go on with the other folds)")
    p.add_argument("--quiet", action="store_true",
                   help="show only progress lines; the workers' output still goes to each run's worker.log")
    return p


def validate_arguments(args: argparse.Namespace, argv: Sequence[str]) -> CrossValidation:
    """Check every argument and write (or reuse) the folds; ValueError or FileNotFoundError naming the problem."""
    from bundle.comparison.cross_validation import make_cross_validation

    return make_cross_validation(
        name=args.name, output_dir=args.output_dir, images_dir=args.images_dir, labels_csv=args.labels_csv,
        k=args.k, image_column=args.image_column, label_column=args.label_column, group_column=args.group_column,
        val_fraction=args.val_fraction, fold_seed=args.fold_seed, method=args.method, seed=args.seed,
        configs=args.config, overrides=args.override, fail_fast=args.fail_fast, quiet=args.quiet,
        command=shlex.join(["python", os.path.relpath(Path(__file__).resolve()), *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cross-validation.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when every fold finished (or was skipped), 1 when a fold failed; invalid arguments exit with 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cv = validate_arguments(args, argv)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        parser.error(str(err))
    from bundle.comparison.cross_validation import cross_validate

    return cross_validate(cv)


if __name__ == "__main__":
    raise SystemExit(main())
