# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The pre-flight checks (``bundle.preflight``) on hand-made files: exact problems and warnings. Through the
configs and ``python -m monai.bundle run``: ``tests/bundle/test_errors.py``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from bundle.decision import resolve_threshold
from bundle.errors import PreflightError, user_error
from bundle.localization import LocalizationWriter, ValidationOverlayLogger
from bundle.preflight import (
    ImageHeader,
    checkpoint_problems,
    header_problems,
    label_problems,
    layer_problems,
    option_problems,
    output_problems,
    preflight,
    read_header,
)


_THRESHOLD = "decision_threshold must be 'auto', null (argmax) or a number in (0, 1),"


def _nifti(path: Path, shape: tuple) -> str:
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))
    return str(path)


def _png(path: Path, mode: str, size=(6, 4)) -> str:
    Image.new(mode, size).save(path)
    return str(path)


# ------------------------------------------------------------------ headers
@pytest.mark.parametrize(
    "name, make, header",
    [
        ("v.nii.gz", lambda p: _nifti(p, (8, 6, 4)), ImageHeader(3, 1, (8, 6, 4))),
        ("flat.nii", lambda p: _nifti(p, (8, 6)), ImageHeader(2, 1, (8, 6))),
        ("rgb.nii.gz", lambda p: _nifti(p, (8, 6, 4, 3)), ImageHeader(3, 3, (8, 6, 4), True)),
        ("grey.png", lambda p: _png(p, "L"), ImageHeader(2, 1, (4, 6))),
        ("rgb.png", lambda p: _png(p, "RGB"), ImageHeader(2, 3, (4, 6))),
        ("rgba.png", lambda p: _png(p, "RGBA"), ImageHeader(2, 4, (4, 6))),
        ("palette.png", lambda p: _png(p, "P"), ImageHeader(2, 3, (4, 6))),
        ("grey_alpha.png", lambda p: _png(p, "LA"), ImageHeader(2, 2, (4, 6))),
    ],
)
def test_read_header(tmp_path, name, make, header):
    make(tmp_path / name)
    assert read_header(tmp_path / name) == header


def test_read_header_of_folders(tmp_path):
    slices = tmp_path / "slices"
    slices.mkdir()
    for i in range(3):
        _png(slices / f"s{i}.png", "RGB")
    assert read_header(slices) == ImageHeader(3, 3, (4, 6, 3))
    (tmp_path / "dicom").mkdir()
    (tmp_path / "dicom" / "1.dcm").write_bytes(b"")
    assert read_header(tmp_path / "dicom") == ImageHeader(3, None, ())  # read by ITK when loaded


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("none.nii.gz", None, "{p}: no such file or directory"),
        ("broken.nii.gz", lambda p: p.write_bytes(b"not a volume"),
         "{p}: cannot be read as NIfTI: File {p} is not a gzip file"),
        ("empty.nii.gz", lambda p: _nifti(p, (8, 0, 4)), "{p}: empty image: no voxels (array shape (8, 0, 4))"),
        ("five.nii.gz", lambda p: _nifti(p, (4, 4, 4, 2, 2)),
         "{p}: 4-D array of shape (4, 4, 4, 2) (after the channel axis); expected a 2-D image [H, W] or a 3-D volume "
         "[H, W, D]"),
        ("case.txt", lambda p: p.write_text("x"),
         "{p}: unsupported file type '.txt'; supported suffixes are .nii, .nii.gz, .nrrd, .mha, .mhd, .png, .jpg, "
         ".jpeg, .tif, .tiff, .bmp, .vol, .e2e, .fda, .fds, .img, .dcm, a folder of 2D slices or a DICOM series "
         "folder."),
        ("bad.png", lambda p: p.write_bytes(b"\x89PNG nothing"), "{p}: cannot be read as PNG image: cannot identify "
         "image file '{p}'"),
        ("pages.tif", lambda p: Image.new("L", (4, 4)).save(p, save_all=True, append_images=[Image.new("L", (4, 4))]),
         "{p}: TIFF file holds 2 frames; only single-frame 2D images are supported (export the frames as a folder "
         "of slices or as a NIfTI volume)."),
        ("empty_folder", lambda p: p.mkdir(), "{p}: empty folder; expected 2D slice images or a DICOM series."),
    ],
)
def test_read_header_names_the_file(tmp_path, name, make, message):
    path = tmp_path / name
    if make is not None:
        make(path)
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        read_header(path)
    assert str(info.value) == message.format(p=path)


