# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""One readable line: ``bundle.errors`` (what counts as the user's error, how it is printed), and a table of bad
inputs through the real entry point ``python -m monai.bundle run`` (and ``torchrun``), asserting the last lines of
stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from bundle.case_errors import CaseError
from bundle.config import as_bool
from bundle.datalist import DatalistError
from bundle.errors import (
    BundleUserError,
    PreflightError,
    error_lines,
    excepthook,
    install_excepthook,
    user_error,
    user_message,
)
from bundle_testing import CONFIGS, REPO, TINY, TINY_TRAIN, copy_dataset


def _wrapped(error: BaseException, *wrappers: str) -> BaseException:
    """``error`` raised inside MONAI-like wrappers (outermost last), as ``raise RuntimeError(...) from e`` does."""
    for text in wrappers:
        outer = RuntimeError(text)
        outer.__cause__ = error
        error = outer
    return error


def _as_bool_error() -> ValueError:
    try:
        as_bool("maybe", "localize")
    except ValueError as e:
        return e
    raise AssertionError("as_bool accepted 'maybe'")


# ------------------------------------------------------------------ what counts, and how it is printed
@pytest.mark.parametrize(
    "error, expected",
    [
        (_wrapped(DatalistError("datalist /d/l.json has no split 'x'"), "Failed to instantiate component 'a.B'",
                  "Failed to evaluate ConfigExpression: '$@x.run()'"), "datalist /d/l.json has no split 'x'"),
        (_wrapped(CaseError("/d/a.nii", "contains 3 NaN/inf voxels", "LoadVolumed"), "Failed to evaluate x"),
         "/d/a.nii: contains 3 NaN/inf voxels (in LoadVolumed)"),
        (_wrapped(PermissionError(13, "Permission denied", "/out/predictions.csv"), "Failed to evaluate x"),
         "/out/predictions.csv: Permission denied"),
        (_wrapped(ValueError("top_k must be >= 1, got 0"),
                  "Failed to instantiate component 'networks.MIMSCNN' with keywords: k\n set '_mode_=debug'"),
         "networks.MIMSCNN: top_k must be >= 1, got 0"),
        (_wrapped(_as_bool_error(), "Failed to evaluate ConfigExpression: '$as_bool(@localize)'"),
         "localize must be true or false, got 'maybe'"),
        (_wrapped(ValueError("an internal error"), "Failed to evaluate ConfigExpression: '$f()'"), None),
        (_wrapped(KeyError("x"), "Failed to instantiate component 'a.B' with keywords: k"), None),
        (FileNotFoundError("no filename given"), None),
        (ZeroDivisionError("division by zero"), None),
    ],
)
def test_user_error_finds_our_message_in_the_chain(error, expected):
    found = user_error(error)
    assert (None if found is None else user_message(found)) == expected


def test_user_error_takes_a_context_and_survives_a_cycle():
    inner = PreflightError(["config keep_model: bad"])
    outer = RuntimeError("while handling")
    outer.__context__ = inner
    assert user_error(outer) is inner
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert user_error(a) is None
    assert issubclass(CaseError, BundleUserError) and issubclass(DatalistError, BundleUserError)


@pytest.mark.parametrize(
    "problems, message",
    [
        (["/d/a.nii: no such file or directory"], "/d/a.nii: no such file or directory"),
        (["p1", "p2"], "pre-flight: 2 problems (listed above); nothing was started:\n  p1\n  p2"),
        (["p1", "p2", "p1"], "pre-flight: 2 problems (listed above); nothing was started:\n  p1\n  p2"),
    ],
)
def test_preflight_error_message(problems, message):
    assert str(PreflightError(problems)) == message
    assert PreflightError(problems).problems == list(dict.fromkeys(problems))


