# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Read OCT volumes from the vendors' files and from multi-frame ophthalmic DICOM (one job: file -> array).

Every reader returns an :class:`OCTVolume`: a float32 array ``[rows, columns, n_bscans]`` (rows = depth along
the A-scan, columns = A-scans of a B-scan, last axis = the B-scans in acquisition order), the voxel spacing in
mm along those three axes, the laterality (``"OD"``, ``"OS"`` or None) and the format's name.
:class:`transforms.LoadVolume` turns it into a ``[1, H, W, D]`` ``MetaTensor`` whose last axis (the bag's slice
axis, ``slice_axis`` 2) is the B-scan axis.

==========================  =========================================  ==============================================
format (suffix)             reader                                     values, spacing, laterality
==========================  =========================================  ==============================================
Heidelberg ``.vol``         eyepy ``HeVolReader`` (extra ``[oct]``)    eyepy's Heyex display transform of the stored
                                                                       float reflectivity (0-255); spacing and eye
                                                                       from the file header
Heidelberg ``.e2e``         eyepy ``HeE2eReader`` (extra ``[oct]``)    eyepy's E2E display transform (0-255); depth
                                                                       spacing from the B-scan header, lateral and
                                                                       B-scan spacing from the scan angles (eyepy's
                                                                       degree -> mm factor: approximate); eye per scan
Topcon ``.fds``             this module (chunk layout below)           uint16 as stored; spacing ``@PARAM_SCAN_04/02``
Topcon ``.fda``             this module, JPEG 2000 frames with Pillow  8-bit as stored; as ``.fds``
Zeiss Cirrus ``.img``       oct-converter ``IMG`` (extra ``[oct]``)    8-bit as stored; shape from the scan protocol
                                                                       (file size) or ``cirrus_shape``; eye from
                                                                       the file name (``_OD_`` / ``_OS_``)
ophthalmic DICOM ``.dcm``   pydicom (extra ``[oct]``)                  pixel values; spacing from the functional
                                                                       groups' Pixel Measures; Image Laterality
==========================  =========================================  ==============================================

Why these readers (``eyepy`` 0.21 and ``oct-converter`` 0.7 were read, and both install beside the bundle without
changing numpy, torch or monai):

- ``.vol`` / ``.e2e``: eyepy. oct-converter has no ``.vol`` reader, and its ``E2E`` reader skips chunks it cannot
  parse, stops at an empty image, and gives every scan of a file the first scan's date and spacing (with a fixed
  0.01 mm lateral spacing); eyepy indexes an ``.e2e`` file by patient, study and series, so each scan keeps its own
  laterality, B-scan headers and order.
- ``.fda`` / ``.fds``: read here. oct-converter 0.7's ``FDA`` and ``FDS`` readers call ``numpy.fromstring`` on
  binary data, which NumPy 2 removed: they fail on the bundle's NumPy before reading a byte (eyepy's Topcon import
  goes through the same reader). The layout is the one oct-converter documents (after uocte's "Topcon File
  Format"): ``"FOCT"``, the type (``FDA``/``FDS``), two uint32 versions, then chunks ``<uint8 name length><name>
  <uint32 size><data>``; the B-scans are in ``@IMG_SCAN_03`` (FDS: 22-byte header, uint16 ``[n, height, width]``,
  C order) or ``@IMG_JPEG`` (FDA: 25-byte header, then per B-scan an int32 size and a JPEG 2000
  image), the eye and date in ``@CAPTURE_INFO_02`` (or ``@CAPTURE_INFO``), the scan size in ``@PARAM_SCAN_04``
  (or ``@PARAM_SCAN_02``). No extra is needed.
- ``.img``: oct-converter's ``IMG`` (eyepy has no Cirrus reader). A Cirrus ``.img`` holds the voxels only; its
  shape comes from :data:`CIRRUS_PROTOCOLS` (file size -> scan protocol) or from ``cirrus_shape``, and the one
  used is logged. A ``.img`` with an Analyze/NIfTI ``.hdr`` beside it is not a Cirrus file.
- ``.dcm`` (one file holding all B-scans as frames, e.g. an "Ophthalmic Tomography Image",
  SOP class 1.2.840.10008.5.1.4.1.1.77.1.5.4): pydicom. The bundle's own DICOM readers (ITK and SimpleITK, through
  GDCM) refuse such objects when they carry no Plane Orientation, which ophthalmic tomography places by
  Ophthalmic Frame Location instead; pydicom reads the frames and the functional groups as stored. A folder of
  single-frame DICOM files stays a DICOM series read by ITK (:class:`transforms.LoadVolume`).

