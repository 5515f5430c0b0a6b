# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The finished runs of a method comparison, as ``scripts/compare_methods.py`` leaves them.

Layout: ``<run-root>/<method>/seed<k>/model.pt`` (the weights) and ``result.json`` (among others ``eval_configs``,
the config files the run was evaluated with, ``overrides``, ``seed``, ``display_name``, ``test``, ``command``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundle.config import REPO, config_parser

__all__ = ["CHECKPOINT_FILE", "RESULT_FILE", "RunInfo", "find_runs", "runs_datalist"]

RESULT_FILE = "result.json"
CHECKPOINT_FILE = "model.pt"


@dataclasses.dataclass
class RunInfo:
    """A finished run of one method: its folder and what ``result.json`` says about it."""

    method: str
    folder: Path
    result: dict[str, Any]

    @property
    def display_name(self) -> str:
        return str(self.result.get("display_name") or self.method)

    @property
    def configs(self) -> list[Path]:
        """The evaluation config files of the run (``eval_configs``; relative paths are in this repository)."""
        return [p if p.is_absolute() else REPO / p for p in (Path(c) for c in self.result["eval_configs"])]

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.result.get("overrides", {}))

    @property
    def checkpoint(self) -> Path:
        return self.folder / CHECKPOINT_FILE

    def parser(self) -> Any:
        """A ``ConfigParser`` with the run's evaluation configs and overrides, as its evaluation used them."""
        return config_parser(self.configs, self.overrides)


def find_runs(run_root: Path, methods: Sequence[str], seed: int) -> tuple[list[RunInfo], list[str]]:
    """The finished runs ``<run_root>/<method>/seed<seed>`` (``result.json`` and ``model.pt`` present).

    Returns:
        ``(runs, missing)``: the finished runs in the order of ``methods``, and the methods without one.

    Raises:
        ValueError: a ``result.json`` that lacks ``eval_configs`` or was written for another seed.
    """
    runs, missing = [], []
    for method in methods:
        folder = run_root / method / f"seed{seed}"
        result_path = folder / RESULT_FILE
        if not result_path.is_file() or not (folder / CHECKPOINT_FILE).is_file():
            missing.append(method)
            continue
        result = json.loads(result_path.read_text(encoding="utf-8"))
        if "eval_configs" not in result:
            raise ValueError(f"{result_path} has no 'eval_configs': not written by scripts/compare_methods.py")
        if int(result.get("seed", seed)) != seed:
            raise ValueError(f"{result_path} is the result of seed {result.get('seed')}, not {seed}")
        runs.append(RunInfo(method, folder, result))
    return runs, missing


def runs_datalist(runs: Sequence[RunInfo]) -> Path:
    """The one datalist all ``runs`` were trained on (their ``datalist`` override).

    Raises:
        ValueError: the runs name different datalists, or one names none.
    """
    paths = {str(r.overrides.get("datalist")) for r in runs}
    if len(paths) != 1 or "None" in paths:
        raise ValueError(f"the runs were trained on different or unrecorded datalists {sorted(paths)}: give --datalist")
    return Path(paths.pop())