def test_read_header_of_slices_of_different_sizes(tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    _png(folder / "a.png", "L", (6, 4))
    _png(folder / "b.png", "L", (5, 4))
    with pytest.raises(ValueError, match=r"b\.png: slice of 1 channel\(s\) \(4, 5\) differs from 1 channel\(s\) "
                                         r"\(4, 6\) of a\.png; all slices in .* must have the same size and channels"):
        read_header(folder)


# ------------------------------------------------------------------ entries of a run
def test_header_problems_lists_every_bad_entry(tmp_path):
    entries = [{"image": p} for p in [
        _nifti(tmp_path / "a.nii.gz", (8, 8, 4)),
        str(tmp_path / "missing.nii.gz"),
        _nifti(tmp_path / "flat.nii.gz", (8, 8)),
        _nifti(tmp_path / "b.nii.gz", (8, 8, 4)),
        _nifti(tmp_path / "four.nii.gz", (8, 8, 4, 2)),
        _png(tmp_path / "colour.png", "RGB"),
    ]]
    problems, warnings = header_problems(entries, None, 1)
    p = tmp_path
    assert problems == [
        f"{p}/missing.nii.gz: no such file or directory",
        f"{p}/flat.nii.gz: 2-D image (8, 8) among 3 3-D input(s) of this run; remove it, or set spatial_dims to the "
        "kind you mean",
        f"{p}/four.nii.gz: 4-D array (8, 8, 4, 2) read as a 3-D volume of 2 channels, but the model takes 1 "
        "(in_channels); store one 3-D volume [H, W, D] per file, or set in_channels",
        f"{p}/colour.png: 2-D image (4, 6) among 3 3-D input(s) of this run; remove it, or set spatial_dims to the "
        "kind you mean",
    ]
    assert warnings == [f"{p}/colour.png: colour image (3 channels) under in_channels 1: it is turned grey (luma); "
                        "set in_channels 3 to keep the colour (docs/README.md, your own 2D colour images)"]


@pytest.mark.parametrize(
    "spatial_dims, in_channels, modes, problems",
    [
        (2, 3, ["L", "RGB", "RGBA"], []),  # grey repeated, RGBA's alpha dropped
        (2, 1, ["L", "L"], []),
        (None, 3, ["LA"], ["{p}/0.png: 2 channel(s) cannot be brought to in_channels 3; supported: equal counts, "
                           "1 -> 3, 3 or 4 (RGBA) -> 1 or 3"]),
        (3, 1, ["L"], ["{p}/0.png: 2-D image (4, 6) where 3-D inputs are expected (spatial_dims 3; null accepts "
                       "both)"]),
    ],
)
def test_header_problems_against_the_config(tmp_path, spatial_dims, in_channels, modes, problems):
    entries = [{"image": _png(tmp_path / f"{i}.png", mode)} for i, mode in enumerate(modes)]
    assert header_problems(entries, spatial_dims, in_channels)[0] == [p.format(p=tmp_path) for p in problems]


@pytest.mark.parametrize(
    "labels, allow, problems",
    [
        ([0, 1, 0], False, []),
        ([1, 1, 1], True, []),
        ([None, None], False, []),  # inference-like entries without labels
        ([0, 0], False, ["datalist d.json, split 'training': all 2 case(s) have label 0: one class cannot be learned "
                         "nor scored (AUROC); add cases of the other class(es), or set allow_single_class true"]),
    ],
)
def test_label_problems(labels, allow, problems):
    entries = [{"image": "x", "label": label} for label in labels]
    assert label_problems(entries, "datalist d.json, split 'training'", 2, allow) == problems


# ------------------------------------------------------------------ checkpoint, outputs, options, layer
def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))


