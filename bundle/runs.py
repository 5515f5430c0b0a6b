# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Names and folders of runs: unique, and saying which run they are.

Two runs never share a folder or an MLflow run, even when started in the same second:

- a run's **stamp** (:func:`run_stamp`) is its start time to the microsecond and a random suffix, e.g.
  ``20260314_101502_123456_3fa9``; ``configs/common.json`` takes rank 0's
  (``bundle.distributed.broadcast_object``), so every process of a multi-process run has the same;
- a run's **name** (:func:`run_name`) says which run it is: ``<kind>_<dataset>_<stamp>``, e.g.
  ``train_synthetic_oct_20260314_101502_123456_3fa9`` (``kind`` one of :data:`RUN_KINDS`; the dataset is the
  ``"name"`` of the datalist, :func:`dataset_name`). It is the MLflow run name (``run_name`` in the configs);
- a training run's **folder** (:func:`run_folder`) is ``runs/<name>``, made by rank 0 with an exclusive
  ``mkdir``: a folder that already exists is never shared, the run stops with a message instead (which only
  happens when ``run_stamp`` is set by hand to one used before); a resumed run goes on in the folder of the
  run it continues.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
from pathlib import Path

__all__ = ["RUN_KINDS", "dataset_name", "run_folder", "run_name", "run_stamp"]

#: what a run does, the first part of its name
RUN_KINDS = ("train", "evaluate", "inference")
#: longest dataset part of a run name
_MAX_DATASET = 40
#: folders this process made with :func:`run_folder` (a config parsed twice in one process gets the same one)
_MADE: set[Path] = set()


def run_stamp(now: datetime.datetime | None = None, suffix: str | None = None) -> str:
    """The start time of a run to the microsecond, and a random suffix: ``YYYYmmdd_HHMMSS_ffffff_xxxx``.

    Args:
        now: the time (default: now, local time).
        suffix: the last part (default: 4 random hexadecimal digits).
    """
    now = now or datetime.datetime.now()
    return f"{now.strftime('%Y%m%d_%H%M%S_%f')}_{suffix if suffix is not None else secrets.token_hex(2)}"


def _clean(text: str) -> str:
    """``text`` with every run of characters other than letters, digits, ``.``, ``_``, ``-`` as one ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:_MAX_DATASET].strip("-._")


def dataset_name(datalist: str | os.PathLike | None) -> str | None:
    """The dataset a datalist describes, for run names: its ``"name"``, else the name of its folder.

    Only a datalist JSON file gives a name; an input folder or image file (inference) gives None, so that no
    case's file name ends up in a run name. Characters other than letters, digits, ``.``, ``_`` and ``-``
    become ``-``; at most 40 characters.

    Args:
        datalist: path of the datalist (``@datalist``; ``@input`` for inference); None: none.

    Returns:
        the name, or None when there is none (not a JSON file, unreadable, or an empty name).
    """
    if datalist is None:
        return None
    path = Path(datalist)
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the datalist's own checks report it
    name = content.get("name") if isinstance(content, dict) else None
    if not isinstance(name, str) or not name.strip():
        name = path.resolve().parent.name
    return _clean(name) or None


def run_name(kind: str, datalist: str | os.PathLike | None, stamp: str) -> str:
    """``<kind>_<dataset>_<stamp>`` (``<kind>_<stamp>`` when :func:`dataset_name` gives none).

    Args:
        kind: one of :data:`RUN_KINDS`.
        datalist: the run's datalist (or inference input).
        stamp: the run's :func:`run_stamp`.

    Raises:
        ValueError: another ``kind``, or an empty ``stamp``.
    """
    if kind not in RUN_KINDS:
        raise ValueError(f"run kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    if not str(stamp):
        raise ValueError("run_stamp is empty: leave it unset for a unique one")
    dataset = dataset_name(datalist)
    return "_".join(part for part in (kind, dataset, str(stamp)) if part)


def _global_rank() -> int:
    """This process's global rank: the process group's, else ``RANK`` (set by ``torchrun``), else 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def run_folder(root: str | os.PathLike, name: str, resumed: bool = False) -> str:
    """The folder ``root/name`` of a new run, made (with ``root``) by rank 0 with an exclusive ``mkdir``.

    Other ranks only compute the path (the name, from the broadcast stamp, is the same on every rank). Asking
    again in the same process for a folder it made returns it. A resumed run (``resumed``, ``--resume_from`` a
    checkpoint with a resume state, :mod:`bundle.resume`) goes on in the folder of the run it continues.

    Args:
        root: the folder of the runs (``<bundle_root>/runs``).
        name: the run's :func:`run_name`.
        resumed: the run continues the run ``name``: its folder is used as it is (made when missing).

    Returns:
        the folder, as a string (the configs join file names to it).

    Raises:
        FileExistsError: when ``root/name`` exists already and this process did not make it (the message says
            how to get a unique one).
    """
    folder = Path(root) / name
    if _global_rank() != 0 or folder.resolve() in _MADE:
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(exist_ok=resumed)
    except FileExistsError:
        raise FileExistsError(
            f"run folder {folder} exists already: it belongs to another run and is never shared; leave run_stamp "
            "unset (a unique one is made) or choose another run_stamp"
        ) from None
    _MADE.add(folder.resolve())
    return str(folder)
