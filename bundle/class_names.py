# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Class names from the user's labels: the datalist's ``"labels"`` mapping, else the configured names.

``configs/common.json`` sets ``class_names`` to
``$bundle.class_names.resolve_class_names(@datalist, ['normal', 'cyst'], @num_classes)``: a datalist written by
``scripts/build_datalist.py`` (or any of the bundle's data preparation scripts) carries
``"labels": {"0": "NORMAL", "1": "CNV"}``, and those names are used in the predictions files, the metrics and
the log; without such a datalist (inference on a folder, a datalist without ``"labels"``) the configured list is
used. A dataset overlay or ``--class_names "['a','b']"`` that sets a list replaces the expression altogether.

The exported archive (:mod:`bundle.export`) and the model-zoo package (:mod:`bundle.zoo_package`) store the
resolved list, so a served model keeps the names it was trained with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["datalist_class_names", "resolve_class_names"]


def datalist_class_names(datalist: str | os.PathLike) -> list[str] | None:
    """The class names of the datalist JSON's ``"labels"`` mapping (index -> name), in index order.

    Returns:
        None when the file does not exist or has no ``"labels"``.

    Raises:
        ValueError: naming the file, when it is not JSON, or ``"labels"`` is not a mapping of the indices
            ``0 .. K-1`` to names.
    """
    from bundle.data.datalist_writer import normalize_label_names

    path = Path(datalist)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON datalist ({e})") from e
    labels = data.get("labels") if isinstance(data, dict) else None
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise ValueError(f"{path}: \"labels\" must map class indices to names ({{\"0\": \"normal\"}}), got {labels!r}")
    try:
        names = normalize_label_names(labels)
    except ValueError as e:
        raise ValueError(f"{path}: \"labels\": {e}") from e
    return list(names.values())


def resolve_class_names(
    datalist: str | os.PathLike | None, default: Sequence[str], num_classes: int | None = None
) -> list[str]:
    """The class names: those of ``datalist``'s ``"labels"`` (:func:`datalist_class_names`), else ``default``.

    Args:
        datalist: the datalist JSON (``@datalist``); None or a missing file: ``default``.
        default: the configured names, used when the datalist names none.
        num_classes: when given, the number of names the datalist's labels must have.

    Raises:
        ValueError: naming the file, when its ``"labels"`` are malformed or name another number of classes than
            ``num_classes`` (the fix: set ``num_classes``, or ``class_names`` explicitly).
    """
    names = None if datalist is None else datalist_class_names(datalist)
    if names is None:
        return [str(name) for name in default]
    if num_classes is not None and len(names) != int(num_classes):
        raise ValueError(
            f"{datalist}: \"labels\" names {len(names)} classes {names}, but num_classes is {num_classes}: "
            f"set --num_classes {len(names)}, or --class_names explicitly"
        )
    return names
