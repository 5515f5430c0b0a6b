# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Compare methods of the bundle on one dataset: train and test each (method, seed), then report.

For every requested method spec and seed, one fresh worker process trains with
``configs/common.json`` + ``configs/train.json`` + the ``--config`` overlays + the method's overlay
(``configs/methods/<name>.json``) tracked in MLflow, measures the cost of training, evaluates the best
checkpoint on the test split and writes ``result.json`` last; finished runs are skipped, so an interrupted
comparison resumes. Each finished run's small record goes to ``--records-dir`` (commit it); the markdown
page and the AUROC chart are then generated from the records (``scripts/make_results_pages.py`` regenerates
every page). The engine, and the layout under ``--output-root``, are in :mod:`bundle.comparison`.

Example::

    python scripts/compare_methods.py --dataset-name synthetic_oct --datalist data/synthetic_oct/datalist.json \\
        --methods table1 aggregation --seeds 0 1 2 --override epochs=5
    python scripts/compare_methods.py --dataset-name synthetic_oct --datalist data/synthetic_oct/datalist.json \\
        --methods mims_cnn mims_cnn:top_k=3 --seeds 0 --report-only
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bundle.comparison.runner import compare
from bundle.comparison.settings import DEFAULT_OUTPUT_ROOT, DEFAULT_RESULTS_DIR, Settings, make_settings

__all__ = ["build_parser", "main", "validate_arguments"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Compare methods of the MIMS-CNN bundle on one dataset: for each method spec and seed, train (tracked "
            "in MLflow), measure the training cost, evaluate the best checkpoint on the test split and write the "
            "run's record, then generate the markdown page (Table-1-style tables, test AUROC with 95 % bootstrap "
            "intervals) and a bar chart from the records. Finished runs (those with a result.json) are skipped, so "
            "the command resumes; an unfinished run's folder is cleared and the run starts over. Exit code: 0, or 1 "
            "when a run failed, or 2 for invalid arguments."
        ),
    )
    p.add_argument(
        "--dataset-name", required=True,
        help="name of the dataset: folder under --output-root, MLflow experiment compare_<name>, page <name>.md",
    )
    p.add_argument("--datalist", required=True, help="datalist JSON with training, validation and test splits")
    p.add_argument(
        "--methods", nargs="+", required=True, metavar="SPEC",
        help="method specs in the order of the tables: method names of bundle.methods.METHODS, the groups 'table1', "
        "'aggregation' and 'attention', or name:key=value[,key=value] for a method with config overrides of its "
        "own (e.g. "
        "mims_cnn:top_k=3); duplicates are dropped",
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], metavar="SEED",
                   help="training seeds (config 'seed'), one run each per method (default: 0 1 2)")
    p.add_argument(
        "--config", nargs="+", action="extend", default=[], metavar="FILE",
        help="config overlays applied after configs/common.json and configs/train.json (or evaluate.json), in "
        "order, before the method's overlay (e.g. configs/datasets/adrenalmnist3d.json)",
    )
    p.add_argument(
        "--override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="config overrides for every method, values parsed as JSON where possible (epochs=5 "
        "image_size=[32,32]); a method spec's own overrides win over these",
    )
    p.add_argument("--output-root", default=str(DEFAULT_OUTPUT_ROOT),
                   help="folder of the runs: <output-root>/<dataset-name>/<method>/seed<k>/ (default: runs/compare)")
    p.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR),
                   help="folder of the page <dataset-name>.md and chart <dataset-name>.png, or of the page its "
                   "pages.json declares for the dataset name (default: docs/results)")
    p.add_argument("--records-dir",
                   help="folder of the run records <records-dir>/<dataset-name>/<method>/seed<k>.json, written after "
                   "each finished run and read for the page (default: <results-dir>/records, i.e. "
                   "docs/results/records)")
    p.add_argument("--notes", metavar="FILE",
                   help="markdown file inserted verbatim under '## Discussion' on the page (default: no such section; "
                   "a page that <results-dir>/pages.json declares for the dataset name uses its own notes)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the records of the finished runs found, then the page and the chart")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first failed run (default: report it and go on with the other runs)")
    p.add_argument("--quiet", action="store_true",
                   help="show only progress lines; the workers' output still goes to each run's worker.log")
    return p


def validate_arguments(args: argparse.Namespace, argv: Sequence[str]) -> Settings:
    """The comparison's settings, every argument checked before any work (ValueError or FileNotFoundError
    naming the problem); ``argv`` is recorded as the command on the page."""
    return make_settings(
        dataset_name=args.dataset_name,
        datalist=args.datalist,
        methods=args.methods,
        seeds=args.seeds,
        configs=args.config,
        overrides=args.override,
        output_root=args.output_root,
        results_dir=args.results_dir,
        records_dir=args.records_dir,
        notes=args.notes,
        report_only=args.report_only,
        fail_fast=args.fail_fast,
        quiet=args.quiet,
        command=shlex.join(["python", os.path.relpath(Path(__file__).resolve()), *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when every run finished (or was skipped), 1 when a run failed; invalid arguments exit with 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = validate_arguments(args, argv)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    return compare(settings)


if __name__ == "__main__":
    raise SystemExit(main())
