# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""ONNX export of a bundle network (optional extra: ``pip install -e '.[onnx]'``).

The network is exported with PyTorch's TorchScript-based ONNX exporter (``torch.onnx.export(...,
dynamo=False)``; the dynamo exporter would need ``onnxscript``). The ONNX model takes the bag as the
bundle's preprocessing leaves it and returns logits:

- ``image``: float32 ``[B, N, C, H, W]``; ``B`` (bags) and ``N`` (slices) are dynamic, ``C``, ``H`` and
  ``W`` are fixed to those of the example bag (the resizing inside the multi-scale networks is traced
  for that size);
- ``mask``: bool ``[B, N]``, True = real slice, False = padding (bags of different lengths in one batch,
  as ``bundle.collate.pad_bag_collate`` makes them); all True for unpadded bags gives the logits of the
  network called without a mask. Left out with ``with_mask=False`` (every slice real);
- ``logits``: float32 ``[B, num_classes]`` (softmax gives the probabilities the bundle reports).

Slices are not chunked as in the bundle's ``ChunkedBagInferer``: the whole bag goes through in one
pass, with the same logits. ``scripts/export_onnx.py`` is the command line of this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["INPUT_NAMES", "OUTPUT_NAME", "BagModel", "example_bag_shape", "export_onnx", "verify_onnx"]

#: names of the ONNX model's inputs (``mask`` only with ``with_mask``)
INPUT_NAMES = ("image", "mask")
#: name of the ONNX model's output
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


def example_bag_shape(parser: Any) -> list[int]:
    """``[1, eval_num_slices, in_channels, *image_size]`` of the configs of ``parser`` (a ``ConfigParser``)."""
    image_size = parser.get_parsed_content("image_size")
    num_slices, in_channels = parser.get_parsed_content("eval_num_slices"), parser.get_parsed_content("in_channels")
    return [1, int(num_slices), int(in_channels)] + [int(s) for s in image_size]


def export_onnx(
    network: torch.nn.Module, output: str | Path, bag_shape: Sequence[int], opset: int = 17, with_mask: bool = True
) -> Path:
    """Export ``network`` (eval mode) to ``output``; ``bag_shape`` ``[B, N, C, H, W]`` is the example input.

    ``B`` and ``N`` are dynamic axes of the exported model; ``C``, ``H`` and ``W`` are fixed.

    Raises:
        ValueError: ``bag_shape`` is not 5 positive sizes.
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

    The bags differ from the export example ``bag_shape`` ``[B, N, C, H, W]`` in ``B`` and ``N`` (dynamic
    axes); with a mask, the last bag is padded (its last slices masked out).
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
