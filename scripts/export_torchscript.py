# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Export a bundle checkpoint to ``models/model.ts`` for serving (MONAI Deploy, MONAI Label, plain PyTorch).

Unlike ``python -m monai.bundle ckpt_export ... --config_file configs/common.json``, the archive
carries the **merged** inference config (``common.json`` + ``inference.json`` + the method overlay +
``--override`` values) as ``extra/inference.json``, next to ``extra/metadata.json``: the
preprocessing, inferer, postprocessing and class names a runtime needs
(``bundle.export.load_torchscript`` reads them back). The module keeps the network's signature,
``forward(x [B, N, C, H, W], mask [B, N] | None) -> logits [B, num_classes]``, and is checked
against the checkpoint's logits before the command returns (``bundle.export.export_checkpoint``).

Example::

    python scripts/export_torchscript.py --ckpt models/model.pt --output models/model.ts
    python scripts/export_torchscript.py --method mi_pre_conv --ckpt runs/<stamp>/model.pt \\
        --override 'image_size=[32,32]'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bundle.config import CONFIGS, parse_override

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description="Export a bundle checkpoint to TorchScript carrying metadata.json and the merged inference "
        "config; the exported logits are compared with the checkpoint's.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config-file", nargs="+", metavar="FILE",
                   default=[str(CONFIGS / "common.json"), str(CONFIGS / "inference.json")],
                   help="inference config files merged in order, as for monai.bundle run")
    p.add_argument("--method", default=None,
                   help="method overlay appended to --config-file, e.g. mi_pre_conv (configs/methods/<method>.json)")
    p.add_argument("--override", nargs="+", type=parse_override, default=[], metavar="KEY=VALUE",
                   help="config values the checkpoint was trained with, as JSON where they parse (e.g. "
                   "backbone_depth=18 'image_size=[64,96]'); stored in the archive's inference.json")
    p.add_argument("--meta-file", default=str(CONFIGS / "metadata.json"), help="bundle metadata stored in the archive")
    p.add_argument("--ckpt", default="models/model.pt",
                   help="checkpoint: a state dict (models/model.pt) or a resumable checkpoint with a 'model' entry")
    p.add_argument("--output", default="models/model.ts", help="TorchScript file to write")
    p.add_argument("--atol", type=float, default=1e-5, help="largest logit difference to the checkpoint accepted")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; 0 on success, 1 on a missing or unfit file or a logit difference above
    --atol."""
    args = build_parser().parse_args(argv)
    from bundle.export import export_checkpoint

    config_files = list(args.config_file)
    if args.method is not None:
        from bundle.methods import method_config

        config_files.append(str(method_config(args.method)))
    try:
        result = export_checkpoint(args.ckpt, args.output, config_files, args.meta_file, dict(args.override))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {result.path} ({type(result.network).__name__}, bundle {result.metadata['version']}, classes "
          f"{result.config['class_names']}): largest logit difference to the checkpoint {result.difference:.1e}")
    return 0 if result.difference <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
