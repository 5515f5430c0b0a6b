# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Helpers shared by the data-preparation modules: writing MONAI decathlon-style datalists.

Every datalist written by this package has the layout::

    {
        "name": "...",
        "description": "...",
        "labels": {"0": "normal", "1": "cyst"},
        "num_classes": 2,
        "training": [{"image": "images/case_0000.nii.gz", "label": 0}, ...],
        "validation": [...],
        "test": [...]
    }

Image paths are relative to the folder that holds the JSON file and use ``/`` as separator, labels
are plain ``int`` class indices, so the file can be read with
``monai.data.load_decathlon_datalist(path, data_list_key="training")`` (its ``base_dir`` defaults to
the JSON's folder).

Note:
    ``monai.data.load_decathlon_datalist(..., data_list_key="test")`` in MONAI 1.6 raises
    ``IndexError`` when the ``"test"`` list is empty; guard with ``len(json["test"])`` before
    loading it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.reports import atomic_write
from transforms.oct_formats import OCTReaderMissing

__all__ = [
    "run_datalist_command",
    "DATALIST_SPLITS",
    "check_output_paths",
    "normalize_label_names",
    "relative_posix",
    "remove_owned_files",
    "write_datalist",
]

#: The datalist keys that hold the three splits, in this order.
DATALIST_SPLITS: tuple[str, str, str] = ("training", "validation", "test")


def relative_posix(path: str | os.PathLike, start: str | os.PathLike) -> str:
    """Return ``path`` relative to the folder ``start``, with ``/`` separators.

    Args:
        path: a file or folder.
        start: the folder the result is relative to (normally the datalist's folder).

    Returns:
        The relative path as a POSIX-style string, e.g. ``"images/case_0000.nii.gz"``.
    """
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(start))).as_posix()


def normalize_label_names(label_names: Mapping[Any, str]) -> dict[str, str]:
    """Return ``label_names`` with keys as decimal strings ``"0"``, ``"1"``, ... sorted by index.

    Args:
        label_names: mapping from class index (``int`` or a string holding an ``int``) to a name.

    Raises:
        ValueError: when a key is not a non-negative integer or the indices are not ``0..K-1``.
    """
    parsed: dict[int, str] = {}
    for key, value in label_names.items():
        try:
            index = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"label_names keys must be class indices 0..K-1, got key {key!r}.") from None
        if index < 0 or str(index) != str(key).strip():
            raise ValueError(f"label_names keys must be class indices 0..K-1, got key {key!r}.")
        parsed[index] = str(value)
    if sorted(parsed) != list(range(len(parsed))):
        raise ValueError(f"label_names keys must be exactly 0..K-1, got {sorted(parsed)}.")
    return {str(i): parsed[i] for i in range(len(parsed))}


def check_output_paths(paths: Iterable[str | os.PathLike], overwrite: bool) -> list[Path]:
    """Refuse to go on when any of ``paths`` already holds data, unless ``overwrite`` is set.

    A path "holds data" when it is an existing file or a non-empty folder.

    Args:
        paths: files or folders that the caller is about to write.
        overwrite: if ``True``, only report which paths exist; the caller replaces them.

    Returns:
        The paths that already hold data.

    Raises:
        FileExistsError: when some paths hold data and ``overwrite`` is ``False``; the message names
            them.
    """
    existing = []
    for p in map(Path, paths):
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            existing.append(p)
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise FileExistsError(
            f"Refusing to overwrite existing output: {names}. Pass overwrite=True (--overwrite on the "
            "command line) to replace it, or choose another output folder."
        )
    return existing


def remove_owned_files(folder: str | os.PathLike, patterns: Sequence[str]) -> int:
    """Delete the files in ``folder`` (not recursive) whose names match one of ``patterns``.

    Used before rewriting a dataset with ``overwrite=True`` so that no stale case of an earlier,
    larger run survives; files with other names are left alone.

    Args:
        folder: the folder to clean; nothing happens when it does not exist.
        patterns: glob patterns such as ``"case_*.nii.gz"``.

    Returns:
        The number of files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for pattern in patterns:
        for f in folder.glob(pattern):
            if f.is_file():
                f.unlink()
                removed += 1
    return removed


def write_datalist(
    out_path: str | os.PathLike,
    *,
    name: str,
    description: str,
    labels: Mapping[Any, str],
    training: Sequence[Mapping[str, Any]],
    validation: Sequence[Mapping[str, Any]],
    test: Sequence[Mapping[str, Any]],
    num_classes: int | None = None,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a decathlon-style classification datalist JSON.

    Args:
        out_path: the JSON file to write; its folder is created if needed.
        name: short dataset name.
        description: one or two sentences on what the data are and how they were made.
        labels: class index -> class name; keys are written as strings ``"0"``, ``"1"``, ...
        training: entries of the ``"training"`` list, each with at least ``"image"`` and ``"label"``.
        validation: entries of the ``"validation"`` list.
        test: entries of the ``"test"`` list (may be empty).
        num_classes: number of classes; defaults to ``len(labels)``.
        extra: further top-level metadata (must be JSON-serializable), written after the splits.
        overwrite: replace an existing file at ``out_path``.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        FileExistsError: when ``out_path`` exists and ``overwrite`` is ``False``.
        ValueError: when an entry lacks ``"image"``/``"label"`` or a label is outside
            ``0..num_classes-1``.
    """
    out_path = Path(out_path)
    check_output_paths([out_path], overwrite)
    label_names = normalize_label_names(labels)
    num_classes = len(label_names) if num_classes is None else int(num_classes)
    data: dict[str, Any] = {
        "name": name,
        "description": description,
        "labels": label_names,
        "num_classes": num_classes,
    }
    for key, items in zip(DATALIST_SPLITS, (training, validation, test)):
        rows = []
        for i, item in enumerate(items):
            if "image" not in item or "label" not in item:
                raise ValueError(f"{out_path}: {key}[{i}] needs 'image' and 'label' keys, got {sorted(item)}.")
            label = int(item["label"])
            if not 0 <= label < num_classes:
                raise ValueError(f"{out_path}: {key}[{i}] has label {label}, outside 0..{num_classes - 1}.")
            rows.append({**item, "label": label})
        data[key] = rows
    if extra:
        data.update(extra)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, json.dumps(data, indent=2) + "\n")
    return out_path


def run_datalist_command(write: Callable[[], Path]) -> int:
    """Run a data-preparation command: ``write()`` returns the datalist path, printed on success.

    Returns:
        0 on success; 1 when ``write`` raises ``FileNotFoundError``, ``FileExistsError``, ``ValueError`` or
        :class:`transforms.oct_formats.OCTReaderMissing` (an OCT file whose optional reader is not installed; its
        message names the file and the install command): the message is printed to stderr as ``error: ...``.
    """
    try:
        path = write()
    except (FileNotFoundError, FileExistsError, ValueError, OCTReaderMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"Datalist written to {path}")
    return 0
