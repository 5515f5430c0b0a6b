# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Convert a MedMNIST 3D ``.npz`` file to NIfTI volumes and a decathlon-style datalist.

MedMNIST 3D files (``organmnist3d``, ``nodulemnist3d``, ``adrenalmnist3d``, ``fracturemnist3d``,
``vesselmnist3d``, ``synapsemnist3d``) hold six arrays: ``train_images``, ``val_images``,
``test_images`` of shape ``(N, S, S, S)`` uint8 (``S`` = 28 or 64), and ``train_labels``,
``val_labels``, ``test_labels`` of shape ``(N, 1)``. The official split is kept: ``train`` becomes
the datalist's ``"training"`` list, ``val`` its ``"validation"`` and ``test`` its ``"test"`` list
(for AdrenalMNIST3D this split is patient-level).

Axis convention: a MedMNIST volume ``v`` is indexed ``v[z, y, x]``. It is written transposed to
``[y, x, z]`` (``v.transpose(1, 2, 0)``), so that with the bundle's ``slice_axis = 2`` slice ``k``
is the axial image ``v[k]``. Intensities are written as float32 ``v / 255`` in ``[0, 1]``, with a
1 mm identity affine.

Getting the data (hint; this package never downloads anything at run time): on a machine with
internet access, ``pip install medmnist`` (v3) and run, for example::

    import medmnist
    medmnist.AdrenalMNIST3D(split="train", download=True, size=64, root="/path/to/medmnist")

which stores ``adrenalmnist3d_64.npz`` in ``root`` (``size=28``, the default, stores
``adrenalmnist3d.npz``); one file holds all three splits. The classes are named after the files
(``OrganMNIST3D``, ``NoduleMNIST3D``, ...); check ``medmnist.INFO`` for the exact names and labels.
Then::

    python scripts/medmnist_to_nifti.py --npz /path/to/medmnist/adrenalmnist3d_64.npz --out data/adrenal64
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from bundle.data.datalist_writer import check_output_paths, normalize_label_names, remove_owned_files, write_datalist
from bundle.data.nifti_io import save_nifti

__all__ = ["KNOWN_LABEL_NAMES", "MEDMNIST_SPLITS", "convert_medmnist3d", "load_medmnist3d"]

#: MedMNIST split prefix -> datalist key.
MEDMNIST_SPLITS: dict[str, str] = {"train": "training", "val": "validation", "test": "test"}

#: Class names used when ``label_names`` is not given, keyed by the file's dataset flag (the file
#: name up to ``.npz`` or ``_<size>.npz``). Other datasets get ``"class_<k>"``.
KNOWN_LABEL_NAMES: dict[str, dict[str, str]] = {
    "adrenalmnist3d": {"0": "normal", "1": "hyperplasia"},
}


def _dataset_flag(npz_path: Path) -> str:
    stem = npz_path.name[: -len(".npz")] if npz_path.name.endswith(".npz") else npz_path.stem
    head, _, tail = stem.rpartition("_")
    return head if head and tail.isdigit() else stem