Files that hold several scans (an ``.e2e`` with both eyes or several visits) are refused unless a scan index is
given: the message lists the scans (:func:`list_scans`); ``scripts/build_datalist.py --split-scans`` writes one
datalist entry per scan (``{"image": ..., "scan": <index>}``). Corrupt and truncated files raise
``ValueError("<path>: cannot be read as <format>: ...")``; a missing optional reader raises
:class:`OCTReaderMissing` naming the file, the format and ``pip install -e .[oct]``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "OCT_EXTENSIONS",
    "OCT_INSTALL_HINT",
    "CIRRUS_PROTOCOLS",
    "OCTReaderMissing",
    "OCTVolume",
    "ScanInfo",
    "oct_format",
    "check_cirrus_shape",
    "cirrus_shape_for",
    "list_scans",
    "read_oct",
    "read_oct_header",
]

logger = logging.getLogger(__name__)

#: suffixes of the OCT files read here, with the name used in messages
OCT_EXTENSIONS: dict[str, str] = {
    ".vol": "Heidelberg VOL",
    ".e2e": "Heidelberg E2E",
    ".fda": "Topcon FDA",
    ".fds": "Topcon FDS",
    ".img": "Zeiss Cirrus IMG",
    ".dcm": "ophthalmic DICOM",
}
#: how to install the optional readers
OCT_INSTALL_HINT = "pip install -e .[oct]"
#: Zeiss Cirrus scan protocols: file size in bytes -> ((n_bscans, A-scans per B-scan, depth), protocol, cube in mm
#: (width, height, depth)); one uint8 per voxel
CIRRUS_PROTOCOLS: dict[int, tuple[tuple[int, int, int], str, tuple[float, float, float]]] = {
    128 * 512 * 1024: ((128, 512, 1024), "Macular Cube 512x128", (6.0, 6.0, 2.0)),
    200 * 200 * 1024: ((200, 200, 1024), "Macular Cube 200x200 / Optic Disc Cube 200x200", (6.0, 6.0, 2.0)),
}
# eyepy gives an E2E laterality as its ASCII code ("82" R, "76" L)
_LATERALITY = {"OD": "OD", "R": "OD", "RIGHT": "OD", "82": "OD", "OS": "OS", "L": "OS", "LEFT": "OS", "76": "OS"}
_EXTRA_PACKAGE = {".vol": "eyepy", ".e2e": "eyepy", ".img": "oct-converter", ".dcm": "pydicom"}


class OCTReaderMissing(ImportError):
    """The optional reader of an OCT format is not installed (``pip install -e .[oct]``)."""


@dataclasses.dataclass(frozen=True)
class ScanInfo:
    """One scan of an OCT file.

    Attributes:
        index: the scan's index in the file (what ``scan=`` selects).
        laterality: ``"OD"``, ``"OS"`` or None (not stored).
        shape: ``(rows, columns, n_bscans)``; () when unknown (a Cirrus file of no known protocol).
        date: acquisition date (ISO text) or None.
    """

    index: int
    laterality: str | None
    shape: tuple[int, ...]
    date: str | None = None

    def describe(self) -> str:
        """``"scan 1: OS, 496 x 512 x 49, 2020-01-02"``."""
        shape = " x ".join(str(s) for s in self.shape) or "shape unknown"
        return f"scan {self.index}: {self.laterality or 'eye not stored'}, {shape}" + (
            f", {self.date}" if self.date else ""
        )


