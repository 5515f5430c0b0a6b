# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Write tiny OCT files in the vendors' layouts, for the tests of :mod:`transforms.oct_formats`.

Each writer takes ``volume`` as ``[rows, columns, n_bscans]`` (depth, A-scans, B-scans) and writes the bytes the
format's published layout describes (Heidelberg VOL: the HSF-OCT header of the Heyex export specification;
Topcon: uocte's "Topcon File Format"; Zeiss Cirrus: raw uint8 with the depth fastest; DICOM: explicit VR little
endian, PS3.5). Only the fields the readers use are filled.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "vol_display_inverse",
    "write_vol",
    "write_topcon",
    "write_cirrus",
    "write_e2e",
    "write_ophthalmic_dicom",
]


def vol_display_inverse(u8: np.ndarray) -> np.ndarray:
    """Stored VOL reflectivities whose Heyex display values (``(log(x + 2.44e-4) + 8.3) / 8.285``) are ``u8 / 255``."""
    return (np.exp(u8.astype(np.float64) / 255.0 * 8.285 - 8.3) - 2.44e-4).astype(np.float32)


def write_vol(path: Path, raw: np.ndarray, spacing=(0.0039, 0.0113, 0.12), laterality: str = "OD") -> Path:
    """A Heidelberg ``.vol`` of float32 reflectivities ``raw`` ``[rows, columns, n]``; spacing (depth, lateral, B-scan)
    in mm."""
    size_y, size_x, n = raw.shape
    slo = (4, 3)  # SLO localizer, height x width
    header = bytearray(2048)
    struct.pack_into("<12s3I3d2I2dId4s", header, 0, b"HSF-OCT-103", size_x, n, size_y, spacing[1], spacing[2],
                     spacing[0], slo[1], slo[0], 0.01, 0.01, 30, 0.0, laterality.encode())
    struct.pack_into("<iI", header, 96, 3, 256)  # scan pattern 3 (volume), B-scan header size
    out = bytes(header) + bytes(slo[0] * slo[1])
    for k in range(n):
        bscan_header = bytearray(256)
        struct.pack_into("<12sI4d2IfI", bscan_header, 0, b"HSF-BS-103", 256, 0.0, k * spacing[2], 6.0,
                         k * spacing[2], 0, 256, 0.9, 0)
        out += bytes(bscan_header) + np.ascontiguousarray(raw[:, :, k], dtype="<f4").tobytes()
    path.write_bytes(out)
    return path


def _chunk(name: bytes, data: bytes) -> bytes:
    return bytes([len(name)]) + name + struct.pack("<I", len(data)) + data


def write_topcon(path: Path, volume: np.ndarray, size_mm=(6.0, 6.0, 2.3), laterality: int = 1) -> Path:
    """A Topcon ``.fds`` (uint16 ``@IMG_SCAN_03``) or ``.fda`` (uint8 JPEG 2000 ``@IMG_JPEG``) file.

    Args:
        volume: ``[height, width, n]``.
        size_mm: ``(x_mm, y_mm, z_um)`` of ``@PARAM_SCAN_04``: scan width, scan height, depth resolution in um.
        laterality: 0 right eye, 1 left eye (``@CAPTURE_INFO_02``).
    """
    height, width, n = volume.shape
    fda = path.suffix.lower() == ".fda"
    capture = struct.pack("<BBI100s6H", laterality, 0, 7, b"synthetic", 2021, 3, 4, 10, 20, 30)
    params = struct.pack("<3I5d2B", 0, 0, 0, size_mm[0], size_mm[1], size_mm[2], 0.0, 0.0, 0, 0)
    if fda:
        body = struct.pack("<B6I", 2, 0, 0, width, height, n, 0)
        for k in range(n):
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(volume[:, :, k], dtype=np.uint8)).save(
                buffer, format="JPEG2000", irreversible=False)
            body += struct.pack("<i", len(buffer.getvalue())) + buffer.getvalue()
        scan = _chunk(b"@IMG_JPEG", body)
    else:
        voxels = np.ascontiguousarray(np.transpose(volume, (2, 0, 1)), dtype="<u2")  # [n, height, width]
        scan = _chunk(b"@IMG_SCAN_03", struct.pack("<B4IBI", 2, width, height, 16, n, 0, voxels.nbytes)
                      + voxels.tobytes())
    head = b"FOCT" + (b"FDA" if fda else b"FDS") + struct.pack("<2I", 8, 0)
    path.write_bytes(head + _chunk(b"@CAPTURE_INFO_02", capture) + _chunk(b"@PARAM_SCAN_04", params) + scan + b"\0")
    return path


def write_cirrus(path: Path, volume: np.ndarray) -> Path:
    """A Zeiss Cirrus ``.img``: uint8 ``[rows, columns, n]`` with the depth fastest, then A-scans, then B-scans."""
    path.write_bytes(np.asarray(volume, dtype=np.uint8).tobytes(order="F"))
    return path


def _element(group: int, element: int, vr: str, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "OW") else b" "
    if vr in ("OB", "OW", "SQ"):
        return struct.pack("<HH2sHI", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr.encode(), len(value)) + value


def _item(content: bytes) -> bytes:
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content


OPT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.4"


