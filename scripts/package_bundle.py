# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Build the shareable MONAI model-zoo package of the bundle and run the zoo's checks on it, offline.

The package ``<output-dir>/<name>/`` and its zip ``<output-dir>/<name>_v<version>.zip`` (one base
folder ``<name>/``, as ``monai.bundle.download`` expects) hold self-contained ``train.json``,
``evaluate.json`` and ``inference.json`` (``common.json``, the ``--method`` overlay and the ``--override``
values merged in), the other configs, ``models/model.pt`` and ``models/model.ts``, ``large_files.yml``
(URLs under ``--weights-url``), the code the configs import, ``scripts/``, ``docs/``, ``LICENSE`` and
``pyproject.toml``: see ``bundle.zoo_package`` (the build) and ``bundle.zoo_checks`` (the checks).

The configs import the bundle's own packages when they are parsed, before ``monai.bundle run``
adds the bundle folder to ``sys.path``; run the unpacked package with the bundle folder on
``PYTHONPATH`` (or ``pip install`` it)::

    PYTHONPATH=/path/to/<name> python -m monai.bundle run --bundle_root /path/to/<name> \\
        --config_file /path/to/<name>/configs/inference.json --input /path/to/volumes

Checks (``--check DIR`` runs them on an existing package; they run in a fresh process with the
package first on ``PYTHONPATH``, so they test the package's code, not an installed copy): required
files, version in changelog, ``verify_metadata`` against a local schema, inference workflow
properties, ``verify_net_in_out`` (``network_volume_def``), ``ckpt_export`` (same logits as
``model.pt`` and ``model.ts``), ``large_files.yml`` (each file downloaded from its URL and
hash-checked into a scratch folder), JSON configs parse, ``ruff`` lint of the package's code.

Examples::

    python scripts/package_bundle.py --ckpt models/model.pt --schema meta_schema_20240725.json
    python scripts/package_bundle.py --ckpt runs/<stamp>/model.pt --method mi_pre_conv \\
        --override 'image_size=[32,32]' --weights-url https://example.org/v0.3.0 --schema meta_schema_20240725.json
    python scripts/package_bundle.py --check dist/mims_cnn_volume_classification --schema meta_schema_20240725.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bundle.config import parse_override
from bundle.zoo_checks import check_package
from bundle.zoo_package import DEFAULT_NAME, make_package

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description="Build the MONAI model-zoo package (folder + zip) of the bundle from a checkpoint and check it "
        "offline the way the model zoo does.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ckpt", default="models/model.pt",
                   help="trained checkpoint: a state dict (models/model.pt, runs/<stamp>/model.pt) or a resumable "
                   "checkpoint with a 'model' entry")
    p.add_argument("--method", default=None,
                   help="method overlay the checkpoint was trained with (configs/methods/<method>.json), baked into "
                   "the package configs; default: the configs' network (MIMS-CNN)")
    p.add_argument("--override", nargs="+", type=parse_override, default=[], metavar="KEY=VALUE",
                   help="config values the checkpoint was trained with, baked into the package configs, as JSON where "
                   "they parse (e.g. 'image_size=[32,32]' backbone_depth=18)")
    p.add_argument("--name", default=DEFAULT_NAME, help="bundle folder name in the zip (the zoo's bundle name)")
    p.add_argument("--output-dir", default="dist", help="where the package folder, the zip and the weights go")
    p.add_argument("--weights-url", default=None,
                   help="URL of the folder the weights will be uploaded to, written into large_files.yml; default: a "
                   "file:// URL of <output-dir>/<name>_v<version>_weights on this machine (fine for testing, not for "
                   "sharing)")
    p.add_argument("--schema", default=None,
                   help="MONAI's bundle metadata JSON schema (the file named in metadata.json's 'schema'), for "
                   "verify_metadata offline; 'download' lets MONAI fetch it")
    p.add_argument("--check", default=None, metavar="DIR",
                   help="only run the checks on an existing package folder DIR (nothing is built)")
    p.add_argument("--no-check", action="store_true", help="build the package without running the checks")
    p.add_argument("--skip-lint", action="store_true", help="leave out the ruff lint check")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Build (unless --check) and check the package; returns the exit status."""
    args = build_parser().parse_args(argv)
    skip = ["lint"] if args.skip_lint else []
    if args.check is not None:
        bundle = Path(args.check)
        if not (bundle / "configs" / "metadata.json").is_file():
            print(f"error: {bundle} is not a bundle folder (no configs/metadata.json)", file=sys.stderr)
            return 2
        print(f"checking {bundle}", flush=True)
        return 0 if check_package(bundle, args.schema, skip) else 1
    if args.schema is None and not args.no_check:
        print("error: --schema FILE is needed for verify_metadata offline ('download' to fetch it, or --no-check)",
              file=sys.stderr)
        return 2
    return make_package(args.ckpt, args.output_dir, args.name, args.method, dict(args.override), args.weights_url,
                        args.schema, check=not args.no_check, skip=skip)


if __name__ == "__main__":
    sys.exit(main())