@dataclasses.dataclass(frozen=True)
class OCTVolume:
    """An OCT volume as read from a file.

    Attributes:
        array: float32 ``[rows, columns, n_bscans]``: depth, A-scans, B-scans (in acquisition order).
        spacing: voxel spacing in mm along the three axes (1.0 where the file stores none).
        laterality: ``"OD"``, ``"OS"`` or None.
        oct_format: the format's name (:data:`OCT_EXTENSIONS`).
        scan: the scan's index in the file.
        note: how the shape or spacing was obtained when not read from the file (e.g. the Cirrus protocol).
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    laterality: str | None
    oct_format: str
    scan: int = 0
    note: str | None = None


def oct_format(path: str | os.PathLike) -> str | None:
    """The OCT format of a file (:data:`OCT_EXTENSIONS`), or None when the bundle reads it otherwise.

    ``.img`` is Zeiss Cirrus unless an Analyze/NIfTI header (``.hdr``) lies beside it; a folder is never an OCT
    file (a folder of ``.dcm`` files is a DICOM series).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OCT_EXTENSIONS or path.is_dir():
        return None
    if suffix == ".img" and any(path.with_suffix(s).exists() for s in (".hdr", ".HDR")):
        return None
    return OCT_EXTENSIONS[suffix]


def _laterality(value: Any) -> str | None:
    text = str(value or "").strip("\x00 ").upper()
    return _LATERALITY.get(text)


def _cannot(path: Path, fmt: str, error: BaseException | str) -> ValueError:
    return ValueError(f"{path}: cannot be read as {fmt}: {' '.join(str(error).split()) or type(error).__name__}")


def _missing(path: Path, fmt: str, package: str, error: ImportError) -> OCTReaderMissing:
    return OCTReaderMissing(
        f"{path}: reading {fmt} files needs the optional reader '{package}' ({error}); install the bundle's OCT "
        f"extra: {OCT_INSTALL_HINT}"
    )


def _select(path: Path, fmt: str, scans: Sequence[ScanInfo], scan: int | None) -> ScanInfo:
    """The selected scan; a file of several scans needs ``scan``, which must be one of them."""
    if scan is not None and (isinstance(scan, bool) or not isinstance(scan, (int, np.integer))):
        raise ValueError(f"{path}: scan must be an integer index, got {scan!r}")
    if not scans:
        raise _cannot(path, fmt, "the file holds no OCT scan")
    listing = "; ".join(s.describe() for s in scans)
    if scan is None:
        if len(scans) > 1:
            raise ValueError(
                f"{path}: {fmt} file holds {len(scans)} scans ({listing}); select one with a datalist entry "
                "{\"image\": ..., \"scan\": <index>}, or write one case per scan with scripts/build_datalist.py "
                "--split-scans"
            )
        return scans[0]
    for info in scans:
        if info.index == int(scan):
            return info
    raise ValueError(f"{path}: no scan {scan} in this {fmt} file; its scans: {listing}")


# ----------------------------------------------------------------------------------------------- Heidelberg VOL
_VOL_HEADER = struct.Struct("<12s3I3d")  # version, size_x, n_bscans, size_y, scale_x, distance, scale_y


def _vol_info(path: Path) -> ScanInfo:
    fmt = OCT_EXTENSIONS[".vol"]
    with open(path, "rb") as f:
        head = f.read(2048)
    if len(head) < 2048 or not head.startswith(b"HSF-"):
        raise _cannot(path, fmt, f"no HSF-OCT header ({len(head)} header bytes, starts {head[:8]!r})")
    _, size_x, n_bscans, size_y, *_ = _VOL_HEADER.unpack_from(head)
    lat = _laterality(head[84:88].split(b"\x00")[0].decode("ascii", "replace"))
    return ScanInfo(0, lat, (int(size_y), int(size_x), int(n_bscans)))


