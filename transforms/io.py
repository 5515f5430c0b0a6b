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
OCT files: ``.vol .e2e .fda .fds``, Zeiss       :mod:`transforms.oct_formats`       ``[1, H, W, D]``
``.img``, multi-frame ``.dcm``
==============================================  ==================================  ===============

OCT files give ``[1, H, W, D]`` with H = depth, W = A-scans and D = the B-scans (the bag's slice axis,
``slice_axis`` 2), an affine holding the voxel spacing in mm, and ``meta["laterality"]`` (``"OD"``, ``"OS"`` or
None), ``meta["oct_format"]`` and ``meta["oct_scan"]``; see :mod:`transforms.oct_formats` for the readers.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Hashable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ITKReader, MetaTensor, NibabelReader
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import ImageMetaKey, MetaKeys, TransformBackends
from PIL import Image

from .oct_formats import OCT_EXTENSIONS, check_cirrus_shape, oct_format, read_oct

__all__ = [
    "VOLUME_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "OCT_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "file_suffix",
    "natural_sort_key",
    "image_2d_header",
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
SUPPORTED_EXTENSIONS: tuple[str, ...] = (*VOLUME_EXTENSIONS, *IMAGE_EXTENSIONS, *OCT_EXTENSIONS)

# PIL modes with more than one value per pixel that are not plain grey/RGB/RGBA: converted on load.
_PIL_CONVERSIONS = {"1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "PA": "RGBA"}


def file_suffix(path: Path) -> str:
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


def _loaded_mode(img: Image.Image) -> str:
    """The PIL mode an image is converted to when read: palette images to RGB (RGBA when they carry
    transparency), the modes of ``_PIL_CONVERSIONS`` as listed there, others as they are."""
    if img.mode == "P":
        return "RGBA" if "transparency" in img.info else "RGB"
    return _PIL_CONVERSIONS.get(img.mode, img.mode)


def _open_2d(path: Path, read: Callable[[Image.Image], Any]) -> Any:
    """``read(img)`` of the single-frame 2D image file ``path`` opened with PIL.

    Raises:
        ValueError: naming the file: it cannot be decoded (also when ``read`` fails), or holds several frames
            (a multi-page TIFF).
    """
    fmt = IMAGE_EXTENSIONS[file_suffix(path)]
    try:
        with Image.open(path) as img:
            n_frames = getattr(img, "n_frames", 1)
            result = read(img) if n_frames == 1 else None
    except Exception as e:
        raise ValueError(f"{path}: cannot be read as {fmt} image: {e}") from e
    if n_frames > 1:
        raise ValueError(
            f"{path}: {fmt} file holds {n_frames} frames; only single-frame 2D images are supported "
            "(export the frames as a folder of slices or as a NIfTI volume)."
        )
    return result


def image_2d_header(path: str | PathLike) -> tuple[tuple[int, int], int]:
    """The shape ``(H, W)`` and the channel count ``C`` that :class:`LoadVolume` gives a 2D image file, from its
    header only (no pixel data is decoded).

    Raises:
        ValueError: naming the file: it cannot be decoded, or holds several frames.
    """
    path = Path(path)
    return _open_2d(path, lambda img: ((img.size[1], img.size[0]), Image.getmodebands(_loaded_mode(img))))


def _read_2d(path: Path) -> np.ndarray:
    """Read one 2D image file with PIL as a channel-first array ``[C, H, W]`` (H = rows, W = columns).

    Grey (8/16/32-bit integer or float) gives C = 1, RGB 3, RGBA 4, grey + alpha 2; palette images are
    expanded to RGB (RGBA when they carry transparency). Values are kept as stored (no rescaling).

    Raises:
        ValueError: the file cannot be decoded, or holds several frames (a multi-page TIFF).
    """

    def read(img: Image.Image) -> np.ndarray:
        img.load()
        mode = _loaded_mode(img)
        return np.array(img if mode == img.mode else img.convert(mode))

    arr = _open_2d(path, read)
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _image_files(folder: Path) -> list[Path]:
    """2D image files directly inside ``folder`` (hidden files ignored), in natural order."""
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and file_suffix(p) in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=lambda p: natural_sort_key(p.name))


#: Logger and warning with which MONAI's ``LoadImage`` says, on every construction where ``pydicom`` is installed
#: without NVIDIA's nvImageCodec, that its optional GPU DICOM decoder is unavailable.
_NVIMGCODEC_LOGGER = "monai.data.nvimgcodec_pydicom_plugin"
_NVIMGCODEC_WARNING = "NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register"


def _quiet_load_image() -> LoadImage:
    """MONAI's ``LoadImage`` (float32, channel first, image only), built without MONAI's two notes that the
    optional GPU DICOM decoder (nvImageCodec) is missing.

    ``pydicom`` comes with the ``[oct]`` extra, so without the notes' suppression every run on a machine without
    that decoder prints them. They concern no file this loader reads: DICOM series go to ``ITKReader`` and
    multi-frame OCT DICOM to ``pydicom`` directly. Errors of that logger still show.
    """
    codec_logger = logging.getLogger(_NVIMGCODEC_LOGGER)
    level = codec_logger.level
    codec_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NVIMGCODEC_WARNING)
            return LoadImage(image_only=True, dtype=np.float32, ensure_channel_first=True)
    finally:
        codec_logger.setLevel(level)


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
    - OCT files (:mod:`transforms.oct_formats`): Heidelberg ``.vol`` / ``.e2e``, Topcon ``.fda`` / ``.fds``,
      Zeiss Cirrus ``.img`` (when no ``.hdr`` lies beside it) and a multi-frame ophthalmic DICOM ``.dcm`` file:
      ``[1, H, W, D]`` with H = depth, W = A-scans, D = B-scans in acquisition order (the bag's slice axis), the
      affine ``diag(spacing, 1)`` in mm, ``meta["laterality"]`` (``"OD"``/``"OS"``/None), ``meta["oct_format"]``
      and ``meta["oct_scan"]``. A file holding several scans needs ``scan``.

    ``meta["filename_or_obj"]`` is the path. Every output is checked: it must hold voxels, have 2 or 3
    spatial dimensions, and no NaN/inf values; ``spatial_dims`` and ``num_channels`` add checks.

    Args:
        spatial_dims: 2 or 3: the spatial dimensions every input must have (a 2-D image in a 3-D dataset is
            an error, and the reverse); None (default): 2-D images and 3-D volumes are both accepted.
        num_channels: the channels the model takes (``in_channels``); when given, a volume file (NIfTI, NRRD,
            MetaImage) that stores a 4-D array ``[H, W, D, C]`` must have ``C`` 1 or ``num_channels`` (a
            4-D time series or vector image would otherwise be read as ``C`` channels and turned grey).
            2-D colour images and folders of colour slices keep their conversion by
            :class:`transforms.EnsureChannels`. None (default): not checked.
        cirrus_shape: ``(n_bscans, ascans, depth)`` of Zeiss Cirrus ``.img`` files whose size matches no known scan
            protocol (:data:`transforms.oct_formats.CIRRUS_PROTOCOLS`). None (default): from the protocol.

    Raises:
        FileNotFoundError: the path does not exist.
        OCTReaderMissing: an OCT file whose optional reader is not installed (``pip install -e .[oct]``).
        ValueError: unknown suffix (the message lists the supported ones), an empty folder, slices
            of different shapes in a folder, a file the reader cannot decode
            (``"<path>: cannot be read as <format>: <reader's error>"``, raised from the reader's
            error), an empty volume (``"<path>: empty image: no voxels ..."``), a wrong number of
            dimensions, a 4-D volume file whose last axis is not ``num_channels``, or NaN/inf values
            (``"<path>: contains <n> NaN/inf voxels"``). Every message starts with the path.

    Example::

        >>> img = LoadVolume()("scan.nii.gz")  # doctest: +SKIP
        >>> img.shape  # doctest: +SKIP
        torch.Size([1, 512, 496, 49])
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        spatial_dims: int | None = None,
        num_channels: int | None = None,
        cirrus_shape: tuple[int, int, int] | None = None,
    ) -> None:
        if spatial_dims is not None and (isinstance(spatial_dims, bool) or spatial_dims not in (2, 3)):
            raise ValueError(f"spatial_dims must be 2, 3 or None (both accepted), got {spatial_dims!r}")
        if num_channels is not None and (
            isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1
        ):
            raise ValueError(f"num_channels must be a positive integer or None, got {num_channels!r}")
        self.spatial_dims = spatial_dims
        self.num_channels = num_channels
        self.cirrus_shape = check_cirrus_shape(cirrus_shape)
        self._loader = _quiet_load_image()
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

    def __call__(self, path: str | PathLike, scan: int | None = None) -> MetaTensor:
        """
        Args:
            path: a file or a folder, see the class docstring.
            scan: the scan to read from an OCT file holding several (an ``.e2e``); None: the file must hold one.

        Returns:
            float32 ``MetaTensor``: ``[C, H, W, D]`` for volumes, ``[C, H, W]`` for 2D images.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        is_oct = oct_format(path) is not None  # never a folder
        if scan is not None and not is_oct:
            raise ValueError(f"{path}: a scan index ({scan!r}) applies only to OCT files holding several scans")
        if path.is_dir():
            img = self._load_folder(path)
        elif is_oct:
            img = self._load_oct(path, scan)
        else:
            suffix = file_suffix(path)
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
        self._check_shape(img, path)
        n_bad = int((~torch.isfinite(img)).sum())
        if n_bad:
            raise ValueError(f"{path}: contains {n_bad} NaN/inf voxels")
        img.meta[ImageMetaKey.FILENAME_OR_OBJ] = str(path)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spatial_dims={self.spatial_dims}, num_channels={self.num_channels})"

    def _load_oct(self, path: Path, scan: int | None) -> MetaTensor:
        """An OCT file as ``[1, H, W, D]`` (D = B-scans), its spacing in the affine (:mod:`transforms.oct_formats`)."""
        volume = read_oct(path, scan=scan, cirrus_shape=self.cirrus_shape)
        affine = torch.diag(torch.tensor([*volume.spacing, 1.0], dtype=torch.float64))
        meta = {
            ImageMetaKey.FILENAME_OR_OBJ: str(path),
            MetaKeys.SPATIAL_SHAPE: np.asarray(volume.array.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
            MetaKeys.ORIGINAL_AFFINE: affine.numpy().copy(),
            "laterality": volume.laterality,
            "oct_format": volume.oct_format,
            "oct_scan": volume.scan,
        }
        if volume.note:
            meta["oct_note"] = volume.note
        return MetaTensor(torch.from_numpy(volume.array[None]), affine=affine, meta=meta)

    def _check_shape(self, img: MetaTensor, path: Path) -> None:
        """Raise a ``ValueError`` naming ``path`` for an empty image or a wrong number of dimensions or channels."""
        stored = img.meta.get(MetaKeys.SPATIAL_SHAPE)
        stored = tuple(int(s) for s in np.asarray(stored).reshape(-1)) if stored is not None else tuple(img.shape[1:])
        channel_axis = img.meta.get(MetaKeys.ORIGINAL_CHANNEL_DIM)
        has_channel_axis = isinstance(channel_axis, (int, np.integer)) and not isinstance(channel_axis, bool)
        if img.numel() == 0:
            raise ValueError(f"{path}: empty image: no voxels (array shape {stored})")
        rank = img.ndim - 1
        if rank not in (2, 3):
            raise ValueError(
                f"{path}: {rank}-D array of shape {tuple(img.shape[1:])} (after the channel axis); expected a 2-D "
                "image [H, W] or a 3-D volume [H, W, D]"
            )
        if self.spatial_dims is not None and rank != self.spatial_dims:
            kind = "2-D image" if rank == 2 else "3-D volume"
            raise ValueError(
                f"{path}: {kind} of shape {tuple(img.shape[1:])} where {self.spatial_dims}-D inputs are expected "
                f"(spatial_dims {self.spatial_dims}; null accepts both)"
            )
        channels = int(img.shape[0])
        stored_4d = has_channel_axis and path.is_file() and file_suffix(path) in VOLUME_EXTENSIONS
        if self.num_channels is not None and stored_4d and channels not in (1, self.num_channels):
            raise ValueError(
                f"{path}: 4-D array {stored + (channels,)} read as a 3-D volume of {channels} channels, but the model "
                f"takes {self.num_channels} (in_channels); store one 3-D volume [H, W, D] per file, or set in_channels"
            )

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
        spatial_dims: see :py:class:`LoadVolume` (None: 2-D and 3-D accepted).
        num_channels: see :py:class:`LoadVolume` (None: not checked).
        cirrus_shape: see :py:class:`LoadVolume` (None: from the Zeiss Cirrus scan protocol).
        scan_key: the entry key holding the scan index of an OCT file with several scans (a datalist entry
            ``{"image": "x.e2e", "scan": 1}``, as ``scripts/build_datalist.py --split-scans`` writes); the key is
            consumed (removed from the output, so entries with and without it collate alike) and the index is kept
            in ``meta["oct_scan"]``. Default ``"scan"``.
    """

    backend = LoadVolume.backend

    def __init__(
        self,
        keys: KeysCollection,
        allow_missing_keys: bool = False,
        spatial_dims: int | None = None,
        num_channels: int | None = None,
        cirrus_shape: tuple[int, int, int] | None = None,
        scan_key: str = "scan",
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadVolume(spatial_dims=spatial_dims, num_channels=num_channels, cirrus_shape=cirrus_shape)
        self.scan_key = scan_key

    def __repr__(self) -> str:
        """``LoadVolumed(keys=('image',), ...)``: what MONAI's ``"applying transform ..."`` error shows."""
        loader = self.loader
        return (
            f"{type(self).__name__}(keys={self.keys}, spatial_dims={loader.spatial_dims}, "
            f"num_channels={loader.num_channels})"
        )

    def __call__(self, data: Mapping[Hashable, str | PathLike]) -> dict[Hashable, MetaTensor]:
        d = dict(data)
        scan = d.pop(self.scan_key, None)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], scan=scan if key == self.first_key(d) else None)
        return d
