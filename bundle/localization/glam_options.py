# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The options of the GLAM experiment (:func:`bundle.localization.glam_evaluation.run`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GlamOptions"]


@dataclass
class GlamOptions:
    """What :func:`run` does (the options of ``scripts/evaluate_glam.py``, same names; its ``--help`` explains them).

    Attributes:
        data: dataset folder; generated there unless it holds a ``datalist.json``.
        num_train: training images when generating (and ``num_val``, ``num_test``).
        size: full-resolution image size ``(H, W)`` when generating.
        lesion_radius: ``(min, max)`` lesion radius in px when generating.
        lesion_contrast: ``(min, max)`` brightness a lesion adds when generating.
        data_seed: seed of the generated dataset.
        work_dir: folder of the run (``train/``, ``model.pt``, ``eval/``, ``glam_results.json``).
        ckpt: checkpoint to use instead of training; None: train.
        epochs: training epochs.
        image_size: network input size ``(H, W)`` of whole images (the global resolution).
        seed: training seed.
        override: extra ``(key, value)`` config overrides for training and evaluation.
        window_sizes: square window sizes (full-resolution px); the first is the main setting.
        num_windows: windows per image; the first is the main setting.
        layer: layer of the gradient x input maps; None: the deepest backbone stage used.
        tolerance: px within which a maximum counts as a tolerant pointing hit.
        report: the markdown page written.
        figure: the PNG figure written.
        note: paragraphs of the page's Notes section.
        no_progress: no progress bars.
    """

    data: Path
    num_train: int
    num_val: int
    num_test: int
    size: Sequence[int]
    lesion_radius: Sequence[float]
    lesion_contrast: Sequence[float]
    data_seed: int
    work_dir: Path
    ckpt: Path | None
    epochs: int
    image_size: Sequence[int]
    seed: int
    override: list[tuple[str, Any]]
    window_sizes: Sequence[int]
    num_windows: Sequence[int]
    layer: str | None
    tolerance: float
    report: Path
    figure: Path
    note: list[str]
    no_progress: bool