def _read_vol(path: Path) -> OCTVolume:
    fmt = OCT_EXTENSIONS[".vol"]
    _vol_info(path)
    try:
        from eyepy.core.utils import from_vol_intensity
        from eyepy.io.he import HeVolReader
    except ImportError as e:
        raise _missing(path, fmt, "eyepy", e) from e
    try:
        parsed = HeVolReader(path).parsed_file
        raw = np.stack([np.asarray(b.data, dtype=np.float32) for b in parsed.bscans], axis=0)
    except Exception as e:
        raise _cannot(path, fmt, e) from e
    display = from_vol_intensity(raw.copy())  # [n, rows, columns] uint8, as Heyex shows it
    array = np.ascontiguousarray(np.moveaxis(display, 0, -1), dtype=np.float32)
    spacing = (float(parsed.scale_y), float(parsed.scale_x), float(parsed.distance) or 1.0)
    return OCTVolume(array, spacing, _laterality(parsed.scan_position), fmt)


# ----------------------------------------------------------------------------------------------- Heidelberg E2E
def _e2e_series(path: Path, reader: Any) -> list[tuple[ScanInfo, Any]]:
    """``(info, series)`` of every series with B-scans, indexed 0.. in the file's order."""
    from eyepy.io.he.e2e_format import TypesEnum

    found = []
    for series in reader.series:
        slices = [s for s in series.slices.values() if TypesEnum.bscanmeta in s.folders]
        if not slices:
            continue  # a series without B-scans (e.g. a fundus photograph)
        metas = series.get_bscan_meta()
        try:
            lat = _laterality(series.laterality())
        except KeyError:
            lat = None
        acquired = metas[0].get("acquisitionTime") if metas else None
        date = str(acquired)[:10] if acquired else None  # eyepy gives ISO text
        shape = (int(metas[0]["size_y"]), int(metas[0]["size_x"]), len(metas))
        found.append((ScanInfo(len(found), lat, shape, date), series))
    return found


def _open_e2e(path: Path) -> Any:
    fmt = OCT_EXTENSIONS[".e2e"]
    try:
        from eyepy.io.he import HeE2eReader
    except ImportError as e:
        raise _missing(path, fmt, "eyepy", e) from e
    try:
        return HeE2eReader(path)
    except Exception as e:
        raise _cannot(path, fmt, e) from e


def _e2e_scans(path: Path) -> list[ScanInfo]:
    reader = _open_e2e(path)
    try:
        with reader:
            return [info for info, _ in _e2e_series(path, reader)]
    except (ValueError, OCTReaderMissing):
        raise
    except Exception as e:
        raise _cannot(path, OCT_EXTENSIONS[".e2e"], e) from e


def _read_e2e(path: Path, scan: int | None) -> OCTVolume:
    fmt = OCT_EXTENSIONS[".e2e"]
    reader = _open_e2e(path)
    from eyepy.core.utils import from_e2e_intensity
    from eyepy.io.he.e2e_format import TypesEnum

    try:
        with reader:
            found = _e2e_series(path, reader)
            info = _select(path, fmt, [i for i, _ in found], scan)
            series = found[info.index][1]
            metas = series.get_bscan_meta()
            expected = int(metas[0]["n_bscans"]) or len(metas)
            with_image = [s for s in series.slices.values() if TypesEnum.image in s.folders]
            if len(metas) != expected or len(with_image) != expected:
                raise _cannot(
                    path, fmt, f"scan {info.index} is incomplete (truncated file?): {len(metas)} B-scan headers and "
                    f"{len(with_image)} B-scan images where the headers announce {expected}"
                )
            rows, cols = info.shape[:2]
            with_meta = [s for s in series.slices.values() if TypesEnum.bscanmeta in s.folders]
            order = sorted(with_meta, key=lambda s: s.get_meta()["aktImage"])
            raw = np.stack([np.asarray(s.get_bscan(), dtype=np.float32).reshape(rows, cols) for s in order], axis=0)
            x_scale = series.get_x_scale_derivation()
    except (ValueError, OCTReaderMissing):
        raise
    except Exception as e:
        raise _cannot(path, fmt, e) from e
    display = from_e2e_intensity(raw.copy())
    array = np.ascontiguousarray(np.moveaxis(display, 0, -1), dtype=np.float32)
    um_per_deg = float(x_scale.get("constant_um_per_deg") or 0.0)
    lateral = float(x_scale.get("scaling_x_um_per_pixel") or 0.0) / 1000.0
    centers = [float(m["center_y"]) for m in metas]
    n = len(metas)
    between = (max(centers) - min(centers)) * um_per_deg / 1000.0 / (n - 1) if n > 1 else 0.0
    spacing = (float(metas[0]["scale_y"]) or 1.0, lateral or 1.0, between or lateral or 1.0)
    return OCTVolume(array, spacing, info.laterality, fmt, info.index,
                     note="lateral and B-scan spacing from the scan angles (approximate)")