def load_medmnist3d(npz_path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read and validate a MedMNIST 3D ``.npz`` file.

    Args:
        npz_path: path of the ``.npz`` file.

    Returns:
        ``{"train": (images, labels), "val": ..., "test": ...}`` with images ``(N, S1, S2, S3)``
        uint8 and labels ``(N,)`` int64.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: when the file is not a readable ``.npz``, a key is missing (the message lists the
            keys found), images are not ``(N, S1, S2, S3)`` uint8, labels are not ``(N, 1)``
            (multi-label and multi-output files are not supported), the counts of images and labels
            differ, or a label is negative or not an integer.
    """
    npz_path = Path(npz_path)
    if not npz_path.is_file():
        raise FileNotFoundError(f"MedMNIST file {npz_path} does not exist.")
    try:
        npz = np.load(npz_path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{npz_path}: cannot be read as a .npz file ({err}).") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{npz_path}: expected a .npz archive of named arrays, got a single {type(npz).__name__}.")
    with npz:
        expected = [f"{s}_{kind}" for s in MEDMNIST_SPLITS for kind in ("images", "labels")]
        missing = [k for k in expected if k not in npz.files]
        if missing:
            raise ValueError(
                f"{npz_path}: missing keys {missing}; found {sorted(npz.files)}. A MedMNIST 3D file needs {expected}."
            )
        out = {}
        for split in MEDMNIST_SPLITS:
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"]
            if images.ndim != 4:
                raise ValueError(
                    f"{npz_path}: {split}_images must be (N, S, S, S) single-channel volumes, got shape "
                    f"{images.shape}."
                )
            if images.dtype != np.uint8:
                raise ValueError(f"{npz_path}: {split}_images must be uint8, got {images.dtype}.")
            if labels.ndim != 2 or labels.shape[1] != 1:
                raise ValueError(
                    f"{npz_path}: {split}_labels must have shape (N, 1) (single-label classification), got "
                    f"{labels.shape}; multi-label / multi-output files are not supported."
                )
            if labels.shape[0] != images.shape[0]:
                raise ValueError(
                    f"{npz_path}: {split}_images has {images.shape[0]} volumes but {split}_labels has "
                    f"{labels.shape[0]} labels."
                )
            flat = labels[:, 0]
            if flat.size and (not np.all(np.equal(np.mod(flat, 1), 0)) or flat.min() < 0):
                raise ValueError(f"{npz_path}: {split}_labels must be non-negative integers.")
            out[split] = (images, flat.astype(np.int64))
    return out


def convert_medmnist3d(
    npz_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
    label_names: Mapping[Any, str] | None = None,
) -> Path:
    """Write a MedMNIST 3D ``.npz`` as NIfTI volumes plus ``out_dir/datalist.json``.

    Layout under ``out_dir``::

        datalist.json                {"training": [{"image": "images/train_0000.nii.gz", "label": 0,
                                                    "medmnist_index": 0}, ...], "validation": ..., "test": ...}
        images/<split>_XXXX.nii.gz   [y, x, z] float32 in [0, 1] (uint8 / 255), 1 mm identity affine

    ``<split>`` is ``train``/``val``/``test`` and ``XXXX`` the volume's index in that MedMNIST array
    (also stored as ``"medmnist_index"``). See the module docstring for the axis convention.

    Args:
        npz_path: the MedMNIST 3D ``.npz`` file.
        out_dir: output folder (created if needed).
        overwrite: replace an existing conversion in ``out_dir`` (its ``datalist.json`` and
            ``images/{train,val,test}_*.nii.gz``); otherwise refuse when any exists.
        progress: show a progress bar.
        label_names: class index -> name, e.g. ``{"0": "normal", "1": "hyperplasia"}``; it fixes
            ``num_classes = len(label_names)``. Default: known names for AdrenalMNIST3D, else
            ``"class_<k>"`` with ``num_classes = max label + 1``.

    Returns:
        The path of ``out_dir/datalist.json``.

    Raises:
        FileNotFoundError: when ``npz_path`` does not exist.
        FileExistsError: when ``out_dir`` already holds a conversion and ``overwrite`` is ``False``.
        ValueError: for an invalid file (see :func:`load_medmnist3d`) or a label outside
            ``label_names``.
    """
    npz_path = Path(npz_path)
    data = load_medmnist3d(npz_path)
    max_label = max((int(labels.max()) for _, labels in data.values() if labels.size), default=0)
    flag = _dataset_flag(npz_path)
    if label_names is not None:
        names = normalize_label_names(label_names)
        if max_label >= len(names):
            raise ValueError(
                f"{npz_path}: label {max_label} occurs but label_names only covers 0..{len(names) - 1}."
            )
    elif flag in KNOWN_LABEL_NAMES and max_label < len(KNOWN_LABEL_NAMES[flag]):
        names = dict(KNOWN_LABEL_NAMES[flag])
    else:
        names = {str(k): f"class_{k}" for k in range(max_label + 1)}

    out_dir = Path(out_dir)
    images_dir, datalist_path = out_dir / "images", out_dir / "datalist.json"
    if check_output_paths([datalist_path, images_dir], overwrite):
        datalist_path.unlink(missing_ok=True)
        remove_owned_files(images_dir, [f"{s}_*.nii.gz" for s in MEDMNIST_SPLITS])
    images_dir.mkdir(parents=True, exist_ok=True)

    lists: dict[str, list[dict]] = {key: [] for key in MEDMNIST_SPLITS.values()}
    total = sum(len(labels) for _, labels in data.values())
    with tqdm(total=total, desc=f"{npz_path.name} -> NIfTI", unit="vol", disable=not progress) as bar:
        for split, key in MEDMNIST_SPLITS.items():
            images, labels = data[split]
            for i in range(len(labels)):
                name = f"{split}_{i:04d}.nii.gz"
                volume = images[i].transpose(1, 2, 0).astype(np.float32) / np.float32(255.0)
                save_nifti(volume, images_dir / name)
                lists[key].append({"image": f"images/{name}", "label": int(labels[i]), "medmnist_index": i})
                bar.update(1)

    shape = list(data["train"][0].shape[1:])
    return write_datalist(
        datalist_path,
        name=flag,
        description=(
            f"{flag} converted from {npz_path.name}: volumes {shape} (z, y, x) stored as [y, x, z] float32 "
            "uint8/255 in [0, 1], so slice_axis = 2 gives axial slices. Official MedMNIST train/val/test split."
        ),
        labels=names,
        training=lists["training"],
        validation=lists["validation"],
        test=lists["test"],
        extra={"tensorImageSize": "3D", "slice_axis": 2, "source": str(npz_path.name)},
        overwrite=True,
    )
