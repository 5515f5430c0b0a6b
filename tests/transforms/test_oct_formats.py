# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""OCT vendor files through transforms.oct_formats and LoadVolume: tiny files written in each format's layout."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from oct_testing import vol_display_inverse, write_cirrus, write_e2e, write_ophthalmic_dicom, write_topcon, write_vol

from transforms import LoadVolume, LoadVolumed, OCTReaderMissing
from transforms import oct_formats as of

HINT = "pip install -e .[oct]"
EXTRA = {"eyepy": ".vol .e2e", "oct_converter": ".img", "pydicom": ".dcm"}


def needs(module: str):
    """Skip when the optional reader ``module`` is missing, with the install command as the reason."""
    return pytest.mark.skipif(
        importlib.util.find_spec(module) is None,
        reason=f"{module} (reads {EXTRA[module]}) not installed: {HINT}",
    )


RNG = np.random.default_rng(7)
U8 = RNG.integers(1, 255, size=(6, 5, 4)).astype(np.uint8)  # [rows, columns, B-scans], distinct per B-scan
U16 = RNG.integers(0, 4000, size=(6, 5, 4)).astype(np.uint16)
E2E_CODES = np.stack([np.full((6, 5), e << 10, np.uint16) for e in (63, 62, 61)], axis=-1)  # 1.0, 0.5, 0.25
E2E_DISPLAY = np.round((np.log(np.array([1.0, 0.5, 0.25]) + 2.44e-4) + 8.3) / 8.285 * 255)  # Heyex display of them


def _vol(p):
    return write_vol(p / "a_OD.vol", vol_display_inverse(U8), spacing=(0.0039, 0.0113, 0.12), laterality="OD"), U8


def _fds(p):
    return write_topcon(p / "a.fds", U16, size_mm=(6.0, 7.0, 2.6), laterality=1), U16


def _fda(p):
    return write_topcon(p / "a.fda", U8, size_mm=(6.0, 7.0, 2.6), laterality=0), U8


def _dcm8(p):
    return write_ophthalmic_dicom(p / "a.dcm", U8, spacing=(0.0039, 0.0117, 0.047), laterality="L"), U8


def _dcm16(p):
    return write_ophthalmic_dicom(p / "b.dcm", U16, spacing=(0.002, 0.01, 0.1), laterality="R"), U16


def _img(p):
    return write_cirrus(p / "P1_Macular Cube 512x128_1-2-2020_OS_sn9.img", U8), U8


def _e2e(p):
    return write_e2e(p / "a.e2e", [(E2E_CODES, "OS")], scale_y=0.0039, angle_deg=20.0, height_deg=15.0), None


# (writer, format, expected spacing (depth, lateral, B-scan) in mm, laterality, LoadVolume options, marks)
ROUND_TRIP = [
    pytest.param(_vol, "Heidelberg VOL", (0.0039, 0.0113, 0.12), "OD", {}, marks=needs("eyepy"), id="vol"),
    pytest.param(_e2e, "Heidelberg E2E", (0.0039, 20 * 289.6 / 1000 / 5, 15 * 289.6 / 1000 / 2), "OS", {},
                 marks=needs("eyepy"), id="e2e"),
    pytest.param(_fds, "Topcon FDS", (0.0026, 6.0 / 5, 7.0 / 4), "OS", {}, id="fds"),
    pytest.param(_fda, "Topcon FDA", (0.0026, 6.0 / 5, 7.0 / 4), "OD", {}, id="fda"),
    pytest.param(_img, "Zeiss Cirrus IMG", (1.0, 1.0, 1.0), "OS", {"cirrus_shape": (4, 5, 6)},
                 marks=needs("oct_converter"), id="img"),
    pytest.param(_dcm8, "ophthalmic DICOM", (0.0039, 0.0117, 0.047), "OS", {}, marks=needs("pydicom"), id="dcm8"),
    pytest.param(_dcm16, "ophthalmic DICOM", (0.002, 0.01, 0.1), "OD", {}, marks=needs("pydicom"), id="dcm16"),
]


@pytest.mark.parametrize("writer, fmt, spacing, laterality, options", ROUND_TRIP)
def test_round_trip(tmp_path, writer, fmt, spacing, laterality, options):
    path, voxels = writer(tmp_path)
    img = LoadVolume(**options)(path)
    if voxels is None:  # E2E: each B-scan constant, in B-scan order
        expected = np.broadcast_to(E2E_DISPLAY, (6, 5, 3))
    else:
        expected = voxels
    assert img.dtype == torch.float32 and tuple(img.shape) == (1, *expected.shape)
    np.testing.assert_array_equal(img[0].numpy(), expected.astype(np.float32))  # voxels and B-scan order (last axis)
    np.testing.assert_allclose(np.diag(img.affine.numpy())[:3], spacing, rtol=1e-6)
    assert img.meta["laterality"] == laterality and img.meta["oct_format"] == fmt and img.meta["oct_scan"] == 0
    assert img.meta["filename_or_obj"] == str(path)
    assert of.read_oct_header(path, cirrus_shape=options.get("cirrus_shape")).shape == tuple(expected.shape)


