# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The committed record of a finished comparison run, from which the results pages are generated.

A record is a run's ``result.json`` (:mod:`bundle.comparison.worker`) without what only holds on the machine
that ran it: paths inside the repository become relative to it (:func:`bundle.reports.display_path`) and the
MLflow tracking URI is dropped (the store is named relative to the repository instead). It keeps the config
(datalist, overlays, overrides), the code commit, the test metrics, the per-case test probabilities, the
per-epoch curves, the decision threshold, the timings and the machine load during the run: a few tens of KB.
Records live at ``<records-dir>/<dataset-name>/<slug>/seed<k>.json`` (default ``docs/results/records``), so
tables can be finished across days and machines and every page regenerated from them
(:mod:`bundle.comparison.pages`). Importing this module loads neither torch nor MONAI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bundle.config import REPO
from bundle.reports import atomic_write, display_path

__all__ = [
    "DEFAULT_RECORDS_DIR",
    "RECORD_FORMAT",
    "REQUIRED_KEYS",
    "load_record",
    "load_records",
    "make_record",
    "record_path",
    "write_record",
]

#: where the committed records live
DEFAULT_RECORDS_DIR = REPO / "docs" / "results" / "records"
#: version of the record layout, stored in every record
RECORD_FORMAT = 1
#: keys every record has
REQUIRED_KEYS = ("dataset", "spec", "slug", "seed", "test")
_SQLITE_PREFIX = "sqlite:///"


def _relative(value: Any) -> Any:
    """``value`` with every absolute path string made relative to the repository where it lies inside it."""
    if isinstance(value, Mapping):
        return {k: _relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return display_path(value)
    return value


def make_record(result: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a finished run's ``result``: absolute paths in the repository made relative, no tracking URI.

    Args:
        result: the content of a run's ``result.json``.
    """
    record = {"record_format": RECORD_FORMAT, **{k: v for k, v in result.items() if k != "mlflow"}}
    record["overrides"] = {k: v for k, v in result.get("overrides", {}).items() if k != "tracking_uri"}
    if "mlflow" in result:
        mlflow = {k: v for k, v in result["mlflow"].items() if k != "tracking_uri"}
        uri = str(result["mlflow"].get("tracking_uri", ""))
        if uri.startswith(_SQLITE_PREFIX):
            mlflow["store"] = uri[len(_SQLITE_PREFIX):]
        record["mlflow"] = mlflow
    return _relative(record)


def record_path(records_dir: str | os.PathLike, dataset: str, slug: str, seed: int) -> Path:
    """``<records_dir>/<dataset>/<slug>/seed<seed>.json``."""
    return Path(records_dir) / dataset / slug / f"seed{seed}.json"


def write_record(records_dir: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Write the record of ``result`` where :func:`record_path` puts it (atomically); its path."""
    record = make_record(result)
    path = record_path(records_dir, record["dataset"], record["slug"], int(record["seed"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def load_record(path: str | os.PathLike) -> dict[str, Any]:
    """One record, checked: a JSON object with :data:`REQUIRED_KEYS`, lying where :func:`record_path` puts it.

    Raises:
        ValueError: naming the file and the problem.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"record {path}: cannot be read as JSON ({e})") from e
    if not isinstance(record, dict):
        raise ValueError(f"record {path}: a JSON object expected, got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"record {path}: lacks {', '.join(missing)}")
    expected = record_path(path.parents[2], record["dataset"], record["slug"], record["seed"])
    if expected.parts[-3:] != path.parts[-3:]:
        raise ValueError(f"record {path}: its dataset, slug and seed say it belongs at "
                         f"<records-dir>/{'/'.join(expected.parts[-3:])}")
    return record


def load_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record under ``folder`` (``<records-dir>/<dataset-name>``), in path order; none when it is absent.

    Raises:
        ValueError: naming the file of a malformed or misplaced record.
    """
    folder = Path(folder)
    return [load_record(p) for p in sorted(folder.glob("*/seed*.json"))] if folder.is_dir() else []
