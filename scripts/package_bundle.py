# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Build the shareable MONAI model-zoo package of the bundle and run the zoo's checks on it, offline.

The package ``<output-dir>/<name>/`` and its zip ``<output-dir>/<name>_v<version>.zip`` (one base
folder ``<name>/``, as ``monai.bundle.download`` expects) hold:

- ``configs/``: ``train.json``, ``evaluate.json`` and ``inference.json`` made **self-contained**
  (``common.json`` merged in, then the ``--method`` overlay and the ``--override`` values), because the
  model zoo, ``monai.bundle.load`` and MONAI Label read one config file. ``common.json`` (with the
  same method and overrides), ``metadata.json``, ``logging.conf`` and the overlays (``methods/``,
  ``datasets/``, ``multi_gpu_*.json``) are copied, so the repository's commands
  (``['configs/common.json','configs/train.json', ...]``) give the same configuration in the package;
- ``models/model.pt`` (the state dict of ``--ckpt``, loaded strictly into ``network_def``) and
  ``models/model.ts`` (TorchScript carrying ``metadata.json`` and the merged ``inference.json``);
- ``large_files.yml``: path, URL and SHA-256 of both weight files (URLs under ``--weights-url``;
  the weights are also copied to ``<output-dir>/<name>_v<version>_weights/`` for upload);
- the code the configs import (``networks/``, ``transforms/``, ``bundle/``), ``scripts/`` (without the
  MONAI Deploy and MONAI Label apps, which have their own environments and stay in the repository),
  ``docs/`` (``README.md``, ``data_license.txt``, results), ``LICENSE``, ``pyproject.toml``.

The configs import the bundle's own packages when they are parsed, before ``monai.bundle run``
adds the bundle folder to ``sys.path``; run the unpacked package with the bundle folder on
``PYTHONPATH`` (or ``pip install`` it)::

    PYTHONPATH=/path/to/<name> python -m monai.bundle run --bundle_root /path/to/<name> \\
        --config_file /path/to/<name>/configs/inference.json --input /path/to/volumes

