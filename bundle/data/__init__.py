# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Data preparation: synthetic OCT-like volumes, MedMNIST 3D conversion, datalists from a CSV.

Every function here writes a MONAI decathlon-style datalist (``training`` / ``validation`` /
``test`` lists of ``{"image": <path relative to the JSON>, "label": <int>}``), see
:mod:`bundle.data.datalist_writer`. The command line front ends are ``scripts/make_synthetic_oct.py``,
``scripts/medmnist_to_nifti.py`` and ``scripts/build_datalist.py``.
"""

from __future__ import annotations

from bundle.data.datalist_writer import write_datalist
from bundle.data.folder_datalist import build_datalist_from_csv, split_stratified_grouped
from bundle.data.medmnist import convert_medmnist3d, load_medmnist3d
from bundle.data.synthetic_oct import (
    SyntheticOCTCase,
    SyntheticOCTConfig,
    generate_case,
    make_synthetic_oct_dataset,
    simulate_case,
)

__all__ = [
    "SyntheticOCTCase",
    "SyntheticOCTConfig",
    "build_datalist_from_csv",
    "convert_medmnist3d",
    "generate_case",
    "load_medmnist3d",
    "make_synthetic_oct_dataset",
    "simulate_case",
    "split_stratified_grouped",
    "write_datalist",
]
