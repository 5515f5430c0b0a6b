# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Reading and validating decathlon-style datalists before any work starts.

A datalist is a JSON file ``{"training": [...], "validation": [...], "test": [...]}`` whose entries
are ``{"image": <path>, "label": <int>, ...}``; relative paths are relative to the JSON file's
folder. Every problem is reported with the datalist's path, the split and the entry number, and all
missing files of a split are reported at once, so a typo is found in seconds, not after the cache
has been filled or an epoch has run.

The configs call :func:`load_datalist` and :func:`inference_datalist` as components, by keyword (e.g.
``{"_target_": "bundle.datalist.load_datalist", "datalist": "@datalist", "split": "@eval_split", ...}``),
so a split is changed with an id override such as ``"dataset#data#split": "validation"``: the keyword
names are part of the configs' interface.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bundle.errors import BundleUserError

__all__ = ["DatalistError", "PATH_KEYS", "load_datalist", "folder_to_datalist", "inference_datalist"]

#: keys of a datalist entry that hold paths (resolved against the datalist's folder)
PATH_KEYS = ("image", "mask")


class DatalistError(BundleUserError, ValueError):
    """A datalist (or an input folder) cannot be used; the message names the file and the entry."""


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"datalist {path} does not exist")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatalistError(f"datalist {path} is not valid JSON: {e}") from e


def _as_label(value: Any, where: str, num_classes: int | None) -> int:
    if isinstance(value, bool) or value is None:
        raise DatalistError(f"{where}: label {value!r} is not a class index")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return _as_label(value[0], where, num_classes)
    if not isinstance(value, int):
        raise DatalistError(f"{where}: label {value!r} is not a class index (an integer is expected)")
    if value < 0 or (num_classes is not None and value >= num_classes):
        allowed = f"0..{num_classes - 1}" if num_classes is not None else "a non-negative integer"
        raise DatalistError(f"{where}: label {value} is not a class: allowed {allowed}")
    return value


def load_datalist(
    datalist: str | os.PathLike,
    split: str = "training",
    num_classes: int | None = None,
    require_labels: bool = True,
    check_files: bool = True,
) -> list[dict]:
    """Load one split of a datalist and validate every entry.

    Args:
        datalist: path of the datalist JSON file.
        split: key of the split to read (``"training"``, ``"validation"``, ``"test"``, ...).
        num_classes: when given, labels must lie in ``0 .. num_classes - 1``.
        require_labels: every entry must carry a ``"label"`` (training and evaluation); inference
            sets it to ``False`` and still validates labels that are present.
        check_files: check that every ``image`` (and ``mask``) path exists.

    Returns:
        the entries with absolute paths and ``int`` labels.

    Raises:
        FileNotFoundError: the datalist file does not exist.
        DatalistError: invalid JSON, missing or empty split, an entry without an image, a label that
            is not a class, or image files that do not exist (all of them listed).
    """
    path = Path(datalist).expanduser().resolve()
    content = _read_json(path)
    if not isinstance(content, dict):
        raise DatalistError(f"datalist {path}: the top level must be an object with split keys")
    if split not in content:
        splits = sorted(k for k, v in content.items() if isinstance(v, list))
        raise DatalistError(f"datalist {path} has no split '{split}'; splits found: {splits}")
    entries = content[split]
    if not isinstance(entries, list):
        raise DatalistError(f"datalist {path}: split '{split}' must be a list of entries")
    if not entries:
        raise DatalistError(f"datalist {path}: split '{split}' is empty")
    base = path.parent
    items, missing = [], []
    for i, entry in enumerate(entries):
        where = f"datalist {path}, split '{split}', entry {i}"
        if isinstance(entry, str):
            entry = {"image": entry}
        if not isinstance(entry, dict) or "image" not in entry:
            raise DatalistError(f"{where}: an entry must be an object with an 'image' key, got {entry!r}")
        item = dict(entry)
        for key in PATH_KEYS:
            if key in item and item[key] is not None:
                resolved = (base / str(item[key])).expanduser()
                item[key] = str(resolved)
                if check_files and not resolved.exists():
                    missing.append(f"entry {i} {key} '{entry[key]}' -> {resolved}")
        if "label" in item:
            item["label"] = _as_label(item["label"], where, num_classes)
        elif require_labels:
            raise DatalistError(f"{where}: entry has no 'label' (image '{entry['image']}')")
        items.append(item)
    if missing:
        shown = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise DatalistError(f"datalist {path}, split '{split}': {len(missing)} file(s) do not exist:\n  {shown}")
    return items


def folder_to_datalist(folder: str | os.PathLike, extensions: Sequence[str]) -> list[dict]:
    """List the cases of an input folder for inference: one entry per image file or sub-folder.

    A sub-folder is one case (a folder of slice images or a DICOM series). Hidden files are skipped.

    Args:
        folder: the input folder.
        extensions: file name endings accepted as images (lower case, with the dot).

    Raises:
        FileNotFoundError: the folder does not exist.
        DatalistError: the folder holds no image file and no sub-folder.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"input folder {root} does not exist")
    cases = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() or any(child.name.lower().endswith(ext) for ext in extensions):
            cases.append({"image": str(child)})
    if not cases:
        raise DatalistError(f"input folder {root} holds no image ({', '.join(extensions)}) and no case folder")
    return cases


def inference_datalist(
    input_path: str | os.PathLike, extensions: Sequence[str], split: str = "test", check_files: bool = True
) -> list[dict]:
    """Cases to run inference on: a datalist JSON (labels optional) or a folder of images.

    Args:
        input_path: a ``.json`` datalist or a folder.
        extensions: image file endings accepted in a folder.
        split: the datalist split to read.
        check_files: check that every image of a datalist exists (False: a missing file is reported by the case
            that loads it, see ``fail_fast`` in ``configs/inference.json``).
    """
    path = Path(input_path).expanduser()
    if path.suffix.lower() == ".json":
        return load_datalist(path, split=split, require_labels=False, check_files=check_files)
    return folder_to_datalist(path, extensions)
