# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Regenerate every results page of the method comparisons from the committed run records.

The pages, their tables, reference rows, seeds and notes are declared in ``docs/results/pages.json``; the
records are ``docs/results/records/<dataset-name>/<method>/seed<k>.json`` (written by
``scripts/compare_methods.py``). A page without records is left as it is. The engine is
:mod:`bundle.comparison.pages`.

Example::

    python scripts/make_results_pages.py
    python scripts/make_results_pages.py --check    # exit 1 when a committed page differs from its records
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bundle.comparison.pages import DEFAULT_PAGES_FILE, make_pages

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Regenerate every results page declared in a pages file (default docs/results/pages.json) that has "
            "run records, from the records alone: tables with the test AUROC over seeds and its 95 % bootstrap "
            "interval over test cases, the differences to each table's reference row, accuracy, F1, seeds found, "
            "and a bar chart. Exit code: 0; with --check, 1 when a page differs from what its records give."
        ),
    )
    p.add_argument("--pages-file", default=str(DEFAULT_PAGES_FILE),
                   help="JSON declaration of the pages (default: docs/results/pages.json)")
    p.add_argument("--records-dir",
                   help="folder of the records <records-dir>/<dataset-name>/<method>/seed<k>.json (default: the "
                   "folder 'records' next to the pages file)")
    p.add_argument("--results-dir", help="folder the pages and charts are written to (default: that of the pages file)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; list the pages whose committed markdown differs from what the records give")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate (or check) the pages.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0, or 1 with ``--check`` when a page differs; invalid arguments or pages file exit with 2.
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        pages = make_pages(args.pages_file, args.records_dir, args.results_dir, check=args.check)
    except ValueError as err:
        parser.error(str(err))
    return 1 if args.check and pages else 0


if __name__ == "__main__":
    raise SystemExit(main())