def write_ophthalmic_dicom(path: Path, volume: np.ndarray, spacing=(0.0039, 0.0117, 0.047),
                           laterality: str = "R", frames: int | None = None) -> Path:
    """A multi-frame Ophthalmic Tomography Image: ``volume`` ``[rows, columns, n]`` (uint8 or uint16) as n frames.

    The spacing (depth, lateral, B-scan) goes into the shared functional groups' Pixel Measures (PixelSpacing
    rows\\columns, SliceThickness); ``frames`` overrides NumberOfFrames (a header that lies about the pixel data).
    """
    rows, cols, n = volume.shape
    bits = volume.dtype.itemsize * 8
    meta = (_element(2, 1, "OB", b"\0\1") + _element(2, 2, "UI", OPT_SOP_CLASS.encode())
            + _element(2, 3, "UI", b"2.25.1") + _element(2, 0x10, "UI", b"1.2.840.10008.1.2.1")
            + _element(2, 0x12, "UI", b"2.25.2"))
    meta = _element(2, 0, "UL", struct.pack("<I", len(meta))) + meta
    measures = _item(_element(0x18, 0x50, "DS", str(spacing[2]).encode())
                     + _element(0x28, 0x30, "DS", f"{spacing[0]}\\{spacing[1]}".encode()))
    shared = _item(_element(0x28, 0x9110, "SQ", measures))
    pixels = np.ascontiguousarray(np.moveaxis(volume, -1, 0), dtype=volume.dtype.newbyteorder("<"))
    dataset = (
        _element(8, 0x16, "UI", OPT_SOP_CLASS.encode()) + _element(8, 0x18, "UI", b"2.25.1")
        + _element(8, 0x60, "CS", b"OPT") + _element(0x20, 0xD, "UI", b"2.25.3") + _element(0x20, 0xE, "UI", b"2.25.4")
        + _element(0x20, 0x62, "CS", laterality.encode()) + _element(0x28, 2, "US", struct.pack("<H", 1))
        + _element(0x28, 4, "CS", b"MONOCHROME2") + _element(0x28, 8, "IS", str(frames or n).encode())
        + _element(0x28, 0x10, "US", struct.pack("<H", rows)) + _element(0x28, 0x11, "US", struct.pack("<H", cols))
        + _element(0x28, 0x100, "US", struct.pack("<H", bits)) + _element(0x28, 0x101, "US", struct.pack("<H", bits))
        + _element(0x28, 0x102, "US", struct.pack("<H", bits - 1)) + _element(0x28, 0x103, "US", struct.pack("<H", 0))
        + _element(0x5200, 0x9229, "SQ", shared) + _element(0x7FE0, 0x10, "OB" if bits == 8 else "OW", pixels.tobytes())
    )
    path.write_bytes(b"\0" * 128 + b"DICM" + meta + dataset)
    return path


def _e2e_container(ids: tuple[int, int, int, int], kind: int, item: bytes, ind: int = 0) -> bytes:
    patient, study, series, slice_id = ids
    return struct.pack("<12s5I4iHHII", b"MDbData", 0, 0, 0, len(item), 0, patient, study, series, slice_id, ind, 0,
                       kind, 0) + item


def write_e2e(path: Path, scans: list[tuple[np.ndarray, str]], scale_y: float = 0.0039, angle_deg: float = 20.0,
              height_deg: float = 15.0) -> Path:
    """A Heidelberg ``.e2e`` holding one series per ``(codes, laterality)`` of ``scans`` (series ids 1, 2, ...).

    ``codes`` ``[rows, columns, n]`` are the stored uint16 "ufloat16" values (6-bit exponent, 10-bit mantissa); each
    B-scan gets a B-scan header (type 10004: size, scan angles ``angle_deg`` wide and ``height_deg`` high, depth
    spacing ``scale_y`` mm, its index) and an image (type 1073741824); each series a laterality record (type 11).
    """
    items = []  # (ids, type, item bytes, ind)
    for series, (codes, laterality) in enumerate(scans, start=1):
        rows, cols, n = codes.shape
        items.append(((1, 1, series, -1), 11, bytes(14) + (b"R" if laterality == "OD" else b"L") + bytes(12), 0))
        for k in range(n):
            center_y = height_deg * (k / (n - 1) if n > 1 else 0.0)
            meta = struct.pack("<3I4fIfffI2fI4I2fI", 0, rows, cols, 0.0, center_y, angle_deg, center_y, 0, 0.0, scale_y,
                               0.0, 0, 0.0, 0.0, 0, cols, n, k, 3, angle_deg / 2, center_y, 0)
            meta += struct.pack("<Q", 132000000000000000 + k)
            meta += bytes(428 - len(meta))  # the 428-byte B-scan header; the rest is not read
            image = struct.pack("<5I", rows * cols * 2, 35652097, rows * cols, rows, cols)
            image += np.ascontiguousarray(codes[:, :, k], dtype="<u2").tobytes()
            items.append(((1, 1, series, 2 * k), 10004, meta, 0))
            items.append(((1, 1, series, 2 * k), 1073741824, image, 1))
    version = struct.pack("<12sI20s", b"CMDb", 100, bytes(20))
    start = 36 + 52 + 52 + 44 * len(items)
    folders, data = b"", b""
    for ids, kind, item, ind in items:
        folders += struct.pack("<4I4iHHII", start + len(data), start + len(data), len(item), 0, *ids, ind, 0, kind, 0)
        data += _e2e_container(ids, kind, item, ind)
    main = struct.pack("<12sI20s4I", b"MDbMDir", 100, bytes(20), len(items), 88, 0, 0)
    chunk = struct.pack("<12sI20s4I", b"MDbMDir", 100, bytes(20), len(items), 88, 0, 0)
    path.write_bytes(version + main + chunk + folders + data)
    return path