Checks (``--check DIR`` runs them on an existing package; they run in a fresh process with the
package first on ``PYTHONPATH``, so they test the package's code, not an installed copy): required
files, version in changelog, ``verify_metadata`` against a local schema, inference workflow
properties, ``verify_net_in_out`` (``network_volume_def``), ``ckpt_export`` (same logits as
``model.pt`` and ``model.ts``), ``large_files.yml`` (each file downloaded from its URL and
hash-checked into a scratch folder), JSON configs parse, ``ruff`` lint of the package's code.

Examples::

    python scripts/package_bundle.py --ckpt models/model.pt --schema meta_schema_20240725.json
    python scripts/package_bundle.py --ckpt runs/<stamp>/model.pt --method mi_pre_conv \\
        --override 'image_size=[32,32]' --weights-url https://example.org/v0.2.0 --schema meta_schema_20240725.json
    python scripts/package_bundle.py --check dist/mims_cnn_volume_classification --schema meta_schema_20240725.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from script_support import override_arg

__all__ = [
    "CHECKS",
    "REQUIRED_FILES",
    "build_package",
    "build_parser",
    "check_package",
    "main",
    "write_zip",
]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NAME = "mims_cnn_volume_classification"
#: config files made self-contained (common.json merged in)
FLAT_CONFIGS = ("train.json", "evaluate.json", "inference.json")
CODE_PACKAGES = ("networks", "transforms", "bundle")
REQUIRED_FILES = (
    "configs/metadata.json",
    "configs/inference.json",
    "configs/train.json",
    "configs/logging.conf",
    "models/model.pt",
    "models/model.ts",
    "docs/README.md",
    "docs/data_license.txt",
    "LICENSE",
    "large_files.yml",
)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
#: the MONAI Deploy and MONAI Label apps run the bundle from the repository, in their own environments
_SCRIPTS_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "monai_deploy_app", "monai_label_app", "setup_*_env.sh", "app_env_support.sh"
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Write the package's channels, in-plane size and classes into ``network_data_format`` of ``meta_file``."""
    meta = json.loads(meta_file.read_text())
    size = [int(s) for s in parser.get_parsed_content("image_size")]
    classes = {str(i): str(c) for i, c in enumerate(parser.get_parsed_content("class_names"))}
    formats = meta["network_data_format"]
    formats["inputs"]["image"]["num_channels"] = int(parser.get_parsed_content("in_channels"))
    formats["inputs"]["image"]["spatial_shape"] = [*size, "*"]
    for section in ("outputs", "post_processed_outputs"):
        for output in formats.get(section, {}).values():
            output["num_channels"] = len(classes)
            output["channel_def"] = classes
    meta_file.write_text(json.dumps(meta, indent=4) + "\n")


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

    Raises:
        FileNotFoundError: naming a missing checkpoint or method overlay.
        FileExistsError: when ``output_dir/name`` exists and is not a package this script built.
        RuntimeError: when the checkpoint does not load strictly into ``network_def``.
    """
    from monai.bundle import ConfigParser

    from export_onnx import load_weights

    from bundle.export import export_torchscript, merged_config

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

    parser = ConfigParser()
    parser.read_config(str(stage / "configs" / "inference.json"))
    network = parser.get_parsed_content("network_def")
    try:
        load_weights(network, ckpt)  # strict; a resumable checkpoint's "model" entry
    except RuntimeError as err:
        raise RuntimeError(
            f"{ckpt} does not fit network_def of the package configs (method {method or 'from configs'}, "
            f"overrides {overrides}): pass the --method and --override values it was trained with.\n{err}"
        ) from err
    models = stage / "models"
    models.mkdir()
    torch.save(network.state_dict(), models / "model.pt")
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
        digest = _sha256(models / file)
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


# ----------------------------------------------------------------------------------------------------------
# checks: run in a fresh process with the package first on PYTHONPATH (see check_package)


def _check_required_files(bundle: Path, **_: Any) -> str:
    missing = [f for f in REQUIRED_FILES if not (bundle / f).is_file()]
    if missing:
        raise FileNotFoundError(f"missing: {', '.join(missing)}")
    return f"{len(REQUIRED_FILES)} files present"


def _check_version(bundle: Path, **_: Any) -> str:
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    for key in ("version", "changelog"):
        if key not in meta:
            raise KeyError(f"configs/metadata.json has no '{key}'")
    if meta["version"] not in meta["changelog"]:
        raise KeyError(f"version {meta['version']} is not in the changelog ({', '.join(meta['changelog'])})")
    return f"version {meta['version']} in changelog"


def _check_json(bundle: Path, **_: Any) -> str:
    files = sorted((bundle / "configs").rglob("*.json"))
    for file in files:
        try:
            json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{file.relative_to(bundle)}: {err}") from err
    return f"{len(files)} JSON files parse"


def _check_code_origin(bundle: Path, **_: Any) -> str:
    import importlib

    for package in CODE_PACKAGES:
        origin = Path(importlib.import_module(package).__file__).resolve()
        if bundle.resolve() not in origin.parents:
            raise ImportError(f"'{package}' imports from {origin}, not from the package {bundle}")
    return "networks, transforms, bundle import from the package"


def _check_metadata(bundle: Path, schema: str | None = None, **_: Any) -> str:
    from monai.bundle import verify_metadata

    if schema is None:
        raise ValueError("no schema: pass --schema FILE (offline) or --schema download (fetches metadata.json's URL)")
    kwargs = {} if schema == "download" else {"filepath": schema}
    if schema != "download" and not Path(schema).is_file():
        raise FileNotFoundError(f"schema not found: {schema}")
    if schema == "download":  # MONAI downloads to filepath; keep the package clean
        kwargs["filepath"] = str(Path(tempfile.mkdtemp()) / "schema.json")
    verify_metadata(meta_file=str(bundle / "configs" / "metadata.json"), **kwargs)
    return f"metadata valid against {Path(kwargs['filepath']).name}"


def _check_properties(bundle: Path, **_: Any) -> str:
    import nibabel
    import numpy as np
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as scratch:  # inference.json checks its input exists: give it one volume
        volume = np.random.default_rng(0).random((16, 16, 4), dtype=np.float32)
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(Path(scratch) / "case.nii.gz"))
        workflow = ConfigWorkflow(
            config_file=str(bundle / "configs" / "inference.json"),
            meta_file=str(bundle / "configs" / "metadata.json"),
            logging_file=str(bundle / "configs" / "logging.conf"),
            workflow_type="inference",
            bundle_root=str(bundle),
            input=scratch,
        )
        workflow.initialize()
        missing = workflow.check_properties()
    if missing:
        raise ValueError(f"inference.json lacks required properties: {missing}")
    return "inference workflow has MONAI's required properties"


def _check_net_in_out(bundle: Path, **_: Any) -> str:
    from monai.bundle import verify_net_in_out

    verify_net_in_out(
        net_id="network_volume_def",
        meta_file=str(bundle / "configs" / "metadata.json"),
        config_file=str(bundle / "configs" / "inference.json"),
        device="cpu",
        any=3,
        bundle_root=str(bundle),
    )
    return "network_volume_def: a volume of metadata's input shape (3 slices) gives metadata's output"


def _check_export(bundle: Path, **_: Any) -> str:
    import torch
    from monai.bundle import ConfigParser, ckpt_export

    verify_ts = bundle / "models" / "verify_model.ts"
    try:
        ckpt_export(
            net_id="network_def",
            filepath=str(verify_ts),
            ckpt_file=str(bundle / "models" / "model.pt"),
            meta_file=str(bundle / "configs" / "metadata.json"),
            config_file=str(bundle / "configs" / "inference.json"),
            bundle_root=str(bundle),
        )
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs" / "inference.json"))
        network = parser.get_parsed_content("network_def")
        network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
        network.eval()
        size = [int(s) for s in parser.get_parsed_content("image_size")]
        channels = int(parser.get_parsed_content("in_channels"))
        bag = torch.rand(2, 4, channels, *size, generator=torch.Generator().manual_seed(0))
        mask = torch.tensor([[True] * 4, [True, True, True, False]])
        with torch.no_grad():
            expected = network(bag, mask)
            for path in (verify_ts, bundle / "models" / "model.ts"):
                torch.testing.assert_close(torch.jit.load(str(path))(bag, mask), expected, rtol=1e-4, atol=1e-5)
    finally:
        verify_ts.unlink(missing_ok=True)
    return "ckpt_export works; exported and shipped model.ts give model.pt's logits"


def _check_large_files(bundle: Path, **_: Any) -> str:
    from monai.bundle.scripts import download_large_files

    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy2(bundle / "large_files.yml", Path(scratch) / "large_files.yml")
        # large_file_name=None: MONAI 1.6.1 fails when it is given (finds large_files.* itself)
        download_large_files(bundle_path=scratch, large_file_name=None)
        fetched = sorted(p.relative_to(scratch).as_posix() for p in Path(scratch).rglob("*.*") if p.suffix != ".yml")
        for rel in fetched:
            if _sha256(Path(scratch) / rel) != _sha256(bundle / rel):
                raise ValueError(f"{rel} from large_files.yml differs from the package's")
    return f"large_files.yml: {', '.join(fetched)} downloaded and hash-checked"


def _check_lint(bundle: Path, **_: Any) -> str:
    targets = [str(bundle / p) for p in (*CODE_PACKAGES, "scripts")]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(bundle / "pyproject.toml"), *targets],
        capture_output=True,
        text=True,
    )
    if "No module named ruff" in result.stderr:
        raise RuntimeError("ruff is not installed: pip install -e '.[test]' (or pass --skip-lint)")
    if result.returncode:
        raise RuntimeError(f"ruff found problems:\n{result.stdout}{result.stderr}")
    return "ruff check (pyproject settings) clean"


#: name -> check function; order is the order they run in
CHECKS: dict[str, Callable[..., str]] = {
    "required files": _check_required_files,
    "version in changelog": _check_version,
    "configs are JSON": _check_json,
    "code imports from the package": _check_code_origin,
    "verify_metadata": _check_metadata,
    "inference properties": _check_properties,
    "verify_net_in_out": _check_net_in_out,
    "ckpt_export": _check_export,
    "large_files.yml": _check_large_files,
    "lint": _check_lint,
}


def _run_checks_here(bundle: Path, schema: str | None, skip: Sequence[str]) -> int:
    failures = 0
    for name, check in CHECKS.items():
        if name in skip:
            print(f"  SKIP  {name} (asked)", flush=True)
            continue
        start = time.perf_counter()
        try:
            detail = check(bundle, schema=schema)
        except Exception as err:  # report every check, then fail
            failures += 1
            print(f"  FAIL  {name}: {type(err).__name__}: {err}", flush=True)
        else:
            print(f"  ok    {name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
    return failures


def check_package(bundle: str | Path, schema: str | None = None, skip: Sequence[str] = ()) -> bool:
    """Run :data:`CHECKS` on the package folder ``bundle`` in a fresh process (package first on PYTHONPATH).

    Prints one line per check; returns True when all ran and passed.
    """
    bundle = Path(bundle).resolve()
    if schema not in (None, "download"):
        schema = str(Path(schema).resolve())
    # the package's code first; the child finds this script's module through scripts/ of the package itself
    path = [str(bundle / "scripts"), str(bundle), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    command = [sys.executable, "-c", "import sys; from package_bundle import _child; sys.exit(_child())", str(bundle)]
    command += ["--schema", schema or "", "--skip", *skip]
    with tempfile.TemporaryDirectory() as cwd:  # not the repository: its folders would shadow the package
        return subprocess.run(command, env=env, cwd=cwd).returncode == 0


def _child() -> int:
    """Entry point of the checking process (see :func:`check_package`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("bundle")
    parser.add_argument("--schema", default="")
    parser.add_argument("--skip", nargs="*", default=[])
    args = parser.parse_args(sys.argv[1:])
    return 1 if _run_checks_here(Path(args.bundle), args.schema or None, args.skip) else 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of this script."""
    p = argparse.ArgumentParser(
        description="Build the MONAI model-zoo package (folder + zip) of the bundle from a checkpoint and check it "
        "offline the way the model zoo does.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ckpt", default="models/model.pt",
                   help="trained checkpoint: a state dict (models/model.pt, runs/<stamp>/model.pt) or a resumable "
                   "checkpoint with a 'model' entry")
    p.add_argument("--method", default=None,
                   help="method overlay the checkpoint was trained with (configs/methods/<method>.json), baked into "
                   "the package configs; default: the configs' network (MIMS-CNN)")
    p.add_argument("--override", nargs="+", type=override_arg, default=[], metavar="KEY=VALUE",
                   help="config values the checkpoint was trained with, baked into the package configs, as JSON where "
                   "they parse (e.g. 'image_size=[32,32]' backbone_depth=18)")
    p.add_argument("--name", default=DEFAULT_NAME, help="bundle folder name in the zip (the zoo's bundle name)")
    p.add_argument("--output-dir", default="dist", help="where the package folder, the zip and the weights go")
    p.add_argument("--weights-url", default=None,
                   help="URL of the folder the weights will be uploaded to, written into large_files.yml; default: a "
                   "file:// URL of <output-dir>/<name>_v<version>_weights on this machine (fine for testing, not for "
                   "sharing)")
    p.add_argument("--schema", default=None,
                   help="MONAI's bundle metadata JSON schema (the file named in metadata.json's 'schema'), for "
                   "verify_metadata offline; 'download' lets MONAI fetch it")
    p.add_argument("--check", default=None, metavar="DIR",
                   help="only run the checks on an existing package folder DIR (nothing is built)")
    p.add_argument("--no-check", action="store_true", help="build the package without running the checks")
    p.add_argument("--skip-lint", action="store_true", help="leave out the ruff lint check")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Build (unless --check) and check the package; returns the exit status."""
    args = build_parser().parse_args(argv)
    skip = ["lint"] if args.skip_lint else []
    if args.check is not None:
        bundle = Path(args.check)
        if not (bundle / "configs" / "metadata.json").is_file():
            print(f"error: {bundle} is not a bundle folder (no configs/metadata.json)", file=sys.stderr)
            return 2
        print(f"checking {bundle}", flush=True)
        return 0 if check_package(bundle, args.schema, skip) else 1
    if args.schema is None and not args.no_check:
        print("error: --schema FILE is needed for verify_metadata offline ('download' to fetch it, or --no-check)",
              file=sys.stderr)
        return 2
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        stage = build_package(
            args.ckpt, args.output_dir, args.name, args.method, dict(args.override), args.weights_url
        )
    except (FileNotFoundError, FileExistsError, RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    version = json.loads((stage / "configs" / "metadata.json").read_text())["version"]
    print(f"package folder: {stage}", flush=True)
    if args.weights_url is None:
        print("note: large_files.yml points to file:// URLs on this machine; pass --weights-url to share", flush=True)
    if not args.no_check:
        print("checks:", flush=True)
        if not check_package(stage, args.schema, skip):
            print("error: checks failed; no zip written", file=sys.stderr)
            return 1
    archive = write_zip(stage, Path(args.output_dir) / f"{args.name}_v{version}.zip")
    print(f"zip: {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    print(f"weights for upload: {Path(args.output_dir) / f'{args.name}_v{version}_weights'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