@needs("eyepy")
def test_several_scans_refused_unless_selected(tmp_path):
    second = np.full((4, 3, 2), 60 << 10, np.uint16)
    path = write_e2e(tmp_path / "both.e2e", [(E2E_CODES, "OD"), (second, "OS")])
    with pytest.raises(ValueError, match=r"both\.e2e: Heidelberg E2E file holds 2 scans \(scan 0: OD, 6 x 5 x 3, "
                                         r"\d{4}-\d\d-\d\d; scan 1: OS, 4 x 3 x 2.*--split-scans"):
        LoadVolume()(path)
    scans = [(s.index, s.laterality, s.shape) for s in of.list_scans(path)]
    assert scans == [(0, "OD", (6, 5, 3)), (1, "OS", (4, 3, 2))]
    out = LoadVolumed("image")({"image": str(path), "scan": 1, "label": 0})
    assert "scan" not in out and out["label"] == 0  # the key is consumed: entries with and without it collate alike
    assert tuple(out["image"].shape) == (1, 4, 3, 2) and out["image"].meta["laterality"] == "OS"
    assert out["image"].meta["oct_scan"] == 1
    with pytest.raises(ValueError, match=r"both\.e2e: no scan 5 in this Heidelberg E2E file; its scans: scan 0"):
        LoadVolume()(path, scan=5)


def test_scan_index_on_other_inputs(tmp_path):
    path = write_topcon(tmp_path / "a.fds", U16)
    with pytest.raises(ValueError, match=r"a\.fds: no scan 1 in this Topcon FDS file"):
        LoadVolume()(path, scan=1)
    assert LoadVolume()(path, scan=0).shape == (1, 6, 5, 4)


@needs("oct_converter")
def test_cirrus_shape_from_protocol(tmp_path, monkeypatch):
    size = 6 * 5 * 4
    monkeypatch.setitem(of.CIRRUS_PROTOCOLS, size, ((4, 5, 6), "Tiny Cube", (3.0, 2.0, 1.2)))
    path = write_cirrus(tmp_path / "scan_OD.img", U8)
    img = LoadVolume()(path)
    np.testing.assert_array_equal(img[0].numpy(), U8.astype(np.float32))
    np.testing.assert_allclose(np.diag(img.affine.numpy())[:3], (1.2 / 6, 3.0 / 5, 2.0 / 4))
    assert "Tiny Cube" in img.meta["oct_note"] and img.meta["laterality"] == "OD"


@pytest.mark.parametrize("shape, match", [
    (None, r"odd\.img: cannot be read as Zeiss Cirrus IMG: 7 bytes match no known Cirrus scan protocol.*cirrus_shape"),
    ((1, 2, 3), r"odd\.img: cannot be read as Zeiss Cirrus IMG: 7 bytes, but cirrus_shape \(1, 2, 3\) needs 6"),
])
def test_cirrus_size_unknown(tmp_path, shape, match):
    path = tmp_path / "odd.img"
    path.write_bytes(bytes(7))
    with pytest.raises(ValueError, match=match):
        of.read_oct(path, cirrus_shape=shape)


def test_img_with_hdr_is_analyze(tmp_path):
    (tmp_path / "a.img").write_bytes(bytes(8))
    assert of.oct_format(tmp_path / "a.img") == "Zeiss Cirrus IMG"
    (tmp_path / "a.hdr").write_bytes(bytes(8))
    assert of.oct_format(tmp_path / "a.img") is None
    assert of.oct_format(tmp_path) is None


def _garbage(path):
    path.write_bytes(b"not an OCT file" * 10)