# ------------------------------------------------------------------------------------------------------ Topcon
def _topcon_chunks(path: Path, fmt: str, data: bytes) -> dict[bytes, tuple[int, int]]:
    """Chunk name -> (offset of its data, size) of a Topcon file held in ``data``."""
    if len(data) < 15 or data[:4] != b"FOCT":
        raise _cannot(path, fmt, f"no FOCT header (starts {data[:8]!r})")
    chunks, pos = {}, 15
    while pos < len(data):
        length = data[pos]
        if length == 0:
            break
        name_end = pos + 1 + length
        if name_end + 4 > len(data):
            raise _cannot(path, fmt, f"truncated chunk header at byte {pos} (file of {len(data)} bytes)")
        name = data[pos + 1:name_end]
        (size,) = struct.unpack_from("<I", data, name_end)
        start = name_end + 4
        if start + size > len(data):
            raise _cannot(path, fmt, f"chunk {name.decode('ascii', 'replace')} of {size} bytes at byte {start} runs "
                                     f"past the end of the file ({len(data)} bytes): truncated")
        chunks[name] = (start, size)
        pos = start + size
    return chunks


def _topcon_meta(data: bytes, chunks: dict[bytes, tuple[int, int]]) -> tuple[str | None, str | None, tuple | None]:
    """(laterality, date, (x_mm, y_mm, z_um)) from the capture and scan-parameter chunks."""
    lat = date = None
    if b"@CAPTURE_INFO_02" in chunks or b"@CAPTURE_INFO" in chunks:
        v2 = b"@CAPTURE_INFO_02" in chunks
        start, _ = chunks[b"@CAPTURE_INFO_02" if v2 else b"@CAPTURE_INFO"]
        lat = {0: "OD", 1: "OS"}.get(data[start])
        y, mo, d = struct.unpack_from("<3H", data, start + (106 if v2 else 1))
        date = f"{y:04d}-{mo:02d}-{d:02d}" if y else None
    size = None
    if b"@PARAM_SCAN_04" in chunks:
        size = struct.unpack_from("<3d", data, chunks[b"@PARAM_SCAN_04"][0] + 12)
    elif b"@PARAM_SCAN_02" in chunks:
        size = struct.unpack_from("<3d", data, chunks[b"@PARAM_SCAN_02"][0] + 21)
    return lat, date, size


