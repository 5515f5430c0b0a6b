# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""K-fold cross-validation datalists from a folder of images and a CSV of labels, stratified and grouped.

The CSV is read and checked as by :func:`bundle.data.folder_datalist.build_datalist_from_csv` (image,
label and optional group column, e.g. ``patient_id``). The cases are dealt into ``k`` folds so that no
group (patient, batch) is split across folds and every class is spread evenly. For fold ``i``:

- ``test`` = fold ``i``;
- ``validation`` = a ``val_fraction`` of the other folds' cases, stratified and grouped
  (:func:`~bundle.data.folder_datalist.split_stratified_grouped`, seed ``seed + i``);
- ``training`` = the rest of the other folds.

Taking validation as a fraction of the remaining folds (rather than one whole fold) keeps ``k = 2``
possible and leaves most of the data for training when there are only tens of images.

Fold algorithm (deterministic for a given ``seed``): the units are the groups (or the rows without a
group column); a unit's stratum is its most frequent label. Within each stratum (classes in index order)
the units are shuffled, then ordered by decreasing size (stable), and each goes to the fold with the
fewest cases of that class so far (ties: fewest cases in all, then a seeded random fold order). Without
groups every fold gets ``floor(n_c / k)`` or ``ceil(n_c / k)`` cases of a class with ``n_c`` cases; with
groups the counts of a class differ between folds by at most its largest group.

Layout under ``out_dir``::

    folds.json              parameters, and per fold its datalist, split sizes and class counts
    fold_<i>/datalist.json  decathlon datalist of fold i (image paths relative to its folder)

Example:
    >>> kfold_datalists("oct/images", "oct/labels.csv", "runs/cv/folds", k=5,
    ...                 group_column="patient_id")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bundle.data.datalist_writer import DATALIST_SPLITS, check_output_paths, write_datalist
from bundle.data.folder_datalist import group_strata, read_labelled_cases, split_stratified_grouped
from bundle.reports import atomic_write

__all__ = ["FOLDS_FILE", "assign_folds", "fold_parameters", "kfold_datalists"]

#: the summary file written next to the fold folders
FOLDS_FILE = "folds.json"


