# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""TorchScript export whose archive carries everything a serving runtime needs.

MONAI's ``ckpt_export`` stores each config file it is given as an extra file named after the file.
Our inference configuration is split over ``common.json`` + ``inference.json`` (+ a method
overlay), so an archive exported from those files would hold a ``inference.json`` without the
preprocessing. :func:`export_torchscript` merges the files first, so ``model.ts`` holds:

- ``extra/metadata.json``: ``configs/metadata.json`` (MONAI's ``save_net_with_metadata``), plus
  ``"decision"``: the model's decision threshold (:mod:`bundle.decision`: the sidecar
  ``model.decision.json`` of the checkpoint when ``decision_threshold`` is ``"auto"``, a configured number,
  or null for argmax), which the MONAI Deploy app applies (:func:`bundle.decision.archive_decision`), and
  ``"checkpoint"``: the file name and SHA-256 of the checkpoint the archive was built from
  (``{"file": "model.pt", "sha256": ...}``). :func:`load_torchscript` logs a WARNING when the ``model.pt`` beside
  the archive has another hash (:func:`checkpoint_mismatch`): the archive no longer matches the bundle's model;
- ``extra/inference.json``: the merged inference config (``preprocessing``, ``inferer``,
  ``postprocessing``, ``network_def``, ``class_names``, ...), with ``overrides`` applied and no
  ``_meta_``, as MONAI Deploy's bundle operators and our own apps read it. Its ``decision_threshold`` is
  the embedded threshold (or null), so the archive's config resolves ``threshold`` alike on any machine.

The exported module has the network's signature: ``forward(x [B, N, C, H, W], mask [B, N] | None)
-> logits [B, num_classes]``. :func:`export_checkpoint` is what ``scripts/export_torchscript.py`` runs:
it loads any bundle checkpoint strictly, exports it and compares the archive's logits with the
checkpoint's. The ONNX export is in :mod:`bundle.export_onnx`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from bundle.config import build_network, config_parser, merged_config
from bundle.decision import resolve_decision

__all__ = [
    "EXTRA_INFERENCE",
    "EXTRA_METADATA",
    "CheckedExport",
    "checkpoint_mismatch",
    "export_checkpoint",
    "export_torchscript",
    "load_torchscript",
]

EXTRA_METADATA = "metadata.json"
EXTRA_INFERENCE = "inference.json"

logger = logging.getLogger(__name__)


