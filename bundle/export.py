# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""TorchScript export whose archive carries everything a serving runtime needs.

MONAI's ``ckpt_export`` stores each config file it is given as an extra file named after the file.
Our inference configuration is split over ``common.json`` + ``inference.json`` (+ a method
overlay), so an archive exported from those files would hold a ``inference.json`` without the
preprocessing. :func:`export_torchscript` merges the files first, so ``model.ts`` holds:

- ``extra/metadata.json``: ``configs/metadata.json`` (MONAI's ``save_net_with_metadata``);
- ``extra/inference.json``: the merged inference config (``preprocessing``, ``inferer``,
  ``postprocessing``, ``network_def``, ``class_names``, ...), with ``overrides`` applied and no
  ``_meta_``, as MONAI Deploy's bundle operators and our own apps read it.

The exported module has the network's signature: ``forward(x [B, N, C, H, W], mask [B, N] | None)
-> logits [B, num_classes]``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from bundle.config import merged_config

__all__ = ["EXTRA_INFERENCE", "EXTRA_METADATA", "export_torchscript", "load_torchscript", "merged_config"]

EXTRA_METADATA = "metadata.json"
EXTRA_INFERENCE = "inference.json"


def export_torchscript(
    ckpt: str | Path,
    output: str | Path,
    config_files: Sequence[str | Path],
    meta_file: str | Path,
    overrides: Mapping[str, Any] | None = None,
    key_in_ckpt: str = "",
) -> Path:
    """Export ``network_def`` of the merged ``config_files`` with the weights of ``ckpt`` to ``output``.

    Args:
        ckpt: a bundle checkpoint (``models/model.pt`` state dict, or a resumable checkpoint with
            ``key_in_ckpt``).
        output: the TorchScript file to write (``models/model.ts``).
        config_files: inference config files merged in order, e.g. ``common.json``, ``inference.json``
            and a method overlay.
        meta_file: ``configs/metadata.json``; stored as ``extra/metadata.json``.
        overrides: config values (``id: value``) applied before building the network and stored in
            the archive's ``inference.json``.
        key_in_ckpt: checkpoint entry holding the state dict (``""``: the file is the state dict).

    Returns:
        ``output`` as a Path.
    """
    from monai.bundle import ckpt_export

    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    config = merged_config(config_files, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / EXTRA_INFERENCE
        merged.write_text(json.dumps(config, indent=2))
        ckpt_export(
            net_id="network_def",
            filepath=str(output),
            ckpt_file=str(ckpt),
            meta_file=str(meta_file),
            config_file=str(merged),
            key_in_ckpt=key_in_ckpt,
        )
    return output


def load_torchscript(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """Load ``model.ts``; returns ``(module, metadata, inference_config)`` from the archive's extra files.

    Raises:
        ValueError: naming the file when it lacks one of the two extra files (not made by
            :func:`export_torchscript`).
    """
    extra = {EXTRA_METADATA: "", EXTRA_INFERENCE: ""}
    module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    missing = [name for name, text in extra.items() if not text]
    if missing:
        raise ValueError(f"{path} has no extra file(s) {missing}: export it with bundle.export.export_torchscript")
    return module, json.loads(extra[EXTRA_METADATA]), json.loads(extra[EXTRA_INFERENCE])