def _topcon(path: Path, header_only: bool = False) -> tuple[ScanInfo, OCTVolume | None]:
    fmt = OCT_EXTENSIONS[path.suffix.lower()]
    data = path.read_bytes()
    chunks = _topcon_chunks(path, fmt, data)
    lat, date, size = _topcon_meta(data, chunks)
    if b"@IMG_SCAN_03" in chunks:
        start, chunk_size = chunks[b"@IMG_SCAN_03"]
        _, width, height, _, n = struct.unpack_from("<B4I", data, start)
        body = start + 22
    elif b"@IMG_JPEG" in chunks:
        start, chunk_size = chunks[b"@IMG_JPEG"]
        _, _, _, width, height, n = struct.unpack_from("<B5I", data, start)
        body = start + 25
    else:
        names = ", ".join(k.decode("ascii", "replace") for k in chunks) or "none"
        raise _cannot(path, fmt, f"no OCT B-scan chunk (@IMG_SCAN_03 or @IMG_JPEG); chunks found: {names}")
    info = ScanInfo(0, lat, (int(height), int(width), int(n)), date)
    if header_only:
        return info, None
    end = start + chunk_size
    if b"@IMG_SCAN_03" in chunks:
        count = width * height * n
        if body + 2 * count > end:
            raise _cannot(path, fmt, f"@IMG_SCAN_03 holds {(end - body) // 2} values for {n} B-scans of "
                                     f"{height} x {width}: truncated")
        voxels = np.frombuffer(data, dtype="<u2", count=count, offset=body).reshape(n, height, width)
        array = np.transpose(voxels, (1, 2, 0))  # [rows (depth), columns, n]
    else:
        from io import BytesIO

        from PIL import Image

        frames, pos = [], body
        for i in range(n):
            if pos + 4 > end:
                raise _cannot(path, fmt, f"@IMG_JPEG ends after {i} of {n} B-scans: truncated")
            (nbytes,) = struct.unpack_from("<i", data, pos)
            if nbytes <= 0 or pos + 4 + nbytes > end:
                raise _cannot(path, fmt, f"B-scan {i} of {nbytes} bytes runs past the @IMG_JPEG chunk: truncated")
            try:
                with Image.open(BytesIO(data[pos + 4:pos + 4 + nbytes])) as img:
                    frame = np.asarray(img)
            except Exception as e:
                raise _cannot(path, fmt, f"B-scan {i}: {e}") from e
            if frame.shape != (height, width):
                raise _cannot(path, fmt, f"B-scan {i} is {frame.shape}, the header says {(height, width)}")
            frames.append(frame)
            pos += 4 + nbytes
        array = np.stack(frames, axis=-1)
    if size is not None and min(size) > 0:
        spacing = (size[2] / 1000.0, size[0] / width, size[1] / n)
    else:
        spacing = (1.0, 1.0, 1.0)
    volume = OCTVolume(np.ascontiguousarray(array, dtype=np.float32), spacing, lat, fmt,
                       note=None if size is not None else "no @PARAM_SCAN chunk: spacing 1")
    return info, volume


# ------------------------------------------------------------------------------------------------- Zeiss Cirrus
def check_cirrus_shape(cirrus_shape: Sequence[int] | None) -> tuple[int, int, int] | None:
    """``cirrus_shape`` as a tuple ``(n_bscans, ascans, depth)`` (None stays None).

    Raises:
        ValueError: not three positive integers.
    """
    if cirrus_shape is None:
        return None
    if len(cirrus_shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in cirrus_shape):
        raise ValueError(f"cirrus_shape must be (n_bscans, ascans, depth), three positive integers, got "
                         f"{cirrus_shape!r}")
    return tuple(cirrus_shape)


def cirrus_shape_for(path: str | os.PathLike, cirrus_shape: Sequence[int] | None = None) -> tuple[tuple, str]:
    """The shape ``(n_bscans, ascans, depth)`` of a Cirrus ``.img`` and where it comes from.

    Args:
        path: the ``.img`` file.
        cirrus_shape: ``(n_bscans, ascans, depth)`` given by the user; None: from :data:`CIRRUS_PROTOCOLS` by
            the file size.

    Raises:
        ValueError: naming the file and its size: no protocol of that size and no ``cirrus_shape``, or a
            ``cirrus_shape`` whose voxel count is not the file size; a ``cirrus_shape`` that is not three positive
            integers (:func:`check_cirrus_shape`).
    """
    path = Path(path)
    fmt = OCT_EXTENSIONS[".img"]
    nbytes = path.stat().st_size
    shape = check_cirrus_shape(cirrus_shape)
    if shape is not None:
        if int(np.prod(shape)) != nbytes:
            raise ValueError(f"{path}: cannot be read as {fmt}: {nbytes} bytes, but cirrus_shape {shape} "
                             f"needs {int(np.prod(shape))}")
        return shape, f"cirrus_shape {shape}"
    if nbytes not in CIRRUS_PROTOCOLS:
        known = "; ".join(f"{name} {shape} = {size} bytes" for size, (shape, name, _) in CIRRUS_PROTOCOLS.items())
        raise ValueError(
            f"{path}: cannot be read as {fmt}: {nbytes} bytes match no known Cirrus scan protocol ({known}); give "
            "the shape as cirrus_shape (n_bscans, ascans, depth) (LoadVolumed's cirrus_shape)"
        )
    shape, name, _ = CIRRUS_PROTOCOLS[nbytes]
    return shape, f"{name} (file size {nbytes} bytes)"


