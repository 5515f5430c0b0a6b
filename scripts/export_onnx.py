# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Export a bundle checkpoint to ONNX (optional extra: ``pip install -e '.[onnx]'``).

The network is built from the bundle configs (``network_def``; a method overlay selects the method),
loaded strictly from the checkpoint (``bundle.config.build_network``), and exported with
``bundle.export_onnx.export_onnx`` (PyTorch's TorchScript-based ONNX exporter, ``dynamo=False``).

The ONNX model takes the bag as the bundle's preprocessing leaves it and returns logits:

- ``image``: float32 ``[B, N, C, H, W]``; ``B`` (bags) and ``N`` (slices) are dynamic, ``C``, ``H``
  and ``W`` are fixed to those of ``--bag-shape`` (by default ``in_channels`` and ``image_size`` of the
  configs: the resizing inside the multi-scale networks is traced for that size);
- ``mask``: bool ``[B, N]``, True = real slice, False = padding (bags of different lengths in one
  batch, as ``bundle.collate.pad_bag_collate`` makes them). Pass all True for unpadded bags: the
  logits are those of the network called without a mask. ``--no-mask`` exports a model with the
  ``image`` input alone (every slice real), for runtimes that run one bag at a time;
- ``logits``: float32 ``[B, num_classes]`` (softmax gives the probabilities the bundle reports).

Slices are not chunked as in the bundle's ``ChunkedBagInferer``: the whole bag goes through in one
pass, with the same logits.

Example::

    python scripts/export_onnx.py --ckpt models/model.pt --output models/model.onnx --verify
    python scripts/export_onnx.py --method mi_pre_conv --ckpt runs/<stamp>/model.pt --output mi_pre_conv.onnx
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bundle.config import CONFIGS, build_network, parse_override

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description=(
            "Export a bundle checkpoint to ONNX with inputs image [B, N, C, H, W] (float32) and mask [B, N] (bool) "
            "and output logits [B, classes]; B and N are dynamic. Needs the optional extra: pip install -e '.[onnx]' "
            "(onnxruntime only for --verify)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config-file", nargs="+", default=[str(CONFIGS / "common.json")], metavar="FILE",
                   help="bundle config files merged in order, as for monai.bundle run (a method overlay last)")
    p.add_argument("--method", default=None,
                   help="method overlay to append to --config-file, e.g. mi_pre_conv (configs/methods/<method>.json)")
    p.add_argument("--override", nargs="+", type=parse_override, default=[], metavar="KEY=VALUE",
                   help="config values, as JSON where they parse (e.g. backbone_depth=18 'image_size=[64,96]')")
    p.add_argument("--ckpt", default="models/model.pt",
                   help="checkpoint: a state dict (models/model.pt) or a resumable checkpoint with a 'model' entry")
    p.add_argument("--key-in-ckpt", default=None,
                   help="checkpoint entry holding the state dict; default: 'model' when present, else the whole file")
    p.add_argument("--output", default="models/model.onnx", help="ONNX file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--bag-shape", nargs=5, type=int, default=None, metavar=("B", "N", "C", "H", "W"),
                   help="example bag of the export; C, H, W are fixed in the model "
                   "(None: 1, eval_num_slices, in_channels, image_size of the configs)")
    p.add_argument("--no-mask", action="store_true",
                   help="export the image input alone (every slice real) instead of image and mask")
    p.add_argument("--verify", action="store_true",
                   help="run the exported model with onnxruntime on random bags of other B and N; compare with PyTorch")
    p.add_argument("--atol", type=float, default=1e-4, help="largest logit difference --verify accepts")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line interface; 0 on success, 1 when --verify finds a difference above --atol."""
    args = build_parser().parse_args(argv)
    from bundle.export_onnx import example_bag_shape, export_onnx, verify_onnx

    config_files = list(args.config_file)
    if args.method is not None:
        from bundle.methods import method_config

        config_files.append(str(method_config(args.method)))
    network, parser = build_network(config_files, dict(args.override), ckpt=args.ckpt, key=args.key_in_ckpt)
    bag_shape = args.bag_shape or example_bag_shape(parser)
    with_mask = not args.no_mask
    path = export_onnx(network, args.output, bag_shape, args.opset, with_mask)
    inputs = "image [B, N, %d, %d, %d]" % tuple(bag_shape[2:]) + (" + mask [B, N]" if with_mask else "")
    print(f"wrote {path} ({type(network).__name__}, opset {args.opset}): {inputs} -> logits [B, classes]")
    if args.verify:
        difference = verify_onnx(path, network, bag_shape, with_mask)
        print(f"onnxruntime vs PyTorch: largest logit difference {difference:.2e} (accepted: {args.atol:.0e})")
        if difference > args.atol:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
