# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Helpers of the bundle tests: tiny-run overrides and running configs through ``ConfigWorkflow``."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

#: overrides that make every workflow run in seconds on 2 CPU cores
TINY = {
    "image_size": [32, 32],
    "backbone_depth": 10,
    "feature_stage": 2,
    "eval_num_slices": 6,
    "chunk_size": 4,
    "cache_workers": 0,
}
TINY_TRAIN = {
    "epochs": 1,
    "train_batch_size": 2,
    "val_batch_size": 2,
    "train_central_slices": 6,
    "train_min_slices": 3,
    "train_max_slices": 5,
}


def copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def run_workflow(configs: list[str], workflow_type: str, overrides: dict, tracking: str | None = None):
    """Run ``configs`` (names under configs/) through ``monai.bundle.ConfigWorkflow`` like ``monai.bundle run``."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        tracking=tracking,
        **overrides,
    )
    workflow.initialize()
    missing = workflow.check_properties()
    assert not missing, f"missing bundle properties: {missing}"
    try:
        workflow.run()
    finally:
        workflow.finalize()
    return workflow
