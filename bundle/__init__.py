# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The Python glue the bundle configs call: datalists, collation, inferers, handlers, optimizers,
localization outputs, and the library behind the command-line tools in ``scripts/``.

Importing ``bundle`` loads nothing else: a submodule is imported the first time it is named
(``bundle.datalist.load_datalist`` in a config, ``from bundle import reports`` in a script), so the
configs' ``$import bundle`` and the light tools (reports, config merging) stay cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "benchmark",
    "case_errors",
    "checksums",
    "class_balance",
    "class_names",
    "collate",
    "command_line",
    "comparison",
    "config",
    "data",
    "datalist",
    "decision",
    "demo",
    "dicom_writer",
    "distributed",
    "errors",
    "executed_config",
    "export",
    "export_onnx",
    "icmil",
    "inferers",
    "iteration_timer",
    "loading",
    "localization",
    "methods",
    "metrics",
    "mlflow_handlers",
    "mlflow_runs",
    "model_selection",
    "optim",
    "preflight",
    "prepare_batch",
    "promote_checkpoint",
    "reports",
    "result_writers",
    "resume",
    "runs",
    "schedules",
    "serving",
    "single_class_monitor",
    "stats",
    "threshold_selection",
    "zoo_checks",
    "zoo_package",
]


def __getattr__(name: str) -> Any:
    """Import the submodule ``bundle.<name>`` on first access (PEP 562)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
