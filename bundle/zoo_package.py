# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""The shareable MONAI model-zoo package of the bundle, and the zoo's checks on it, offline.

The package ``<output-dir>/<name>/`` and its zip ``<output-dir>/<name>_v<version>.zip`` (one base
folder ``<name>/``, as ``monai.bundle.download`` expects) hold:

- ``configs/``: ``train.json``, ``evaluate.json`` and ``inference.json`` made **self-contained**
  (``common.json`` merged in, then the method overlay and the overrides), because the model zoo,
  ``monai.bundle.load`` and MONAI Label read one config file. ``common.json`` (with the same method and
  overrides), ``metadata.json``, ``logging.conf`` and the overlays (``methods/``, ``datasets/``,
  ``multi_gpu_*.json``) are copied, so the repository's commands
  (``['configs/common.json','configs/train.json', ...]``) give the same configuration in the package;
- ``models/model.pt`` (the state dict of the checkpoint, loaded strictly into ``network_def``),
  ``models/model.decision.json`` (the checkpoint's decision threshold, :mod:`bundle.decision`, when it has
  one: evaluation and inference in the package use it), ``models/model.ts`` (TorchScript carrying
  ``metadata.json`` with the decision and the SHA-256 of ``models/model.pt``, and the merged ``inference.json``)
  and ``models/model.provenance.json``: the SHA-256 of ``models/model.pt``, ``built_from`` (the checkpoint given,
  by its path relative to the repository when inside it, and its SHA-256: ``bundle.zoo_checks`` warns when that
  file has changed since) and, when that checkpoint is a promoted model, what its provenance says of the run
  (run name, MLflow run id, metric, epoch, validation data hash, code commit; not its local paths);
- ``large_files.yml``: path, URL and SHA-256 of both weight files (the weights are also copied to
  ``<output-dir>/<name>_v<version>_weights/`` for upload);
- the code the configs import (``networks/``, ``transforms/``, ``bundle/``), ``scripts/`` (without the
  MONAI Deploy and MONAI Label apps, which have their own environments and stay in the repository),
  ``docs/``, ``LICENSE``, ``pyproject.toml``.

The model zoo's checks on a package are in :mod:`bundle.zoo_checks`; ``scripts/package_bundle.py`` is the
command line of both.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bundle.checksums import sha256
from bundle.config import REPO, build_network, config_parser, load_weights, merged_config
from bundle.decision import decision_path, load_decision, save_decision
from bundle.reports import display_path
from bundle.zoo_checks import CODE_PACKAGES, check_package

__all__ = ["DEFAULT_NAME", "FLAT_CONFIGS", "build_package", "make_package", "write_zip"]

DEFAULT_NAME = "mims_cnn_volume_classification"
#: config files made self-contained (common.json merged in)
FLAT_CONFIGS = ("train.json", "evaluate.json", "inference.json")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
#: the MONAI Deploy and MONAI Label apps run the bundle from the repository, in their own environments
_SCRIPTS_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "monai_deploy_app", "monai_label_app", "setup_*_env.sh", "app_env_support.sh"
)


def _write_yaml_list(path: Path, entries: Sequence[Mapping[str, str]]) -> None:
    """``large_files.yml`` in the model zoo's format (a ``large_files`` list of path/url/hash entries)."""
    lines = ["large_files:"]
    for entry in entries:
        first = True
        for key, value in entry.items():
            lines.append(f'  {"- " if first else "  "}{key}: "{value}"')
            first = False
    path.write_text("\n".join(lines) + "\n")


def _describe_network_io(meta_file: Path, parser: Any) -> None:
    """Write the package's channels, spatial shape and classes into ``network_data_format`` of ``meta_file``.

    The spatial shape is that of a volume for ``network_volume_def``: ``image_size`` on the two in-plane axes and
    ``"*"`` (any number of slices) on the axis ``slice_axis`` names.
    """
    meta = json.loads(meta_file.read_text())
    size = [int(s) for s in parser.get_parsed_content("image_size")]
    classes = {str(i): str(c) for i, c in enumerate(parser.get_parsed_content("class_names"))}
    formats = meta["network_data_format"]
    formats["inputs"]["image"]["num_channels"] = int(parser.get_parsed_content("in_channels"))
    shape: list[int | str] = list(size)
    shape.insert(int(parser.get_parsed_content("slice_axis")) % 3, "*")
    formats["inputs"]["image"]["spatial_shape"] = shape
    for section in ("outputs", "post_processed_outputs"):
        for output in formats.get(section, {}).values():
            output["num_channels"] = len(classes)
            output["channel_def"] = classes
    meta_file.write_text(json.dumps(meta, indent=4) + "\n")


