# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Compare methods of the bundle on one dataset: train and test each (method, seed), then report.

For every requested method spec and seed, one fresh worker process trains with
``configs/common.json`` + ``configs/train.json`` + the ``--config`` overlays + the method's overlay
(``configs/methods/<name>.json``) through ``monai.bundle.ConfigWorkflow`` tracked in MLflow, measures
the cost of training (time per iteration, peak memory increase, parameters), evaluates the best
checkpoint on the test split (``configs/evaluate.json``), logs the test metrics and the costs into the
training's MLflow run and writes ``result.json`` last. Runs whose ``result.json`` exists are skipped,
so an interrupted comparison resumes where it stopped. Each finished run leaves a small record under
``docs/results/records`` (committed), and the results pages are generated from the records alone.

- :mod:`bundle.comparison.settings`: what a comparison runs (:class:`~bundle.comparison.settings.Settings`,
  checked before any work), where each run lives, what its worker is told, and its finished results.
- :mod:`bundle.comparison.worker`: one run, in its own process
  (``python -m bundle.comparison.worker RUN_SPEC_JSON``): train, evaluate, log to MLflow, ``result.json``.
- :mod:`bundle.comparison.runner`: every (spec, seed) in order, each in a worker, skipping finished runs;
  the record of each, then the page.
- :mod:`bundle.comparison.records`: a run's committed record (``result.json`` without machine paths).
- :mod:`bundle.comparison.pages`: the results pages (``docs/results/pages.json``) from the records, with
  bootstrap intervals (``scripts/make_results_pages.py``).
- :mod:`bundle.comparison.cross_validation`: k-fold cross-validation of one method, one run per fold
  (``scripts/cross_validate.py``).
- :mod:`bundle.comparison.cost`: the training cost of each method on identical bags
  (``scripts/method_cost.py``).

Layout under the output root::

    <dataset-name>/mlruns.db                      MLflow store, experiment compare_<dataset-name>
    <dataset-name>/<slug>/seed<k>/result.json     the finished run's numbers (written last)
    <dataset-name>/<slug>/seed<k>/worker.log      the worker's output
    <dataset-name>/<slug>/seed<k>/model.pt        best checkpoint; run/ holds the run's checkpoints
    <dataset-name>/<slug>/seed<k>/metrics.json    test metrics; predictions.csv/.json per case

and the records under ``--records-dir`` (default ``docs/results/records``)::

    <dataset-name>/<slug>/seed<k>.json

Importing this package or its ``settings``, ``runner``, ``records`` and ``pages`` modules loads neither torch
nor MONAI: the comparing process stays small, so the workers' peak memory is never inherited from it.
Submodules are imported on first use (``bundle.comparison.pages``), so ``python -m`` runs the workers
without importing them twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["cost", "cross_validation", "pages", "records", "runner", "settings", "worker"]


def __getattr__(name: str) -> Any:
    """Import the submodule ``bundle.comparison.<name>`` on first access (PEP 562)."""
    if name in __all__:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
