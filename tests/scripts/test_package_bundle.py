# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""scripts/package_bundle.py: the zoo package builds, passes its checks, and the unpacked zip trains, infers,
downloads and loads from another working directory with its own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from bundle_testing import TINY, TINY_TRAIN

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "reference" / "monai-bundle-meta-schema-20240725.json"
NAME = "tiny_mims"
VERSION = json.loads((REPO / "configs" / "metadata.json").read_text())["version"]
#: TINY is baked into the package (the checkpoint is built with it); TINY_TRAIN goes on the command line
TRAIN_SETTINGS = {**TINY_TRAIN, "num_overlay_cases": 0, "run_stamp": "r"}
TRAIN_ARGS = [arg for key, value in TRAIN_SETTINGS.items() for arg in (f"--{key}", str(value))]


def _run(command: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(package folder, zip) built from a random-init tiny checkpoint, with the checks run."""
    import package_bundle
    from monai.bundle import ConfigParser

    if not SCHEMA.is_file():
        pytest.fail(f"the bundle metadata schema is expected at {SCHEMA} (../shared/reference beside the repository)")
    tmp = tmp_path_factory.mktemp("package")
    parser = ConfigParser()
    parser.read_config(str(REPO / "configs" / "common.json"))
    parser.update({"image_size": TINY["image_size"]})
    torch.manual_seed(0)
    torch.save({"model": parser.get_parsed_content("network_def").state_dict()}, tmp / "checkpoint_final.pt")
    overrides = [f"{k}={json.dumps(v)}" for k, v in TINY.items()]
    status = package_bundle.main(
        ["--ckpt", str(tmp / "checkpoint_final.pt"), "--name", NAME, "--output-dir", str(tmp / "dist"),
         "--schema", str(SCHEMA), "--override", *overrides]
    )
    assert status == 0
    return tmp / "dist" / NAME, tmp / "dist" / f"{NAME}_v{VERSION}.zip"


def test_zip_layout(package):
    stage, archive = package
    names = zipfile.ZipFile(archive).namelist()
    assert all(n.startswith(f"{NAME}/") for n in names)
    for required in ("configs/metadata.json", "configs/inference.json", "configs/common.json", "models/model.pt",
                     "models/model.ts", "large_files.yml", "LICENSE", "docs/README.md", "docs/data_license.txt",
                     "networks/__init__.py", "transforms/__init__.py", "bundle/__init__.py", "pyproject.toml"):
        assert f"{NAME}/{required}" in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith("verify_model.ts")]
    large = (stage / "large_files.yml").read_text()
    assert large.count("hash_type: \"sha256\"") == 2 and "models/model.ts" in large


def test_configs_are_self_contained_and_equal_the_repository_commands(package):
    from monai.bundle import ConfigParser

    stage, _ = package
    for config in ("train.json", "evaluate.json", "inference.json"):
        alone, with_common, repo = ConfigParser(), ConfigParser(), ConfigParser()
        alone.read_config(str(stage / "configs" / config))
        with_common.read_config([str(stage / "configs" / "common.json"), str(stage / "configs" / config)])
        repo.read_config([str(REPO / "configs" / "common.json"), str(REPO / "configs" / config)])
        repo.update(TINY)
        assert alone.get() == with_common.get(), config
        repo_config = repo.get()
        repo_config.pop("_meta_", None)
        packaged = alone.get()
        packaged.pop("_meta_", None)
        # the package fixes the class names its model was trained with (the repository resolves them from
        # the datalist's labels at run time; a packaged bundle is used with other datalists)
        packaged_names = packaged.pop("class_names")
        repo_config.pop("class_names")
        assert packaged == repo_config, config
        resolved = ConfigParser()
        resolved.read_config([str(REPO / "configs" / "common.json"), str(REPO / "configs" / config)])
        resolved.update(TINY)
        assert packaged_names == resolved.get_parsed_content("class_names"), config
    meta = json.loads((stage / "configs" / "metadata.json").read_text())
    assert meta["network_data_format"]["inputs"]["image"]["spatial_shape"] == [32, 32, "*"]


def test_model_ts_carries_metadata_and_inference_config(package):
    from bundle.export import load_torchscript

    stage, _ = package
    module, meta, config = load_torchscript(stage / "models" / "model.ts")
    assert meta["version"] == VERSION and config["image_size"] == [32, 32] and "preprocessing" in config
    state = torch.load(stage / "models" / "model.pt", weights_only=True)
    assert set(state) == {k for k in module.state_dict()}


# slow (default suite under 15 min): trains and infers from the unpacked zip in subprocesses
@pytest.mark.slow
def test_unpacked_zip_trains_and_infers_from_another_directory(package, tiny_dataset, tmp_path):
    _, archive = package
    zipfile.ZipFile(archive).extractall(tmp_path / "unpacked")
    bundle = tmp_path / "unpacked" / NAME
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    origin = _run([sys.executable, "-c", "import networks, transforms, bundle; print(networks.__file__, "
                   "transforms.__file__, bundle.__file__)"], elsewhere, bundle).stdout.split()
    assert all(Path(p).resolve().is_relative_to(bundle.resolve()) for p in origin)
    run = [sys.executable, "-m", "monai.bundle", "run", "--bundle_root", str(bundle)]
    before = (bundle / "models" / "model.pt").read_bytes()
    _run([*run, "--config_file", str(bundle / "configs" / "train.json"), "--dataset_dir", str(tiny_dataset),
          *TRAIN_ARGS], elsewhere, bundle)
    assert (bundle / "runs" / "train_synthetic_oct_r").is_dir()
    assert (bundle / "models" / "model.pt").read_bytes() != before
    _run([*run, "--config_file", str(bundle / "configs" / "inference.json"), "--input", str(tiny_dataset / "images")],
         elsewhere, bundle)
    predictions = json.loads((bundle / "eval" / "inference" / "predictions.json").read_text())
    assert len(predictions) == 12
    assert not list(elsewhere.iterdir()), "the run wrote into the working directory"


# slow (default suite under 15 min): downloads and loads the package in a subprocess
@pytest.mark.slow
def test_download_from_file_url_and_load(package, tmp_path):
    stage, archive = package
    bundle_dir = tmp_path / "downloads"
    bundle_dir.mkdir()
    code = (
        "import sys\nfrom monai.bundle import download\n"
        f"download(name={NAME!r}, bundle_dir={str(bundle_dir)!r}, url={archive.resolve().as_uri()!r}, progress=False)\n"
    )
    _run([sys.executable, "-c", code], tmp_path, bundle_dir / NAME)
    code = (
        "import json, torch, networks\nfrom monai.bundle import load\n"
        f"net = load(name={NAME!r}, bundle_dir={str(bundle_dir)!r}, device='cpu')\n"
        f"ts, meta, extra = load(name={NAME!r}, bundle_dir={str(bundle_dir)!r}, load_ts_module=True, device='cpu')\n"
        "bag = torch.rand(1, 5, 1, 32, 32)\nnet.eval()\n"
        "with torch.no_grad():\n    diff = float((net(bag, None) - ts(bag, None)).abs().max())\n"
        "print(json.dumps({'type': type(net).__name__, 'version': meta['version'], 'diff': diff,"
        " 'file': networks.__file__}))\n"
    )
    result = json.loads(_run([sys.executable, "-c", code], tmp_path, bundle_dir / NAME).stdout.strip().splitlines()[-1])
    assert result["type"] == "MIMSCNN" and result["version"] == VERSION and result["diff"] < 1e-5
    assert Path(result["file"]).resolve().is_relative_to((bundle_dir / NAME).resolve())
    expected = torch.load(stage / "models" / "model.pt", weights_only=True)
    loaded = torch.load(bundle_dir / NAME / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ckpt", "missing.pt", "--schema", "download"], "checkpoint not found: missing.pt"),
        (["--ckpt", "x.pt"], "--schema FILE is needed"),
        (["--check", "."], "is not a bundle folder"),
    ],
)
def test_clear_errors(args, message, tmp_path, capsys, monkeypatch):
    import package_bundle

    monkeypatch.chdir(tmp_path)
    assert package_bundle.main([*args, "--output-dir", str(tmp_path / "dist")]) != 0
    assert message in capsys.readouterr().err


def test_wrong_method_for_the_checkpoint_names_the_fix(package, tmp_path, capsys):
    import package_bundle

    stage, _ = package
    status = package_bundle.main(["--ckpt", str(stage / "models" / "model.pt"), "--method", "mi_pre",
                                  "--output-dir", str(tmp_path), "--no-check", "--override", "image_size=[32,32]"])
    assert status == 1
    assert "pass the --method and --override values it was trained with" in capsys.readouterr().err