#: what the package's provenance keeps of a promoted checkpoint's provenance (no local paths)
_PROVENANCE_KEYS = ("run_name", "mlflow_run_id", "keep_model", "metric", "epoch", "code", "promoted_at")


def _write_provenance(models: Path, ckpt: Path, repo: Path) -> None:
    """``models/model.provenance.json`` of the package: its model.pt's hash and the checkpoint it was built from."""
    from bundle.model_selection import provenance_path, read_provenance

    source = read_provenance(ckpt) or {}
    validation = source.get("validation") or {}
    provenance = {
        "model": "model.pt",
        "sha256": sha256(models / "model.pt"),
        "built_from": {"path": display_path(ckpt, repo), "sha256": sha256(ckpt)},
        **{key: source[key] for key in _PROVENANCE_KEYS if key in source},
    }
    if validation:
        provenance["validation"] = {"split": validation.get("split"), "sha256": validation.get("sha256")}
    provenance_path(models / "model.pt").write_text(json.dumps(provenance, indent=2, default=str) + "\n")


def build_package(
    ckpt: str | Path,
    output_dir: str | Path,
    name: str = DEFAULT_NAME,
    method: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    weights_url: str | None = None,
    repo: str | Path = REPO,
) -> Path:
    """Stage the package folder ``output_dir/name`` from the repository ``repo``; returns its path.

    Args:
        ckpt: trained checkpoint: a state dict or a resumable checkpoint with a ``"model"`` entry.
        output_dir: where the package folder and the weights folder for upload go.
        name: the package folder's name (the zoo's bundle name).
        method: method overlay baked into the configs (``configs/methods/<method>.json``); None: the configs'.
        overrides: config values (``id: value``) the checkpoint was trained with, baked into the configs.
        weights_url: URL of the folder the weights will be uploaded to (``large_files.yml``); None: a
            ``file://`` URL of ``output_dir/<name>_v<version>_weights``.
        repo: the repository the package is made from.

    Raises:
        FileNotFoundError: naming a missing checkpoint or method overlay.
        FileExistsError: when ``output_dir/name`` exists and is not a package this module built.
        RuntimeError: when the checkpoint does not load strictly into ``network_def``.
        ValueError: naming a checkpoint that cannot be read as a (weights-only) state dict.
    """
    from bundle.export import export_torchscript

    repo, output_dir, ckpt = Path(repo), Path(output_dir), Path(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt} (train first, or pass --ckpt)")
    configs = repo / "configs"
    overlays: list[Path] = []
    if method is not None:
        overlay = configs / "methods" / f"{method}.json"
        if not overlay.is_file():
            known = sorted(p.stem for p in (configs / "methods").glob("*.json"))
            raise FileNotFoundError(f"no method overlay {overlay}; methods: {', '.join(known)}")
        overlays.append(overlay)
    overrides = dict(overrides or {})
    names = config_parser([configs / "common.json", *overlays], overrides).get_parsed_content("class_names")
    overrides.setdefault("class_names", [str(c) for c in names])  # resolved here: bundle.class_names

    stage = output_dir / name
    if stage.exists():
        if not (stage / "configs" / "metadata.json").is_file() or not (stage / "large_files.yml").is_file():
            raise FileExistsError(f"{stage} exists and is not a bundle package: remove it or choose --output-dir")
        shutil.rmtree(stage)
    stage.mkdir(parents=True)

    shutil.copytree(configs, stage / "configs", ignore=_IGNORED)
    for config in FLAT_CONFIGS:
        flat = merged_config([configs / "common.json", configs / config, *overlays], overrides)
        (stage / "configs" / config).write_text(json.dumps(flat, indent=4) + "\n")
    common = merged_config([configs / "common.json", *overlays], overrides)
    (stage / "configs" / "common.json").write_text(json.dumps(common, indent=4) + "\n")

    for package in CODE_PACKAGES:
        shutil.copytree(repo / package, stage / package, ignore=_IGNORED)
    shutil.copytree(repo / "scripts", stage / "scripts", ignore=_SCRIPTS_IGNORED)
    shutil.copytree(repo / "docs", stage / "docs", ignore=_IGNORED)
    for top in ("LICENSE", "pyproject.toml"):
        shutil.copy2(repo / top, stage / top)

    # weights: strict load into network_def of the package's inference config, then model.pt + model.ts
    import torch

    network, parser = build_network([stage / "configs" / "inference.json"])
    try:
        load_weights(network, ckpt)  # strict; a resumable checkpoint's "model" entry
    except ValueError as err:
        if not isinstance(err.__cause__, RuntimeError):  # unreadable, or not a state dict: the message says so
            raise
        raise RuntimeError(  # load_state_dict refused it: another network or size than the configs'
            f"{ckpt} does not fit network_def of the package configs (method {method or 'from configs'}, "
            f"overrides {overrides}): pass the --method and --override values it was trained with.\n{err}"
        ) from err
    models = stage / "models"
    models.mkdir()
    torch.save(network.state_dict(), models / "model.pt")
    if decision_path(ckpt).is_file():  # the decision threshold chosen for this checkpoint (checked when read)
        save_decision(load_decision(ckpt), models / "model.pt")
    _write_provenance(models, ckpt, repo)
    _describe_network_io(stage / "configs" / "metadata.json", parser)
    config = stage / "configs"
    export_torchscript(models / "model.pt", models / "model.ts", [config / "inference.json"], config / "metadata.json")

    version = json.loads((configs / "metadata.json").read_text())["version"]
    weights_dir = output_dir / f"{name}_v{version}_weights"
    if weights_dir.exists():
        shutil.rmtree(weights_dir)
    weights_dir.mkdir()
    base = weights_url.rstrip("/") if weights_url else weights_dir.resolve().as_uri()
    entries = []
    for file in ("model.pt", "model.ts"):
        shutil.copy2(models / file, weights_dir / file)
        digest = sha256(models / file)
        entries.append({"path": f"models/{file}", "url": f"{base}/{file}", "hash_val": digest, "hash_type": "sha256"})
    _write_yaml_list(stage / "large_files.yml", entries)
    return stage


