# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Measure how well trained methods localise lesions, on a datalist whose entries carry lesion masks.

For every method's finished run of a comparison (``scripts/compare_methods.py`` layout:
``<run-root>/<method>/seed<k>/model.pt`` and ``result.json``), the network is rebuilt from the exact
config files and overrides recorded in ``result.json`` (``eval_configs`` and ``overrides``) with
:func:`bundle.config.build_network` and the checkpoint is loaded strictly. Every positive case of the split
(label = ``--target-class``) is preprocessed as the bundle evaluates it (the config's ``preprocessing``:
loading, channels, intensity scaling, bag of slices, central slices, resize); its lesion mask goes through
the same spatial steps (no intensity steps, nearest-neighbour resizing) and is binarised (non-zero =
lesion). Then, for the class of interest:

- slice scores (:func:`bundle.localization.slice_scores`) rank the slices: key-slice hit at top-1, top-3;
- gradient x input heatmaps (:class:`bundle.localization.GradientTimesInput`, the paper's ``P*``) at the
  network's default layer (its deepest backbone stage) and at the input: pointing game and pixel AUROC
  (:mod:`bundle.localization.metrics`).

Two reference rows need no network: slices in random order with a uniform random heatmap (seeded), and
slices ranked from the centre of the bag outwards (no heatmap). A markdown page and a JSON file with every
case's numbers are written.

This script parses and checks the arguments; the work is :func:`bundle.localization.evaluation.run`.

Example::

    python scripts/evaluate_localization.py --run-root runs/compare/synthetic_oct --seed 0 \\
        --methods mims_cnn mi_pre mi_pre_conv --output docs/results/localization.md
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bundle.config import REPO
from bundle.localization.evaluation import DEFAULT_METHODS, Settings, run

__all__ = ["build_parser", "main", "validate_arguments"]

SCRIPT = Path(__file__).resolve()
DEFAULT_RUN_ROOT = REPO / "runs" / "compare" / "synthetic_oct"
DEFAULT_OUTPUT = REPO / "docs" / "results" / "localization.md"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Measure the localization quality of trained methods on the positive cases of a datalist with lesion "
            "masks: key-slice hit rate (is a lesion slice among the top-ranked slices), pointing game (is the "
            "heatmap maximum inside a lesion) and pixel-level heatmap AUROC, for gradient x input heatmaps at each "
            "network's default layer and at the input, next to random and central-slice reference rows. Reads the "
            "runs of scripts/compare_methods.py; writes a markdown page and a JSON file with every case."
        ),
    )
    p.add_argument("--run-root", default=str(DEFAULT_RUN_ROOT),
                   help="folder holding <method>/seed<k>/{model.pt,result.json}, i.e. <compare output-root>/<dataset> "
                   "(default: runs/compare/synthetic_oct)")
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), metavar="METHOD",
                   help="run folder names under --run-root, in table order (default: "
                   + " ".join(DEFAULT_METHODS) + ")")
    p.add_argument("--seed", type=int, default=0, help="which training seed's runs to evaluate: seed<k> (default: 0)")
    p.add_argument("--datalist",
                   help="datalist JSON whose entries have 'mask' (lesion mask, non-zero = lesion) next to 'image'; "
                   "default: the datalist the runs were trained on (from their result.json; must be the same)")
    p.add_argument("--split", default="test", help="datalist split to evaluate (default: test)")
    p.add_argument("--target-class", type=int, default=1,
                   help="class of interest: cases with this label are the positive cases evaluated, and heatmaps and "
                   "slice scores are computed for this class (default: 1)")
    p.add_argument("--top", nargs="+", type=int, default=[1, 3], metavar="K",
                   help="key-slice hit rates to report: is a lesion slice among the K best-ranked (default: 1 3)")
    p.add_argument("--tolerance-px", nargs="+", type=float, default=[0.0], metavar="PX",
                   help="pointing game: a maximum within this many pixels (Euclidean, same slice) of a lesion pixel "
                   "counts as a hit; one pointing-game column per value and heatmap (default: 0)")
    p.add_argument("--baseline-seed", type=int, default=0,
                   help="seed of the random reference row's slice order and heatmap (default: 0)")
    p.add_argument("--device", default="auto",
                   help="torch device, e.g. cpu or cuda:0; 'auto': cuda:0 when available, else cpu (default: auto)")
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (torch.set_num_threads); default: torch's own choice")
    p.add_argument("--max-cases", type=int,
                   help="evaluate only the first N positive cases (quick checks; the page says so); default: all")
    p.add_argument("--output", default=str(DEFAULT_OUTPUT),
                   help="markdown page to write; the JSON goes next to it with the suffix .json "
                   "(default: docs/results/localization.md)")
    p.add_argument("--notes", metavar="FILE",
                   help="markdown file inserted verbatim under '## Notes' on the page (default: no such section)")
    p.add_argument("--skip-missing", action="store_true",
                   help="list methods without a finished run (result.json and model.pt) as 'not run' instead of "
                   "stopping with an error")
    p.add_argument("--quiet", action="store_true", help="print one line per method instead of one per case")
    return p


