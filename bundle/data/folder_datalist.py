# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Build a decathlon-style datalist from a folder of images and a CSV of labels.

The CSV has one row per case: a column naming the case's image relative to ``images_dir`` (a file
such as ``scan.nii.gz`` / ``bscan.png``, or a folder of slices or a DICOM series), a label column
(integer class indices, or class names) and optionally a group column (e.g. ``patient_id``).
The cases are split into training / validation / test, stratified by label and, when a group
column is given, by group, so that no group (patient) appears in two splits.

Split algorithm (deterministic for a given ``seed``):

1. The split units are the groups (or the single rows when no group column is given). A unit's
   stratum is its most frequent label (ties: the smallest class index).
2. Within each stratum the units are shuffled, then laid end to end by row count; a unit whose
   midpoint falls in the first ``test_fraction`` of the stratum's rows goes to ``test``, in the next
   ``val_fraction`` to ``validation``, otherwise to ``training``. With one row per unit this is
   ``round(n * fraction)`` per class; with groups the row fractions are approximate.

OCT files holding several scans (a Heidelberg ``.e2e`` with both eyes or several visits): with
``split_scans=True`` every scan becomes a case of its own, ``{"image": "x.e2e", "label": ..., "scan": <index>}``
(:func:`expand_scans`; ``transforms.LoadVolumed`` reads the ``"scan"`` key), all scans of a file in the same split
(the file is their group when no group column is given). Without it such a file is refused when it is loaded, with
the list of its scans.

Example:
    >>> build_datalist_from_csv("oct/images", "oct/labels.csv", "oct/datalist.json",
    ...                         image_column="file", group_column="patient_id")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bundle.data.datalist_writer import check_output_paths, normalize_label_names, relative_posix, write_datalist

__all__ = [
    "LabelledCases",
    "build_datalist_from_csv",
    "expand_scans",
    "group_strata",
    "read_labelled_cases",
    "read_labels_csv",
    "split_stratified_grouped",
]