def _truncated(writer):
    def make(tmp_path):
        path, _ = writer(tmp_path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
        return path
    return make


BROKEN = [
    pytest.param(".vol", "Heidelberg VOL", marks=needs("eyepy")),
    pytest.param(".e2e", "Heidelberg E2E", marks=needs("eyepy")),
    pytest.param(".fds", "Topcon FDS"),
    pytest.param(".fda", "Topcon FDA"),
    pytest.param(".dcm", "ophthalmic DICOM", marks=needs("pydicom")),
]
WRITERS = {".vol": _vol, ".e2e": _e2e, ".fds": _fds, ".fda": _fda, ".dcm": _dcm8}


@pytest.mark.parametrize("suffix, fmt", BROKEN)
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_and_truncated_files_name_the_file(tmp_path, suffix, fmt, damage):
    if damage == "garbage":
        path = tmp_path / f"broken{suffix}"
        _garbage(path)
    else:
        path = _truncated(WRITERS[suffix])(tmp_path)
    with pytest.raises(ValueError, match=rf"^{path}: cannot be read as {fmt}: "):
        LoadVolume()(path)


@pytest.mark.parametrize("suffix, module, fmt", [
    (".vol", "eyepy", "Heidelberg VOL"), (".e2e", "eyepy", "Heidelberg E2E"),
    (".img", "oct_converter", "Zeiss Cirrus IMG"), (".dcm", "pydicom", "ophthalmic DICOM"),
])
def test_missing_extra_gives_install_hint(tmp_path, monkeypatch, suffix, module, fmt):
    writer = {".vol": _vol, ".e2e": _e2e, ".img": _img, ".dcm": _dcm8}[suffix]
    path = writer(tmp_path)[0] if suffix != ".img" else write_cirrus(tmp_path / "c.img", U8)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import of the module now fails
    with pytest.raises(OCTReaderMissing, match=rf"^{path}: reading {fmt} files needs .*pip install -e \.\[oct\]"):
        LoadVolume(cirrus_shape=(4, 5, 6))(path)


def test_preflight_reads_vendor_headers(tmp_path):
    from bundle.preflight import header_problems, read_header

    fds = write_topcon(tmp_path / "a.fds", U16)
    odd = tmp_path / "odd.img"
    odd.write_bytes(bytes(7))
    assert read_header(fds).shape == (6, 5, 4) and read_header(fds).channels == 1
    assert read_header(odd).shape == ()  # size of no protocol: shape known only to LoadVolumed's cirrus_shape
    problems, _ = header_problems([{"image": str(fds)}, {"image": str(fds), "scan": 3}], None, 1)
    assert problems == [f"{fds}: no scan 3 in this Topcon FDS file; its scans: scan 0: OS, 6 x 5 x 4, 2021-03-04"]


def test_bag_transforms_of_the_training_config_slice_the_bscans(tmp_path):
    """LoadVolumed + the configs' deterministic transforms: the bag's instances are the B-scans, spacing kept."""
    from bundle.config import CONFIGS, config_parser

    path = write_topcon(tmp_path / "a.fds", U16, size_mm=(6.0, 7.0, 2.6))
    parser = config_parser([CONFIGS / "common.json", CONFIGS / "train.json"], {})
    transforms = parser.get_parsed_content("deterministic_transforms")
    data = {"image": str(path), "label": 1}
    for t in transforms:
        data = t(data)
    bag = data["image"]
    assert tuple(bag.shape) == (4, 1, 6, 5)  # [N = B-scans, C, depth, A-scans]
    expected = U16.astype(np.float32)
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(bag[2, 0].numpy(), expected[:, :, 2], rtol=1e-6)  # instance 2 = B-scan 2
    np.testing.assert_allclose(np.diag(bag.affine.numpy())[:3], (0.0026, 6.0 / 5, 7.0 / 4))  # for the heatmap NIfTI


def test_split_scans_without_the_extra_is_one_error_line(tmp_path, monkeypatch, capsys):
    """scripts/build_datalist.py --split-scans on an .e2e file without eyepy: exit 1, the install hint, no traceback."""
    import build_datalist  # scripts/ is on sys.path (tests/conftest.py)

    path = _e2e(tmp_path)[0]
    (tmp_path / "labels.csv").write_text(f"image,label\n{path.name},1\n{path.name},0\n")
    for name in [m for m in sys.modules if m == "eyepy" or m.startswith("eyepy.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "eyepy", None)
    code = build_datalist.main(["--images-dir", str(tmp_path), "--labels-csv", str(tmp_path / "labels.csv"),
                                "--out", str(tmp_path / "datalist.json"), "--val-fraction", "0", "--split-scans"])
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "datalist.json").exists()
    assert err.startswith(f"error: {path}: reading Heidelberg E2E files needs") and "pip install -e .[oct]" in err


@needs("oct_converter")
def test_cirrus_shape_config_value_reaches_the_loader(tmp_path):
    """``--cirrus_shape "[n_bscans, ascans, depth]"`` (a JSON list) reads a Cirrus file of no known protocol."""
    from monai.bundle import ConfigParser

    from bundle_testing import CONFIGS

    path = write_cirrus(tmp_path / "scan_OS.img", U8)  # 120 bytes: no protocol
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json")])
    parser["cirrus_shape"] = [4, 5, 6]
    load = parser.get_parsed_content("deterministic_transforms")[0]
    image = load({"image": str(path)})["image"]
    assert tuple(image.shape) == (1, 6, 5, 4) and image.meta["laterality"] == "OS"
    np.testing.assert_array_equal(image[0].numpy(), U8.astype(np.float32))
