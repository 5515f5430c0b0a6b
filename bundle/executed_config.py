# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The executed config of a run: its config files merged, with the command line's overrides and the ``--tracking``
patch applied, as the ``monai.bundle.ConfigParser`` running it holds it.

With ``--tracking mlflow`` MONAI writes this config to ``<output_dir>/config_<time to the second>.json`` and logs
it into the MLflow run; two runs started in the same second write (and log) the same file. MONAI reads
``save_execute_config`` before parsing, so an expression cannot move that file into a run's own folder; the
configs set it to false instead, and :class:`bundle.mlflow_handlers.ExecutedConfigRecorder` writes the config
into the run's own folder and logs it into the run's MLflow run.

MONAI gives a config item no handle on its parser, so :func:`running_config` finds it on the call stack: the
``ConfigParser.get_parsed_content`` call that is building the item (every config item is built through it:
``monai.bundle run``, ``ConfigWorkflow`` and ``ConfigParser`` alike).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from bundle.reports import atomic_write

__all__ = ["running_config", "write_config"]


def running_config() -> dict[str, Any]:
    """A copy of the config of the ``ConfigParser`` that is building the caller (a config item).

    Raises:
        RuntimeError: when not called while a ``ConfigParser`` builds a config item.
    """
    from monai.bundle import ConfigParser

    code = ConfigParser.get_parsed_content.__code__
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return copy.deepcopy(frame.f_locals["self"].get())
        frame = frame.f_back
    raise RuntimeError("running_config() reads the config of the ConfigParser building a config item; no parser is "
                       "building one: pass the config explicitly")


def write_config(config: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``config`` as JSON to ``path`` (its folder created; written to a temporary name and renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(config, indent=4, default=str) + "\n")