def _cirrus_laterality(path: Path) -> str | None:
    parts = path.stem.upper().replace("-", "_").split("_")
    found = {p for p in parts if p in ("OD", "OS")}
    return found.pop() if len(found) == 1 else None


def _read_img(path: Path, cirrus_shape: Sequence[int] | None) -> OCTVolume:
    fmt = OCT_EXTENSIONS[".img"]
    (n, ascans, depth), source = cirrus_shape_for(path, cirrus_shape)
    try:
        from oct_converter.readers import IMG
    except ImportError as e:
        raise _missing(path, fmt, "oct-converter", e) from e
    try:
        scan = IMG(path).read_oct_volume(rows=depth, cols=ascans)
        array = np.stack([np.asarray(b) for b in scan.volume], axis=-1)
    except Exception as e:
        raise _cannot(path, fmt, e) from e
    if array.shape != (depth, ascans, n):
        raise _cannot(path, fmt, f"read {array.shape}, expected {(depth, ascans, n)} from {source}")
    protocol = CIRRUS_PROTOCOLS.get(path.stat().st_size)
    if cirrus_shape is None and protocol is not None:
        width, height, deep = protocol[2]
        spacing = (deep / depth, width / ascans, height / n)
    else:
        spacing = (1.0, 1.0, 1.0)
    logger.info(f"{path}: Zeiss Cirrus shape {n} B-scans x {ascans} A-scans x {depth} from {source}")
    return OCTVolume(np.ascontiguousarray(array, dtype=np.float32), spacing, _cirrus_laterality(path), fmt,
                     note=f"shape from {source}" + ("" if protocol and cirrus_shape is None else "; spacing 1"))


# -------------------------------------------------------------------------------------------- ophthalmic DICOM
def _dicom(path: Path, header_only: bool) -> tuple[ScanInfo, OCTVolume | None]:
    fmt = OCT_EXTENSIONS[".dcm"]
    try:
        import pydicom
    except ImportError as e:
        raise _missing(path, fmt, "pydicom", e) from e
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=header_only)
        frames, rows, cols = int(ds.get("NumberOfFrames", 1) or 1), int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1))
    except Exception as e:
        raise _cannot(path, fmt, e) from e
    if frames < 2:
        raise ValueError(
            f"{path}: a single-frame DICOM file ({ds.get('SOPClassUID', 'no SOP class')}); an OCT volume is one "
            "multi-frame file (Ophthalmic Tomography Image) or a folder holding the series' files"
        )
    if samples != 1:
        raise ValueError(f"{path}: {fmt} with {samples} samples per pixel; OCT B-scans are grey (1 sample)")
    lat = _laterality(ds.get("ImageLaterality") or ds.get("Laterality"))
    date = ds.get("AcquisitionDateTime") or ds.get("ContentDate") or ds.get("StudyDate")
    date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if date and len(str(date)) >= 8 else None
    info = ScanInfo(0, lat, (rows, cols, frames), date)
    if header_only:
        return info, None
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as e:
        raise _cannot(path, fmt, e) from e
    if pixels.shape != (frames, rows, cols):
        raise _cannot(path, fmt, f"pixel data of shape {pixels.shape}, the header says {(frames, rows, cols)}")
    measures = None
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(group)
        if items and "PixelMeasuresSequence" in items[0]:
            measures = items[0].PixelMeasuresSequence[0]
            break
    measures = measures if measures is not None else ds
    row_mm, col_mm = (float(v) for v in measures.get("PixelSpacing", [1.0, 1.0]))
    between = float(measures.get("SpacingBetweenSlices", 0) or measures.get("SliceThickness", 0) or 1.0)
    array = np.ascontiguousarray(np.moveaxis(pixels, 0, -1), dtype=np.float32)
    return info, OCTVolume(array, (row_mm, col_mm, between), lat, fmt)


