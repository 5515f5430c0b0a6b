# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Settings of a benchmark run: the defaults of a full run, those of ``--quick``, and their validation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULTS", "QUICK", "QUICK_CONFIG", "resolve_settings"]

#: settings of a full run and of ``--quick``; options given explicitly win over both.
DEFAULTS: dict[str, Any] = {
    "image_size": None,  # None: the configs' image_size
    "volume_shape": [64, 96, 32],
    "train_volumes": 16,
    "test_volumes": 8,
    "slices": [16, 128],
    "iterations": 20,
    "warmup": 3,
    "backbones": [10, 18, 34, 50],
    "backbone_batch": 16,
    "matmul_size": 2048,
    "matmul_repeats": 5,
}
QUICK: dict[str, Any] = {
    "image_size": [32, 32],
    "volume_shape": [32, 32, 16],
    "train_volumes": 8,
    "test_volumes": 4,
    "slices": [4, 32],
    "iterations": 1,
    "warmup": 1,
    "backbones": [10],
    "backbone_batch": 8,
    "matmul_size": 512,
    "matmul_repeats": 3,
}
#: config overrides of ``--quick`` besides ``image_size``: the MIMS-CNN model's own backbone depth.
QUICK_CONFIG: dict[str, Any] = {"backbone_depth": 10}


def resolve_settings(options: Mapping[str, Any], quick: bool = False) -> dict[str, Any]:
    """The run's settings: each key of :data:`DEFAULTS` from ``options`` where given (not None), else from
    :data:`QUICK` (``quick``) or :data:`DEFAULTS`; plus ``seed`` (``options["seed"]``, default 0).

    Args:
        options: the command-line options by name (``vars(args)``); other keys are ignored.
        quick: take the missing settings from :data:`QUICK`.

    Raises:
        ValueError: naming the option (``--train-volumes``, ...) of an invalid value.
    """
    preset = QUICK if quick else DEFAULTS
    s = {key: options.get(key) if options.get(key) is not None else preset[key] for key in DEFAULTS}
    s["seed"] = options.get("seed", 0)
    for key in ("train_volumes", "test_volumes", "iterations", "backbone_batch", "matmul_size", "matmul_repeats"):
        if s[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {s[key]}.")
    if s["warmup"] < 0:
        raise ValueError(f"--warmup must be >= 0, got {s['warmup']}.")
    for key in ("image_size", "volume_shape"):
        if s[key] is not None and min(s[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be positive, got {s[key]}.")
    if not 1 <= s["slices"][0] < s["slices"][1]:
        raise ValueError(f"--slices needs 1 <= SMALL < LARGE, got {s['slices']}.")
    from networks.nets.backbone import RESNET_LAYOUTS

    unknown = [depth for depth in s["backbones"] if depth not in RESNET_LAYOUTS]
    if unknown:
        raise ValueError(f"--backbones {unknown} not supported; allowed: {sorted(RESNET_LAYOUTS)}.")
    return s
