# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Load a 3D volume or a 2D image from a path, whatever the format, as a channel-first ``MetaTensor``.

Supported inputs (dispatch on the path):

==============================================  ==================================  ===============
path                                            reader                              output
==============================================  ==================================  ===============
``.nii``, ``.nii.gz``                           MONAI ``NibabelReader``             ``[C, H, W, D]``
``.nrrd``, ``.mha``, ``.mhd``                   MONAI ``ITKReader``                 ``[C, H, W, D]``
``.png .jpg .jpeg .tif .tiff .bmp``             PIL                                 ``[C, H, W]``
folder holding 2D image files                   PIL, one file per slice             ``[C, H, W, D]``
any other folder                                MONAI ``ITKReader`` (DICOM series)  ``[C, H, W, D]``
==============================================  ==================================  ===============
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ITKReader, MetaTensor, NibabelReader
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import ImageMetaKey, MetaKeys, TransformBackends
from PIL import Image

__all__ = [
    "VOLUME_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "natural_sort_key",
    "LoadVolume",
    "LoadVolumed",
]

#: 3D formats read by MONAI's readers, with the name used in error messages.
VOLUME_EXTENSIONS: dict[str, str] = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}
#: 2D formats read by PIL, with the name used in error messages.
IMAGE_EXTENSIONS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
SUPPORTED_EXTENSIONS: tuple[str, ...] = (*VOLUME_EXTENSIONS, *IMAGE_EXTENSIONS)

# PIL modes with more than one value per pixel that are not plain grey/RGB/RGBA: converted on load.
_PIL_CONVERSIONS = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "PA": "RGBA"}


def _suffix(path: Path) -> str:
    """Lower-case suffix of ``path``; ``.nii.gz`` counts as one suffix."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def natural_sort_key(name: str) -> tuple:
    """Sort key that orders digit runs by value, so ``slice2`` comes before ``slice10``.

    Args:
        name: a file name.

    Returns:
        a key for ``sorted``: text parts compared case-insensitively, digit runs as integers, then the
        name itself to break ties (``a01`` vs ``a1``).

    Example::

        >>> sorted(["s10.png", "s2.png", "s1.png"], key=natural_sort_key)
        ['s1.png', 's2.png', 's10.png']
    """
    parts = tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))
    return parts, name


def _read_2d(path: Path) -> np.ndarray:
    """Read one 2D image file with PIL as a channel-first array ``[C, H, W]`` (H = rows, W = columns).

    Grey (8/16/32-bit integer or float) gives C = 1, RGB 3, RGBA 4, grey + alpha 2; palette images are
    expanded to RGB (RGBA when they carry transparency). Values are kept as stored (no rescaling).

    Raises:
        ValueError: the file cannot be decoded, or holds several frames (a multi-page TIFF).
    """
    fmt = IMAGE_EXTENSIONS[_suffix(path)]
    try:
        with Image.open(path) as img:
            n_frames = getattr(img, "n_frames", 1)
            img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode in _PIL_CONVERSIONS:
                img = img.convert(_PIL_CONVERSIONS[mode])
            arr = np.array(img)
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as {fmt} image: {e}") from e
    if n_frames > 1:
        raise ValueError(
            f"{path}: {fmt} file holds {n_frames} frames; only single-frame 2D images are supported "
            "(export the frames as a folder of slices or as a NIfTI volume)."
        )
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _image_files(folder: Path) -> list[Path]:
    """2D image files directly inside ``folder`` (hidden files ignored), in natural order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _suffix(p) in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