def assign_folds(labels: Sequence[int], groups: Sequence[Any] | None, k: int, seed: int = 0,
                 source: str = "labels") -> list[int]:
    """The fold (``0 .. k-1``) of every case: stratified by label, no group split across folds.

    See the module docstring for the algorithm.

    Args:
        labels: class index of every case.
        groups: group key of every case (e.g. patient id) or ``None`` for one group per case.
        k: number of folds, at least 2.
        seed: seed of the shuffles.
        source: what the error messages name (e.g. the CSV file).

    Returns:
        The fold index of every case, in input order.

    Raises:
        ValueError: when ``k < 2``, ``groups`` has the wrong length, or ``k`` exceeds the number of
            units (groups, or cases without groups) of some class: each test fold needs every class.
    """
    if k < 2:
        raise ValueError(f"{source}: k must be at least 2 folds, got {k}.")
    n = len(labels)
    members, strata = group_strata(labels, groups)
    unit = "group" if len(members) < n else "case"
    smallest = min(strata, key=lambda c: (len(strata[c]), c))
    if len(strata[smallest]) < k:
        raise ValueError(
            f"{source}: k={k} folds but class {smallest} has only {len(strata[smallest])} {unit}(s); every "
            f"test fold needs each class, so use k <= {len(strata[smallest])}."
        )
    rng = np.random.default_rng(seed)
    priority = rng.permutation(k)
    fold_cases = [0] * k
    fold_of = [0] * n
    for label in sorted(strata):
        units = [strata[label][j] for j in rng.permutation(len(strata[label]))]
        units.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the shuffled order
        class_cases = [0] * k
        for g in units:
            fold = min(range(k), key=lambda f: (class_cases[f], fold_cases[f], priority[f]))
            for i in members[g]:
                fold_of[i] = fold
            class_cases[fold] += len(members[g])
            fold_cases[fold] += len(members[g])
    return fold_of


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fold_parameters(
    images_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    k: int,
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """What determines the folds (recorded in ``folds.json``): equal parameters give equal folds.

    The labels CSV is identified by its resolved path and the SHA-256 of its content.
    """
    labels_csv = Path(labels_csv).resolve()
    return {
        "images_dir": str(Path(images_dir).resolve()),
        "labels_csv": str(labels_csv),
        "labels_csv_sha256": _sha256(labels_csv) if labels_csv.is_file() else None,
        "image_column": image_column,
        "label_column": label_column,
        "group_column": group_column,
        "k": int(k),
        "val_fraction": float(val_fraction),
        "seed": int(seed),
    }


def kfold_datalists(
    images_dir: str | os.PathLike,
    labels_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    k: int = 5,
    image_column: str = "image",
    label_column: str = "label",
    group_column: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    class_names: Sequence[str] | Mapping[Any, str] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write ``out_dir/fold_<i>/datalist.json`` for ``i < k`` and the summary ``out_dir/folds.json``.

    Args:
        images_dir: folder the CSV's image entries are relative to.
        labels_csv: CSV file with a header line (see :func:`~bundle.data.folder_datalist.read_labelled_cases`).
        out_dir: folder of the fold datalists (created if needed).
        k: number of folds, at least 2 and at most the number of units of the smallest class.
        image_column: CSV column with the image path. Default ``"image"``.
        label_column: CSV column with the label (class indices or names). Default ``"label"``.
        group_column: CSV column that groups rows (e.g. ``"patient_id"``); no group is split across
            folds, nor across training and validation. Default ``None``: every row is its own group.
        val_fraction: fraction of the other folds' cases (per class) used for validation, in ``(0, 1)``.
            Default 0.2.
        seed: seed of the folds (and, as ``seed + i``, of fold ``i``'s validation split). Default 0.
        class_names: ordered class names or an index -> name mapping (as in
            :func:`~bundle.data.folder_datalist.build_datalist_from_csv`).
        overwrite: replace existing fold files.

    Returns:
        The ``k`` datalist paths, fold order.

    Raises:
        FileNotFoundError: for a missing images folder, CSV or image (rows listed with line numbers).
        FileExistsError: when ``folds.json`` or a fold datalist exists and ``overwrite`` is ``False``.
        ValueError: for invalid CSV content, ``k < 2``, ``k`` above the number of units (groups, or cases)
            of the smallest class, or ``val_fraction`` outside ``(0, 1)``; messages name the CSV.
    """
    out_dir = Path(out_dir)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if k < 2:
        raise ValueError(f"{labels_csv}: k must be at least 2 folds, got {k}.")
    paths = [out_dir / f"fold_{i}" / "datalist.json" for i in range(k)]
    check_output_paths([out_dir / FOLDS_FILE, *paths], overwrite)
    cases = read_labelled_cases(images_dir, labels_csv, image_column, label_column, group_column, class_names)
    labels = cases.labels
    groups = cases.groups if cases.groups is not None else list(range(len(labels)))
    folds = assign_folds(labels, groups, k, seed, source=str(labels_csv))

    summary = []
    for i, path in enumerate(paths):
        rest = [j for j in range(len(labels)) if folds[j] != i]
        split = split_stratified_grouped([labels[j] for j in rest], [groups[j] for j in rest], val_fraction, 0.0,
                                         seed + i)
        assignment = {j: s for j, s in zip(rest, split)}
        entries = cases.entries(path.parent)
        lists: dict[str, list[int]] = {s: [] for s in DATALIST_SPLITS}
        for j in range(len(labels)):
            lists["test" if folds[j] == i else assignment[j]].append(j)
        write_datalist(
            path,
            name=Path(images_dir).resolve().name,
            description=(
                f"Fold {i} of {k} of the images in {Path(images_dir).name}/ labelled by {Path(labels_csv).name}: "
                f"test = fold {i}, validation = {val_fraction:g} of the other folds, stratified by label"
                + (f" and grouped by '{group_column}'" if group_column else "") + f", seed {seed}."
            ),
            labels=cases.names,
            **{s: [entries[j] for j in lists[s]] for s in DATALIST_SPLITS},
            extra={"fold": {"index": i, "k": k, "seed": int(seed), "val_fraction": float(val_fraction),
                            "group_column": group_column}},
            overwrite=overwrite,
        )
        summary.append({
            "fold": i,
            "datalist": path.relative_to(out_dir).as_posix(),
            "sizes": {s: len(lists[s]) for s in DATALIST_SPLITS},
            "class_counts": {
                s: {cases.names[str(c)]: n for c, n in sorted(Counter(labels[j] for j in lists[s]).items())}
                for s in DATALIST_SPLITS
            },
            "groups": ({s: len({groups[j] for j in lists[s]}) for s in DATALIST_SPLITS} if group_column else None),
        })
    params = fold_parameters(images_dir, labels_csv, k, image_column, label_column, group_column, val_fraction, seed)
    record = {"parameters": params, "labels": cases.names, "num_cases": len(labels), "folds": summary}
    atomic_write(out_dir / FOLDS_FILE, json.dumps(record, indent=2) + "\n")  # last: its presence means complete
    return paths