def export_torchscript(
    ckpt: str | Path,
    output: str | Path,
    config_files: Sequence[str | Path],
    meta_file: str | Path,
    overrides: Mapping[str, Any] | None = None,
    key_in_ckpt: str = "",
    decision_ckpt: str | Path | None = None,
    source_ckpt: str | Path | None = None,
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
        decision_ckpt: the checkpoint whose decision sidecar ``decision_threshold: "auto"`` embeds (default:
            ``ckpt``).
        source_ckpt: the checkpoint whose name and SHA-256 the archive records as ``"checkpoint"`` (default:
            ``decision_ckpt``, else ``ckpt``).

    Returns:
        ``output`` as a Path.

    Raises:
        ValueError: a malformed decision sidecar or ``decision_threshold`` (naming it).
    """
    from monai.bundle import ckpt_export

    from bundle.checksums import sha256

    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    config = merged_config(config_files, overrides)
    parser = config_parser(config_files, overrides)
    decision = resolve_decision(
        parser.get_parsed_content("decision_threshold", default="auto"),
        decision_ckpt if decision_ckpt is not None else ckpt,
        int(parser.get_parsed_content("num_classes")),
    )
    config["decision_threshold"] = None if decision is None else decision["threshold"]
    config["class_names"] = [str(c) for c in parser.get_parsed_content("class_names")]  # resolved (bundle.class_names)
    source = Path(source_ckpt if source_ckpt is not None else decision_ckpt if decision_ckpt is not None else ckpt)
    checkpoint = {"file": source.name, "sha256": sha256(source)}
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / EXTRA_INFERENCE
        merged.write_text(json.dumps(config, indent=2))
        metadata = Path(tmp) / EXTRA_METADATA
        metadata.write_text(json.dumps(
            {**json.loads(Path(meta_file).read_text()), "decision": decision, "checkpoint": checkpoint}, indent=2
        ))
        ckpt_export(
            net_id="network_def",
            filepath=str(output),
            ckpt_file=str(ckpt),
            meta_file=str(metadata),
            config_file=str(merged),
            key_in_ckpt=key_in_ckpt,
        )
    return output


def checkpoint_mismatch(archive: str | Path, metadata: Mapping[str, Any], ckpt: str | Path | None = None) -> str | None:
    """Why the archive ``archive`` does not hold the checkpoint ``ckpt``; None when it does or cannot be told.

    Compares the SHA-256 that the archive's metadata records (``"checkpoint"``, written by
    :func:`export_torchscript`) with that of ``ckpt``.

    Args:
        archive: the TorchScript file (named in the message).
        metadata: its ``extra/metadata.json``.
        ckpt: the checkpoint it should hold; None: ``model.pt`` beside the archive.

    Returns:
        a message naming both files and both hashes; None when the archive records no hash (exported before
        this was recorded) or there is no such checkpoint.
    """
    from bundle.checksums import sha256

    ckpt = Path(ckpt) if ckpt is not None else Path(archive).with_name("model.pt")
    recorded = (metadata.get("checkpoint") or {}).get("sha256")
    if not recorded or not ckpt.is_file():
        return None
    actual = sha256(ckpt)
    if actual == recorded:
        return None
    built_from = metadata["checkpoint"].get("file", "?")
    return (
        f"{archive} was built from a checkpoint {built_from} with sha256 {recorded[:12]}, but {ckpt} has sha256 "
        f"{actual[:12]}: the archive does not hold that model (export it again from {ckpt} if it should)"
    )


def load_torchscript(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """Load ``model.ts``; returns ``(module, metadata, inference_config)`` from the archive's extra files.

    Logs a WARNING (:func:`checkpoint_mismatch`) when the ``model.pt`` beside the archive is not the checkpoint
    the archive was built from.

    Raises:
        ValueError: naming the file when it lacks one of the two extra files (not made by
            :func:`export_torchscript`).
    """
    extra = {EXTRA_METADATA: "", EXTRA_INFERENCE: ""}
    module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    missing = [name for name, text in extra.items() if not text]
    if missing:
        raise ValueError(f"{path} has no extra file(s) {missing}: export it with bundle.export.export_torchscript")
    metadata = json.loads(extra[EXTRA_METADATA])
    mismatch = checkpoint_mismatch(path, metadata)
    if mismatch:
        logger.warning(mismatch)
    return module, metadata, json.loads(extra[EXTRA_INFERENCE])


class CheckedExport(NamedTuple):
    """What :func:`export_checkpoint` wrote and how close the archive is to the checkpoint."""

    #: the TorchScript file written
    path: Path
    #: the network built from the configs, with the checkpoint's weights (eval mode)
    network: torch.nn.Module
    #: the archive's ``extra/metadata.json``
    metadata: dict
    #: the archive's ``extra/inference.json`` (the merged inference config)
    config: dict
    #: largest absolute logit difference between the archive and ``network`` on random bags
    difference: float


def export_checkpoint(
    ckpt: str | Path,
    output: str | Path,
    config_files: Sequence[str | Path],
    meta_file: str | Path,
    overrides: Mapping[str, Any] | None = None,
    key: str | None = None,
    seed: int = 0,
) -> CheckedExport:
    """Export any bundle checkpoint with :func:`export_torchscript` and compare the archive with it.

    The archive embeds the decision of ``ckpt`` (its sidecar, see :func:`export_torchscript`).
    The checkpoint is loaded strictly into ``network_def`` of the merged configs
    (:func:`bundle.config.build_network`: a bare state dict, or a resumable checkpoint's ``key`` entry,
    ``"model"`` by default), its state dict is exported, the archive is read back with
    :func:`load_torchscript`, and both are run on two random bags ``[2, 5, in_channels, *image_size]``,
    the second padded (3 real slices of 5).

    Args:
        ckpt: the checkpoint (``models/model.pt``, a run's ``model.pt`` or ``checkpoint_final.pt``).
        output: the TorchScript file to write.
        config_files: inference config files merged in order.
        meta_file: ``configs/metadata.json``.
        overrides: config values (``id: value``) the checkpoint was trained with.
        key: checkpoint entry holding the state dict (see :func:`bundle.config.load_weights`).
        seed: seed of the random bags.

    Raises:
        FileNotFoundError: a missing checkpoint or config file.
        ValueError: a checkpoint that cannot be read or does not fit the network (naming the file).
    """
    network, parser = build_network(config_files, overrides, ckpt=ckpt, key=key)
    with tempfile.TemporaryDirectory() as tmp:  # ckpt_export wants the bare state dict
        state = Path(tmp) / "model.pt"
        torch.save(network.state_dict(), state)
        path = export_torchscript(state, output, config_files, meta_file, overrides, decision_ckpt=ckpt)
    module, metadata, config = load_torchscript(path)
    size = [int(s) for s in parser.get_parsed_content("image_size")]
    channels = int(parser.get_parsed_content("in_channels"))
    bag = torch.rand(2, 5, channels, *size, generator=torch.Generator().manual_seed(seed))
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with torch.no_grad():
        difference = float((module(bag, mask) - network(bag, mask)).abs().max())
    return CheckedExport(path, network, metadata, config, difference)