class LoadVolume(Transform):
    """Load a volume or a 2D image from a path as a float32, channel-first ``MetaTensor``.

    Dispatch on the path:

    - ``.nii`` / ``.nii.gz``: MONAI ``NibabelReader``; the array as stored, axes ``(i, j, k)``,
      output ``[C, H, W, D]`` with the file's affine.
    - ``.nrrd`` / ``.mha`` / ``.mhd``: MONAI ``ITKReader``; axes ``(x, y, z)`` as MONAI orders them,
      affine converted to RAS like every MONAI reader.
    - ``.png`` / ``.jpg`` / ``.jpeg`` / ``.tif`` / ``.tiff`` / ``.bmp``: a 2D image ``[C, H, W]`` with
      H = image rows and W = columns, i.e. ``out[0]`` looks like the picture (unlike MONAI's
      ``PILReader``, which swaps the axes). Grey, 16-bit grey and float grey give C = 1, RGB 3, RGBA 4.
      Values are kept as stored (0-255, 0-65535, ...), no rescaling.
    - a folder holding 2D image files of those suffixes: a volume from a folder of slices (OCT
      B-scans are often exported that way). Files are sorted in natural order (``slice2`` before
      ``slice10``), each is read as above, and they are stacked on the last axis: ``[C, H, W, D]``
      with an identity affine. Other files in the folder (and hidden files) are ignored.
    - any other folder: a DICOM series read by MONAI ``LoadImage`` with ``ITKReader`` (the first
      series found), ``[C, H, W, D]`` with the series' affine.

    ``meta["filename_or_obj"]`` is the path. Every output is checked for NaN/inf values.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: unknown suffix (the message lists the supported ones), an empty folder, slices
            of different shapes in a folder, a file the reader cannot decode
            (``"<path>: cannot be read as <format>: <reader's error>"``, raised from the reader's
            error), or NaN/inf values (``"<path>: contains <n> NaN/inf voxels"``).

    Example::

        >>> img = LoadVolume()("scan.nii.gz")  # doctest: +SKIP
        >>> img.shape  # doctest: +SKIP
        torch.Size([1, 512, 496, 49])
    """

    backend = [TransformBackends.TORCH]

    def __init__(self) -> None:
        self._loader = LoadImage(image_only=True, dtype=np.float32, ensure_channel_first=True)
        self._nibabel = NibabelReader()
        self._itk_reader: ITKReader | None = None  # made on first NRRD/MHA/DICOM use: NIfTI needs no itk

    @property
    def _itk(self) -> ITKReader:
        if self._itk_reader is None:
            from monai.utils import optional_import

            _, has_itk = optional_import("itk")
            if not has_itk:
                raise ImportError("reading NRRD, MHA and DICOM series needs the 'itk' package: pip install itk")
            self._itk_reader = ITKReader()
        return self._itk_reader

    def __call__(self, path: str | PathLike) -> MetaTensor:
        """
        Args:
            path: a file or a folder, see the class docstring.

        Returns:
            float32 ``MetaTensor``: ``[C, H, W, D]`` for volumes, ``[C, H, W]`` for 2D images.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        if path.is_dir():
            img = self._load_folder(path)
        else:
            suffix = _suffix(path)
            if suffix in VOLUME_EXTENSIONS:
                reader = self._nibabel if VOLUME_EXTENSIONS[suffix] == "NIfTI" else self._itk
                img = self._load_with_monai(path, reader, VOLUME_EXTENSIONS[suffix])
            elif suffix in IMAGE_EXTENSIONS:
                img = self._to_meta_tensor(_read_2d(path), path)
            else:
                raise ValueError(
                    f"{path}: unsupported file type '{suffix or path.name}'; supported suffixes are "
                    f"{', '.join(SUPPORTED_EXTENSIONS)}, a folder of 2D slices or a DICOM series folder."
                )
        n_bad = int((~torch.isfinite(img)).sum())
        if n_bad:
            raise ValueError(f"{path}: contains {n_bad} NaN/inf voxels")
        img.meta[ImageMetaKey.FILENAME_OR_OBJ] = str(path)
        return img

    def _load_with_monai(self, path: Path, reader: NibabelReader | ITKReader, fmt: str) -> MetaTensor:
        try:
            img = self._loader(path, reader=reader)
        except Exception as e:
            raise ValueError(f"{path}: cannot be read as {fmt}: {e}") from e
        return img

    def _load_folder(self, folder: Path) -> MetaTensor:
        if not any(folder.iterdir()):
            raise ValueError(f"{folder}: empty folder; expected 2D slice images or a DICOM series.")
        files = _image_files(folder)
        if not files:
            return self._load_with_monai(folder, self._itk, "DICOM series")
        slices = [_read_2d(files[0])]
        for f in files[1:]:
            arr = _read_2d(f)
            if arr.shape != slices[0].shape:
                raise ValueError(
                    f"{f}: slice shape {tuple(arr.shape)} (C, H, W) differs from {tuple(slices[0].shape)} of "
                    f"the first slice {files[0].name}; all slices in {folder} must have the same size and channels."
                )
            slices.append(arr)
        return self._to_meta_tensor(np.stack(slices, axis=-1), folder)

    @staticmethod
    def _to_meta_tensor(arr: np.ndarray, path: Path) -> MetaTensor:
        """Wrap a channel-first array read with PIL: float32, identity affine of the spatial rank."""
        spatial = arr.shape[1:]
        meta = {
            ImageMetaKey.FILENAME_OR_OBJ: str(path),
            MetaKeys.SPATIAL_SHAPE: np.asarray(spatial),
            MetaKeys.ORIGINAL_CHANNEL_DIM: 0,
        }
        affine = torch.eye(len(spatial) + 1, dtype=torch.float64)
        return MetaTensor(torch.from_numpy(arr.astype(np.float32)), affine=affine, meta=meta)


class LoadVolumed(MapTransform):
    """Dictionary-based version of :py:class:`LoadVolume`: replaces each path under ``keys`` by its image.

    Args:
        keys: keys of the paths to load (e.g. ``"image"``, ``"mask"``).
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = LoadVolume.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadVolume()

    def __call__(self, data: Mapping[Hashable, str | PathLike]) -> dict[Hashable, MetaTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