@pytest.mark.parametrize(
    "content, expected",
    [
        (lambda: _net().state_dict(), None),
        (lambda: {"model": _net().state_dict(), "epoch": torch.tensor(3)}, None),
        (lambda: {"0.weight": torch.zeros(2, 3, 3, 3)},
         "{f}: checkpoint does not fit the configured Sequential (ckpt_path): 6 missing key(s) ('0.bias', "
         "'1.weight', '1.bias', '1.running_mean', '1.running_var', ...); 1 shape mismatch(es) ('0.weight': "
         "[2, 3, 3, 3] in the file, [2, 1, 3, 3] configured); it was trained with other settings: use the same "
         "method overlay and in_channels, num_classes, backbone_depth, feature_stage"),
        (lambda: {**_net().state_dict(), "2.weight": torch.zeros(1)},
         "{f}: checkpoint does not fit the configured Sequential (ckpt_path): 1 unexpected key(s) ('2.weight'); it "
         "was trained with other settings: use the same method overlay and in_channels, num_classes, "
         "backbone_depth, feature_stage"),
        (lambda: [1, 2], "{f}: not a state dict nor a checkpoint with a 'model' state dict (ckpt_path)"),
    ],
)
def test_checkpoint_problems(tmp_path, content, expected):
    file = tmp_path / "model.pt"
    torch.save(content(), file)
    assert checkpoint_problems(file, _net()) == ([] if expected is None else [expected.format(f=file)])


def test_checkpoint_problems_name_the_file(tmp_path):
    missing = tmp_path / "none.pt"
    assert checkpoint_problems(missing, _net(), "ckpt_path") == [
        f"{missing}: checkpoint not found (ckpt_path); train a model first (configs/train.json promotes its best "
        "model to models/model.pt) or set ckpt_path"]
    corrupt = tmp_path / "corrupt.pt"
    torch.save(_net().state_dict(), corrupt)
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    (problem,) = checkpoint_problems(corrupt, _net())
    assert problem.startswith(f"{corrupt}: checkpoint cannot be read as a weights-only PyTorch file (ckpt_path): ")
    assert problem.endswith("; it is truncated, corrupt or not a state dict: train again or set another file")
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": _net().state_dict(), "note": Path("x")}, unsafe)  # needs weights_only=False: refused
    assert checkpoint_problems(unsafe, None)[0].startswith(f"{unsafe}: checkpoint cannot be read as a weights-only")


def test_output_problems_leave_nothing_behind(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    (tmp_path / "out").mkdir()
    assert output_problems({"output_dir": tmp_path / "out", "runs": tmp_path / "new" / "runs", "x": None}) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "out"] and not any((tmp_path / "out").iterdir())
    assert output_problems({"output_dir": tmp_path / "file" / "eval"}) == [
        f"{tmp_path}/file/eval: cannot be created, {tmp_path}/file is a file (output_dir); set output_dir to another "
        "folder"]

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("bundle.preflight.tempfile.mkstemp", read_only)
    assert output_problems({"output_dir": tmp_path / "out", "runs": tmp_path / "new"}) == [
        f"{tmp_path}/out: is not writable (Permission denied) (output_dir); set output_dir to another folder or make "
        "it writable",
        f"{tmp_path}/new: cannot be created: {tmp_path} is not writable (Permission denied) (runs); set runs to "
        "another folder or make it writable",
    ]


