# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
r"""The methods of the bundle: one config overlay each under ``configs/methods/``.

A method is selected by appending its overlay to the config files, e.g.::

    python -m monai.bundle run \
        --config_file "['configs/common.json','configs/train.json','configs/methods/mi_pre_conv.json']"

:data:`METHODS` maps each name to the paper's name for it; :func:`method_config` turns a name into the
overlay path and rejects unknown names with the list of valid ones.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METHODS", "TABLE1_METHODS", "AGGREGATION_METHODS", "METHODS_DIR", "method_config"]

#: folder of the method overlays (``configs/methods`` of this bundle)
METHODS_DIR = Path(__file__).resolve().parents[1] / "configs" / "methods"

#: overlay name -> display name (the paper's, Li et al. 2019, Table 1 and section 3.3)
METHODS: dict[str, str] = {
    "mims_cnn": "MIMS",
    "mi_pre": "MI-Pre",
    "pyramid_mi_pre": "Pyramid MI-Pre",
    "mi_pre_conv": "MI-Pre-Conv",
    "mims_noresizing": "MIMS-NoResizing",
    "pyramid_mims": "Pyramid MIMS",
    "mi_pre_trident": "MI-Pre-Trident",
    "featpyra_4_5": "FeatPyra-4,5",
    "resnet34_scratch": "ResNet34-scratch",
    "mims_patchcls": "MIMS-patchcls",
    "mi_pre_conv_patchcls": "MI-Pre-Conv-patchcls",
    "mims_mean": "MIMS, mean pooling",
    "mims_max": "MIMS, max pooling (top-1)",
    "mims_max_inst": "MIMS, max-inst",
}

#: the rows of the paper's Table 1, in its order
TABLE1_METHODS: tuple[str, ...] = (
    "mi_pre",
    "pyramid_mi_pre",
    "mi_pre_conv",
    "mims_noresizing",
    "pyramid_mims",
    "mi_pre_trident",
    "featpyra_4_5",
    "resnet34_scratch",
    "mims_cnn",
    "mims_patchcls",
    "mi_pre_conv_patchcls",
)

#: the MIL aggregation ablation: method overlays, and top-k of MIMS-CNN with other k (``name:key=value``)
AGGREGATION_METHODS: tuple[str, ...] = (
    "mims_mean",
    "mims_max",
    "mims_max_inst",
    "mims_cnn:top_k=2",
    "mims_cnn:top_k=3",
    "mims_cnn:top_k=4",
    "mims_cnn",
)


def method_config(name: str) -> Path:
    """The overlay file of method ``name``.

    Raises:
        ValueError: ``name`` is not a method of the bundle; the message lists the valid names.
        FileNotFoundError: the overlay of a known method is missing from ``configs/methods`` (broken checkout).
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}.")
    path = METHODS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"the overlay of method {name!r} is missing: {path}")
    return path
