# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The bundle's throughput and memory benchmark on synthetic data, which writes ``docs/performance.md``.

Each figure is a RATIO of two measurements taken in the same run; the two sides of a throughput
ratio run in the same process, interleaved iteration by iteration, warm-up iterations excluded:

1. training (:mod:`.throughput`): iterations/s through the real training pipeline versus the same model
   step on the same batches already in memory;
2. inference (:mod:`.throughput`): volumes/s from disk versus the same bags already in memory through the
   same inferer;
3. memory (:mod:`.workers`): peak RSS of inference on a large versus a small bag, each in a fresh process
   (``python -m bundle.benchmark.workers``), with the chunked inferer and with a plain ``network(x)`` call;
4. backbones (:mod:`.workers`): slices/s, FLOPs per slice, peak RSS and the fraction of the CPU's measured
   matmul peak.

:mod:`.settings` holds the run's settings, :mod:`.run` runs the four parts and :mod:`.report` writes the
markdown. ``scripts/benchmark.py`` is the command line. Submodules are imported on first use, so a worker
process started with ``python -m bundle.benchmark.workers`` loads only what it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["report", "run", "settings", "throughput", "timing", "workers"]


def __getattr__(name: str) -> Any:
    """Import the submodule ``bundle.benchmark.<name>`` on first access (PEP 562)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