@pytest.mark.parametrize(
    "options, problems",
    [
        ({"keep_model": "best", "promote": "never", "warmup_epochs": 1, "epochs": 2, "spatial_dims": None,
          "in_channels": 3, "num_classes": 2, "use_amp": "true", "anything": object(), "decision_threshold": 0.3,
          "num_key_slices": 1, "localization_class_index": None}, []),
        ({"decision_threshold": "auto", "num_classes": 3, "localization_class_index": 2}, []),
        ({"keep_model": "last"}, ["config keep_model: keep_model must be one of 'best', 'final', got 'last'"]),
        ({"promote": "yes"}, ["config promote: promote must be one of 'better', 'always', 'never', got 'yes'"]),
        ({"class_weighting": "x"}, ["config class_weighting: class_weighting must be one of 'auto', 'balanced', "
                                    "'none', got 'x'"]),
        ({"warmup_epochs": 2, "epochs": 2}, ["config warmup_epochs: warmup_epochs must be an integer from 0 to "
                                             "epochs - 1 = 1, got 2"]),
        ({"early_stopping_patience": 0}, ["config early_stopping_patience: early_stopping_patience must be null "
                                          "(off) or an integer >= 1, got 0"]),
        ({"spatial_dims": 4}, ["config spatial_dims: spatial_dims must be 2, 3 or null (both accepted), got 4"]),
        ({"in_channels": 0}, ["config in_channels: in_channels must be an integer >= 1, got 0"]),
        ({"num_classes": 1}, ["config num_classes: num_classes must be an integer >= 2, got 1"]),
        ({"fail_fast": "maybe"}, ["config fail_fast: fail_fast must be true or false, got 'maybe'"]),
        ({"decision_threshold": 1.5}, [f"config decision_threshold: {_THRESHOLD} got 1.5"]),
        ({"decision_threshold": "best"}, [f"config decision_threshold: {_THRESHOLD} got 'best'"]),
        ({"decision_threshold": 0.3, "num_classes": 3}, ["config decision_threshold: decision_threshold 0.3 applies "
                                                         "to binary tasks only; num_classes is 3: use 'auto' or null "
                                                         "(argmax)"]),
        ({"num_key_slices": 0}, ["config num_key_slices: num_key_slices must be an integer >= 1, got 0"]),
        ({"num_key_slices": "3"}, ["config num_key_slices: num_key_slices must be an integer >= 1, got '3'"]),
        ({"localization_class_index": -1}, ["config localization_class_index: localization_class_index must be None "
                                            "(the predicted class) or a class index >= 0, got -1"]),
        ({"localization_class_index": True}, ["config localization_class_index: localization_class_index must be "
                                              "None (the predicted class) or a class index >= 0, got True"]),
    ],
)
def test_option_problems(options, problems):
    assert option_problems(options) == problems


@pytest.mark.parametrize(
    "key, value, build",
    [
        ("decision_threshold", 1.5, lambda value, tmp_path: resolve_threshold(value, None, 2)),
        ("decision_threshold", 0.3, lambda value, tmp_path: resolve_threshold(value, None, 3)),
        ("num_key_slices", 0, lambda value, tmp_path: LocalizationWriter(tmp_path, num_key_slices=value)),
        ("num_key_slices", 0, lambda value, tmp_path: ValidationOverlayLogger(tmp_path, num_key_slices=value)),
        ("localization_class_index", -1, lambda value, tmp_path: LocalizationWriter(tmp_path, class_index=value)),
    ],
)
def test_option_problems_say_what_the_late_check_says(tmp_path, key, value, build):
    """The pre-flight's line is the message of the check the handler (or config expression) runs later."""
    with pytest.raises(ValueError) as info:
        build(value, tmp_path)
    late = str(info.value).replace("class_index", key) if key == "localization_class_index" else str(info.value)
    assert option_problems({key: value, "num_classes": 3 if value == 0.3 else 2}) == [f"config {key}: {late}"]


@pytest.mark.parametrize(
    "config, key, value, line",
    [
        ("train.json", "decision_threshold", 2, f"config decision_threshold: {_THRESHOLD} got 2"),
        ("train.json", "num_key_slices", 0, "config num_key_slices: num_key_slices must be an integer >= 1, got 0"),
        ("evaluate.json", "decision_threshold", "high", f"config decision_threshold: {_THRESHOLD} got 'high'"),
        ("inference.json", "decision_threshold", 1, f"config decision_threshold: {_THRESHOLD} got 1"),
        ("inference.json", "num_key_slices", -1, "config num_key_slices: num_key_slices must be an integer >= 1, "
                                                 "got -1"),
        ("inference.json", "localization_class_index", -1, "config localization_class_index: localization_class_index "
                                                           "must be None (the predicted class) or a class index >= 0, "
                                                           "got -1"),
    ],
)
def test_late_checked_options_stop_the_run_before_any_data_is_cached(
    tiny_dataset, bundle_root, monkeypatch, config, key, value, line
):
    import sys

    from monai.bundle import ConfigParser, ConfigWorkflow

    from bundle import case_errors
    from bundle_testing import CONFIGS, TINY

    def no_data(self, *args, **kwargs):
        raise AssertionError("a dataset was built before the pre-flight")

    for dataset in (case_errors.CheckedCacheDataset, case_errors.CheckedDataset):
        monkeypatch.setattr(dataset, "__init__", no_data)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the run list installs bundle.errors.excepthook
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update(TINY)
    (bundle_root / "models").mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), bundle_root / "models" / "model.pt")
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / "common.json"), str(CONFIGS / config)], meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"), workflow_type=None, bundle_root=str(bundle_root),
        dataset_dir=str(tiny_dataset), **TINY, **{key: value},
    )
    workflow.initialize()
    try:
        with pytest.raises(Exception) as info:  # MONAI wraps it: the excepthook shows the user error
            workflow.run()
    finally:
        workflow.finalize()
    error = user_error(info.value)
    assert isinstance(error, PreflightError) and error.problems == [line]
    assert sorted(p.name for p in bundle_root.iterdir()) == ["models"]  # no run folder, no outputs