def read_labels_csv(
    labels_csv: str | os.PathLike,
    columns: Sequence[str],
) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV file and check that it has the given columns.

    Args:
        labels_csv: the CSV file (UTF-8, optional BOM; first line is the header).
        columns: the column names that must be present.

    Returns:
        ``(line_number, row)`` pairs, ``line_number`` counting the header as line 1; values are
        stripped of surrounding whitespace. Blank lines are skipped.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when the file is empty, has no data rows, or lacks some of ``columns`` (the
            message names them and lists the columns found).
    """
    labels_csv = Path(labels_csv)
    if not labels_csv.is_file():
        raise FileNotFoundError(f"Labels CSV {labels_csv} does not exist.")
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if not header:
            raise ValueError(f"{labels_csv}: the CSV file is empty (no header line).")
        header = [h.strip() for h in header]
        reader.fieldnames = header
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{labels_csv}: missing column(s) {missing}; the columns found are {header}.")
        rows = []
        for row in reader:
            values = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if any(values.values()):
                rows.append((reader.line_num, values))
    if not rows:
        raise ValueError(f"{labels_csv}: the CSV file has a header but no data rows.")
    return rows


def _parse_labels(
    raw: Sequence[str], class_names: Sequence[str] | Mapping[Any, str] | None, source: str
) -> tuple[list[int], dict[str, str]]:
    """Map raw label strings to class indices; return the indices and the index -> name mapping."""
    if isinstance(class_names, Mapping):
        names = normalize_label_names(class_names)
    elif class_names is not None:
        names = {str(i): str(n) for i, n in enumerate(class_names)}
        if len(set(names.values())) != len(names):
            raise ValueError(f"class_names must be unique, got {list(class_names)}.")
    else:
        names = None

    def _is_int(s: str) -> bool:
        return s.lstrip("-").isdigit()

    if all(_is_int(s) for s in raw):
        labels = [int(s) for s in raw]
        if min(labels) < 0:
            raise ValueError(f"{source}: integer labels must be >= 0, got {min(labels)}.")
        if names is None:
            names = {str(k): f"class_{k}" for k in range(max(labels) + 1)}
        elif max(labels) >= len(names):
            raise ValueError(f"{source}: label {max(labels)} occurs but class_names only has {len(names)} classes.")
        return labels, names
    if names is None:  # class names in the CSV: sorted names -> 0..K-1
        names = {str(i): n for i, n in enumerate(sorted(set(raw)))}
    index = {n: int(i) for i, n in names.items()}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise ValueError(f"{source}: labels {unknown} are not among the class names {list(index)}.")
    return [index[s] for s in raw], names


def group_strata(
    labels: Sequence[int], groups: Sequence[Any] | None
) -> tuple[dict[Any, list[int]], dict[int, list[Any]]]:
    """The split units and their strata: the cases of every group, and the groups of every class.

    A group's stratum is its most frequent label (ties: the smallest class index).

    Args:
        labels: class index of every case.
        groups: group key of every case (same length as ``labels``), or ``None`` for one group per case.

    Returns:
        ``members`` (group -> case indices, groups in order of first appearance) and ``strata``
        (class index -> its groups, in order of first appearance).

    Raises:
        ValueError: ``groups`` of another length than ``labels``.
    """
    if groups is None:
        groups = list(range(len(labels)))
    elif len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries but labels has {len(labels)}.")
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    strata: dict[int, list[Any]] = {}
    for g, idx in members.items():
        counts = Counter(labels[i] for i in idx)
        top = max(counts.values())
        strata.setdefault(min(c for c, k in counts.items() if k == top), []).append(g)
    return members, strata


def split_stratified_grouped(
    labels: Sequence[int],
    groups: Sequence[Any] | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Assign each case to ``"training"``, ``"validation"`` or ``"test"``, stratified and grouped.

    See the module docstring for the algorithm. Warns (``UserWarning``) when a split is requested
    and a class has a single unit (row, or group when ``groups`` is given): that unit goes to
    training.

    Args:
        labels: class index of every case.
        groups: group key of every case (e.g. patient id) or ``None`` for one group per case.
        val_fraction: fraction of each class's cases for validation, in ``[0, 1)``.
        test_fraction: fraction of each class's cases for test, in ``[0, 1)``.
        seed: seed of the shuffle.

    Returns:
        The split name of every case, in input order.

    Raises:
        ValueError: for fractions outside ``[0, 1)``, summing to 1 or more, or ``groups`` of the
            wrong length.
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum < 1, got {val_fraction} and {test_fraction}."
        )
    n = len(labels)
    members, strata = group_strata(labels, groups)

    rng = np.random.default_rng(seed)
    assignment = ["training"] * n
    unit = "group" if len(members) < n else "case"
    for label in sorted(strata):
        units = strata[label]
        if len(units) == 1 and val_fraction + test_fraction > 0:
            warnings.warn(
                f"Class {label} has a single {unit}; it cannot be split and goes to training.",
                UserWarning,
                stacklevel=2,
            )
        order = rng.permutation(len(units))
        total = sum(len(members[units[k]]) for k in order)
        t_test, t_val = total * test_fraction, total * (test_fraction + val_fraction)
        start = 0.0
        for k in order:
            size = len(members[units[k]])
            mid = start + size / 2.0
            split = "test" if mid < t_test else "validation" if mid < t_val else "training"
            for i in members[units[k]]:
                assignment[i] = split
            start += size
    for split, fraction in (("validation", val_fraction), ("test", test_fraction)):
        if fraction > 0 and split not in assignment:
            warnings.warn(
                f"The {split} split is empty although {split} fraction {fraction} was requested (too few cases).",
                UserWarning,
                stacklevel=2,
            )
    return assignment


@dataclasses.dataclass
class LabelledCases:
    """The cases of a labels CSV, checked (see :func:`read_labelled_cases`).

    Args:
        images_dir: folder the image entries are relative to.
        images: image entry of every case (relative to ``images_dir``), in CSV order.
        labels: class index of every case.
        names: class index (as text) -> class name.
        group_column: the grouping column, or None.
        groups: group of every case, or None without ``group_column``.
        scans: the scan index of every case inside a multi-scan OCT file (None: the whole file), or None.
    """

    images_dir: Path
    images: list[str]
    labels: list[int]
    names: dict[str, str]
    group_column: str | None
    groups: list[str] | None
    scans: list[int | None] | None = None

    def entries(self, base: str | os.PathLike) -> list[dict[str, Any]]:
        """Datalist entries ``{"image": <path relative to base>, "label": int}``, plus the group and ``"scan"``."""
        result = []
        for i, (image, label) in enumerate(zip(self.images, self.labels)):
            entry: dict[str, Any] = {"image": relative_posix(self.images_dir / image, base), "label": label}
            if self.group_column:
                entry[self.group_column] = self.groups[i]
            if self.scans is not None and self.scans[i] is not None:
                entry["scan"] = self.scans[i]
            result.append(entry)
        return result


def expand_scans(cases: LabelledCases) -> tuple[LabelledCases, list[Any] | None]:
    """One case per scan of every OCT file holding several scans (:func:`transforms.oct_formats.list_scans`).

    Args:
        cases: the cases of a labels CSV.

    Returns:
        the expanded cases (a file's scans in their order, each with the file's label and group) and the split
        groups: the group column's values, or, when a file was split and there is no group column, the image of
        every case (so a file's scans stay in one split); None when nothing was split and there are no groups.

    Raises:
        ValueError, ImportError: an OCT file that cannot be read (the message names it).
    """
    from transforms.oct_formats import list_scans, oct_format

    images, labels, groups, scans = [], [], [], []
    split_any = False
    for i, (image, label) in enumerate(zip(cases.images, cases.labels)):
        path = cases.images_dir / image
        found = list_scans(path) if path.is_file() and oct_format(path) else []
        indices = [info.index for info in found] if len(found) > 1 else [None]
        split_any = split_any or len(indices) > 1
        for index in indices:
            images.append(image)
            labels.append(label)
            groups.append(cases.groups[i] if cases.groups is not None else image)
            scans.append(index)
    expanded = dataclasses.replace(cases, images=images, labels=labels, scans=scans,
                                   groups=groups if cases.groups is not None else None)
    split_groups = groups if (cases.groups is not None or split_any) else None
    return expanded, split_groups


def read_labelled_cases(
    images_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
) -> LabelledCases:
    """Read a labels CSV and check it: columns present, no empty cell, every image exists, valid labels.

    Args: as :func:`build_datalist_from_csv`.

    Raises:
        FileNotFoundError: when ``images_dir`` or ``labels_csv`` does not exist, or when rows name
            images that do not exist (all such rows are listed, with their CSV line numbers).
        ValueError: for an empty CSV, missing columns, empty cells or labels outside ``class_names``.
    """
    images_dir, labels_csv = Path(images_dir), Path(labels_csv)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Images folder {images_dir} does not exist.")
    columns = [image_column, label_column] + ([group_column] if group_column else [])
    rows = read_labels_csv(labels_csv, columns)

    missing_images, empty_cells = [], []
    for line, row in rows:
        for col in columns:
            if not row[col]:
                empty_cells.append(f"line {line}: empty '{col}'")
        if row[image_column] and not (images_dir / row[image_column]).exists():
            missing_images.append(f"line {line}: {images_dir / row[image_column]}")
    if empty_cells:
        raise ValueError(f"{labels_csv}: {len(empty_cells)} empty cell(s):\n  " + "\n  ".join(empty_cells))
    if missing_images:
        raise FileNotFoundError(
            f"{labels_csv}: {len(missing_images)} row(s) name images that do not exist:\n  "
            + "\n  ".join(missing_images)
        )

    labels, names = _parse_labels([row[label_column] for _, row in rows], class_names, str(labels_csv))
    groups = [row[group_column] for _, row in rows] if group_column else None
    return LabelledCases(images_dir, [row[image_column] for _, row in rows], labels, names, group_column, groups)


def build_datalist_from_csv(
    images_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    out_path: str | os.PathLike,
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    overwrite: bool = False,
    split_scans: bool = False,
) -> Path:
    """Write a decathlon-style datalist for the images listed in a labels CSV.

    Each datalist entry is ``{"image": <path relative to out_path's folder>, "label": <int>}``,
    plus ``{<group_column>: <group>}`` when ``group_column`` is given (e.g. for patient-level bags).

    Args:
        images_dir: folder the CSV's image entries are relative to.
        labels_csv: CSV file with a header line.
        out_path: the JSON file to write (its folder is created if needed).
        image_column: CSV column with the image path (a file or a folder). Default ``"image"``.
        label_column: CSV column with the label: integer class indices, or class names. Names are
            mapped to the indices of the sorted unique names (or of ``class_names``); the mapping is
            written under ``"labels"``. Default ``"label"``.
        group_column: CSV column that groups rows (e.g. ``"patient_id"``); no group is split across
            training / validation / test. Default ``None``: every row is its own group.
        val_fraction: fraction of each class for validation. Default 0.2.
        test_fraction: fraction of each class for test. Default 0.0 (the ``"test"`` list is empty).
        seed: seed of the split. Default 0.
        class_names: ordered class names (index = position) or an index -> name mapping; with
            string labels it fixes the label -> index mapping, with integer labels it names them.
            Default: sorted unique names, or ``class_<k>`` for integer labels.
        overwrite: replace an existing ``out_path``.
        split_scans: one case per scan of every OCT file holding several (an ``.e2e`` with both eyes or several
            visits): entries ``{"image": ..., "label": ..., "scan": <index>}``, a file's scans in one split
            (:func:`expand_scans`). Default False: such a file is one entry, refused when loaded.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: when ``images_dir`` or ``labels_csv`` does not exist, or when rows name
            images that do not exist (all such rows are listed, with their CSV line numbers).
        FileExistsError: when ``out_path`` exists and ``overwrite`` is ``False``.
        ValueError: for an empty CSV, missing columns (named, with the columns found), empty
            label/group cells, labels outside ``class_names`` or invalid fractions.
    """
    images_dir, labels_csv, out_path = Path(images_dir), Path(labels_csv), Path(out_path)
    check_output_paths([out_path], overwrite)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"Images folder {images_dir} does not exist.")
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise ValueError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum < 1, got {val_fraction} and {test_fraction}."
        )
    cases = read_labelled_cases(images_dir, labels_csv, image_column, label_column, group_column, class_names)
    groups = cases.groups
    if split_scans:
        cases, groups = expand_scans(cases)
    labels = cases.labels
    assignment = split_stratified_grouped(labels, groups, val_fraction, test_fraction, seed)

    entries = cases.entries(out_path.parent)
    lists: dict[str, list[dict]] = {"training": [], "validation": [], "test": []}
    for entry, split in zip(entries, assignment):
        lists[split].append(entry)

    return write_datalist(
        out_path,
        name=images_dir.resolve().name,
        description=(
            f"Images in {images_dir.name}/ labelled by {labels_csv.name} (column '{label_column}'); split "
            f"stratified by label" + (f" and grouped by '{group_column}'" if group_column else "") + f", seed {seed}."
        ),
        labels=cases.names,
        training=lists["training"],
        validation=lists["validation"],
        test=lists["test"],
        extra={
            "split": {
                "seed": int(seed),
                "val_fraction": float(val_fraction),
                "test_fraction": float(test_fraction),
                "group_column": group_column,
                **({"split_scans": True} if split_scans else {}),
            }
        },
        overwrite=overwrite,
    )