def _check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"--methods: {name!r} is not a run folder name")
    return name


def _absolute(path: str) -> Path:
    """``path`` made absolute without resolving symbolic links: a run folder or datalist reached through a link
    inside the repository (``runs/``, ``data/``) keeps its repository-relative name on the page."""
    return Path(os.path.abspath(Path(path).expanduser()))


def validate_arguments(args: argparse.Namespace, argv: Sequence[str]) -> Settings:
    """Check every argument before any work; ValueError naming the problem."""
    run_root = _absolute(args.run_root)
    if not run_root.is_dir():
        raise ValueError(f"--run-root {args.run_root!r} is not a folder")
    methods = list(dict.fromkeys(_check_name(m) for m in args.methods))
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if any(t < 1 for t in args.top) or len(set(args.top)) != len(args.top):
        raise ValueError(f"--top must be distinct positive integers, got {args.top}")
    if not all(t >= 0 for t in args.tolerance_px) or len(set(args.tolerance_px)) != len(args.tolerance_px):
        raise ValueError(f"--tolerance-px must be distinct values >= 0, got {args.tolerance_px}")
    if args.target_class < 0:
        raise ValueError(f"--target-class must be >= 0, got {args.target_class}")
    if args.max_cases is not None and args.max_cases < 1:
        raise ValueError(f"--max-cases must be >= 1, got {args.max_cases}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    datalist = _absolute(args.datalist) if args.datalist else None
    if datalist is not None and not datalist.is_file():
        raise ValueError(f"--datalist {args.datalist!r} does not exist")
    notes = Path(args.notes).expanduser().resolve() if args.notes else None
    if notes is not None and not notes.is_file():
        raise ValueError(f"--notes {args.notes!r} does not exist")
    output = Path(args.output).expanduser().resolve()
    if output.suffix != ".md":
        raise ValueError(f"--output must end with .md, got {args.output!r}")
    import torch

    name = ("cuda:0" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {args.device!r}: {err}") from None
    return Settings(
        run_root=run_root, methods=methods, seed=args.seed, datalist=datalist, split=args.split,
        target_class=args.target_class, tops=sorted(args.top), tolerances=sorted(float(t) for t in args.tolerance_px),
        baseline_seed=args.baseline_seed, device=device, threads=args.threads, max_cases=args.max_cases,
        output=output, notes=notes, skip_missing=args.skip_missing, quiet=args.quiet,
        command=shlex.join(["python", os.path.relpath(SCRIPT), *argv]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; 0 on success, 2 for invalid arguments or runs that cannot be evaluated."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = validate_arguments(args, argv)
    except ValueError as err:
        parser.error(str(err))
    try:
        run(settings)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
