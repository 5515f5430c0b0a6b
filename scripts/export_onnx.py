# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Export a bundle checkpoint to ONNX (optional extra: ``pip install -e '.[onnx]'``).

The network is built from the bundle configs (``network_def``; a method overlay selects the method),
loaded strictly from the checkpoint, and exported with PyTorch's TorchScript-based ONNX exporter
(``torch.onnx.export(..., dynamo=False)``; the dynamo exporter would need ``onnxscript``).

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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from script_support import override_arg

__all__ = ["BagModel", "build_network", "build_parser", "export_onnx", "load_weights", "main", "verify_onnx"]

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
INPUT_NAMES = ("image", "mask")
OUTPUT_NAME = "logits"


class BagModel(torch.nn.Module):
    """The exported signature: ``forward(image, mask)`` (``with_mask``) or ``forward(image)``.

    Args:
        network: a bundle network, ``forward(x [B, N, C, H, W], mask [B, N] | None) -> logits [B, classes]``.
        with_mask: whether the model takes the ``[B, N]`` bool mask as its second input.
    """

    def __init__(self, network: torch.nn.Module, with_mask: bool = True) -> None:
        super().__init__()
        self.network = network
        self.with_mask = with_mask

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.network(image, mask if self.with_mask else None)


def build_network(
    config_files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None
) -> tuple[torch.nn.Module, Any]:
    """``network_def`` of the merged ``config_files`` with ``overrides``; returns the network and the parser."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    parser.update(dict(overrides or {}))
    return parser.get_parsed_content("network_def"), parser


def load_weights(network: torch.nn.Module, ckpt: str | Path, key: str | None = None) -> None:
    """Load ``ckpt`` into ``network`` strictly.

    Args:
        network: the network built from the configs.
        ckpt: a bundle checkpoint: a state dict (``models/model.pt``, a run's ``model.pt``) or a resumable
            checkpoint whose ``key`` entry holds it (``checkpoint_final.pt``: ``"model"``).
        key: entry of the checkpoint holding the state dict; None: ``"model"`` when the checkpoint has
            that entry and it is a dict, else the checkpoint itself.
    """
    content = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(content, Mapping):
        raise ValueError(f"{ckpt} is not a state dict nor a checkpoint with a 'model' state dict")
    if key is None:
        key = "model" if isinstance(content.get("model"), Mapping) else None
    if key is not None:
        if key not in content:
            raise KeyError(f"checkpoint {ckpt} has no entry {key!r}; entries: {sorted(content)}")
        content = content[key]
    network.load_state_dict(content)


def export_onnx(
    network: torch.nn.Module, output: str | Path, bag_shape: Sequence[int], opset: int = 17, with_mask: bool = True
) -> Path:
    """Export ``network`` (eval mode) to ``output``; ``bag_shape`` ``[B, N, C, H, W]`` is the example input.

    ``B`` and ``N`` are dynamic axes of the exported model; ``C``, ``H`` and ``W`` are fixed.
    """
    if len(bag_shape) != 5 or min(bag_shape) < 1:
        raise ValueError(f"bag_shape must be 5 positive sizes [B, N, C, H, W], got {list(bag_shape)}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    model = BagModel(network, with_mask).eval()
    image = torch.rand(*bag_shape)
    mask = torch.ones(bag_shape[0], bag_shape[1], dtype=torch.bool)
    args: tuple[torch.Tensor, ...] = (image, mask) if with_mask else (image,)
    names = list(INPUT_NAMES[: len(args)])
    dynamic_axes = {name: {0: "batch", 1: "slices"} for name in names}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape arithmetic traced on purpose (C, H, W fixed)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")  # chosen on purpose
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # harmless: left unfolded
        torch.onnx.export(
            model,
            args,
            str(output),
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    return output


def verify_onnx(
    onnx_path: str | Path, network: torch.nn.Module, bag_shape: Sequence[int], with_mask: bool = True, seed: int = 0
) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's logits on random bags.

    The bags differ from the export example in ``B`` and ``N`` (dynamic axes); with a mask, the last bag
    is padded (its last slices masked out).
    """
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    _, n, c, h, w = bag_shape
    worst = 0.0
    network.eval()
    for batch, slices in ((1, n), (3, n + 2), (2, max(1, n - 1))):
        image = torch.rand(batch, slices, c, h, w, generator=generator)
        mask = torch.ones(batch, slices, dtype=torch.bool)
        if with_mask and slices > 1:
            mask[-1, slices // 2 + 1 :] = False
        feeds = {"image": image.numpy()}
        if with_mask:
            feeds["mask"] = mask.numpy()
        (logits,) = session.run([OUTPUT_NAME], feeds)
        with torch.no_grad():
            expected = network(image, mask if with_mask else None).numpy()
        worst = max(worst, float(np.abs(logits - expected).max()))
    return worst


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
    p.add_argument("--override", nargs="+", type=override_arg, default=[], metavar="KEY=VALUE",
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
    config_files = list(args.config_file)
    if args.method is not None:
        from bundle.methods import method_config

        config_files.append(str(method_config(args.method)))
    network, parser = build_network(config_files, dict(args.override))
    load_weights(network, args.ckpt, args.key_in_ckpt)
    network.eval()
    bag_shape = args.bag_shape
    if bag_shape is None:
        image_size = parser.get_parsed_content("image_size")
        num_slices, in_channels = parser.get_parsed_content("eval_num_slices"), parser.get_parsed_content("in_channels")
        bag_shape = [1, int(num_slices), int(in_channels)] + [int(s) for s in image_size]
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