def test_layer_problems():
    net = _net()
    assert layer_problems(net, None) == [] and layer_problems(net, "input") == [] and layer_problems(net, "0") == []
    assert layer_problems(net, "2") == ["config localization_layer: layer '2' is not a submodule of Sequential; use "
                                        "'input' or a module name such as 0, 1"]


# ------------------------------------------------------------------ all together
def _datalist(tmp_path: Path, images: list[str], labels: list[int]) -> Path:
    path = tmp_path / "datalist.json"
    entries = [{"image": image, "label": label} for image, label in zip(images, labels)]
    path.write_text(json.dumps({"training": entries, "validation": entries}))
    return path


def test_preflight_raises_for_everything_at_once(tmp_path):
    images = [_nifti(tmp_path / "a.nii.gz", (8, 8, 4)), "missing.nii.gz"]
    datalist = _datalist(tmp_path, images, [0, 0])
    with pytest.raises(PreflightError) as info:
        preflight("train", datalist, ["training", "holdout"], options={"keep_model": "last"},
                  ckpt_path=tmp_path / "none.pt", resume_from=tmp_path / "ck.pt", outputs={"runs": tmp_path / "runs"})
    assert info.value.problems == [
        "config keep_model: keep_model must be one of 'best', 'final', got 'last'",
        f"datalist {datalist} has no split 'holdout'; splits found: ['training', 'validation']",
        f"{tmp_path}/missing.nii.gz: no such file or directory",
        f"datalist {datalist}, split 'training': all 2 case(s) have label 0: one class cannot be learned nor scored "
        "(AUROC); add cases of the other class(es), or set allow_single_class true",
        f"{tmp_path}/none.pt: checkpoint not found (ckpt_path); train a model first (configs/train.json promotes its "
        "best model to models/model.pt) or set ckpt_path",
        f"{tmp_path}/ck.pt: checkpoint not found (resume_from); give a checkpoint_*.pt of a run folder",
    ]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "kind, switches",
    [("train", {"skip_bad_cases": True}), ("inference", {"fail_fast": False})],
)
def test_preflight_warns_where_the_run_reports_bad_cases(tmp_path, caplog, kind, switches):
    datalist = _datalist(tmp_path, [_nifti(tmp_path / "a.nii.gz", (8, 8, 4)), "missing.nii.gz"], [0, 1])
    with caplog.at_level(logging.WARNING, logger="bundle.preflight"):
        preflight(kind, datalist, ["training"], allow_single_class=True, **switches)
    assert caplog.messages == [f"pre-flight: {tmp_path}/missing.nii.gz: no such file or directory",
                               "pre-flight: 1 warning(s) above; the run goes on"]
    with pytest.raises(PreflightError, match="missing.nii.gz: no such file or directory"):  # the default: fail
        preflight(kind, datalist, ["training"])


def test_preflight_stops_at_values_the_data_checks_need(tmp_path):
    with pytest.raises(PreflightError) as info:
        preflight("evaluate", tmp_path / "none.json", ["test"], in_channels=0, skip_bad_cases="sometimes")
    assert info.value.problems == ["config skip_bad_cases: skip_bad_cases must be true or false, got 'sometimes'",
                                   "config in_channels: in_channels must be an integer >= 1, got 0"]
