# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Infer tasks of the MONAI Label app."""

from __future__ import annotations

from .mims_cnn import DEFAULT_CONFIGS, MIMSCNNInfer, bundle_on_path, parse_config_files

__all__ = ["DEFAULT_CONFIGS", "MIMSCNNInfer", "bundle_on_path", "parse_config_files"]
