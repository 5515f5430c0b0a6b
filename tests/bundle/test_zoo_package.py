# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""``bundle.zoo_package`` and ``bundle.zoo_checks`` on small hand-made folders (the whole build with every check
runs in ``tests/scripts/test_package_bundle.py``)."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from bundle import zoo_checks, zoo_package
from bundle.checksums import sha256
from bundle.config import REPO

#: a small network: building it is all the failing builds below do with torch
SMALL = {"image_size": [32, 32], "backbone_depth": 10}


def test_sha256_is_the_digest_of_the_file(tmp_path):
    data = bytes(range(256)) * 5000  # > the 1 MiB read block
    (tmp_path / "w.bin").write_bytes(data)
    assert sha256(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()


def test_large_files_yml_has_the_zoo_format(tmp_path):
    entries = [{"path": f"models/{f}", "url": f"https://x/{f}", "hash_val": h, "hash_type": "sha256"}
               for f, h in (("model.pt", "aa"), ("model.ts", "bb"))]
    zoo_package._write_yaml_list(tmp_path / "large_files.yml", entries)
    assert (tmp_path / "large_files.yml").read_text() == (
        "large_files:\n"
        '  - path: "models/model.pt"\n    url: "https://x/model.pt"\n    hash_val: "aa"\n    hash_type: "sha256"\n'
        '  - path: "models/model.ts"\n    url: "https://x/model.ts"\n    hash_val: "bb"\n    hash_type: "sha256"\n'
    )


def test_zip_has_the_package_name_as_its_one_base_folder(tmp_path):
    stage = tmp_path / "my_bundle"
    (stage / "configs").mkdir(parents=True)
    (stage / "configs" / "metadata.json").write_text("{}")
    (stage / "LICENSE").write_text("x")
    archive = zoo_package.write_zip(stage, tmp_path / "out" / "my_bundle_v1.zip")
    assert zipfile.ZipFile(archive).namelist() == ["my_bundle/LICENSE", "my_bundle/configs/metadata.json"]


def test_build_refuses_a_missing_checkpoint_and_an_unknown_method(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        zoo_package.build_package(tmp_path / "none.pt", tmp_path / "dist")
    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no method overlay .*; methods: .*mi_pre_conv"):
        zoo_package.build_package(tmp_path / "ckpt.pt", tmp_path / "dist", method="no_such_method")
    assert not (tmp_path / "dist").exists()


def test_build_never_removes_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"")
    (tmp_path / "dist" / "pkg").mkdir(parents=True)
    (tmp_path / "dist" / "pkg" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a bundle package"):
        zoo_package.build_package(tmp_path / "ckpt.pt", tmp_path / "dist", name="pkg")
    assert (tmp_path / "dist" / "pkg" / "keep.txt").read_text() == "mine"


def test_an_unreadable_checkpoint_is_named_without_the_method_hint(tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.pt cannot be read") as error:
        zoo_package.build_package(tmp_path / "broken.pt", tmp_path / "dist", overrides=SMALL)
    assert "--method" not in str(error.value)


def _fake_package(root, version="0.2.0", changelog=("0.2.0",)):
    (root / "configs").mkdir(parents=True)
    meta = {"version": version, "changelog": {v: "..." for v in changelog}}
    (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    return root


@pytest.mark.parametrize(
    "version, changelog, failures",
    [("0.2.0", ("0.2.0", "0.1.0"), 1), ("0.3.0", ("0.2.0",), 2)],  # required files fail in both
)
def test_run_checks_reports_every_check_and_counts_failures(version, changelog, failures, tmp_path, capsys):
    bundle = _fake_package(tmp_path / "pkg", version, changelog)
    light = ("required files", "version in changelog", "configs are JSON")
    skip = [name for name in zoo_checks.CHECKS if name not in light]
    assert zoo_checks.run_checks(bundle, skip=skip) == failures
    out = capsys.readouterr().out
    assert "  FAIL  required files: FileNotFoundError: missing: configs/inference.json" in out
    assert ("  ok    version in changelog: version 0.2.0 in changelog" in out) == (failures == 1)
    assert "  ok    configs are JSON: 1 JSON files parse" in out
    assert all(f"  SKIP  {name} (asked)" in out for name in skip)


def test_checks_run_in_a_fresh_process_on_the_package_code(tmp_path, capfd):
    """The child imports ``bundle`` from the package folder first: a mark put into the package's copy of
    ``bundle/zoo_checks.py`` shows in its output; a broken config fails the run."""
    import shutil

    bundle = _fake_package(tmp_path / "pkg")
    shutil.copytree(REPO / "bundle", bundle / "bundle", ignore=shutil.ignore_patterns("__pycache__"))
    copy = bundle / "bundle" / "zoo_checks.py"
    copy.write_text(copy.read_text().replace("JSON files parse", "JSON files parse (package copy)"))
    keep = ("version in changelog", "configs are JSON")
    skip = [name for name in zoo_checks.CHECKS if name not in keep]
    assert zoo_checks.check_package(bundle, skip=skip)
    assert "  ok    configs are JSON: 1 JSON files parse (package copy)" in capfd.readouterr().out
    (bundle / "configs" / "broken.json").write_text("{")
    assert not zoo_checks.check_package(bundle, skip=skip)
    assert "  FAIL  configs are JSON: ValueError: configs/broken.json:" in capfd.readouterr().out


@pytest.mark.parametrize(
    "slice_axis, expected", [(2, [40, 48, "*"]), (-1, [40, 48, "*"]), (0, ["*", 40, 48]), (1, [40, "*", 48])]
)
def test_metadata_spatial_shape_follows_image_size_and_slice_axis(tmp_path, slice_axis, expected):
    from bundle.config import CONFIGS, config_parser

    meta = tmp_path / "metadata.json"
    meta.write_text((CONFIGS / "metadata.json").read_text())
    parser = config_parser([CONFIGS / "common.json"], {"image_size": [40, 48], "slice_axis": slice_axis})
    zoo_package._describe_network_io(meta, parser)
    image = json.loads(meta.read_text())["network_data_format"]["inputs"]["image"]
    assert image["spatial_shape"] == expected and image["num_channels"] == 1


def test_package_ships_the_decision_threshold_and_its_check_agrees(tmp_path):
    import torch

    from bundle.config import CONFIGS, build_network
    from bundle.decision import load_decision, save_decision

    network, _ = build_network([CONFIGS / "common.json"], SMALL)
    torch.save(network.state_dict(), tmp_path / "model.pt")
    decision = {"positive_class": 1, "threshold": 0.3125, "criterion": "youden", "split": "validation",
                "num_cases": 8, "sensitivity": 1.0, "specificity": 0.75, "epoch": 3}
    save_decision(decision, tmp_path / "model.pt")
    stage = zoo_package.build_package(tmp_path / "model.pt", tmp_path / "dist", overrides=SMALL)
    assert load_decision(stage / "models" / "model.pt") == decision
    assert zoo_checks.CHECKS["decision threshold"](stage) == "threshold 0.3125 in inference.json and model.ts"
    (stage / "models" / "model.decision.json").unlink()  # inference.json now resolves argmax, model.ts says 0.3125
    with pytest.raises(ValueError, match="resolves the decision threshold None, model.ts carries 0.3125"):
        zoo_checks.CHECKS["decision threshold"](stage)


def test_package_records_the_checkpoint_it_was_built_from_and_warns_when_it_changes(tmp_path, capsys):
    import torch

    from bundle.config import CONFIGS, build_network
    from bundle.model_selection import promote_model, read_provenance

    network, _ = build_network([CONFIGS / "common.json"], SMALL)
    (tmp_path / "run").mkdir()
    torch.save(network.state_dict(), tmp_path / "run" / "model.pt")
    ckpt = tmp_path / "models" / "model.pt"
    record = {"run_name": "train_x", "run_dir": str(tmp_path / "run"), "metric": {"name": "auroc", "value": 0.9},
              "epoch": 4, "validation": {"datalist": str(tmp_path / "d.json"), "split": "validation", "sha256": "v1"}}
    promote_model(tmp_path / "run" / "model.pt", ckpt, "better", record)
    stage = zoo_package.build_package(ckpt, tmp_path / "dist", overrides=SMALL)
    provenance = read_provenance(stage / "models" / "model.pt")  # describes the package's own model.pt
    source = json.loads((tmp_path / "models" / "model.provenance.json").read_text())
    assert provenance == {
        "model": "model.pt",
        "sha256": sha256(stage / "models" / "model.pt"),
        "built_from": {"path": str(ckpt), "sha256": sha256(ckpt)},  # outside the repository: absolute
        "run_name": "train_x", "metric": {"name": "auroc", "value": 0.9}, "epoch": 4,
        "code": source["code"], "promoted_at": source["promoted_at"],
        "validation": {"split": "validation", "sha256": "v1"},  # no local paths
    }
    assert zoo_checks.CHECKS["checkpoint hashes"](stage) == "model.ts records the sha256 of models/model.pt"
    assert zoo_checks.source_checkpoint_mismatch(stage) is None
    old = sha256(ckpt)
    torch.save({k: v + 1 for k, v in network.state_dict().items()}, ckpt)  # a newer model promoted since
    assert zoo_checks.source_checkpoint_mismatch(stage) == (
        f"the package {stage} was built from {ckpt} with sha256 {old[:12]}, but {ckpt} now has sha256 "
        f"{sha256(ckpt)[:12]}: the package no longer holds that model (build it again to ship the "
        "current one)"
    )
    shutil_copy = (stage / "models" / "model.pt").read_bytes()
    torch.save({k: v + 1 for k, v in network.state_dict().items()}, stage / "models" / "model.pt")
    skip = [name for name in zoo_checks.CHECKS if name != "checkpoint hashes"]
    assert zoo_checks.run_checks(stage, skip=skip) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert f"  WARN  checkpoint hashes: {stage / 'models' / 'model.ts'} was built from a checkpoint model.pt" in out
    assert shutil_copy != (stage / "models" / "model.pt").read_bytes()
