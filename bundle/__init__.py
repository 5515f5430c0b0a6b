# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The Python glue the bundle configs call: datalists, collation, inferers, handlers, optimizers,
localization outputs.

``bundle.data`` (data preparation: synthetic data, MedMNIST conversion, datalist building) is not
imported here; the scripts import it when they need it.
"""

from __future__ import annotations

from . import collate, datalist, handlers, inferers, localization, methods, metrics, optim, prepare_batch

__all__ = [
    "collate",
    "datalist",
    "handlers",
    "inferers",
    "localization",
    "methods",
    "metrics",
    "optim",
    "prepare_batch",
]