# ---------------------------------------------------------------------------------------------------- dispatch
def _format_or_raise(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    fmt = oct_format(path)
    if fmt is None:
        raise ValueError(f"{path}: not an OCT file of a supported format ({', '.join(OCT_EXTENSIONS)})")
    return fmt


def list_scans(path: str | os.PathLike, cirrus_shape: Sequence[int] | None = None) -> list[ScanInfo]:
    """The scans of an OCT file (one for every format but ``.e2e``), without reading the voxels where cheap.

    Raises:
        FileNotFoundError: no such file.
        ValueError: ``"<path>: cannot be read as <format>: ..."`` for a corrupt or truncated file.
        OCTReaderMissing: the format's optional reader is not installed.
    """
    path = Path(path).expanduser()
    _format_or_raise(path)
    suffix = path.suffix.lower()
    if suffix == ".vol":
        return [_vol_info(path)]
    if suffix == ".e2e":
        return _e2e_scans(path)
    if suffix in (".fda", ".fds"):
        return [_topcon(path, header_only=True)[0]]
    if suffix == ".dcm":
        return [_dicom(path, header_only=True)[0]]
    (n, ascans, depth), _ = cirrus_shape_for(path, cirrus_shape)
    return [ScanInfo(0, _cirrus_laterality(path), (depth, ascans, n))]


def read_oct_header(
    path: str | os.PathLike, scan: int | None = None, cirrus_shape: Sequence[int] | None = None, strict: bool = True
) -> ScanInfo:
    """The selected scan's :class:`ScanInfo` (shape ``(rows, columns, n_bscans)``), for checks before loading.

    Args:
        path: an OCT file.
        scan: the scan of a file with several (None: the file must hold one).
        cirrus_shape: see :func:`cirrus_shape_for`.
        strict: False: a Cirrus file of no known protocol size gives shape () instead of an error (its shape may
            come from ``LoadVolumed``'s ``cirrus_shape``, which a header check does not know).

    Raises:
        as :func:`list_scans`; ValueError also for a file of several scans without ``scan``, or a ``scan`` that is
        not among them.
    """
    path = Path(path).expanduser()
    fmt = _format_or_raise(path)
    if not strict and path.suffix.lower() == ".img" and cirrus_shape is None:
        if path.stat().st_size not in CIRRUS_PROTOCOLS:
            return ScanInfo(0, _cirrus_laterality(path), ())
    return _select(path, fmt, list_scans(path, cirrus_shape), scan)


def read_oct(
    path: str | os.PathLike, scan: int | None = None, cirrus_shape: Sequence[int] | None = None
) -> OCTVolume:
    """Read one OCT scan.

    Args:
        path: a ``.vol``, ``.e2e``, ``.fda``, ``.fds``, Zeiss Cirrus ``.img`` or multi-frame ``.dcm`` file.
        scan: the scan of a file with several (an ``.e2e``): its index in :func:`list_scans`. None: the file must
            hold a single scan (never silently the first of several).
        cirrus_shape: ``(n_bscans, ascans, depth)`` of a Cirrus ``.img`` whose size matches no known protocol.

    Returns:
        the :class:`OCTVolume`: float32 ``[rows, columns, n_bscans]``, spacing in mm, laterality, format.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file: corrupt or truncated (``"<path>: cannot be read as <format>: ..."``), several
            scans without ``scan``, an unknown ``scan``, a Cirrus size of no known protocol without
            ``cirrus_shape``.
        OCTReaderMissing: the format's optional reader is not installed (the message names the install command).
    """
    path = Path(path).expanduser()
    fmt = _format_or_raise(path)
    suffix = path.suffix.lower()
    if suffix == ".e2e":
        return _read_e2e(path, scan)
    _select(path, fmt, [ScanInfo(0, None, ())], scan)  # single-scan formats: scan None or 0
    if suffix == ".vol":
        return _read_vol(path)
    if suffix in (".fda", ".fds"):
        return _topcon(path)[1]
    if suffix == ".dcm":
        return _dicom(path, header_only=False)[1]
    return _read_img(path, cirrus_shape)
