# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The part every synthetic generator shares: seeded labels per split, one random stream per case,
image and mask files, and the datalist entries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bundle.data.datalist_writer import DATALIST_SPLITS, check_output_paths, remove_owned_files

__all__ = ["check_counts", "write_labelled_cases"]

#: ``(rng, positive) -> (image, mask)``
CaseGenerator = Callable[[np.random.Generator, bool], "tuple[np.ndarray, np.ndarray]"]
#: ``(image, mask, image_path, mask_path) -> None``
CaseSaver = Callable[[np.ndarray, np.ndarray, Path, Path], None]


def check_counts(num_train: int, num_val: int, num_test: int, positive_fraction: float) -> dict[str, int]:
    """``{"training": n, "validation": n, "test": n}``; ValueError for negative or all-zero counts or a
    ``positive_fraction`` outside ``[0, 1]``."""
    counts = {"training": int(num_train), "validation": int(num_val), "test": int(num_test)}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise ValueError(f"num_train, num_val, num_test must be >= 0 and not all 0, got {counts}.")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must lie in [0, 1], got {positive_fraction}.")
    return counts


def _split_labels(rng: np.random.Generator, n: int, positive_fraction: float) -> np.ndarray:
    n_pos = int(round(n * positive_fraction))
    return rng.permutation(np.array([1] * n_pos + [0] * (n - n_pos), dtype=np.int64))


def write_labelled_cases(
    out_dir: Path,
    counts: Mapping[str, int],
    positive_fraction: float,
    seed: int,
    overwrite: bool,
    progress: bool,
    suffix: str,
    generate: CaseGenerator,
    save: CaseSaver,
    desc: str,
) -> tuple[Path, dict[str, list[dict]]]:
    """Generate and save every case; returns the datalist path (not yet written) and the split entries.

    Cases are numbered ``case_XXXX<suffix>`` consecutively over training, validation and test. Each split
    has exactly ``round(n * positive_fraction)`` positives in a random order, and every case gets its own
    random stream spawned from ``seed`` (:class:`numpy.random.SeedSequence`), so the same arguments give
    identical files.

    Raises:
        FileExistsError: ``out_dir`` already holds a dataset and ``overwrite`` is False.
    """
    images_dir, masks_dir, datalist_path = out_dir / "images", out_dir / "masks", out_dir / "datalist.json"
    if check_output_paths([datalist_path, images_dir, masks_dir], overwrite):
        datalist_path.unlink(missing_ok=True)
        for folder in (images_dir, masks_dir):
            remove_owned_files(folder, [f"case_*{suffix}"])
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)

    label_seq, case_seq = np.random.SeedSequence(seed).spawn(2)
    label_rng = np.random.default_rng(label_seq)
    labels = np.concatenate([_split_labels(label_rng, counts[k], positive_fraction) for k in DATALIST_SPLITS])
    case_rngs = [np.random.default_rng(s) for s in case_seq.spawn(len(labels))]

    splits: dict[str, list[dict]] = {key: [] for key in DATALIST_SPLITS}
    keys = [key for key in DATALIST_SPLITS for _ in range(counts[key])]
    for index in tqdm(range(len(labels)), desc=desc, unit="case", disable=not progress):
        label = int(labels[index])
        image, mask = generate(case_rngs[index], bool(label))
        name = f"case_{index:04d}{suffix}"
        save(image, mask, images_dir / name, masks_dir / name)
        splits[keys[index]].append({"image": f"images/{name}", "label": label, "mask": f"masks/{name}"})
    return datalist_path, splits