def write_zip(stage: str | Path, zip_path: str | Path) -> Path:
    """Zip the package folder ``stage`` with ``stage.name`` as the one base folder."""
    stage, zip_path = Path(stage), Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                archive.write(path, Path(stage.name) / path.relative_to(stage))
    return zip_path


def make_package(
    ckpt: str | Path,
    output_dir: str | Path,
    name: str = DEFAULT_NAME,
    method: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    weights_url: str | None = None,
    schema: str | None = None,
    check: bool = True,
    skip: Sequence[str] = (),
) -> int:
    """:func:`build_package`, then (``check``) :func:`bundle.zoo_checks.check_package`, then :func:`write_zip`
    when the checks pass.

    Prints what it writes and each check; errors go to stderr. Arguments as for :func:`build_package` and
    :func:`bundle.zoo_checks.check_package`.

    Returns:
        The exit status: 0 when the zip was written, 1 when the build or a check failed.
    """

    try:
        stage = build_package(ckpt, output_dir, name, method, overrides, weights_url)
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    version = json.loads((stage / "configs" / "metadata.json").read_text())["version"]
    print(f"package folder: {stage}", flush=True)
    if weights_url is None:
        print("note: large_files.yml points to file:// URLs on this machine; pass --weights-url to share", flush=True)
    if check:
        print("checks:", flush=True)
        if not check_package(stage, schema, skip):
            print("error: checks failed; no zip written", file=sys.stderr)
            return 1
    archive = write_zip(stage, Path(output_dir) / f"{name}_v{version}.zip")
    print(f"zip: {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    print(f"weights for upload: {Path(output_dir) / f'{name}_v{version}_weights'}")
    return 0