@pytest.mark.parametrize(
    "message, lines",
    [
        ("one line", ["error: one line"]),
        ("summary:\n  a\n  b\n", ["  a", "  b", "error: summary"]),
        ("  padded  \n", ["error: padded"]),
    ],
)
def test_error_lines_put_the_summary_last(message, lines):
    assert error_lines(message) == lines


def _raise(error: BaseException) -> tuple:
    try:
        raise error
    except BaseException as e:  # noqa: BLE001 - the hook gets whatever was raised
        return type(e), e, e.__traceback__


@pytest.mark.parametrize("debug", ["", "1"])
def test_excepthook_prints_the_user_error_last(debug, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MIMS_DEBUG", debug)
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    install_excepthook()
    install_excepthook()  # twice: still one hook, Python's as the previous one
    assert sys.excepthook is excepthook
    excepthook(*_raise(_wrapped(DatalistError("datalist /d/l.json does not exist"), "Failed to evaluate x")))
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "error: datalist /d/l.json does not exist"
    assert json.loads(error_file.read_text())["message"].endswith("error: datalist /d/l.json does not exist")
    if debug:  # the full chain, then the line
        assert err[0] == "bundle.datalist.DatalistError: datalist /d/l.json does not exist"  # the cause first
        assert "Traceback (most recent call last):" in err and err[-2] == "RuntimeError: Failed to evaluate x"
    else:  # the traceback in a file, named above the line
        assert len(err) == 2 and err[0].startswith("(full traceback written to ") and "MIMS_DEBUG=1" in err[0]
        path = Path(err[0][len("(full traceback written to "):].split(";")[0])
        assert "RuntimeError: Failed to evaluate x" in path.read_text()
        path.unlink()


def test_excepthook_leaves_other_errors_to_python(monkeypatch, capsys):
    monkeypatch.delenv("MIMS_DEBUG", raising=False)
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE", raising=False)
    excepthook(*_raise(_wrapped(ZeroDivisionError("division by zero"), "Failed to evaluate x")))
    err = capsys.readouterr().err.splitlines()
    assert "Traceback (most recent call last):" in err and err[-1] == "RuntimeError: Failed to evaluate x"
    assert not any(line.startswith("error: ") for line in err)
    # a pre-flight error needs no traceback file
    excepthook(*_raise(PreflightError(["a", "b"])))
    assert capsys.readouterr().err.splitlines() == ["  a", "  b", "error: pre-flight: 2 problems (listed above); "
                                                    "nothing was started"]


# ------------------------------------------------------------------ bad inputs through python -m monai.bundle run
def _cli(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return args


def _bundle_run(root: Path, configs: list[str], overrides: dict, torchrun: bool = False) -> list[str]:
    """``python -m monai.bundle run`` (or ``torchrun --nproc_per_node=2``) of ``configs``; its stderr lines."""
    config_files = json.dumps([str(CONFIGS / c) for c in configs])
    command = [sys.executable, "-m", "monai.bundle", "run"]
    if torchrun:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                   "monai.bundle", "run"]
    command += ["--config_file", config_files, "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file",
                str(CONFIGS / "logging.conf"), "--bundle_root", str(root)] + _cli({**TINY, **overrides})
    env = {k: v for k, v in os.environ.items() if k != "MIMS_DEBUG"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    # messages may hold non-ASCII characters: decode as UTF-8 whatever the test process's locale is
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, encoding="utf-8", timeout=600)
    assert done.returncode != 0, done.stderr[-3000:]
    return done.stderr.rstrip().splitlines()


def _network_state(**overrides) -> dict:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.json"))
    parser.update({**TINY, **overrides})
    return parser.get_parsed_content("network_def").state_dict()


@pytest.fixture
def bad_inputs(tiny_dataset, tmp_path):
    """A copy of the tiny dataset, a bundle root with a fitting checkpoint, and the paths of both."""
    dataset = copy_dataset(tiny_dataset, tmp_path / "data")
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    torch.save(_network_state(), root / "models" / "model.pt")
    return dataset, root


def test_preflight_lists_every_problem_of_an_evaluation(bad_inputs):
    dataset, root = bad_inputs
    datalist = json.loads((dataset / "datalist.json").read_text())
    test = datalist["test"]
    (dataset / "images" / "corrupt.nii.gz").write_bytes((dataset / test[1]["image"]).read_bytes()[:100])
    nib.save(nib.Nifti1Image(np.ones((32, 32), np.float32), np.eye(4)), str(dataset / "images" / "flat.nii.gz"))
    test[0]["image"], test[1]["image"] = "images/missing.nii.gz", "images/corrupt.nii.gz"
    test.append({"image": "images/flat.nii.gz", "label": 1})
    for entry in test:
        entry["label"] = 1
    (dataset / "datalist.json").write_text(json.dumps(datalist))
    torch.save(_network_state(in_channels=3), root / "models" / "other.pt")
    (root / "blocker").write_text("a file where the output folder should be")
    stderr = _bundle_run(root, ["common.json", "evaluate.json"], {
        "dataset_dir": str(dataset), "ckpt_path": str(root / "models" / "other.pt"),
        "output_dir": str(root / "blocker" / "eval")})
    images = dataset / "images"
    assert stderr[-7:-1] == [
        f"  {images / 'missing.nii.gz'}: no such file or directory",
        f"  {images / 'corrupt.nii.gz'}: cannot be read as NIfTI: Cannot work out file type of "
        f"\"{images / 'corrupt.nii.gz'}\"",
        f"  {images / 'flat.nii.gz'}: 2-D image (32, 32) among 2 3-D input(s) of this run; remove it, or set "
        "spatial_dims to the kind you mean",
        f"  datalist {dataset / 'datalist.json'}, split 'test': all 5 case(s) have label 1: one class cannot be "
        "learned nor scored (AUROC); add cases of the other class(es), or set allow_single_class true",
        f"  {root / 'models' / 'other.pt'}: checkpoint does not fit the configured MIMSCNN (ckpt_path): 1 shape "
        "mismatch(es) ('backbone.conv1.weight': [64, 3, 7, 7] in the file, [64, 1, 7, 7] configured); it was "
        "trained with other settings: use the same method overlay and in_channels, num_classes, backbone_depth, "
        "feature_stage",
        f"  {root / 'blocker' / 'eval'}: cannot be created, {root / 'blocker'} is a file (output_dir); set "
        "output_dir to another folder",
    ]
    assert stderr[-1] == "error: pre-flight: 6 problems (listed above); nothing was started"


@pytest.mark.parametrize(
    "case, last",
    [
        ("no datalist", "error: datalist {dataset}/none.json does not exist"),
        ("no split", "error: datalist {dataset}/datalist.json has no split 'holdout'; splits found: ['test', "
                     "'training', 'validation']"),
        ("corrupt checkpoint", "error: {root}/models/model.pt: checkpoint cannot be read as a weights-only PyTorch "
                               "file (ckpt_path): "),
        ("null text", "error: command line --decision_threshold null: MONAI's command line passes 'null' on as text, "
                      "not as null; write --decision_threshold None for no value"),
    ],
)
def test_evaluation_ends_with_one_readable_line(bad_inputs, case, last):
    dataset, root = bad_inputs
    overrides = {"dataset_dir": str(dataset)}
    if case == "no datalist":
        overrides["datalist"] = str(dataset / "none.json")
    elif case == "no split":
        overrides["eval_split"] = "holdout"
    elif case == "null text":
        overrides["decision_threshold"] = "null"
    else:
        checkpoint = root / "models" / "model.pt"
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    stderr = _bundle_run(root, ["common.json", "evaluate.json"], overrides)
    expected = last.format(dataset=dataset, root=root)
    if case == "corrupt checkpoint":
        assert stderr[-1].startswith(expected) and stderr[-1].endswith(
            "; it is truncated, corrupt or not a state dict: train again or set another file")
    else:
        assert stderr[-1] == expected
    assert not (root / "eval").exists()  # nothing was started


def test_training_config_values_are_checked_before_the_run_folder(bad_inputs):
    dataset, root = bad_inputs
    stderr = _bundle_run(root, ["common.json", "train.json"], {
        "dataset_dir": str(dataset), **TINY_TRAIN, "localization_layer": "backbone.nothing", "keep_model": "last"})
    assert stderr[-3:] == [
        "  config keep_model: keep_model must be one of 'best', 'final', got 'last'",
        "  config localization_layer: layer 'backbone.nothing' is not a submodule of MIMSCNN; use 'input' or a module "
        "name such as backbone, backbone.conv1, backbone.bn1, backbone.act, backbone.maxpool, backbone.layer1, "
        "backbone.layer2, heads, heads.0, magnitude_norm, magnitude_norm.norms, pool",
        "error: pre-flight: 2 problems (listed above); nothing was started",
    ]
    assert not (root / "runs").exists()


def test_inference_stops_for_its_output_and_goes_on_past_bad_cases(bad_inputs):
    dataset, root = bad_inputs
    (root / "blocker").write_text("")
    datalist = json.loads((dataset / "datalist.json").read_text())
    datalist["test"][0]["image"] = "images/missing.nii.gz"  # a warning: inference reports bad cases itself
    (dataset / "datalist.json").write_text(json.dumps(datalist))
    stderr = _bundle_run(root, ["common.json", "inference.json"], {
        "input": str(dataset / "datalist.json"), "output_dir": str(root / "blocker")})
    assert stderr[-1] == (f"error: {root / 'blocker' / 'inference'}: cannot be created, {root / 'blocker'} is a file "
                          "(infer_output_dir); set infer_output_dir to another folder")


def test_a_bad_case_found_while_loading_names_the_file_and_keeps_the_traceback(bad_inputs):
    dataset, root = bad_inputs
    image = dataset / json.loads((dataset / "datalist.json").read_text())["test"][2]["image"]
    volume = np.zeros((32, 32, 8), np.float32)
    volume[0, 0, 0] = np.nan  # a header cannot tell: found when the case is loaded
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(image))
    stderr = _bundle_run(root, ["common.json", "evaluate.json"], {"dataset_dir": str(dataset)})
    assert stderr[-2:] == [
        f"  {image}: contains 1 NaN/inf voxels (in LoadVolumed)",
        "error: test data: 1 of 4 case(s) cannot be used (set skip_bad_cases true to leave them out)",
    ]
    pointer = stderr[-3]
    assert pointer.startswith("(full traceback written to ") and pointer.endswith("; MIMS_DEBUG=1 prints it here)")
    trace = Path(pointer[len("(full traceback written to "):].split(";")[0])
    assert "Traceback (most recent call last):" in trace.read_text()
    trace.unlink()


# slow (default suite under 15 min): a torchrun run of two processes
@pytest.mark.slow
def test_torchrun_ranks_and_summary_show_the_line(bad_inputs):
    dataset, root = bad_inputs
    (root / "models" / "model.pt").unlink()
    stderr = _bundle_run(root, ["common.json", "evaluate.json", "multi_gpu_evaluate.json"],
                         {"dataset_dir": str(dataset)}, torchrun=True)
    line = (f"error: {root / 'models' / 'model.pt'}: checkpoint not found (ckpt_path); train a model first "
            "(configs/train.json promotes its best model to models/model.pt) or set ckpt_path")
    # each rank's last line (a rank stopped by torchrun after the first failure may not print it), and torchrun's
    # closing summary of the first failure (from the rank's error file)
    assert line in stderr
    summary = stderr[stderr.index("Root Cause (first observed failure):"):]
    assert f"  traceback : {line}" in summary and summary[-1] == "=" * 60
