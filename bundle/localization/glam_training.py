# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Data, training and bundle evaluation of the GLAM experiment (:mod:`bundle.localization.glam_evaluation`).

The synthetic large-image dataset (``bundle.data.synthetic_large2d``), MIMS-CNN trained and evaluated on it
through the bundle: ``monai.bundle.ConfigWorkflow`` with ``configs/common.json`` + ``configs/train.json`` (or
``configs/evaluate.json``) + ``configs/datasets/synthetic_large2d.json``.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundle.config import CONFIGS, REPO

from .glam_options import GlamOptions

__all__ = ["DATASET_OVERLAY", "evaluate", "prepare_dataset", "train"]

DATASET_OVERLAY = CONFIGS / "datasets" / "synthetic_large2d.json"


def prepare_dataset(options: GlamOptions) -> tuple[Path, float | None]:
    """The datalist: generated unless it exists. Returns its path and the generation time (None if reused)."""
    from bundle.data.synthetic_large2d import SyntheticLarge2DConfig, make_synthetic_large2d_dataset

    datalist = options.data / "datalist.json"
    if datalist.is_file():
        print(f"[glam] using the existing dataset {datalist}", flush=True)
        return datalist, None
    print(f"[glam] generating the dataset in {options.data}", flush=True)
    start = time.perf_counter()
    make_synthetic_large2d_dataset(
        options.data, num_train=options.num_train, num_val=options.num_val, num_test=options.num_test,
        seed=options.data_seed, size=tuple(options.size), progress=not options.no_progress,
        config=SyntheticLarge2DConfig(lesion_radius=tuple(options.lesion_radius),
                                      lesion_contrast=tuple(options.lesion_contrast)),
    )
    return datalist, time.perf_counter() - start


def _overrides(options: GlamOptions, datalist: Path, ckpt: Path) -> dict[str, Any]:
    return {
        "bundle_root": str(REPO),
        "dataset_dir": str(datalist.parent),
        "datalist": str(datalist),
        "ckpt_path": str(ckpt),
        "output_dir": str(options.work_dir / "eval"),
        "image_size": list(options.image_size),
        "seed": options.seed,
        **dict(options.override),
    }


def _workflow(configs: Sequence[Path], workflow_type: str, overrides: dict[str, Any]) -> Any:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=[str(c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    workflow.initialize()
    return workflow


def train(options: GlamOptions, datalist: Path, ckpt: Path) -> dict[str, Any]:
    """Train through the bundle; the best checkpoint (validation AUROC) is promoted to ``ckpt``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d_%H%M%S")
    overrides = {
        **_overrides(options, datalist, ckpt),
        "epochs": options.epochs,
        "run_dir": str(options.work_dir / "train" / stamp),
        "num_overlay_cases": 0,  # no validation heatmaps during training
    }
    print(f"[glam] training MIMS-CNN for {options.epochs} epochs (run folder {overrides['run_dir']})", flush=True)
    workflow = _workflow([CONFIGS / "common.json", CONFIGS / "train.json", DATASET_OVERLAY], "train", overrides)
    start = time.perf_counter()
    try:
        workflow.run()
        state = workflow.parser.get_parsed_content("validate#evaluator").state
        best = {"metric": state.key_metric_name, "best": float(state.best_metric),
                "epoch": int(state.best_metric_epoch)}
        iterations = int(workflow.parser.get_parsed_content("train#trainer").state.iteration)
    finally:
        workflow.finalize()
    return {"train_s": time.perf_counter() - start, "validation": best, "iterations": iterations,
            "run_dir": overrides["run_dir"]}


def evaluate(options: GlamOptions, datalist: Path, ckpt: Path) -> tuple[dict[str, Any], Any, Any]:
    """Bundle evaluation on the test split; returns the metrics, the loaded network and the deterministic
    preprocessing (load, channels, intensity scaling, bag: full resolution, no resizing)."""
    from monai.transforms import Compose

    print(f"[glam] evaluating {ckpt} on the test split", flush=True)
    overrides = {**_overrides(options, datalist, ckpt), "eval_split": "test"}
    workflow = _workflow([CONFIGS / "common.json", CONFIGS / "evaluate.json", DATASET_OVERLAY], "eval", overrides)
    start = time.perf_counter()
    try:
        workflow.run()
        network = workflow.parser.get_parsed_content("network")
        preprocessing = Compose(workflow.parser.get_parsed_content("deterministic_transforms"))
    finally:
        workflow.finalize()
    metrics = json.loads((options.work_dir / "eval" / "metrics.json").read_text(encoding="utf-8"))
    metrics["evaluate_s"] = time.perf_counter() - start
    return metrics, network, preprocessing
