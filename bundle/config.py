# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The bundle's configs from Python: merge config files, build the network, load a checkpoint.

Every tool that needs "the network of these configs with the weights of that checkpoint" (export,
packaging, localization and GLAM evaluation, benchmarks) goes through :func:`build_network`, so a
checkpoint is read one way everywhere: ``weights_only=True``, strictly, and with errors that name the
file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bundle.errors import ConfigValueError

__all__ = [
    "REPO",
    "CONFIGS",
    "as_bool",
    "build_network",
    "config_parser",
    "load_weights",
    "merged_config",
    "parse_override",
]

#: the repository (bundle) root
REPO = Path(__file__).resolve().parents[1]
#: the bundle's config folder
CONFIGS = REPO / "configs"

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def as_bool(value: Any, name: str = "value") -> bool:
    """A switch given in a config or on the command line as a bool.

    ``python -m monai.bundle run ... --localize true`` passes the string ``"true"`` (python-fire keeps
    lower-case words as strings), and ``bool("false")`` is True, so strings are parsed.

    Args:
        value: a bool, 0 or 1, or one of ``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case).
        name: the setting's name, for the error message.

    Raises:
        bundle.errors.ConfigValueError: any other value (a ``ValueError`` naming the setting).
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigValueError(f"{name} must be true or false, got {value!r}")


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of a ``--override`` option as ``(key, value)``, the value parsed as JSON where it parses.

    For ``argparse`` ``type=``: ``image_size=[32,32]`` gives ``("image_size", [32, 32])``, ``method=mi_pre``
    gives ``("method", "mi_pre")``. The key is stripped of surrounding spaces.

    Raises:
        argparse.ArgumentTypeError: no ``=`` or an empty key (argparse turns it into a usage error).
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def config_parser(config_files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> Any:
    """A ``monai.bundle.ConfigParser`` of ``config_files`` merged in order, with ``overrides`` (``a#b`` ids)
    applied, as ``python -m monai.bundle run --config_file [...] --key value`` would build it.

    Raises:
        FileNotFoundError: naming every config file that does not exist.
    """
    from monai.bundle import ConfigParser

    missing = [str(f) for f in config_files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"config file(s) not found: {', '.join(missing)}")
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser


def merged_config(config_files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> dict:
    """The raw (unresolved) config of ``config_files`` merged in order, with ``overrides`` applied, without
    ``_meta_``.

    Raises:
        FileNotFoundError: naming a config file that does not exist.
    """
    config = config_parser(config_files, overrides).get()
    config.pop("_meta_", None)
    return config


def load_weights(network: Any, ckpt: str | Path, key: str | None = None) -> None:
    """Load the checkpoint ``ckpt`` into ``network`` strictly (``weights_only=True``).

    Args:
        network: the network built from the configs (``torch.nn.Module``).
        ckpt: a bundle checkpoint: a state dict (``models/model.pt``, a run's ``model.pt``) or a resumable
            checkpoint whose ``key`` entry holds it (``checkpoint_final.pt``: ``"model"``).
        key: entry of the checkpoint holding the state dict; None: ``"model"`` when the checkpoint has
            that entry and it is a dict, else the checkpoint itself.

    Raises:
        FileNotFoundError: ``ckpt`` does not exist.
        ValueError: naming ``ckpt`` when it cannot be read, is not a state dict, lacks ``key``, or does not
            fit ``network`` (missing or unexpected keys, other shapes).
    """
    import torch

    path = Path(ckpt)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or not a weights-only file: name the file, never retry unsafely
        raise ValueError(f"checkpoint {path} cannot be read as a weights-only PyTorch file: {e}") from e
    if not isinstance(content, Mapping):
        raise ValueError(f"checkpoint {path} is not a state dict nor a checkpoint with a 'model' state dict")
    if key is None:
        key = "model" if isinstance(content.get("model"), Mapping) else None
    if key is not None:
        if key not in content:
            raise ValueError(f"checkpoint {path} has no entry {key!r}; entries: {sorted(content)}")
        content = content[key]
    try:
        network.load_state_dict(content, strict=True)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit {type(network).__name__}: {e}") from e


def build_network(
    config_files: Sequence[str | Path],
    overrides: Mapping[str, Any] | None = None,
    ckpt: str | Path | None = None,
    key: str | None = None,
    device: Any = "cpu",
    net_id: str = "network_def",
) -> tuple[Any, Any]:
    """The network ``net_id`` of the merged configs, with the weights of ``ckpt`` when given, on ``device``.

    Args:
        config_files: config files merged in order (e.g. ``common.json``, ``inference.json``, a method overlay).
        overrides: config values (``id: value``) applied before building.
        ckpt: checkpoint loaded strictly with :func:`load_weights`; None: the configs' initialisation.
        key: checkpoint entry holding the state dict (see :func:`load_weights`).
        device: where the network is moved.
        net_id: the config id of the network definition.

    Returns:
        ``(network, parser)``: the network in eval mode when a checkpoint was loaded (else as built), and the
        ``ConfigParser`` it was built from (for preprocessing, class names, ...).
    """
    parser = config_parser(config_files, overrides)
    network = parser.get_parsed_content(net_id)
    if ckpt is not None:
        load_weights(network, ckpt, key)
        network.eval()
    return network.to(device), parser
